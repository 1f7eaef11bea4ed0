"""A transformer given as one file, in place of the one in the `model` folder or id (which still gives the
text encoder, the VAE and the scheduler): the form fine-tunes and GGUF quantisations are shared in.

A single file has no config, so its family is read from its tensor names, as SDXL checkpoints are
(models.is_xl_checkpoint), never from its name. A file in diffusers' own layout loads as it is; one in the
original (ComfyUI) layout goes through diffusers' converter; a .gguf keeps its quantised weights.
"""

from pathlib import Path

from ..errors import InvalidRequest, ModelLoadError, missing_dependency
from . import families
from .safetensors_header import check_safetensors

SUFFIXES = (".safetensors", ".gguf")
# Tensor names only a family's transformer has, in both layouts (every one must appear in some name).
SIGNATURES = {
    "zimage": ("cap_pad_token", "x_pad_token"),
    "flux2-klein": ("single_stream_modulation",),
    "qwen-image": ("img_in.", "txt_in.", "img_mod"),
}


def check_path(transformer: str) -> Path:
    """The file `transformer` names, checked to exist and be a .safetensors or .gguf file."""
    path = Path(transformer).expanduser()
    if not path.is_file():
        raise InvalidRequest(f'transformer "{transformer}" is not a file: give a .safetensors or .gguf file')
    if path.suffix.lower() not in SUFFIXES:
        raise InvalidRequest(f'transformer "{path.name}" is not a .safetensors or .gguf file')
    return path


def tensor_names(path: Path) -> list[str]:
    """The names of the tensors in the file, read from its header without loading any weight."""
    if path.suffix.lower() == ".gguf":
        try:
            from gguf import GGUFReader
        except ImportError:
            raise missing_dependency("gguf", "GGUF transformers") from None
        return [tensor.name for tensor in GGUFReader(str(path)).tensors]
    return [name for name in check_safetensors(path) if name != "__metadata__"]


def family_of(path: Path) -> str:
    """The family whose transformer the file holds; refused in words when it is none of them."""
    names = tensor_names(path)
    for family, marks in SIGNATURES.items():
        if all(any(mark in name for name in names) for mark in marks):
            return family
    raise ModelLoadError(
        f'"{path.name}" holds no Z-Image, FLUX.2 klein or Qwen-Image transformer (its tensor names match '
        "none of theirs): give the transformer file of one of them, or leave transformer empty"
    )


def load(path: Path, model_family: families.Family, model_folder: Path, dtype):
    """The transformer module in `path`, shaped by the model folder's transformer config."""
    import torch

    found = family_of(path)
    if found != model_family.name:
        raise InvalidRequest(
            f'"{path.name}" is a {found} transformer but the model is {model_family.name}: give the {found} '
            "model (its text encoder and VAE) as model, or a transformer of its own family"
        )
    import diffusers

    config_folder = model_folder / "transformer"
    cls = getattr(diffusers, _class_name(config_folder))
    with torch.device("meta"):
        empty = cls.from_config(cls.load_config(str(config_folder)))
    if path.suffix.lower() == ".safetensors" and set(tensor_names(path)) == set(empty.state_dict()):
        from safetensors.torch import load_file

        empty.load_state_dict(load_file(str(path)), strict=True, assign=True)
        return empty.to(dtype)
    options = {}
    if path.suffix.lower() == ".gguf":
        options["quantization_config"] = diffusers.GGUFQuantizationConfig(compute_dtype=dtype)
    try:
        return cls.from_single_file(str(path), config=str(model_folder), subfolder="transformer",
                                    torch_dtype=dtype, **options)  # fmt: skip
    except Exception as error:
        raise ModelLoadError(
            f'"{path.name}" could not be loaded as a {found} transformer: {error}'
        ) from error


def _class_name(config_folder: Path) -> str:
    import json

    return json.loads((config_folder / "config.json").read_text(encoding="utf-8"))["_class_name"]
