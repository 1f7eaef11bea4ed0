"""A learned upscaler (ESRGAN family, read by spandrel), run in wrap-aware tiles with bounded memory.

Each tile is run with `pad` pixels of context on every side, taken across the wrapped edges (x for
worlds, x and y for materials) and mirrored at an edge that does not wrap; neighbouring tiles blend over
a band of `blend` pixels with linear weights that sum to one. At most two tiles meet along an axis and
each axis is blended on its own, so an input rolled by a multiple of the tile stride gives exactly the
output rolled: the seam is no different from any tile boundary. Memory is one tile's activations plus
the output. torch and spandrel are imported lazily; a .pth is read with weights_only and kept beside
itself as .safetensors, so nothing pickled runs unless the pickle policy allows it.
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import Cancelled, InvalidRequest, ModelLoadError, ModelNotFound, missing_dependency
from ..imaging.hdr import resize_wrap
from ..setup.upscalers import CURATED
from . import previews
from .models import pickle_refused

log = logging.getLogger(__name__)

FACTORS = (1, 2, 4)
PAD = 16  # input pixels of context around a tile (Real-ESRGAN's own tiling uses 10)
BLEND = 8  # input pixels over which neighbouring tiles cross-fade; at most PAD
WEIGHT_SUFFIXES = (".safetensors", ".pth")
_UNWRAP = ("params_ema", "params", "state_dict", "model")


@dataclass
class Upscaler:
    """A loaded model: its torch module, its scale, the device it runs on, the file it came from."""

    model: object
    scale: int
    device: str
    path: Path

    def tile_for_device(self) -> int:
        """Input pixels per tile side: small on the CPU (memory and cache), larger on a GPU."""
        return 128 if self.device == "cpu" else 384


def resolve_upscaler(source: str, folder: Path | None = None) -> Path:
    """The weights file of `source`: a curated id (its file expected in `folder`), a file, or a folder
    holding one; a .pth's converted .safetensors once it has one. Cheap and torch-free, for the main thread:
    a .pth is read and converted by prepare_upscaler, in the worker."""
    source = str(source).strip()
    curated = CURATED.get(source.lower())
    if curated is not None:
        path = Path(folder or ".") / curated.file
        converted = path.with_suffix(".safetensors")
        if converted.is_file():
            return converted
        if not path.is_file():
            raise ModelNotFound(
                f'the upscaler "{source}" ({curated.licence}) is not downloaded: save {curated.url} as '
                f"{path}, or pick a .safetensors/.pth upscaler file or folder (upscaler=)"
            )
    else:
        path = Path(os.path.expanduser(source))
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in WEIGHT_SUFFIXES)
            if not found:
                raise ModelNotFound(
                    f'the upscaler folder "{path}" holds no .safetensors or .pth file: pick the model file'
                )
            path = next((p for p in found if p.suffix.lower() == ".safetensors"), found[0])
        elif not path.is_file():
            raise ModelNotFound(
                f'upscaler "{source}" is not a curated id ({", ".join(CURATED)}), a .safetensors/.pth '
                "file or a folder holding one"
            )
        if path.suffix.lower() not in WEIGHT_SUFFIXES:
            raise ModelNotFound(f'the upscaler "{path}" is not a .safetensors or .pth file')
    converted = path.with_suffix(".safetensors")
    if path.suffix.lower() == ".pth" and _is_newer(converted, path):
        return converted
    return path


def prepare_upscaler(path: Path, allow_pickle: bool = False) -> Path:
    """The weights to load for a resolved upscaler: a .pth is converted once to .safetensors beside it (or
    read only, when that fails), refused in words when it holds more than weights unless `allow_pickle`.
    Imports torch: call it in the worker, before the job's first step."""
    return _safetensors_beside(path, allow_pickle) if path.suffix.lower() == ".pth" else path


def _is_newer(converted: Path, original: Path) -> bool:
    return converted.is_file() and converted.stat().st_mtime >= original.stat().st_mtime


def _unwrap(state) -> dict:
    """The tensors of a checkpoint: BasicSR and others nest them under params_ema, params or state_dict."""
    for key in _UNWRAP:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            return _unwrap(state[key])
    return state


