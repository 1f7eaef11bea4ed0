"""Finding and loading a TripoSR checkpoint: strictly, from tensors only, kept as .safetensors beside itself.

The published repository (stabilityai/TripoSR) holds config.yaml and a pickled model.ckpt. The .ckpt is read
once with torch.load(weights_only=True), which refuses anything but tensors, and written as model.safetensors
beside it; later loads read that. The state dict must match one of the hard-coded configurations exactly
(every name, every shape): anything else is refused in words, never half-loaded.
"""

import logging
import os
import threading
from pathlib import Path

from ..errors import ModelLoadError, ModelNotFound, missing_dependency
from . import triposr_model
from .triposr_config import CONFIGS, TripoSRConfig

log = logging.getLogger(__name__)

DEFAULT_MODEL = "stabilityai/TripoSR"
CHECKPOINT = "model.ckpt"
CONVERTED = "model.safetensors"
CONFIG_FILE = "config.yaml"
WEIGHT_SUFFIXES = (".safetensors", ".ckpt")

_cache: dict = {}  # {"key": (path, device), "model": module}
_lock = threading.Lock()


def not_downloaded(source: str) -> ModelNotFound:
    return ModelNotFound(
        f'the prop model "{source}" is not downloaded: download {DEFAULT_MODEL} (Preferences > Add-ons > '
        f"Promptscape > Download Model, or blender -c promptscape download {DEFAULT_MODEL}), or set "
        f"prop_model to a folder holding its {CHECKPOINT}"
    )


def resolve_prop_model(source: str) -> Path:
    """The weights file of `source`: a folder holding model.ckpt/model.safetensors, such a file, or a Hub id
    in the local cache. Torch-free and cheap, for the main thread: a missing model fails before any work."""
    source = str(source).strip() or DEFAULT_MODEL
    path = Path(os.path.expanduser(source))
    if path.is_dir():
        for name in (CONVERTED, CHECKPOINT):
            if (path / name).is_file():
                return _newest(path / name)
        raise ModelNotFound(
            f'the prop model folder "{path}" holds no {CHECKPOINT}: download {DEFAULT_MODEL} into it'
        )
    if path.is_file():
        if path.suffix.lower() not in WEIGHT_SUFFIXES:
            raise ModelNotFound(f'the prop model "{path}" is not a .ckpt or .safetensors file')
        return _newest(path)
    cached = _from_hub_cache(source)
    if cached is None:
        raise not_downloaded(source)
    return _newest(cached)


def _newest(path: Path) -> Path:
    """A .ckpt's converted copy beside it once there is one (and it is not older)."""
    converted = path.with_name(CONVERTED) if path.suffix.lower() == ".ckpt" else path
    if converted != path and converted.is_file() and converted.stat().st_mtime >= path.stat().st_mtime:
        return converted
    return path


def _from_hub_cache(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(repo_id, CHECKPOINT)
    except ValueError:  # not a repo id: a path that does not exist
        return None
    return Path(found) if isinstance(found, str) else None


def read_state(path: Path) -> dict:
    """The tensors of a checkpoint: a .ckpt through weights_only (then kept as .safetensors beside it)."""
    try:
        import torch  # noqa: F401
        from safetensors.torch import load_file
    except ImportError as error:
        raise missing_dependency(error.name or str(error), "props") from error
    if path.suffix.lower() == ".ckpt":
        return _convert(path)
    try:
        return load_file(str(path))
    except Exception as error:
        raise ModelLoadError(f'the prop model "{path}" cannot be read ({error}): download it again') from None


def _convert(path: Path) -> dict:
    import pickle

    import torch
    from safetensors.torch import save_file

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelLoadError(
            f'the prop model "{path}" holds more than weights, which could run code when loaded: '
            f"download {DEFAULT_MODEL} again"
        ) from None
    except Exception as error:
        raise ModelLoadError(f'the prop model "{path}" cannot be read ({error}): download it again') from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(hasattr(value, "contiguous") for value in state.values()):
        raise ModelLoadError(f'the prop model "{path}" is not a state dict of tensors: download it again')
    state = {name: value.contiguous() for name, value in state.items()}
    target = path.with_name(CONVERTED)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        save_file(state, str(temporary))
        os.replace(temporary, target)
    except OSError as error:  # a read-only folder: load from the checked tensors each time
        log.warning("could not keep %s as .safetensors (%s)", path, error)
    return state


def expected_shapes(config: TripoSRConfig) -> dict[str, tuple]:
    """Every parameter's name and shape for `config` (built on the meta device: no memory)."""
    model = triposr_model.build(config, "meta")
    return {name: tuple(value.shape) for name, value in model.state_dict().items()}


def match_config(state: dict, where: str = "the checkpoint") -> TripoSRConfig:
    """The configuration whose names and shapes `state` matches exactly; else ModelLoadError saying what
    differs from the nearest one."""
    shapes = {name: tuple(value.shape) for name, value in state.items()}
    best = None
    for config in CONFIGS:
        expected = expected_shapes(config)
        if expected == shapes:
            return config
        score = sum(shapes.get(name) == shape for name, shape in expected.items())
        if best is None or score > best[0]:
            best = (score, config, expected)
    _, config, expected = best
    raise ModelLoadError(f"{where} is not a TripoSR checkpoint: {describe_mismatch(expected, shapes)}")


def describe_mismatch(expected: dict, found: dict) -> str:
    """In words: how many parameters are missing, unexpected or of another shape, with examples."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    reshaped = sorted(name for name in set(expected) & set(found) if expected[name] != found[name])
    parts = []
    if missing:
        parts.append(f"{len(missing)} parameters missing ({', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])})")
    if reshaped:
        name = reshaped[0]
        shapes = f"{list(found[name])} where TripoSR has {list(expected[name])}"
        parts.append(f"{len(reshaped)} of another shape ({name}: {shapes})")
    return "; ".join(parts) + f": download {DEFAULT_MODEL} again or pick its {CHECKPOINT}"


def load_triposr(path: Path, device: str = "cpu"):
    """The TripoSR module in `path` on `device`, loaded strictly; the last one loaded stays cached."""
    key = (str(path), str(device), path.stat().st_mtime if path.is_file() else 0)
    with _lock:
        if _cache.get("key") == key:
            return _cache["model"]
    state = read_state(path)
    config = match_config(state, f'the prop model "{path}"')
    model = triposr_model.build(config, "meta")
    model.load_state_dict(state, strict=True, assign=True)
    model.image_tokenizer.set_statistics()  # buffers the checkpoint does not hold, made after the meta build
    model = model.to(device).eval().requires_grad_(False)
    with _lock:
        _cache.clear()
        _cache.update(key=key, model=model)
    return model
