"""The model stages of edits: what runs in the worker in place of text-to-image (Worker.submit's `edit`).

A redrawn region is inpainted on its perspective view (imaging/region_edit.py) by the family's inpainting
pipeline built from the loaded components (pole_inpaint.model_inpaint: no second copy of the weights), in
the request's steps, with its scheduler and LoRAs; progress, previews and cancel as for a generation.
"""

import time

from ..errors import Cancelled, InvalidRequest
from . import families, previews, progress
from .call_options import call_options
from .pole_inpaint import model_inpaint


def needs_pipeline(stage: str, what: str):
    """A `prepare` for Worker.submit: refuses, before the model loads, a family without the pipeline
    `stage` ("inpaint" or "img2img") that the edit `what` runs."""

    def prepare(job):
        family = families.named(job.model_size.family) if job.model_size is not None else None
        if family is not None and getattr(family, stage) is None:
            raise InvalidRequest(
                f"{family.name} models have no {stage} pipeline, which {what} needs: choose a model of "
                "another family (SD, SDXL, Z-Image or Qwen-Image)"
            )

    return prepare


def step_callback(worker, job, family: families.Family):
    """A pipeline's callback_on_step_end: the job's step and preview, the worker's step hook, cancel."""
    last = {"preview": 0.0}

    def on_step_end(pipeline, index, timestep, tensors):
        now = time.perf_counter()
        job.step, job.steps = index + 1, getattr(pipeline, "num_timesteps", job.steps)
        latents = tensors.get("latents")
        if latents is not None and latents.ndim == 4 and now - last["preview"] >= previews.PREVIEW_INTERVAL:
            job.preview = previews.latents_to_rgb(latents, family.name)
            last["preview"] = now
        if worker.step_hook is not None:
            worker.step_hook(job, job.step)
        if job.cancel_requested:
            raise Cancelled(f"cancelled at step {job.step} of {job.steps}")
        return tensors

    return on_step_end


def redraw_region(prepare):
    """The worker stage that inpaints a region on its view: `prepare()` gives the region_edit.RegionEdit
    (made here, in the worker thread); returns the redrawn view, float32 (h, w, 3) display sRGB in [0, 1]."""

    def run(worker, job, pipe, request, device):
        import torch

        family = families.of_pipeline(pipe)
        if family.inpaint is None:
            raise InvalidRequest(
                f"{family.name} models have no inpainting pipeline to redraw a region: choose another model"
            )
        job.stage = "redrawing the region"
        edit = prepare()
        job.steps = request.steps
        generator = torch.Generator(device=device).manual_seed(request.seed)
        on_step_end = step_callback(worker, job, family)
        start = time.perf_counter()
        with call_options(
            pipe, request.scheduler, request.loras, request.allow_download, request.allow_pickle
        ):
            inpaint = model_inpaint(pipe, request, generator, on_step_end, job.plan, steps=request.steps)
            redrawn = inpaint(edit.image, edit.mask, "region")
        job.timings["denoise"] = time.perf_counter() - start
        job.stage = progress.steps_done(job.steps)
        return redrawn

    return run