def _read_pth(path: Path, allow_pickle: bool) -> dict:
    import pickle

    import torch

    try:
        return _unwrap(torch.load(path, map_location="cpu", weights_only=True))
    except pickle.UnpicklingError:
        if not allow_pickle:
            raise pickle_refused(f'the upscaler "{path}" holds more than weights; it', ".pth") from None
        log.warning("%s: fully unpickled, as the preferences allow pickle files", path)
        return _unwrap(torch.load(path, map_location="cpu", weights_only=False))


def _safetensors_beside(path: Path, allow_pickle: bool) -> Path:
    target = path.with_suffix(".safetensors")
    if str(path) in _UNCONVERTED:  # read before, from a folder where no copy could be kept
        return path
    if _is_newer(target, path):
        return target
    state = _read_pth(path, allow_pickle)
    tensors = {key: value.contiguous() for key, value in state.items() if hasattr(value, "contiguous")}
    try:
        from safetensors.torch import save_file

        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        save_file(tensors, str(temporary))
        os.replace(temporary, target)
    except OSError as error:  # a read-only folder: run from the checked weights without a copy
        log.warning("could not keep %s as .safetensors (%s); reading it each time", path, error)
        _UNCONVERTED[str(path)] = tensors
        return path
    return target


_UNCONVERTED: dict[str, dict] = {}
_cache: dict[tuple[str, str], Upscaler] = {}
_cache_lock = threading.Lock()


def load_upscaler(path: Path, device: str = "cpu") -> Upscaler:
    """The model in `path` (from resolve_upscaler) on `device`; the last one loaded stays cached."""
    key = (str(path), device)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    try:
        import spandrel
        import torch  # noqa: F401
    except ImportError as error:
        raise missing_dependency(error.name or str(error), "upscaling") from error
    if str(path) in _UNCONVERTED:
        state = _UNCONVERTED[str(path)]
    else:
        from safetensors.torch import load_file

        try:
            state = _unwrap(load_file(str(path)))
        except Exception as error:
            message = f'the upscaler "{path}" cannot be read ({error}): pick another file'
            raise ModelLoadError(message) from None
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    except Exception as error:
        raise ModelLoadError(
            f'"{path}" is not an upscaler spandrel knows ({error}): use an ESRGAN-family model such as '
            "Real-ESRGAN x4plus"
        ) from None
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.scale not in (2, 4):
        raise ModelLoadError(f'"{path}" is not a x2 or x4 image upscaler: pick one that is')
    if descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise ModelLoadError(f'"{path}" does not take and give RGB images: pick an RGB upscaler')
    descriptor.model.eval().to(device)
    loaded = Upscaler(descriptor.model, int(descriptor.scale), device, Path(path))
    with _cache_lock:
        _cache.clear()
        _cache[key] = loaded
    return loaded


def _source_indices(start: int, stop: int, size: int, wrap: bool) -> np.ndarray:
    """Pixel indices start..stop-1 of an axis of `size`: modulo across a wrapped edge, mirrored otherwise."""
    index = np.arange(start, stop)
    if wrap:
        return index % size
    if size == 1:
        return np.zeros_like(index)
    period = 2 * size - 2
    index = np.abs(index) % period
    return np.where(index >= size, period - index, index)


