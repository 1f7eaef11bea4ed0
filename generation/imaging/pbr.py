"""Texture (sRGB albedo) -> PBR maps: de-lit albedo, normal (OpenGL), roughness, height, ambient occlusion.

Every filter wraps around both axes (FFT or np.roll), so each map tiles when the input tiles. One FFT of
log luminance feeds the de-lighting, the height band-pass and the occlusion blur. Pure numpy.
"""

from dataclasses import dataclass

import numpy as np

from .hdr import linear_to_srgb, resize_wrap, srgb_to_linear
from .quality import finite, gaussian_transfer, luminance

ALBEDO_LOW = 30 / 255  # sRGB range of plausible albedo (charcoal to fresh snow)
ALBEDO_HIGH = 240 / 255
TARGET_SLOPE = 0.35  # rms slope of the normal map at normal_strength 1 (mean nz about 0.93)


@dataclass(frozen=True)
class PbrMaps:
    """A PBR set, all float32 in [0, 1]: albedo sRGB HxWx3, normal HxWx3 (encoded 0..1, OpenGL: green up),
    roughness HxW, height HxW, ao HxW."""

    albedo: np.ndarray
    normal: np.ndarray
    roughness: np.ndarray
    height: np.ndarray
    ao: np.ndarray


def _wrap_sobel(height: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sobel derivatives d/dx (columns, to the right) and d/drow (downward), wrapping around, per pixel."""
    across = np.roll(height, -1, axis=1) - np.roll(height, 1, axis=1)
    down = np.roll(height, -1, axis=0) - np.roll(height, 1, axis=0)
    dx = (np.roll(across, 1, axis=0) + 2.0 * across + np.roll(across, -1, axis=0)) / 8.0
    drow = (np.roll(down, 1, axis=1) + 2.0 * down + np.roll(down, -1, axis=1)) / 8.0
    return dx, drow


def _box3(image: np.ndarray) -> np.ndarray:
    """3x3 mean, wrapping around."""
    rows = image + np.roll(image, 1, axis=0) + np.roll(image, -1, axis=0)
    return (rows + np.roll(rows, 1, axis=1) + np.roll(rows, -1, axis=1)) / 9.0


def _normalise(values: np.ndarray, low_pct: float = 1.0, high_pct: float = 99.0) -> np.ndarray:
    """Map the low..high percentiles to 0..1 and clip; a flat input gives 0.5 everywhere."""
    sample = values[:: max(1, values.shape[0] // 512), :: max(1, values.shape[1] // 512)]
    low, high = np.percentile(sample, [low_pct, high_pct])
    if high - low <= 1e-8:
        return np.full(values.shape, 0.5, dtype=np.float32)
    return np.clip((values - low) / (high - low), 0.0, 1.0).astype(np.float32)


def _fit_albedo_range(linear: np.ndarray) -> np.ndarray:
    """Squeeze the 0.5-99.5 percentile range of a linear albedo into sRGB 30..240 when it is wider."""
    low_limit, high_limit = (float(v) for v in srgb_to_linear(np.array([ALBEDO_LOW, ALBEDO_HIGH])))
    sample = linear[:: max(1, linear.shape[0] // 512), :: max(1, linear.shape[1] // 512)]
    low, high = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    new_low, new_high = max(low, low_limit), min(high, high_limit)
    if high - low > 1e-8 and (low < low_limit or high > high_limit):
        linear = new_low + (linear - low) * ((new_high - new_low) / (high - low))
    return np.clip(linear, low_limit, high_limit)


def _smooth_part(spectrum: np.ndarray, rows: int, cols: int, sigma: float) -> np.ndarray:
    """Inverse of the spectrum blurred by a wide Gaussian (sigma >= size/16), computed on a 64x64 grid and
    upsampled with wrap: the blur leaves nothing above 32 cycles, and this saves a full-size inverse FFT."""
    small = 64
    if min(rows, cols) < 2 * small:
        transfer = gaussian_transfer(rows, cols, sigma, sigma)
        return np.fft.irfft2(spectrum * transfer, s=(rows, cols)).astype(np.float32)
    half = small // 2
    kept = np.concatenate([spectrum[:half, : half + 1], spectrum[-half:, : half + 1]], axis=0)
    fy = np.concatenate([np.arange(half), np.arange(-half, 0)])[:, None] / rows
    fx = np.arange(half + 1)[None, :] / cols
    kept = kept * np.exp(-2.0 * np.pi**2 * sigma**2 * (fy**2 + fx**2))
    coarse = np.fft.irfft2(kept, s=(small, small)) * (small * small / (rows * cols))
    return resize_wrap(coarse.astype(np.float32), rows, cols, wrap_y=True)


def texture_to_pbr(albedo_srgb: np.ndarray, normal_strength: float = 1.0) -> PbrMaps:
    """Derive a tiling PBR set from an sRGB texture (float32 HxWx3 in [0, 1]).

    De-lighting divides out the wrap-blurred low-frequency luminance (sigma = size/16, on log luminance);
    height is a wrap band-pass of log luminance normalised to its 1st-99th percentiles; the normal map is
    the wrap Sobel gradient of height, scaled so its rms slope is 0.35 x normal_strength; roughness rises
    with local detail and in hollows; AO darkens (down to 0.65) where height is below its surroundings.
    """
    srgb = np.clip(finite(np.asarray(albedo_srgb, dtype=np.float32)), 0.0, 1.0)
    rows, cols = srgb.shape[:2]
    linear = srgb_to_linear(srgb)
    log_lum = np.log(luminance(linear) + np.float32(1e-4))
    spectrum = np.fft.rfft2(log_lum)
    size = min(rows, cols)

    def filtered(transfer: np.ndarray) -> np.ndarray:
        return np.fft.irfft2(spectrum * transfer, s=(rows, cols)).astype(np.float32)

    lighting = _smooth_part(spectrum, rows, cols, size / 16.0)
    gain = np.exp(float(lighting.mean()) - lighting)
    albedo_linear = _fit_albedo_range(linear * gain[..., None])
    albedo = linear_to_srgb(albedo_linear)

    fine = gaussian_transfer(rows, cols, 0.7, 0.7)
    band = fine - gaussian_transfer(rows, cols, size / 32.0, size / 32.0)
    detail = filtered(band)
    height = _normalise(detail)

    dx, drow = _wrap_sobel(height)
    slope = float(np.sqrt(np.mean(dx * dx + drow * drow)))
    scale = float(normal_strength) * TARGET_SLOPE / slope if slope > 1e-6 else 0.0
    # OpenGL convention: +y points up the image, rows run down, so ny follows d/drow with a plus sign.
    nx, ny = -scale * dx, scale * drow
    inverse_length = 1.0 / np.sqrt(nx * nx + ny * ny + 1.0)
    normal = np.stack([nx * inverse_length, ny * inverse_length, inverse_length], axis=-1) * 0.5 + 0.5

    cavity = filtered(band * gaussian_transfer(rows, cols, size / 64.0, size / 64.0)) - detail
    # Soft curves (tanh) rather than clipping: plateaus make maps look flat and hide their detail.
    cavity_scale = 2.0 * float(np.std(cavity[:: max(1, rows // 512), :: max(1, cols // 512)]))
    hollow = 0.5 + 0.5 * np.tanh(cavity / cavity_scale) if cavity_scale > 1e-8 else np.zeros_like(height)
    ao = 1.0 - 0.35 * hollow

    bumpiness = _box3(np.sqrt(dx * dx + drow * drow))
    bump_level = float(np.percentile(bumpiness[:: max(1, rows // 512), :: max(1, cols // 512)], 90))
    bumpiness = np.tanh(bumpiness / bump_level) if bump_level > 1e-8 else np.zeros_like(height)
    roughness = np.clip(0.35 + 0.4 * bumpiness + 0.25 * (1.0 - height), 0.0, 1.0)

    return PbrMaps(
        albedo=albedo.astype(np.float32),
        normal=normal.astype(np.float32),
        roughness=roughness.astype(np.float32),
        height=height,
        ao=ao.astype(np.float32),
    )
