"""A cheap look at the image while it denoises: latents mapped to RGB by a fixed linear map, no VAE."""

import numpy as np

PREVIEW_INTERVAL = 0.25  # seconds between previews: denoising steps, upscale tiles and detail steps alike
PREVIEW_WIDTH = 512  # columns of a preview of an image being upscaled or redrawn
# Rough linear maps from the four latent channels of each model family to RGB in [-1, 1]: a thumbnail only.
_SD_MAP = np.array(
    [
        [0.30, 0.19, 0.21],
        [0.19, 0.29, 0.17],
        [-0.16, 0.19, 0.26],
        [-0.18, -0.27, -0.47],
    ],
    dtype=np.float32,
)
_SD_BIAS = np.array([0.0, 0.0, 0.0], dtype=np.float32)
_SDXL_MAP = np.array(
    [
        [0.37, 0.34, 0.30],
        [0.03, 0.19, 0.27],
        [0.14, 0.19, -0.07],
        [-0.21, -0.14, -0.19],
    ],
    dtype=np.float32,
)
_SDXL_BIAS = np.array([0.07, 0.02, -0.10], dtype=np.float32)


def latents_to_rgb(latents, family: str = "sd") -> np.ndarray:
    """A float32 HxWx3 preview in [0, 1] of the first latent image (a torch tensor or array, 1xCxHxW) of a
    model family: the fitted map of SD or SDXL, else (the transformers' 16 or more channels) the first
    three channels stretched to their own range."""
    if hasattr(latents, "detach"):
        latents = latents[0].detach().float().cpu().numpy()
    else:
        latents = np.asarray(latents, dtype=np.float32)[0]
    if family not in ("sd", "sdxl"):
        rgb = np.moveaxis(latents[:3], 0, -1)
        low, high = rgb.min(axis=(0, 1)), rgb.max(axis=(0, 1))
        return ((rgb - low) / np.maximum(high - low, 1e-6)).astype(np.float32)
    matrix, bias = (_SDXL_MAP, _SDXL_BIAS) if family == "sdxl" else (_SD_MAP, _SD_BIAS)
    rgb = np.tensordot(np.moveaxis(latents[:4], 0, -1), matrix, axes=1) + bias
    return np.clip(rgb * 0.5 + 0.5, 0.0, 1.0).astype(np.float32)
