"""The model stages of edits: what runs in the worker in place of text-to-image (Worker.submit's `edit`).

A remix is img2img of the whole image at a strength, wrapped as generation wraps. A redrawn region is
inpainted on its perspective view (imaging/region_edit.py) by the family's inpainting
pipeline built from the loaded components (pole_inpaint.model_inpaint: no second copy of the weights), in
the request's steps, with its scheduler and LoRAs; progress, previews and cancel as for a generation.
"""

import math
import time

import numpy as np

from ..errors import Cancelled, InvalidRequest
from . import decoding, families, previews, progress, tiled_vae, token_wrap
from .call_options import call_options
from .pole_inpaint import model_inpaint
from .seamless import seamless


def can_remix(family: families.Family) -> bool:
    """An img2img pipeline, or a transformer's inpainting pipeline with nothing kept (FLUX.2 klein)."""
    return family.img2img is not None or (family.transformer and family.inpaint is not None)


def needs_pipeline(stage: str, what: str):
    """A `prepare` for Worker.submit: refuses, before the model loads, a family without the pipeline
    `stage` ("inpaint", or "remix": img2img) that the edit `what` runs."""

    def prepare(job):
        family = families.named(job.model_size.family) if job.model_size is not None else None
        if family is None:
            return
        if not (can_remix(family) if stage == "remix" else getattr(family, stage) is not None):
            raise InvalidRequest(
                f"{family.name} models have no {stage} pipeline, which {what} needs: choose a model of "
                "another family"
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


def remix_steps(steps: int, strength: float) -> int:
    """The schedule's length for img2img at `strength`: the request's steps, or more where fewer than one
    step would run (diffusers runs int(steps * strength) steps and refuses none)."""
    return max(steps, math.ceil(1.0 / strength - 1e-9))


def remix_latents(pipe, known, request, strength: float, generator, on_step_end=None):
    """img2img from `known` latents (as the UNet takes them) at `strength` by `pipe`'s components, with
    the request's prompt, steps, guidance; returns the remixed latents. Wrap and scheduler are the
    caller's (seamless, call_options)."""
    from diffusers import AutoPipelineForImage2Image

    remixer = AutoPipelineForImage2Image.from_pipe(pipe)
    remixer.set_progress_bar_config(disable=True)
    return remixer(
        prompt=request.prompt,
        negative_prompt=request.negative_prompt or None,
        image=known,  # latents: not encoded again (and sampled) by the pipeline
        strength=strength,
        num_inference_steps=remix_steps(request.steps, strength),
        guidance_scale=request.guidance,
        generator=generator,
        output_type="latent",
        callback_on_step_end=on_step_end,
    ).images


def remixed_steps(steps: int, strength: float) -> int:
    """How many of a schedule's `steps` an img2img at `strength` runs (diffusers' get_timesteps)."""
    return steps - int(max(steps - steps * strength, 0))


def _transformer_remix(worker, job, pipe, family, request, image, strength: float, generator):
    """A remix on a diffusion transformer: its img2img pipeline (FLUX.2 klein's inpainting pipeline with
    nothing kept, its img2img being an editor without strength), the latents rolled between steps as a
    generation's are (token_wrap) and the VAE padded circularly; the pipeline decodes its own latents."""
    import diffusers

    remixer = getattr(diffusers, family.img2img or family.inpaint).from_pipe(pipe)
    remixer.set_progress_bar_config(disable=True)
    steps = remix_steps(request.steps, strength)
    roll = token_wrap.TokenRoll.for_image(
        family.packed, request.width, request.height, remixed_steps(steps, strength), request.wrap_x,
        request.wrap_y,
    )  # fmt: skip
    progress_and_cancel = step_callback(worker, job, family)

    def on_step_end(pipeline, index, timestep, tensors):
        tensors = progress_and_cancel(pipeline, index, timestep, tensors)
        last = index + 1 >= getattr(pipeline, "num_timesteps", len(roll.schedule))
        # The last step rolls back home whatever the schedule's length: the pipeline decodes what it gets.
        tensors["latents"] = roll.after_step(len(roll.schedule) - 1 if last else index, tensors["latents"])
        return tensors

    height, width = image.shape[:2]
    kept = {} if family.img2img else {"mask_image": np.ones((1, height, width, 1), dtype=np.float32)}
    with (
        call_options(pipe, request.scheduler, request.loras, request.allow_download, request.allow_pickle),
        seamless(pipe, request.wrap_x, request.wrap_y),
    ):
        latents = remixer(
            prompt=request.prompt,
            image=image[None],
            strength=strength,
            num_inference_steps=steps,
            width=width,
            height=height,
            generator=generator,
            output_type="latent",
            callback_on_step_end=on_step_end,
            **kept,
            **families.guidance_options(family, request),
        ).images
        # Decoded as the memory plan says (whole, or the wrap-exact tiles), as a generation's are.
        return worker._decode(job, pipe, decoding.vae_latents(remixer, latents, width, height), request)


def remix_image(source, strength: float):
    """The worker stage of a remix: img2img of the whole panorama or texture `source()` gives (float32
    (H, W, 3) sRGB in [0, 1], made in the worker thread) at `strength`, wrapped as a generation is (x for
    worlds, x and y for textures: the UNet and VAE pad circularly, and the input is encoded through the
    wrap-exact tiles); returns the image."""

    def run(worker, job, pipe, request, device):
        import torch

        family = families.of_pipeline(pipe)
        if not can_remix(family):
            raise InvalidRequest(f"{family.name} models have no img2img pipeline for a remix: choose another")
        generator = torch.Generator(device=device).manual_seed(request.seed)
        job.stage = "remixing"
        job.steps = remixed_steps(remix_steps(request.steps, strength), strength)
        plan, image = job.plan, np.asarray(source(), dtype=np.float32)
        start = time.perf_counter()
        if family.transformer:
            redrawn = _transformer_remix(worker, job, pipe, family, request, image, strength, generator)
            job.timings["denoise"] = time.perf_counter() - start
            job.stage = progress.steps_done(job.steps)
            return redrawn
        with (
            call_options(
                pipe, request.scheduler, request.loras, request.allow_download, request.allow_pickle
            ),
            seamless(pipe, request.wrap_x, request.wrap_y),
        ):
            tiling = tiled_vae.Tiling(
                plan.tile or max(image.shape[:2]), request.wrap_x, request.wrap_y, plan.storage, plan.lean
            )
            known = decoding.encode_image(pipe, image, tiling)
            on_step_end = step_callback(worker, job, family)
            latents = remix_latents(pipe, known, request, strength, generator, on_step_end)
            encoded = time.perf_counter()
            redrawn = worker._decode(job, pipe, latents, request)
        job.timings.update(denoise=encoded - start, decode=time.perf_counter() - encoded)
        job.stage = progress.steps_done(job.steps)
        return redrawn

    return run


def _transformer_outpaint(worker, job, pipe, family, request, canvas, paint, generator):
    """A photo world on a diffusion transformer: its inpainting pipeline with periodic rotary positions.
    That pipeline puts the photo's latents back where they were at every step, so the latents cannot be
    rolled between steps as a generation's are; periodic positions make the transformer itself wrap in x
    (periodic_rope.py), and the VAE pads circularly."""
    import diffusers

    from .periodic_rope import periodic_rope

    painter = getattr(diffusers, family.inpaint).from_pipe(pipe)
    painter.set_progress_bar_config(disable=True)
    height, width = canvas.shape[:2]
    grid = token_wrap.TokenRoll.for_image(family.packed, width, height, request.steps, False, False)
    with (
        call_options(pipe, request.scheduler, request.loras, request.allow_download, request.allow_pickle),
        seamless(pipe, request.wrap_x, request.wrap_y),
        periodic_rope(pipe.transformer, family.rope, grid.rows, grid.columns, request.wrap_x, request.wrap_y),
    ):
        latents = painter(
            prompt=request.prompt,
            image=canvas[None],
            mask_image=paint[None, ..., None].astype(np.float32),
            width=width,
            height=height,
            strength=1.0,
            num_inference_steps=request.steps,
            generator=generator,
            output_type="latent",
            callback_on_step_end=step_callback(worker, job, family),
            **families.guidance_options(family, request),
        ).images
        return worker._decode(job, pipe, decoding.vae_latents(painter, latents, width, height), request)


def outpaint_world(source):
    """The worker stage of a photo grown into a world: `source()` gives the canvas (float32 (H, W, 3) sRGB,
    the photo placed on it) and where to paint (H, W; 1 = paint); the model inpaints it at strength 1,
    wrapped around the horizon (its UNet and VAE pad circularly in x), and returns the painted canvas."""

    def run(worker, job, pipe, request, device):
        import torch
        from diffusers import AutoPipelineForInpainting

        family = families.of_pipeline(pipe)
        if family.inpaint is None or (family.transformer and not family.rope):
            raise InvalidRequest(
                f"growing a photo into a world needs an inpainting model that wraps, not {family.name}: "
                "choose another model"
            )
        generator = torch.Generator(device=device).manual_seed(request.seed)
        job.stage, job.steps = "painting around the photo", request.steps
        canvas, paint = source()
        plan = job.plan
        start = time.perf_counter()
        if family.transformer:
            image = _transformer_outpaint(worker, job, pipe, family, request, canvas, paint, generator)
            job.timings["denoise"] = time.perf_counter() - start
            job.stage = progress.steps_done(job.steps)
            return image
        with (
            call_options(
                pipe, request.scheduler, request.loras, request.allow_download, request.allow_pickle
            ),
            seamless(pipe, request.wrap_x, request.wrap_y),
        ):
            painter = AutoPipelineForInpainting.from_pipe(pipe)
            painter.set_progress_bar_config(disable=True)
            tiling = tiled_vae.Tiling(
                plan.tile or max(canvas.shape[:2]), request.wrap_x, request.wrap_y, plan.storage, plan.lean
            )
            known = decoding.encode_image(painter, canvas, tiling)
            unet = pipe.unet
            hole = torch.from_numpy(paint)[None, None].to(unet.device, unet.dtype)
            latents = painter(
                prompt=request.prompt,
                negative_prompt=request.negative_prompt or None,
                image=known,
                mask_image=hole,
                masked_image_latents=known,  # unused by a 4-channel UNet; given so it is not encoded again
                width=request.width,
                height=request.height,
                strength=1.0,
                num_inference_steps=request.steps,
                guidance_scale=request.guidance,
                generator=generator,
                output_type="latent",
                callback_on_step_end=step_callback(worker, job, family),
            ).images
            painted = time.perf_counter()
            image = worker._decode(job, pipe, latents, request)
        job.timings.update(denoise=painted - start, decode=time.perf_counter() - painted)
        job.stage = progress.steps_done(job.steps)
        return image

    return run
