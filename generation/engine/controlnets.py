"""Depth ControlNets: which one a projected texture uses, found before any work, loaded in the worker.

`controlnet` is an id, a diffusers folder or a .safetensors file, like `model`; empty takes the curated one
for the model's family (setup/model_catalog.py lists them with their licences); "none" projects without
depth control. Generating never downloads: a curated ControlNet not on this computer is refused with the id
to download. torch and diffusers are imported only when one loads.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidRequest, ModelNotFound
from . import model_size
from .request import looks_like_path

# The curated depth ControlNet of each family that has one (setup/model_catalog.py: licences, sizes).
CURATED = {"sd": "lllyasviel/control_v11f1p_sd15_depth", "sdxl": "diffusers/controlnet-depth-sdxl-1.0"}
NONE = "none"


@dataclass(frozen=True)
class ControlNetSource:
    """A depth ControlNet on this computer: `name` as the artist gave it, `path` its folder or file."""

    name: str
    path: Path

    def load(self, pipe):
        """The ControlNet on the pipeline's device and in its precision (worker thread); one made for
        another family (its cross-attention width differs from the UNet's) is refused in words."""
        from diffusers import ControlNetModel

        if self.path.is_file():
            net = ControlNetModel.from_single_file(str(self.path))
        else:
            net = ControlNetModel.from_pretrained(str(self.path))
        unet = pipe.unet
        if net.config.cross_attention_dim != unet.config.cross_attention_dim:
            raise InvalidRequest(
                f"the ControlNet {self.name} was made for another kind of model (its text width "
                f"{net.config.cross_attention_dim}, the model's {unet.config.cross_attention_dim}): give one "
                "for the model's family"
            )
        return net.to(device=unet.device, dtype=unet.dtype)


def resolve(value: str, model: str) -> ControlNetSource | None:
    """The ControlNet `value` names for `model` (see the module's docstring), or None for "none"."""
    value = (value or "").strip()
    if value.lower() == NONE:
        return None
    if not value:
        size = model_size.estimate_for(model)
        family = size.family if size is not None else ""
        if family not in CURATED:
            raise InvalidRequest(
                f"{family or 'This'} models have no depth ControlNet here: give controlnet='none' to "
                "project without depth control, or use an SD 1.5 or SDXL model"
            )
        value = CURATED[family]
    if looks_like_path(value):
        path = Path(value).expanduser()
        if path.is_file() and path.suffix.lower() == ".safetensors":
            return ControlNetSource(value, path)
        if is_controlnet_folder(path):
            return ControlNetSource(value, path)
        raise ModelNotFound(f'ControlNet "{value}" is not a ControlNet folder or a .safetensors file')
    folder = cached_folder(value)
    if folder is None:
        raise ModelNotFound(
            f"The depth ControlNet {value} is not downloaded: download it with Download Model (or "
            f"blender --online-mode -c promptscape download {value}), or give controlnet='none'"
        )
    return ControlNetSource(value, folder)


def is_controlnet_folder(path: Path) -> bool:
    """A diffusers ControlNetModel folder: config.json naming the class, and weights beside it."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    weights = [*path.glob("*.safetensors"), *path.glob("*.bin")]
    return "ControlNet" in str(config.get("_class_name", "")) and bool(weights)


def cached_folder(repo_id: str) -> Path | None:
    """The snapshot folder of a ControlNet id in the local Hugging Face cache, when it is complete."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json")
    if not isinstance(found, str):
        return None
    folder = Path(found).parent
    return folder if is_controlnet_folder(folder) else None
