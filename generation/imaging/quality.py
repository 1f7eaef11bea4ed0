"""The measures of QUALITY.md as functions: seams, poles, HDR range and light share, normal and albedo maps.

Tests assert them; users see them in the report of a generated world or material. Pure numpy.
Panoramas are equirectangular, rows top first: row 0 looks straight up, row H-1 straight down.
"""

from dataclasses import asdict, dataclass

import numpy as np

from .projection import equirect_directions

# Rec.709 luminance weights of linear RGB.
LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def finite(values: np.ndarray, posinf: float | None = 0.0) -> np.ndarray:
    """`values` with NaN and -Inf as 0 and +Inf as `posinf` (None: the largest float); no copy when all
    are finite, the usual case, which is much cheaper to check than to rewrite."""
    if np.isfinite(values).all():
        return values
    return np.nan_to_num(values, nan=0.0, posinf=posinf, neginf=0.0)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Luminance (HxW float32) of an HxWx3 image in the space it is given in."""
    return np.asarray(rgb, dtype=np.float32) @ LUMA


def elevations(height: int) -> np.ndarray:
    """Elevation in radians of each row centre of an equirectangular panorama (+pi/2 is straight up)."""
    return ((0.5 - (np.arange(height) + 0.5) / height) * np.pi).astype(np.float64)


def pixel_solid_angles(height: int, width: int) -> np.ndarray:
    """Solid angle (sr) of one pixel in each row of an equirectangular panorama, shape (height,)."""
    return (2.0 * np.pi / width) * (np.pi / height) * np.cos(elevations(height))


def gaussian_blur_wrap(image: np.ndarray, sigma_y: float, sigma_x: float) -> np.ndarray:
    """Gaussian blur that wraps around both axes (FFT), so a tiling image stays tiling. HxW or HxWxC."""
    image = np.asarray(image, dtype=np.float32)
    height, width = image.shape[:2]
    transfer = gaussian_transfer(height, width, sigma_y, sigma_x)
    if image.ndim == 3:
        transfer = transfer[..., None]
    spectrum = np.fft.rfft2(image, axes=(0, 1))
    return np.fft.irfft2(spectrum * transfer, s=(height, width), axes=(0, 1)).astype(np.float32)


def gaussian_transfer(height: int, width: int, sigma_y: float, sigma_x: float) -> np.ndarray:
    """The rfft2-shaped transfer function of a Gaussian with the given sigmas in pixels."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    return np.exp(-2.0 * np.pi**2 * ((sigma_y * fy) ** 2 + (sigma_x * fx) ** 2))


@dataclass(frozen=True)
class SeamRatio:
    """Edge jump over the typical neighbour difference near the edges: ~1 is seamless, >= 1.7 is a seam."""

    ratio: float
    row_p99: float


