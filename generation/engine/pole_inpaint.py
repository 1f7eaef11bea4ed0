"""The loaded model redraws a pole: diffusers' inpainting pipeline built from the same components.

`AutoPipelineForInpainting.from_pipe` shares the text-to-image pipeline's UNet, VAE, text encoders and
scheduler (no new weights, no second copy in memory); with a plain 4-channel UNet it inpaints by blending
the known latents back outside the mask at every step, which is what a cap of sky or ground needs.
Its latents are decoded by the decoder the memory planner chose for the window (memory_plan.plan_stage);
the pipeline's own encode of the window is a plain one, which needs less than that window's plain decode.
"""

import math

from . import decoding

# The caps are a small share of the panorama; fewer steps keep the repair within a quarter of the world's
# time (two windows of about a quarter of the panorama's pixels each at 1024x512).
STEP_SHARE = 0.7


def repair_steps(steps: int) -> int:
    return max(1, math.ceil(STEP_SHARE * steps))


def model_inpaint(pipe, request, generator, on_step_end, plan):
    """An `Inpaint` for imaging.poles.repair_poles that runs `pipe`'s model on each face window and
    decodes it as the memory `plan` says.

    `on_step_end` is the pipeline callback (progress and cancel); it may raise to stop the repair.
    """
    import torch
    from diffusers import AutoPipelineForInpainting

    inpainter = AutoPipelineForInpainting.from_pipe(pipe)
    inpainter.set_progress_bar_config(disable=True)
    device, dtype = pipe.unet.device, pipe.unet.dtype

    def inpaint(window, mask, pole):
        size = window.shape[0]
        image = torch.from_numpy(window).permute(2, 0, 1)[None].to(device, dtype)
        hole = torch.from_numpy(mask)[None, None].to(device, dtype)
        latents = inpainter(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or None,
            image=image,
            mask_image=hole,
            width=size,
            height=size,
            strength=1.0,
            num_inference_steps=repair_steps(request.steps),
            guidance_scale=request.guidance,
            generator=generator,
            output_type="latent",
            callback_on_step_end=on_step_end,
        ).images
        return decoding.decode_latents(inpainter, latents, plan, wrap_x=False, wrap_y=False)

    return inpaint
