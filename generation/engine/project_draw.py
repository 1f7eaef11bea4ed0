"""The views of a projected texture, drawn by the loaded model one after another (worker thread).

The first view is drawn from the prompt; every later view is inpainted: what earlier views already painted,
as this view sees it, is kept, and only the pixels no earlier view covered well are drawn, so the sides
continue the front. With a depth ControlNet, every view is conditioned on its normalised inverse depth.
Diffusers' pipelines are built from the loaded one's components (`from_pipe`: no second copy of the
weights). Progress reads "view 2 of 6, step 5 of 25"; cancel stops between steps.
"""

import time

import numpy as np

from ..errors import Cancelled, GenerationFailed, InvalidRequest
from ..imaging import raster
from ..imaging.texture_project import Projection
from . import families
from .call_options import call_options

SEED_STRIDE = 7919  # view k draws with seed + k * SEED_STRIDE: different noise, the same for a request


def check_family(family: families.Family, views: int, controlnet: bool) -> None:
    """Refuse in words what a family cannot draw: depth control and the inpainted later views exist for the
    UNet families (SD 1.x/2.x, SDXL) here."""
    if family.transformer and (controlnet or views > 1):
        what = "depth control (controlnet)" if controlnet else f"views={views} (later views are inpainted)"
        raise InvalidRequest(
            f"{what} needs an SD 1.5 or SDXL model; {family.name} models project one view without "
            "depth control: use views=1 and no controlnet, or pick an SD 1.5 or SDXL model"
        )


def draw_views(job, pipe, request, device: str, projection: Projection, controlnet=None) -> list[np.ndarray]:
    """Each view's picture (float32 H x W x 3 in [0, 1]), baked into `projection` as it is drawn."""
    import torch
    from diffusers import AutoPipelineForInpainting, AutoPipelineForText2Image

    family = families.of_pipeline(pipe)
    count = len(projection.cameras)
    check_family(family, count, controlnet is not None)
    extra = {} if controlnet is None else {"controlnet": controlnet}
    images = []
    started = time.perf_counter()
    with call_options(pipe, request.scheduler, request.loras, request.allow_download, request.allow_pickle):
        # Built inside: they share the pipeline's components as the call options left them (its scheduler).
        first = AutoPipelineForText2Image.from_pipe(pipe, **extra) if extra else pipe
        later = AutoPipelineForInpainting.from_pipe(pipe, **extra) if count > 1 else None
        for built in (first, later):
            if built is not None:
                built.set_progress_bar_config(disable=True)
        for view in range(count):
            job.step, job.stage = 0, f"view {view + 1} of {count}"
            generator = torch.Generator(device=device).manual_seed(request.seed + view * SEED_STRIDE)
            control = raster.control_image(projection.depth(view))
            common = {
                "prompt": request.prompt,
                "num_inference_steps": request.steps,
                "width": request.width,
                "height": request.height,
                "generator": generator,
                "callback_on_step_end": _on_step(job, view, count),
                "output_type": "np",
                **families.guidance_options(family, request),
            }
            if extra:
                common["control_image" if view else "image"] = _rgb_control(control)
            if view == 0:
                image = first(**common).images[0]
            else:
                picture, keep = projection.known(view)
                drawn = later(image=picture, mask_image=(~keep).astype(np.float32), strength=1.0, **common)
                image = np.where(keep[..., None], picture, drawn.images[0])
            image = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
            if not np.isfinite(image).all():
                raise GenerationFailed("the model drew NaN pixels: use fp32 precision or fewer steps")
            projection.add(view, image)
            images.append(image)
    job.timings["views"] = time.perf_counter() - started
    return images


def _on_step(job, view: int, count: int):
    def on_step_end(pipeline, index, timestep, tensors):
        job.step, job.steps = index + 1, getattr(pipeline, "num_timesteps", job.steps)
        job.stage = f"view {view + 1} of {count}, step {job.step} of {job.steps}"
        if job.cancel_requested:
            raise Cancelled(f"cancelled in view {view + 1} of {count} at step {job.step} of {job.steps}")
        return tensors

    return on_step_end


def _rgb_control(control: np.ndarray) -> np.ndarray:
    """A depth ControlNet's input: the grey control image as RGB (1, 3, H, W)-able H x W x 3 in [0, 1]."""
    return np.repeat(control[..., None], 3, axis=-1)[None]
