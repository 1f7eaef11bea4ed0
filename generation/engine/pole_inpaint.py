"""The loaded model redraws a pole: diffusers' inpainting pipeline built from the same components.

`AutoPipelineForInpainting.from_pipe` shares the text-to-image pipeline's UNet, VAE, text encoders and
scheduler (no new weights, no second copy in memory); with a plain 4-channel UNet it inpaints by blending
the known latents back outside the mask at every step, which is what a cap of sky or ground needs.
The window is encoded, and its result decoded, the way the memory planner chose for the window's size
(memory_plan.plan_stage); the pipeline gets the window as latents, which also spares the second encode
(of the masked window) that only 9-channel inpainting UNets use.
"""

import math

from . import decoding, families, tiled_vae

# The caps are a small share of the panorama (two windows of 256x256 px at 1024x512, an eighth of its
# pixels each) and mostly sky or ground: half the world's steps redraw them, which keeps the repair
# within a quarter of the world's time (bench/poles.py).
STEP_SHARE = 0.5


def repair_steps(steps: int) -> int:
    return max(1, math.ceil(STEP_SHARE * steps))


def model_inpaint(pipe, request, generator, on_step_end, plan, steps: int | None = None):
    """An `Inpaint` for imaging.poles.repair_poles that runs `pipe`'s model on each face window and
    decodes it as the memory `plan` says, in `steps` steps (default: the repair's share of the request's).

    `on_step_end` is the pipeline callback (progress and cancel); it may raise to stop the repair.
    """
    steps = steps or repair_steps(request.steps)
    import torch
    from diffusers import AutoPipelineForInpainting

    family = families.of_pipeline(pipe)
    if family.transformer:
        return _transformer_inpaint(pipe, family, request, generator, on_step_end, steps)

    inpainter = AutoPipelineForInpainting.from_pipe(pipe)
    inpainter.set_progress_bar_config(disable=True)
    device, dtype = pipe.unet.device, pipe.unet.dtype

    def inpaint(window, mask, pole):
        size = window.shape[0]
        # The plan's tiles, or the window as one tile (which is the plain encode) when it has none.
        tiling = tiled_vae.Tiling(plan.tile or size, False, False, plan.storage, plan.lean)
        known = decoding.encode_image(inpainter, window, tiling)
        hole = torch.from_numpy(mask)[None, None].to(device, dtype)
        latents = inpainter(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or None,
            image=known,
            mask_image=hole,
            masked_image_latents=known,  # unused by a 4-channel UNet; given so it is not encoded again
            width=size,
            height=size,
            strength=1.0,
            num_inference_steps=steps,
            guidance_scale=request.guidance,
            generator=generator,
            output_type="latent",
            callback_on_step_end=on_step_end,
        ).images
        return decoding.decode_latents(inpainter, latents, plan, wrap_x=False, wrap_y=False)

    return inpaint


def _transformer_inpaint(pipe, family: families.Family, request, generator, on_step_end, steps: int):
    """The same for a transformer family, through its own inpainting pipeline (which encodes the window and
    decodes its result itself: the windows are small, a plain decode fits where the world's did)."""
    import diffusers

    from ..errors import InvalidRequest

    if family.inpaint is None:
        raise InvalidRequest(f"{family.name} models have no inpainting pipeline: set poles to blend or off")
    inpainter = getattr(diffusers, family.inpaint).from_pipe(pipe)
    inpainter.set_progress_bar_config(disable=True)

    def inpaint(window, mask, pole):
        size = window.shape[0]
        return inpainter(
            prompt=request.prompt,
            image=window[None],
            mask_image=mask[None, ..., None] if mask.ndim == 2 else mask[None],
            width=size,
            height=size,
            strength=1.0,
            num_inference_steps=steps,
            generator=generator,
            output_type="np",
            callback_on_step_end=on_step_end,
            **families.guidance_options(family, request),
        ).images[0]

    return inpaint
