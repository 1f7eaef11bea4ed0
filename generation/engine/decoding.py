"""Latents to an image, with the decoder the memory plan chose: the VAE's own, or the wrap-exact tiles;
and an image back to latents through the tiles (the detail pass).

The plain decode does what the pipelines do after denoising (SDXL's fp32 upcast, the latents' scale and
shift, the VAE, the image processor), so a "full" plan gives today's image exactly.
"""

import contextlib

import numpy as np

from . import tiled_vae, tiled_vae_qwen
from .memory_plan import MemoryPlan


def _normalisation(vae, latents):
    """The VAE's latent scaling as (scale, shift, mean, std), mean and std as tensors shaped for `latents`.

    Mean and std are None for VAEs without them (SD 1.x and 2.x; SDXL-style VAEs may set them). Z-Image's
    16-channel VAE shifts as well as scales (FLUX.1's convention); FLUX.2's takes its latents as they are
    (klein's pipeline has undone its batch norm and patches before it returns them): scale 1, shift 0."""
    import torch

    config = vae.config
    scale = getattr(config, "scaling_factor", None) or 1.0
    shift = getattr(config, "shift_factor", None) or 0.0
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    if mean is None or std is None:
        return scale, shift, None, None

    def shaped(values):
        return torch.tensor(values).view(1, -1, 1, 1).to(latents.device, latents.dtype)

    return scale, shift, shaped(mean), shaped(std)


def unscaled(vae, latents):
    """Latents as vae.decode takes them: undo the scaling factor and shift (or SDXL-style mean and std)."""
    scale, shift, mean, std = _normalisation(vae, latents)
    return latents / scale + shift if mean is None else latents * std / scale + mean


def scaled(vae, latents):
    """The inverse of `unscaled`: a VAE's latents as the denoiser takes them."""
    scale, shift, mean, std = _normalisation(vae, latents)
    return (latents - shift) * scale if mean is None else (latents - mean) * scale / std


@contextlib.contextmanager
def vae_ready(pipe, tiled: bool):
    """The VAE in the dtype and on the device a decode or encode needs, put back afterwards: fp32 for an
    fp16 VAE that must upcast (SDXL's), and on the execution device for a tiled pass under CPU offload
    (the tiled pass calls the VAE's layers, not its offload hook)."""
    import torch

    vae = pipe.vae
    upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    moved = next(vae.parameters()).device != torch.device(pipe._execution_device) and tiled
    with contextlib.ExitStack() as undo, torch.no_grad():
        if upcast:
            undo.callback(vae.to, dtype=torch.float16)
            vae.to(dtype=torch.float32)
        if moved:
            undo.callback(vae.to, "cpu")
            vae.to(pipe._execution_device)
        yield vae


def decode_latents(pipe, latents, plan: MemoryPlan, wrap_x: bool, wrap_y: bool) -> np.ndarray:
    """The float32 HxWx3 image in [0, 1] for the first latents of a batch.

    Seamless padding for the plain decode comes from the caller's `seamless()` block; the tiled decode
    wraps by itself.
    """
    if plan.tile is not None:
        return decode_tiled(
            pipe, latents, tiled_vae.Tiling(plan.tile, wrap_x, wrap_y, plan.storage, plan.lean)
        )
    with vae_ready(pipe, tiled=False) as vae:
        latents = unscaled(vae, latents.to(pipe._execution_device, vae.dtype))
        if is_video_vae(vae):
            image = vae.decode(latents[:, :, None], return_dict=False)[0][:, :, 0]
        else:
            image = vae.decode(latents, return_dict=False)[0]
    return _as_array(pipe, image)


def decode_tiled(pipe, latents, tiling: tiled_vae.Tiling) -> np.ndarray:
    """As decode_latents, always through the wrap-exact tiles (they wrap as `tiling` says)."""
    with vae_ready(pipe, tiled=True) as vae:
        image = tiled_decoder(vae)(vae, unscaled(vae, latents.to(pipe._execution_device, vae.dtype)), tiling)
    return _as_array(pipe, image)


def tiled_decoder(vae):
    """The wrap-exact tiled decode for `vae`: Qwen-Image's causal 3D VAE walks its own layers."""
    return tiled_vae_qwen.decode if is_video_vae(vae) else tiled_vae.decode


def is_video_vae(vae) -> bool:
    """Qwen-Image's VAE (Wan's) decodes video: a still is one frame of it."""
    return type(vae).__name__ == "AutoencoderKLQwenImage"


def vae_latents(pipe, latents, width: int, height: int):
    """A pipeline's output_type="latent" as its VAE decodes them, 4D: Qwen-Image's come back packed in
    2x2-patch tokens (B, tokens, C*4), which its pipeline unpacks into one frame before its decode."""
    if latents.ndim == 3:
        latents = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)[:, :, 0]
    return latents


def _as_array(pipe, image) -> np.ndarray:
    """The first image of a decoded batch as the pipelines post-process it, float32 HxWx3 in [0, 1]."""
    return np.asarray(pipe.image_processor.postprocess(image, output_type="np")[0], dtype=np.float32)


def encode_image(pipe, image: np.ndarray, tiling: tiled_vae.Tiling):
    """Latents (1x4xhxw, as the UNet takes them) of a float32 HxWx3 image in [0, 1], through the wrap-exact
    tiles; the mean of the VAE's distribution, so the same image always gives the same latents."""
    import torch

    with vae_ready(pipe, tiled=True) as vae:
        pixels = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
        pixels = pixels.to(pipe._execution_device, vae.dtype) * 2.0 - 1.0
        latents = tiled_vae.encode(vae, pixels, tiling).mean
        return scaled(vae, latents)
