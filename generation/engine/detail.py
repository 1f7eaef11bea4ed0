"""The detail pass: the generation's own model redraws an upscaled image at low strength, in windows of its
native size that wrap around the seam, so a learned upscaler's sharp but flat enlargement gains the small
detail the model knows how to draw.

MultiDiffusion-style img2img: the image is encoded through the wrap-exact tiled VAE, noised to the
strength's timestep, and at every denoising step the UNet (with classifier-free guidance) runs on every
latent window; the noise predictions are averaged where windows overlap and one scheduler step moves the
whole latent. A window across a wrapped edge (x for worlds, x and y for materials) takes its columns from
the other side, so the seam is just one more overlap. Written here because diffusers has no such pass for
these pipelines: its img2img pipelines denoise the whole image at once (zero-padded at the seam, and far
past the model's native size and memory at 8K), and none of its tiled pipelines wraps or serves SDXL img2img.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import Cancelled, GenerationFailed
from . import decoding, tiled_vae

OVERLAP = 4  # a window overlaps its neighbours by a quarter of its side
SEED_OFFSET = 2  # the detail pass's noise: the request's seed + 2 (+1 is the pole repair's)


def detail_steps(steps: int, strength: float) -> int:
    """Denoising steps of a pass at `strength`: that share of the request's steps, at least one."""
    return min(steps, max(1, math.ceil(steps * strength)))


