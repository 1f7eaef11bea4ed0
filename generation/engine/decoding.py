"""Latents to an image, with the decoder the memory plan chose: the VAE's own, or the wrap-exact tiles.

The plain decode does what the pipelines do after denoising (SDXL's fp32 upcast, the latents' scale and
shift, the VAE, the image processor), so a "full" plan gives today's image exactly.
"""

import contextlib

import numpy as np

from . import tiled_vae
from .memory_plan import MemoryPlan


def unscaled(vae, latents):
    """Latents as vae.decode takes them: undo the scaling factor (and SDXL-style mean and std)."""
    import torch

    config = vae.config
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    if mean is not None and std is not None:
        mean = torch.tensor(mean).view(1, -1, 1, 1).to(latents.device, latents.dtype)
        std = torch.tensor(std).view(1, -1, 1, 1).to(latents.device, latents.dtype)
        return latents * std / config.scaling_factor + mean
    return latents / config.scaling_factor


@contextlib.contextmanager
def _vae_for(pipe, plan: MemoryPlan):
    """The pipeline's VAE ready to run: in fp32 where it must upcast (SDXL's), and on the execution
    device for a tiled pass under model CPU offload (which calls its layers, not its offload hook)."""
    import torch

    vae = pipe.vae
    execution = pipe._execution_device
    upcast = vae.dtype == torch.float16 and vae.config.force_upcast
    moved = next(vae.parameters()).device != torch.device(execution) and plan.tile is not None
    with contextlib.ExitStack() as undo, torch.no_grad():
        if upcast:
            undo.callback(vae.to, dtype=torch.float16)
            vae.to(dtype=torch.float32)
        if moved:
            undo.callback(vae.to, "cpu")
            vae.to(execution)
        yield vae, execution


def decode_latents(pipe, latents, plan: MemoryPlan, wrap_x: bool, wrap_y: bool) -> np.ndarray:
    """The float32 HxWx3 image in [0, 1] for the first latents of a batch.

    Seamless padding for the plain decode comes from the caller's `seamless()` block; the tiled decode
    wraps by itself.
    """
    with _vae_for(pipe, plan) as (vae, execution):
        latents = unscaled(vae, latents.to(execution, vae.dtype))
        if plan.tile is None:
            image = vae.decode(latents, return_dict=False)[0]
        else:
            tiling = tiled_vae.Tiling(plan.tile, wrap_x, wrap_y, plan.storage, plan.lean)
            image = tiled_vae.decode(vae, latents, tiling)
    return np.asarray(pipe.image_processor.postprocess(image, output_type="np")[0], dtype=np.float32)


def encode_image(pipe, image: np.ndarray, plan: MemoryPlan, wrap_x: bool = False, wrap_y: bool = False):
    """Latents as the pipelines denoise them (scaled) for an HxWx3 image in [0, 1], encoded the way the
    plan says; the distribution's mean, so the known part of an inpainting is reproduced, not resampled."""
    import torch

    with _vae_for(pipe, plan) as (vae, execution):
        pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
        pixels = pixels.to(execution, vae.dtype) * 2.0 - 1.0
        if plan.tile is None:
            latents = vae.encode(pixels).latent_dist.mode()
        else:
            tiling = tiled_vae.Tiling(plan.tile, wrap_x, wrap_y, plan.storage, plan.lean)
            latents = tiled_vae.encode(vae, pixels, tiling).mode()
        return scaled(vae, latents).to(pipe.unet.dtype)


def scaled(vae, latents):
    """The inverse of `unscaled`: what vae.encode gives, as the denoiser sees it."""
    import torch

    config = vae.config
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    if mean is not None and std is not None:
        mean = torch.tensor(mean).view(1, -1, 1, 1).to(latents.device, latents.dtype)
        std = torch.tensor(std).view(1, -1, 1, 1).to(latents.device, latents.dtype)
        return (latents - mean) * config.scaling_factor / std
    return latents * config.scaling_factor