def _bounds(size: int, tile: int) -> list[int]:
    count = max(1, -(-size // tile))
    return [(number * size) // count for number in range(count + 1)]


def _weights(core: int, band: int, scale: int, first: bool, last: bool, wrap: bool) -> np.ndarray:
    """Blend weights over a tile's core plus `band` each side, at output scale; neighbours sum to one."""
    length = scale * (core + 2 * band)
    centre = np.arange(length, dtype=np.float64) + 0.5
    if band == 0:
        return np.ones(length, dtype=np.float32)
    rising = np.clip(centre / (2 * scale * band), 0.0, 1.0)
    falling = np.clip((length - centre) / (2 * scale * band), 0.0, 1.0)
    if first and not wrap:
        rising[:] = 1.0
    if last and not wrap:
        falling[:] = 1.0
    return (rising * falling).astype(np.float32)


def _run_model(upscaler: Upscaler, window: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        tensor = torch.from_numpy(np.ascontiguousarray(window.transpose(2, 0, 1)))[None].to(upscaler.device)
        result = upscaler.model(tensor)
        return result[0].float().clamp_(0.0, 1.0).permute(1, 2, 0).cpu().numpy()


def upscale_pass(
    image: np.ndarray,
    upscaler: Upscaler,
    wrap_x: bool,
    wrap_y: bool,
    tile: int | None = None,
    pad: int = PAD,
    blend: int = BLEND,
    on_tile: Callable[[int, int, np.ndarray], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> np.ndarray:
    """One pass of the model over HxWx3 sRGB in [0, 1], in tiles; returns it `upscaler.scale` times larger.

    on_tile(done, total, partial) follows each tile (partial: the output so far, rows not reached are 0);
    cancelled() is asked before each tile and ends the pass with Cancelled.
    """
    image = np.asarray(image, dtype=np.float32)
    height, width = image.shape[:2]
    tile = tile or upscaler.tile_for_device()
    scale = upscaler.scale
    rows, cols = _bounds(height, tile), _bounds(width, tile)
    band = min(blend, pad, min(np.diff(rows).min(), np.diff(cols).min()) // 2)
    output = np.zeros((scale * (height + 2 * band), scale * width, 3), dtype=np.float32)
    total, done = (len(rows) - 1) * (len(cols) - 1), 0
    for row in range(len(rows) - 1):
        top, bottom = rows[row], rows[row + 1]
        y_index = _source_indices(top - pad, bottom + pad, height, wrap_y)
        y_weights = _weights(bottom - top, band, scale, row == 0, row == len(rows) - 2, wrap_y)
        strip = np.zeros((y_weights.size, scale * (width + 2 * band), 3), dtype=np.float32)
        for col in range(len(cols) - 1):
            if cancelled is not None and cancelled():
                raise Cancelled(f"cancelled while upscaling, after tile {done} of {total}")
            left, right = cols[col], cols[col + 1]
            x_index = _source_indices(left - pad, right + pad, width, wrap_x)
            result = _run_model(upscaler, image[y_index][:, x_index])
            inner = scale * (pad - band)
            core = result[inner : inner + y_weights.size, inner : inner + scale * (right - left + 2 * band)]
            x_weights = _weights(right - left, band, scale, col == 0, col == len(cols) - 2, wrap_x)
            strip[:, scale * left : scale * left + x_weights.size] += core * x_weights[None, :, None]
            done += 1
            if on_tile is not None and col < len(cols) - 2:
                on_tile(done, total, output[scale * band : scale * (band + height)])
        edge = scale * band
        folded = strip[:, edge : edge + scale * width]
        if wrap_x and edge:  # the bands beyond either edge belong to the other side
            folded[:, -edge:] += strip[:, :edge]
            folded[:, :edge] += strip[:, -edge:]
        output[scale * top : scale * top + y_weights.size] += folded * y_weights[:, None, None]
        if on_tile is not None:
            on_tile(done, total, output[scale * band : scale * (band + height)])
    edge = scale * band
    result = output[edge : edge + scale * height]
    if wrap_y and edge:
        result[-edge:] += output[:edge]
        result[:edge] += output[-edge:]
    return np.clip(result, 0.0, 1.0)


def upscale(
    image: np.ndarray,
    upscaler: Upscaler,
    factor: int,
    wrap_x: bool,
    wrap_y: bool,
    tile: int | None = None,
    on_tile: Callable[[int, int, np.ndarray], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> np.ndarray:
    """HxWx3 sRGB in [0, 1] made `factor` (1, 2 or 4) times larger: passes of the model until it is at
    least that large, then a wrap-aware resample down to the exact size (an x4 model serves x2)."""
    if factor not in FACTORS:
        raise InvalidRequest(f"upscale must be one of {', '.join(map(str, FACTORS))}, not {factor!r}")
    image = np.asarray(image, dtype=np.float32)
    height, width = image.shape[:2]
    passes, reached = 0, 1
    while reached < factor:
        passes, reached = passes + 1, reached * upscaler.scale
    for number in range(passes):

        def progress(done, total, partial, number=number):
            if on_tile is not None:
                on_tile(number * total + done, passes * total, partial)

        image = upscale_pass(image, upscaler, wrap_x, wrap_y, tile, on_tile=progress, cancelled=cancelled)
    if reached != factor:
        image = resize_wrap(image, height * factor, width * factor, wrap_y=wrap_y)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class UpscalePlan:
    """What a job upscales by, with which weights (resolved before the job starts) on which device name
    ("auto", "cuda", "mps", "cpu"), and which edges wrap. Factor 1: nothing to do. `detail` above 0: the
    strength of the detail pass that the generation's model runs over the upscaled image (detail.py)."""

    factor: int = 1
    path: Path | None = None
    device: str = "auto"
    wrap_x: bool = True
    wrap_y: bool = False
    detail: float = 0.0
    allow_pickle: bool = False  # a .pth holding more than weights is unpickled (the preference)

    def prepare(self, job=None) -> None:
        """Check the model can run the detail pass and convert a .pth upscaler now (in the worker, before
        the job's first step): a refusal fails the job before any GPU time is spent."""
        from . import families

        size = getattr(job, "model_size", None)
        family = families.named(size.family) if size is not None else None
        if self.detail > 0 and family is not None and not (family.img2img or family.inpaint):
            raise InvalidRequest(
                f"{family.name} models have no img2img pipeline for the detail pass: set detail to 0"
            )
        if self.path is not None:
            prepare_upscaler(self.path, self.allow_pickle)

    def metadata(self) -> dict[str, str]:
        """What a result records of its upscale: nothing at factor 1. The upscaler by its file or folder
        name only: the path is this machine's (or a server's) business, not the file's."""
        if self.factor == 1:
            return {}
        name = self.path.name if self.path else ""
        return {"upscale": str(self.factor), "upscaler": name, "detail": f"{self.detail:g}"}


def preview_of(partial: np.ndarray) -> np.ndarray:
    """A thumbnail of an image being upscaled: every k-th pixel, about PREVIEW_WIDTH wide."""
    step = max(1, partial.shape[1] // previews.PREVIEW_WIDTH)
    return np.ascontiguousarray(partial[::step, ::step])


def upscale_in_job(image: np.ndarray, job, plan: UpscalePlan) -> np.ndarray:
    """Upscale in the worker thread as part of `job`: its stage says "upscaling, tile 7 of 32", its
    preview fills in as tiles finish, and a cancel takes effect before the next tile (Cancelled). With
    `plan.detail`, the detail pass follows with the generation's model (`job.pipe`, loaded meanwhile).
    The job's metadata records the upscale; callers write `job.metadata` into the files after this."""
    if plan.factor == 1:
        return image
    job.metadata.update(plan.metadata())
    from . import detail, devices

    if plan.detail > 0 and getattr(job, "pipe", None) is None:
        raise InvalidRequest(detail.NEEDS_MODEL)

    job.stage, job.step, job.steps = "loading the upscaler", 0, 0  # its own units start at its tiles
    loading = time.perf_counter()
    path = prepare_upscaler(plan.path, plan.allow_pickle)
    upscaler = load_upscaler(path, devices.resolve_device(plan.device))
    job.timings["load_upscaler"] = time.perf_counter() - loading
    shown = {"at": 0.0}

    def on_tile(done, total, partial):
        job.step, job.steps, job.stage = done, total, f"upscaling, tile {done} of {total}"
        now = time.perf_counter()
        if now - shown["at"] >= previews.PREVIEW_INTERVAL or done == total:
            job.preview, shown["at"] = preview_of(partial), now

    start = time.perf_counter()
    result = upscale(
        image, upscaler, plan.factor, plan.wrap_x, plan.wrap_y, on_tile=on_tile,
        cancelled=lambda: job.cancel_requested,
    )  # fmt: skip
    job.timings["upscale"] = time.perf_counter() - start
    if plan.detail > 0:  # a UNet's pass step by step over its windows; a transformer's window by window
        from . import families, window_detail

        transformer = families.of_pipeline(job.pipe).transformer
        redraw = window_detail.detail_in_job if transformer else detail.detail_in_job
        result = redraw(result, job, plan.detail, plan.wrap_x, plan.wrap_y)
    job.stage = "writing the files"
    return result
