"""A monocular depth model through transformers, run on the perspective views of imaging/depth.py.

Models come by Hub id from the local cache or from a folder, never with remote code. The loaded model is
kept for the next world (one at a time), like the pipeline cache keeps its pipeline.
"""

import threading
from pathlib import Path

import numpy as np

from ..errors import ModelNotFound, missing_dependency
from .models import pickle_refused

_cache: dict = {}  # {"key": (source, device), "model": ..., "processor": ...}
_lock = threading.Lock()


NOT_FOUND = (
    'depth model "{source}" is not a folder or a model in the local Hugging Face cache: '
    "download it first (blender -c promptscape download ID) or pick a folder"
)


def check_source(source: str) -> None:
    """Raise ModelNotFound unless `source` is a model folder (config.json) or a Hub id in the local cache:
    called when a job is submitted, so a missing depth model fails before any generating, not after."""
    path = Path(source).expanduser()
    if (path / "config.json").is_file():
        return
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return  # the job itself names the missing dependency
    try:
        found = None if path.is_dir() else try_to_load_from_cache(source, "config.json")
    except ValueError:  # not a valid repo id: a path that does not exist
        found = None
    if not isinstance(found, str):
        raise ModelNotFound(NOT_FOUND.format(source=source))


def load(source: str, device: str):
    """(model, processor) for `source` on `device`, loaded once and reused."""
    try:
        import torch  # noqa: F401
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation
    except ImportError as error:
        raise missing_dependency(error.name or "transformers", "depth of a world") from error
    with _lock:
        if _cache.get("key") != (source, device):
            _cache.clear()
            try:
                options = {"local_files_only": True, "trust_remote_code": False}
                # Weights only from .safetensors: a .bin is a pickle, which can run code when loaded.
                model = AutoModelForDepthEstimation.from_pretrained(source, use_safetensors=True, **options)
                model = model.to(device).eval()
                processor = AutoImageProcessor.from_pretrained(source, **options)
            except OSError as error:
                if _has_pickle_weights_only(source):
                    raise pickle_refused(f'depth model "{source}"', ".bin") from None
                raise ModelNotFound(NOT_FOUND.format(source=source)) from error
            _cache.update(key=(source, device), model=model, processor=processor)
        return _cache["model"], _cache["processor"]


def _has_pickle_weights_only(source: str) -> bool:
    folder = Path(source)
    return folder.is_dir() and any(folder.glob("*.bin")) and not any(folder.glob("*.safetensors"))


def estimator(source: str, device: str, check_cancel=lambda: None, progress=lambda done, total: None):
    """An `Estimate` for imaging.depth: relative inverse depth (larger is nearer) of each view, at its size.

    `check_cancel()` runs before each view and raises to stop; `progress(done, total)` runs after each.
    """
    import torch

    model, processor = load(source, device)
    done = [0]

    def estimate(view: np.ndarray, face: str) -> np.ndarray:
        check_cancel()
        pixels = (np.clip(view, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        inputs = processor(images=pixels, return_tensors="pt").to(device)
        with torch.no_grad():
            predicted = model(**inputs).predicted_depth[:, None].float()
        size = view.shape[:2]
        resized = torch.nn.functional.interpolate(predicted, size=size, mode="bilinear", align_corners=False)
        done[0] += 1
        progress(done[0], 6)
        return resized[0, 0].cpu().numpy().astype(np.float64)

    return estimate
