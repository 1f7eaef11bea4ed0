"""The detail pass of the transformer families (Z-Image, FLUX.2 klein, Qwen-Image): the family's own
img2img pipeline redraws overlapping windows of the model's native size at low strength, and the windows
are feathered together; windows across a wrapped edge take their pixels from the other side.

Why not detail.py's MultiDiffusion, which averages every window's prediction at every step: that runs the
denoiser by hand, and a transformer's call needs its family's latent packing, rotary position ids and text
conditioning, which diffusers builds inside each pipeline. Here each window runs whole through the family's
maintained pipeline and the windows meet in pixels. At detail strengths (0.2-0.4) a window changes little,
so overlapping windows agree closely and the feathering hides what differs.
"""

import math
import time

import numpy as np

from ..errors import Cancelled, InvalidRequest
from . import decoding, families
from .detail import OVERLAP, SEED_OFFSET, vae_tiling, window_starts
from .previews import PREVIEW_WIDTH

TOKEN = 16  # the families draw in 16-pixel tokens: a window's sides are multiples of it


def window_side(size: int, native: int) -> int:
    """A window's side along an axis `size` pixels long: the model's native side, at most the axis."""
    return max(TOKEN, min(native, size) // TOKEN * TOKEN)


def feather(length: int) -> np.ndarray:
    """A window's blending weights along one axis: rising over its first quarter, falling over its last,
    never zero (a pixel only one window covers keeps that window's value)."""
    ramp = max(1, length // OVERLAP)
    position = np.arange(length, dtype=np.float32)
    return np.minimum(np.minimum(position + 0.5, length - position - 0.5) / ramp, 1.0)


def windows(height: int, width: int, native: int, wrap_x: bool, wrap_y: bool):
    """(row indices, column indices) of every window, modulo the image where an axis wraps."""
    side_y, side_x = window_side(height, native), window_side(width, native)
    rows = [np.arange(start, start + side_y) % height for start in window_starts(height, side_y, wrap_y)]
    cols = [np.arange(start, start + side_x) % width for start in window_starts(width, side_x, wrap_x)]
    return [(r, c) for r in rows for c in cols]


def redraw_pipeline(pipe, family: families.Family):
    """The family's pipeline for an img2img stage, sharing the loaded pipeline's modules: its img2img, or
    where it has none (klein: its img2img is a reference-image editor without strength) its inpainting
    with the whole window masked."""
    import diffusers

    name = family.img2img or family.inpaint
    if name is None:
        raise InvalidRequest(
            f"{family.name} models have no img2img pipeline for the detail pass: set detail to 0"
        )
    redraw = getattr(diffusers, name).from_pipe(pipe)
    redraw.set_progress_bar_config(disable=True)
    return redraw, name == family.inpaint


def add_detail(image: np.ndarray, job, strength: float, wrap_x: bool, wrap_y: bool) -> np.ndarray:
    """The detail pass over `image` (HxWx3 in [0, 1]) in the worker thread, for the generated job whose
    pipeline is loaded (job.pipe): stage "adding detail, window 2 of 6", job.step counting the denoising
    steps of all windows, the preview following the blended image, cancel within one step."""
    pipe, request = job.pipe, job.resolved
    family = families.of_pipeline(pipe)
    redraw, inpainting = redraw_pipeline(pipe, family)
    height, width = image.shape[:2]
    native = job.model_size.native if getattr(job, "model_size", None) else 1024
    parts = windows(height, width, native, wrap_x, wrap_y)
    # A pipeline runs int(steps * strength) steps: enough steps that the window gets at least one.
    steps = max(request.steps, math.ceil(1 / strength))
    per_window = max(1, int(steps * strength))
    job.step, job.steps = 0, per_window * len(parts)
    side = (len(parts[0][0]), len(parts[0][1]))
    tiling = vae_tiling(job, side[1], side[0], False, False, side[0] * side[1])
    total = np.zeros(image.shape, dtype=np.float32)
    weights = np.zeros((height, width, 1), dtype=np.float32)

    def on_step_end(pipeline, index, timestep, tensors):
        job.step += 1
        if job.cancel_requested:
            raise Cancelled(f"cancelled while adding detail, at step {job.step} of {job.steps}")
        return tensors

    import torch

    for number, (rows, cols) in enumerate(parts, start=1):
        job.stage = f"adding detail, window {number} of {len(parts)}"
        window = np.ascontiguousarray(image[np.ix_(rows, cols)])
        options = {"mask_image": np.ones((1, *window.shape[:2], 1), np.float32)} if inpainting else {}
        result = redraw(
            prompt=request.prompt, image=window[None], strength=strength, num_inference_steps=steps,
            width=window.shape[1], height=window.shape[0], callback_on_step_end=on_step_end,
            generator=torch.Generator().manual_seed(request.seed + SEED_OFFSET + number),
            output_type="latent", **options, **families.guidance_options(family, request),
        ).images  # fmt: skip
        drawn = decoding.decode_tiled(redraw, decoding.vae_latents(redraw, result, *side[::-1]), tiling)
        weight = (feather(len(rows))[:, None] * feather(len(cols))[None, :])[..., None]
        total[np.ix_(rows, cols)] += drawn * weight
        weights[np.ix_(rows, cols)] += weight
        step = max(1, width // PREVIEW_WIDTH)  # the blend so far, every step-th pixel
        job.preview = total[::step, ::step] / np.maximum(weights[::step, ::step], 1e-8)
    return np.clip(total / weights, 0.0, 1.0).astype(np.float32)


def detail_in_job(image: np.ndarray, job, strength: float, wrap_x: bool, wrap_y: bool) -> np.ndarray:
    """As detail.detail_in_job, for a transformer family: the job's LoRAs apply and its timing is recorded."""
    from .call_options import call_options

    request, start = job.resolved, time.perf_counter()
    with call_options(
        job.pipe, request.scheduler, request.loras, request.allow_download, request.allow_pickle
    ):
        result = add_detail(image, job, strength, wrap_x, wrap_y)
    job.timings["detail"] = time.perf_counter() - start
    return result