def window_starts(size: int, window: int, wrap: bool) -> list[int]:
    """Where the windows of one axis start, in latent pixels, for windows `window` wide (at most `size`).

    Wrapped, the windows are spread evenly around the circle (at least two, so the seam is inside one);
    otherwise the first starts at 0 and the last ends at `size`. Neighbours overlap by window/OVERLAP at
    least."""
    window = min(window, size)
    stride = max(1, window - window // OVERLAP)
    if wrap:
        count = max(2, math.ceil(size / stride)) if size > 1 else 1
        return [round(number * size / count) for number in range(count)]
    if window == size:
        return [0]
    count = math.ceil((size - window) / stride) + 1
    return [round(number * (size - window) / (count - 1)) for number in range(count)]


@dataclass(frozen=True)
class Conditioning:
    """What the UNet takes besides the latents, for the batch [unconditional, conditional] with guidance
    or [conditional] without: the text embeddings, and SDXL's added pooled text and size conditioning."""

    embeddings: object
    added: dict | None
    guidance: float

    @property
    def guided(self) -> bool:
        return self.guidance > 1.0  # as diffusers: at 1 or less the unconditional half changes nothing


def conditioning(pipe, prompt: str, negative_prompt: str, guidance: float, window_pixels: tuple[int, int]):
    """The prompt's conditioning for windows of (height, width) pixels, by the pipeline's own encoder."""
    import torch

    device, guided = pipe._execution_device, guidance > 1.0
    negative = negative_prompt or None
    if not hasattr(pipe, "text_encoder_2"):  # SD 1.x / 2.x
        positive, unconditional = pipe.encode_prompt(prompt, device, 1, guided, negative)
        embeddings = torch.cat([unconditional, positive]) if guided else positive
        return Conditioning(embeddings, None, guidance)
    positive, unconditional, pooled, unconditional_pooled = pipe.encode_prompt(
        prompt=prompt, device=device, num_images_per_prompt=1, do_classifier_free_guidance=guided,
        negative_prompt=negative,
    )  # fmt: skip
    projection = pipe.text_encoder_2.config.projection_dim if pipe.text_encoder_2 is not None else None
    time_ids = pipe._get_add_time_ids(
        window_pixels, (0, 0), window_pixels, positive.dtype, text_encoder_projection_dim=projection
    ).to(device)
    if guided:
        embeddings = torch.cat([unconditional, positive])
        added = {"text_embeds": torch.cat([unconditional_pooled, pooled]), "time_ids": time_ids.repeat(2, 1)}
    else:
        embeddings, added = positive, {"text_embeds": pooled, "time_ids": time_ids}
    return Conditioning(embeddings, added, guidance)


def _axis_index(start: int, window: int, size: int, device):
    """Latent indices of a window along an axis: modulo the size (a window across the edge wraps)."""
    import torch

    return torch.arange(start, start + window, device=device) % size


def denoise(
    pipe,
    scheduler,
    latents,
    timesteps,
    condition: Conditioning,
    window: int,
    wrap_x: bool,
    wrap_y: bool,
    on_window: Callable[[int, int, int, int], None] | None = None,
    on_step: Callable[[object], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    generator=None,
):
    """Denoise noised `latents` (1xCxhxw) over `timesteps` of `scheduler`, MultiDiffusion-style in windows
    `window` latent pixels wide. on_window(step, steps, done, total) follows each window (done counts
    every window of every step), on_step(latents) each step; cancelled() is asked before each window, and
    `generator` gives the noise of a scheduler that adds some in its steps (Euler ancestral)."""
    import inspect

    import torch

    height, width = latents.shape[2:]
    rows = window_starts(height, window, wrap_y)
    cols = window_starts(width, window, wrap_x)
    size_y, size_x = min(window, height), min(window, width)
    windows = [
        (_axis_index(r, size_y, height, latents.device), _axis_index(c, size_x, width, latents.device))
        for r in rows
        for c in cols
    ]
    takes_generator = "generator" in inspect.signature(scheduler.step).parameters
    step_options = {"generator": generator} if takes_generator else {}
    copies = 2 if condition.guided else 1
    unet = pipe.unet
    total, done = len(timesteps) * len(windows), 0
    for step, timestep in enumerate(timesteps, start=1):
        model_input = scheduler.scale_model_input(latents, timestep)  # elementwise: window by window alike
        predicted = torch.zeros(latents.shape, dtype=torch.float32, device=latents.device)
        counts = torch.zeros((1, 1, height, width), dtype=torch.float32, device=latents.device)
        for row_index, col_index in windows:
            if cancelled is not None and cancelled():
                raise Cancelled(f"cancelled while adding detail, at step {step} of {len(timesteps)}")
            patch = model_input.index_select(2, row_index).index_select(3, col_index)
            with torch.no_grad():
                noise = unet(
                    torch.cat([patch] * copies).to(unet.dtype),
                    timestep,
                    encoder_hidden_states=condition.embeddings,
                    added_cond_kwargs=condition.added,
                    return_dict=False,
                )[0].float()
            if condition.guided:
                unconditional, positive = noise.chunk(2)
                noise = unconditional + condition.guidance * (positive - unconditional)
            predicted[:, :, row_index[:, None], col_index[None, :]] += noise
            counts[:, :, row_index[:, None], col_index[None, :]] += 1.0
            done += 1
            if on_window is not None:
                on_window(step, len(timesteps), done, total)
        averaged = (predicted / counts).to(latents.dtype)
        latents = scheduler.step(averaged, timestep, latents, **step_options, return_dict=False)[0]
        if on_step is not None:
            on_step(latents)
    return latents


def native_window(pipe) -> int:
    """The model's native image side in latent pixels (64 for SD 1.5, 96 for SD 2 768, 128 for SDXL)."""
    size = pipe.unet.config.sample_size
    return int(size if isinstance(size, int) else min(size))


def add_detail(
    image: np.ndarray,
    pipe,
    request,
    strength: float,
    tiling: tiled_vae.Tiling,
    on_window: Callable[[int, int, int, int], None] | None = None,
    on_step: Callable[[object], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> np.ndarray:
    """HxWx3 sRGB in [0, 1] redrawn by `pipe`'s model at img2img `strength` (0..1) for `request`'s prompt,
    guidance, steps and seed, encoded and decoded as `tiling` says (its wrap is the windows' wrap).

    The pipeline's scheduler is copied, so its own state is untouched; LoRAs or another scheduler are the
    caller's to put on the pipeline (call_options). Callbacks as `denoise`'s.
    """
    import torch

    device = pipe._execution_device
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    scheduler.set_timesteps(request.steps, device=device)
    begin = (request.steps - detail_steps(request.steps, strength)) * scheduler.order
    timesteps = scheduler.timesteps[begin:]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    latents = decoding.encode_image(pipe, image, tiling).to(device, pipe.unet.dtype)
    generator = torch.Generator().manual_seed(request.seed + SEED_OFFSET)
    noise = torch.randn(latents.shape, generator=generator, dtype=torch.float32).to(device, latents.dtype)
    latents = scheduler.add_noise(latents, noise, timesteps[:1])
    window = native_window(pipe)
    height, width = latents.shape[2:]
    pixels = (min(window, height) * tiled_vae.SCALE, min(window, width) * tiled_vae.SCALE)
    with torch.no_grad():
        condition = conditioning(pipe, request.prompt, request.negative_prompt, request.guidance, pixels)
    latents = denoise(
        pipe, scheduler, latents, timesteps, condition, window, tiling.wrap_x, tiling.wrap_y,
        on_window, on_step, cancelled, generator,
    )  # fmt: skip
    result = decoding.decode_tiled(pipe, latents, tiling)
    return np.clip(result, 0.0, 1.0).astype(np.float32)


NEEDS_MODEL = (
    "detail needs the model loaded by a generation; it redraws a world or material as it is generated "
    "(generate with upscale and detail), so upscale an existing one without detail"
)
NEEDS_UPSCALE = "detail redraws an upscaled image: set upscale to 2 or 4 as well, or detail to 0"


def detail_in_job(image: np.ndarray, job, strength: float, wrap_x: bool, wrap_y: bool) -> np.ndarray:
    """The detail pass in the worker thread, during a generated job (its `job.pipe` is loaded): its stage
    says "adding detail, step 3 of 8", job.step counts windows, the preview follows each step, and a
    cancel takes effect before the next window (Cancelled). The job's scheduler and LoRAs apply."""
    from ..errors import InvalidRequest
    from . import families, previews
    from .call_options import call_options

    pipe, request = getattr(job, "pipe", None), job.resolved
    if pipe is None or request is None:
        raise InvalidRequest(NEEDS_MODEL)
    height, width = image.shape[:2]
    window = native_window(pipe) * tiled_vae.SCALE
    tiling = vae_tiling(job, width, height, wrap_x, wrap_y, window * window)
    family = families.of_pipeline(pipe).name
    shown = {"at": 0.0}

    def on_window(step, steps, done, total):
        job.step, job.steps, job.stage = done, total, f"adding detail, step {step} of {steps}"

    def on_step(latents):
        now = time.perf_counter()
        if now - shown["at"] >= previews.PREVIEW_INTERVAL:
            job.preview, shown["at"] = previews.latents_to_rgb(latents, family), now

    job.stage = "adding detail"
    start = time.perf_counter()
    with call_options(pipe, request.scheduler, request.loras, request.allow_download, request.allow_pickle):
        result = add_detail(
            image, pipe, request, strength, tiling, on_window, on_step, lambda: job.cancel_requested
        )
    job.timings["detail"] = time.perf_counter() - start
    return result


def vae_tiling(
    job, width: int, height: int, wrap_x: bool, wrap_y: bool, window_pixels: int
) -> tiled_vae.Tiling:
    """How the detail pass encodes and decodes a width x height image: the tiles the memory planner picks
    for that size with the job's placement, the UNet seeing one window of `window_pixels` at a time;
    beyond every plan, 512-pixel lean tiles with the feature maps in RAM (memory on the device is then
    one tile's). Whatever does not fit the computer's RAM is refused in words: past it the system kills
    Blender."""
    from . import devices, memory_plan

    request = job.resolved  # a generation's job: its plan and model size are set before its pipe
    device = devices.resolve_device(request.device)
    precision = devices.resolve_precision(device, request.precision)
    budget, what = devices.memory_budget(device), f"adding detail at {width}x{height}"
    ram = memory_plan.available_ram_bytes()
    try:
        plan = memory_plan.plan_stage(
            job.model_size, width, height, device, precision, budget, request.memory, job.plan.placement,
            what, window_pixels, ram,
        )  # fmt: skip
    except memory_plan.NotEnoughRam as error:
        raise GenerationFailed(f"Not enough memory: {error}") from None
    except memory_plan.DoesNotFit:
        plan = None
    if plan is None:
        try:
            last = memory_plan.maps_in_ram(job.model_size, width, height, precision, ram, what)
        except memory_plan.NotEnoughRam as error:
            raise GenerationFailed(f"Not enough memory: {error}") from None
        return tiled_vae.Tiling(last.tile, wrap_x, wrap_y, last.storage, last.lean)
    job.metadata["detail_memory_plan"] = plan.describe()
    return tiled_vae.Tiling(plan.tile or memory_plan.TILES[0], wrap_x, wrap_y, plan.storage, plan.lean)
