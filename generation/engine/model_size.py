"""How big a model is, from its files and without loading it or importing torch: for the memory plan.

A diffusers folder's parts are counted from their .safetensors headers; anything unreadable (a single
file, a model not downloaded yet) falls back to its family's published sizes.
"""

import functools
import json
import logging
import math
from dataclasses import replace
from pathlib import Path

from ..errors import PromptscapeError
from . import families
from .memory_plan import FAMILIES, ModelSize
from .models import (
    ModelSource,
    _cached_vae_folder,
    _model_index,
    check_safetensors,
    is_xl_checkpoint,
    resolve_source,
    resolve_vae,
)

log = logging.getLogger(__name__)
# Each part's folder and the field it counts into: a transformer is the denoiser, as a UNet is.
_PARTS = {"unet": "unet", "transformer": "unet", "text_encoder": "text_encoders",
          "text_encoder_2": "text_encoders", "vae": "vae"}  # fmt: skip


def family_of(class_name: str, folder: Path | None) -> str:
    """A transformer family by its pipeline class, else "sdxl", "sd2" (a 1024-wide text encoder) or "sd"."""
    family = families.of_class(class_name)
    if family is not None and family.transformer:
        return family.name
    if "XL" in class_name:
        return "sdxl"
    try:
        config = json.loads((folder / "text_encoder" / "config.json").read_text(encoding="utf-8"))
        return "sd2" if config.get("hidden_size") == 1024 else "sd"
    except (OSError, ValueError, TypeError):
        return "sd"


def _parameters(folder: Path) -> float | None:
    """Parameters in a component folder's plain weights (variants like *.fp16.safetensors skipped)."""
    files = [path for path in folder.glob("*.safetensors") if path.name.count(".") == 1]
    if not files:
        return None
    total = 0
    for path in files:
        header = check_safetensors(path)
        total += sum(math.prod(value["shape"]) for key, value in header.items() if key != "__metadata__")
    return float(total)


def _vae_upcasts(folder: Path | None, default: bool) -> bool:
    try:
        return bool(json.loads((folder / "config.json").read_text(encoding="utf-8"))["force_upcast"])
    except (OSError, ValueError, KeyError, TypeError):
        return default


def size_of(source: ModelSource, vae: ModelSource | None = None) -> ModelSize:
    """The parameter counts of a resolved model; SDXL's own VAE upcasts, a replacement as its config says."""
    if source.kind == "file":
        family = "sdxl" if is_xl_checkpoint(Path(source.location)) else "sd"  # as the loader decides
        size = FAMILIES[family]
    else:
        folder, index = _model_index(source)
        family = family_of(str(index.get("_class_name", "")), folder)
        size = FAMILIES[family]
        if folder is not None:
            counts = {"unet": 0.0, "text_encoders": 0.0, "vae": 0.0}
            for part, field in _PARTS.items():
                found = _parameters(folder / part) if (folder / part).is_dir() else None
                counts[field] += found if found is not None else 0.0
            if all(counts.values()):
                size = replace(size, **counts)
    if vae is not None:
        folder = Path(vae.location) if vae.kind == "folder" else None
        if vae.kind == "repo":
            folder = _cached_vae_folder(vae.location)
        size = replace(size, vae_upcast=size.vae_upcast and _vae_upcasts(folder, True))
    return size


@functools.lru_cache(maxsize=16)
def estimate_for(model: str, vae: str = "") -> ModelSize | None:
    """size_of() for a model as the artist names it, remembered: the panel asks on every redraw (a
    finished download clears what was remembered). None for a model not on this computer: its family
    cannot be known before its files are, and a name says nothing reliable about it."""
    try:
        return size_of(resolve_source(model), resolve_vae(vae) if vae else None)
    except (PromptscapeError, ImportError, OSError) as error:
        log.debug("no size for %r: %s", model, error)
        return None