def seam_ratio(image: np.ndarray, axis: int = 1, pairs: int = 8, band: int = 16) -> SeamRatio:
    """Seam ratio of the wrap along `axis` (1: last column meets first; 0: last row meets first).

    ratio = mean |first - last| / mean adjacent difference over the `pairs` neighbour pairs nearest each
    edge. row_p99 is the 99th percentile of the same ratio taken per band of `band` lines along the seam:
    it finds a stretch of seam that does not match. (A band rather than a single line because one line's
    jump is a single noisy sample: perfectly periodic fine noise reads about 3 at the 99th percentile
    line by line, about 1.5 in bands of 16.)
    Measured on what is passed: sRGB values, or log luminance of HDR data.
    """
    data = np.asarray(image, dtype=np.float32)
    if data.ndim == 2:
        data = data[..., None]
    if axis == 0:
        data = data.swapaxes(0, 1)
    elif axis != 1:
        raise ValueError("axis must be 0 (rows wrap) or 1 (columns wrap)")
    pairs = max(1, min(pairs, (data.shape[1] - 1) // 2))
    jump = np.abs(data[:, 0] - data[:, -1]).mean(axis=-1)
    near_start = np.abs(np.diff(data[:, : pairs + 1], axis=1))
    near_end = np.abs(np.diff(data[:, -pairs - 1 :], axis=1))
    typical = np.concatenate([near_start, near_end], axis=1).mean(axis=(1, 2))
    # A stretch much flatter than the image's typical detail (a clear sky) reads as flat, not as a ratio
    # of two tiny numbers; a real seam there still jumps by far more than this floor.
    floor = 0.1 * float(typical.mean()) + 1e-12
    ratio = float(jump.mean() / (typical.mean() + floor))
    bands = max(1, len(jump) // band)
    jump_bands = jump[: bands * band].reshape(bands, -1).mean(axis=1)
    typical_bands = typical[: bands * band].reshape(bands, -1).mean(axis=1)
    per_band = jump_bands / (typical_bands + floor)
    return SeamRatio(ratio=ratio, row_p99=float(np.percentile(per_band, 99)))


@dataclass(frozen=True)
class PoleUniformity:
    """std/mean of the top and bottom rows (worst channel): each row is one direction, so ~0."""

    top: float
    bottom: float


def pole_uniformity(pano: np.ndarray) -> PoleUniformity:
    """How uniform the first and last rows are: std(row)/mean(row), worst channel; pass is < 0.02."""
    data = np.asarray(pano)
    if data.ndim == 2:
        data = data[..., None]
    data = np.asarray(data[[0, -1]], dtype=np.float64)  # only the two rows: no float64 copy of the image

    def spread(row: np.ndarray) -> float:
        mean = np.abs(row.mean(axis=0))
        std = row.std(axis=0)
        return float(np.max(np.where(mean > 1e-12, std / np.maximum(mean, 1e-12), 0.0)))

    return PoleUniformity(top=spread(data[0]), bottom=spread(data[-1]))


def pole_gradient_ratio(pano: np.ndarray) -> float:
    """Mean horizontal gradient above 85 deg latitude (both poles) over that of the 30-60 deg bands.

    Pass is <= 2: poles no busier than the mid latitudes.
    """
    data = np.asarray(pano, dtype=np.float32)
    if data.ndim == 2:
        data = data[..., None]
    latitude = np.degrees(np.abs(elevations(data.shape[0])))
    # In bands of rows (x[i] - x[i - 1] around the wrap): no image-sized temporaries.
    bands = (data[first : first + 64] for first in range(0, data.shape[0], 64))
    gradient = np.concatenate(
        [np.abs(np.diff(band, axis=1, prepend=band[:, -1:])).mean(axis=(1, 2)) for band in bands]
    )
    polar = latitude > 85.0
    if not polar.any():
        polar = latitude >= latitude.max()
    middle = (latitude >= 30.0) & (latitude <= 60.0)
    if not middle.any():
        middle = ~polar
    reference = float(gradient[middle].mean())
    return float(gradient[polar].mean() / (reference + 1e-12 * (1.0 + abs(reference))))


def pole_pinch(pano: np.ndarray, window_deg: float = 25.0, size: int = 96) -> dict[str, float]:
    """How pinched each pole looks in Blender: on the Up and Down cube faces, the gradient energy across
    the radial direction over that along it, in a ring around the pole (2-24° from it by default).

    A stretched pole (a plain model's sky smeared along the meridians) is streaks along the radii, so its
    gradients run across them: the ratio is far above 1. An isotropic (repaired) pole reads about 1.
    """
    from .projection import equirect_to_face  # a sibling module; imported here to keep this file's top light

    extent = float(np.tan(np.radians(window_deg)))
    grey = luminance(np.asarray(pano, dtype=np.float32)) if np.ndim(pano) == 3 else np.asarray(pano)
    steps = (2.0 * (np.arange(size) + 0.5) / size - 1.0) * extent
    across, down = np.meshgrid(steps, steps)
    radius = np.hypot(across, down)
    ring = (radius > np.tan(np.radians(2.0))) & (radius < extent * 0.95)
    unit_a, unit_d = across / np.maximum(radius, 1e-9), down / np.maximum(radius, 1e-9)
    result = {}
    for pole in ("pz", "nz"):
        face = equirect_to_face(grey[..., None], pole, size, extent)[..., 0].astype(np.float64)
        g_down, g_across = np.gradient(face)
        radial = g_across * unit_a + g_down * unit_d
        tangential = g_across * unit_d - g_down * unit_a
        result[pole] = float((tangential[ring] ** 2).mean() / max((radial[ring] ** 2).mean(), 1e-20))
    return result


@dataclass(frozen=True)
class HdrStats:
    """Dynamic range figures of HDR radiance (luminance), and whether it is usable as written."""

    peak: float
    median_sky: float
    peak_over_median: float
    stops: float
    light_share: float
    finite: bool
    minimum: float


def hdr_stats(radiance: np.ndarray) -> HdrStats:
    """Peak, median sky (upper hemisphere), stops = log2(peak / 1st percentile), and the light-source share.

    light_share: the part of the upper hemisphere's horizontal irradiance (cos(theta) x solid angle of each
    equirectangular pixel) carried by pixels both in the top 0.05% and brighter than 100x the median sky.
    Daylight sun:sky of about 3:1 reads 0.75. Statistics ignore non-finite values; `finite` reports them.
    """
    data = np.asarray(radiance, dtype=np.float32)
    minimum = float(data.min())  # NaN or Inf shows in the minimum or maximum: no mask of the image
    all_finite = bool(np.isfinite(minimum) and np.isfinite(data.max()))
    minimum = minimum if all_finite else float("nan")
    lum = luminance(data if all_finite else finite(data, posinf=0.0))
    height, width = lum.shape
    sky_rows = max(1, height // 2)
    sky = lum[:sky_rows]
    peak = float(lum.max())
    median_sky = float(np.median(sky))
    low, top = (float(value) for value in np.percentile(lum, [1, 99.95]))
    stops = float(np.log2(max(peak, 1e-30) / max(low, 1e-30))) if peak > 0 else 0.0
    weights = (pixel_solid_angles(height, width) * np.sin(elevations(height)))[:sky_rows, None]
    irradiance = sky * weights
    total = float(irradiance.sum())
    source = (sky >= top) & (sky > 100.0 * median_sky)
    share = float(irradiance[source].sum() / total) if total > 0 else 0.0
    return HdrStats(
        peak=peak,
        median_sky=median_sky,
        peak_over_median=peak / median_sky if median_sky > 0 else float("inf") if peak > 0 else 0.0,
        stops=stops,
        light_share=share,
        finite=all_finite,
        minimum=minimum,
    )


@dataclass(frozen=True)
class NormalStats:
    """Decoded normal-map figures: worst |length - 1| and the mean of each component."""

    length_error: float
    mean_x: float
    mean_y: float
    mean_z: float


def normal_stats(normal_rgb: np.ndarray) -> NormalStats:
    """Decode a 0..1 encoded normal map (n = 2 rgb - 1) and measure it; pass is length_error <= 0.01,
    |mean_x|, |mean_y| < 0.02 and mean_z >= 0.8."""
    n = np.asarray(normal_rgb, dtype=np.float64) * 2.0 - 1.0
    length = np.sqrt((n**2).sum(axis=-1))
    mean = n.reshape(-1, 3).mean(axis=0)
    return NormalStats(
        length_error=float(np.abs(length - 1.0).max()),
        mean_x=float(mean[0]),
        mean_y=float(mean[1]),
        mean_z=float(mean[2]),
    )


@dataclass(frozen=True)
class AlbedoStats:
    """Low-frequency lighting left in an albedo, and the share of pixels in the plausible sRGB range."""

    low_frequency: float
    in_range: float


def albedo_stats(albedo: np.ndarray) -> AlbedoStats:
    """std(blur(L, sigma=W/8)) / mean(L) on linear luminance (pass <= 0.05), and the fraction of pixels with
    every channel within sRGB 30..240 (pass >= 0.99). `albedo` is sRGB in [0, 1]."""
    srgb = np.clip(np.asarray(albedo, dtype=np.float32), 0.0, 1.0)
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    lum = luminance(linear)
    sigma = lum.shape[1] / 8.0
    blurred = gaussian_blur_wrap(lum, sigma, sigma)
    mean = float(lum.mean())
    low = float(blurred.std() / mean) if mean > 0 else 0.0
    inside = ((srgb >= 30 / 255 - 1e-6) & (srgb <= 240 / 255 + 1e-6)).all(axis=-1)
    return AlbedoStats(low_frequency=low, in_range=float(inside.mean()))


def world_report(ldr_srgb: np.ndarray | None, radiance: np.ndarray, sun_added: bool | None = None) -> dict:
    """What a lighting artist wants to know about a world, as plain numbers and flags."""
    stats = hdr_stats(radiance)
    log_lum = luminance(finite(radiance, posinf=None))
    np.log(np.maximum(log_lum, 1e-12, out=log_lum), out=log_lum)
    seam_log = seam_ratio(log_lum, axis=1)
    poles = pole_uniformity(radiance)
    report: dict[str, float | bool] = {
        "width": float(radiance.shape[1]),
        "height": float(radiance.shape[0]),
        "peak": stats.peak,
        "median_sky": stats.median_sky,
        "peak_over_median": stats.peak_over_median,
        "stops": stats.stops,
        "light_share": stats.light_share,
        "finite": stats.finite,
        "minimum": stats.minimum,
        "seam_ratio_log_luminance": seam_log.ratio,
        "seam_row_p99_log_luminance": seam_log.row_p99,
        "pole_top": poles.top,
        "pole_bottom": poles.bottom,
    }
    if ldr_srgb is not None:
        seam = seam_ratio(ldr_srgb, axis=1)
        report["seam_ratio_srgb"] = seam.ratio
        report["seam_row_p99_srgb"] = seam.row_p99
        report["pole_gradient_ratio"] = pole_gradient_ratio(ldr_srgb)
    if sun_added is not None:
        report["sun_added"] = bool(sun_added)
    return report


def material_report(maps) -> dict:
    """What a texture artist wants to know about a PBR set (a pbr.PbrMaps): seams of every map, albedo
    de-lighting and range, normal-map validity."""
    report: dict[str, float | bool] = {
        "width": float(maps.albedo.shape[1]),
        "height": float(maps.albedo.shape[0]),
    }
    worst = 0.0
    for name in ("albedo", "normal", "roughness", "height", "ao"):
        image = getattr(maps, name)
        for axis, label in ((1, "x"), (0, "y")):
            seam = seam_ratio(image, axis=axis)
            report[f"seam_ratio_{name}_{label}"] = seam.ratio
            worst = max(worst, seam.ratio)
    report["seam_ratio_worst"] = worst
    report.update({f"albedo_{k}": v for k, v in asdict(albedo_stats(maps.albedo)).items()})
    report.update({f"normal_{k}": v for k, v in asdict(normal_stats(maps.normal)).items()})
    return report


# Light: where it comes from and what colour it is --------------------------------------------------------


def panorama_directions(height: int, width: int) -> np.ndarray:
    """World-space unit direction (HxWx3) of each pixel centre in Blender's equirectangular mapping:
    u = 0.5 - atan2(y, x) / 2pi, so the image centre looks along +X and the left edge along -X."""
    return equirect_directions(height, width, np.float64)


def direction_angles(direction: np.ndarray) -> tuple[float, float]:
    """Elevation and azimuth (degrees) of a world-space direction, azimuth counter-clockwise from +X as
    Blender's Sun Position and Sky Texture count it (90 - sun_rotation)."""
    x, y, z = (float(v) for v in direction)
    return float(np.degrees(np.arcsin(np.clip(z, -1.0, 1.0)))), float(np.degrees(np.arctan2(y, x)) % 360.0)


def horizontal_irradiance(radiance: np.ndarray, from_below: bool = False) -> np.ndarray:
    """Irradiance (RGB) on an upward-facing surface from the upper hemisphere of an equirectangular map
    (the sum of radiance x solid angle x cos(zenith) of its pixels, as an open ground under the sky gets),
    or with `from_below` on a downward-facing one from the lower hemisphere."""
    data = np.asarray(radiance)
    height, width = data.shape[:2]
    sine = np.sin(elevations(height)) * (-1.0 if from_below else 1.0)
    weights = (pixel_solid_angles(height, width) * np.maximum(sine, 0.0)).astype(data.dtype)
    # One matrix-vector product over rows (BLAS): a 4K map in milliseconds, not a float64 copy of it.
    per_column = weights @ data.reshape(height, -1)
    return per_column.reshape(width, -1).sum(axis=0, dtype=np.float64)


def below_over_above(radiance: np.ndarray) -> float:
    """Light from below over light from above (luminance): how much the floor lights a scene."""
    above = float(horizontal_irradiance(radiance) @ LUMA)
    return float(horizontal_irradiance(radiance, from_below=True) @ LUMA) / above if above > 0 else 0.0


def sun_share(radiance: np.ndarray, sunless: np.ndarray) -> float:
    """The sun's share of horizontal irradiance (luminance): 1 - E(map without the sun) / E(map)."""
    total = float(horizontal_irradiance(radiance) @ LUMA)
    return 1.0 - float(horizontal_irradiance(sunless) @ LUMA) / total if total > 0 else 0.0


def lit_shadow_ratio(radiance: np.ndarray, sunless: np.ndarray) -> float:
    """Lit over shadowed ground under an object that hides the sun: E(map) / E(map without the sun)."""
    shadow = float(horizontal_irradiance(sunless) @ LUMA)
    return float(horizontal_irradiance(radiance) @ LUMA) / shadow if shadow > 0 else float("inf")


def light_chromaticity(radiance: np.ndarray) -> tuple[float, float]:
    """(r, g) chromaticity, r = R / (R + G + B), of the light falling on an upward-facing surface."""
    light = horizontal_irradiance(radiance)
    total = float(light.sum())
    return (float(light[0] / total), float(light[1] / total)) if total > 0 else (1 / 3, 1 / 3)


def angle_between(a: np.ndarray, b: np.ndarray) -> float:
    """Angle in degrees between two directions."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    cosine = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))
