"""LDR equirectangular panorama (sRGB) -> HDR radiance (float32 linear Rec.709) that lights a scene.

The method of QUALITY.md: exact inverse sRGB; highlight expansion of near-saturated pixels; the largest
saturated blob above the horizon is taken as the sun and replaced by an analytic disc plus a soft aureole
sized so sun:sky horizontal irradiance is about 3:1. Non-saturated pixels anchor the exposure: they keep
their linear value (times 2**exposure) and the sun is sized against them. Skies without a light source
(overcast, night) get no sun and stay within 8 stops. Pure numpy.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidRequest
from .quality import elevations, finite, gaussian_blur_wrap, luminance, pixel_solid_angles, seam_ratio

SATURATED = 0.98  # sRGB value at or above which every channel of a pixel is clipped white
HIGHLIGHT_GAIN = 12.0  # G of the highlight expansion 1 + (G - 1) m^2
SUN_SKY_RATIO = 3.0  # daylight sun:sky horizontal irradiance at sun_strength 1
AUREOLE_SHARE = 0.1  # part of the sun's irradiance spread into the aureole
SUN_DIAMETER_DEG = 0.53
DAYLIGHT_SKY = 0.02  # median linear sky luminance below which a bright blob is a moon or a lamp, not a sun
NO_SOURCE_CAP = 40.0  # without a light source, nothing above this multiple of the median sky
NO_SOURCE_STOPS = 7.9
MAX_RUNS = 200_000  # more saturated runs than this is speckle, not a sun


@dataclass(frozen=True)
class HdrOptions:
    """How a panorama becomes radiance: exposure in stops, sun "auto" | "on" | "off", sun strength
    (1 = daylight sun:sky of 3:1), and the output width (None keeps the input's)."""

    exposure: float = 0.0
    sun: str = "auto"
    sun_strength: float = 1.0
    output_width: int | None = None
    poles: str = "blend"  # "blend": rows near the poles blurred into one colour; "off": left as they are

    def __post_init__(self):
        if self.poles not in ("blend", "off"):
            raise InvalidRequest(f'poles must be "blend" or "off" here, not {self.poles!r}')
        if self.sun not in ("auto", "on", "off"):
            raise InvalidRequest(f'sun must be "auto", "on" or "off", not {self.sun!r}')
        if not -20.0 <= float(self.exposure) <= 20.0:
            raise InvalidRequest(f"exposure must be between -20 and 20 stops, not {self.exposure}")
        if not 0.0 < float(self.sun_strength) <= 20.0:
            raise InvalidRequest(f"sun_strength must be above 0 and at most 20, not {self.sun_strength}")
        width = self.output_width
        if width is not None and (int(width) != width or width < 16 or width > 16384 or width % 2):
            raise InvalidRequest(
                f"output_width must be an even number of pixels from 16 to 16384, not {width}"
            )


@dataclass(frozen=True)
class Sun:
    """Where the sun was put: elevation and azimuth (degrees, azimuth 0 at the image's left edge)."""

    elevation: float
    azimuth: float
    irradiance_share: float


@dataclass(frozen=True)
class HdrResult:
    """Radiance plus what the conversion did (the LDR it worked from and the sun it added, if any)."""

    radiance: np.ndarray
    ldr: np.ndarray
    sun: Sun | None


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """The exact piecewise inverse of the sRGB transfer function, float32."""
    x = np.asarray(srgb, dtype=np.float32)
    # In place, one branch at a time: np.where would compute the power for every pixel and copy twice.
    linear = x + np.float32(0.055)
    linear /= np.float32(1.055)
    np.power(linear, np.float32(2.4), out=linear)
    low = x <= 0.04045
    linear[low] = x[low] / np.float32(12.92)
    return linear


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer function (for previews), float32, clipped to [0, 1]."""
    x = np.clip(np.asarray(linear, dtype=np.float32), 0.0, 1.0)
    return np.where(x <= 0.0031308, x * np.float32(12.92), np.float32(1.055) * x ** (1 / 2.4) - 0.055)


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _resample_axis(image: np.ndarray, size: int, axis: int, wrap: bool) -> np.ndarray:
    """Catmull-Rom resampling along one axis, widened when shrinking so it also anti-aliases."""
    count = image.shape[axis]
    if size == count:
        return image
    scale = count / size
    stretch = max(1.0, scale)
    centres = (np.arange(size) + 0.5) * scale - 0.5
    taps = 2 * int(np.ceil(2.0 * stretch)) + 1
    index = np.floor(centres - 2.0 * stretch).astype(np.int64)[:, None] + 1 + np.arange(taps)[None, :]
    x = np.abs(index - centres[:, None]) / stretch
    weight = np.where(
        x < 1, 1.5 * x**3 - 2.5 * x**2 + 1, np.where(x < 2, -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2, 0)
    )
    weight /= weight.sum(axis=1, keepdims=True)
    index = index % count if wrap else np.clip(index, 0, count - 1)
    shape = [1] * image.ndim
    shape[axis] = size
    out = np.zeros((*image.shape[:axis], size, *image.shape[axis + 1 :]), dtype=np.float32)
    for tap in range(taps):
        out += np.take(image, index[:, tap], axis=axis) * weight[:, tap].astype(np.float32).reshape(shape)
    return out


def resize_wrap(image: np.ndarray, height: int, width: int, wrap_y: bool = False) -> np.ndarray:
    """Resize HxW(xC) float32 wrapping in x (and in y if asked); values stay within the input's range."""
    image = np.asarray(image, dtype=np.float32)
    low, high = float(image.min()), float(image.max())
    out = _resample_axis(_resample_axis(image, height, 0, wrap_y), width, 1, True)
    return np.clip(out, low, high)


def resize_panorama(ldr: np.ndarray, width: int) -> np.ndarray:
    """Resize an equirectangular LDR panorama to width x width/2, wrapping around in x. Do this in LDR,
    before the HDR step, so the sun is made at the final size."""
    return resize_wrap(ldr, width // 2, width)


def blend_seam(ldr: np.ndarray) -> np.ndarray:
    """Make a slightly non-periodic panorama meet itself at the left/right edge.

    The jump across the seam, less the local slope, is spread over the columns on both sides: its smooth
    (vertically blurred) part over a wide band, its detail over a few columns, so no streaks are drawn.
    Images that already wrap are returned unchanged.
    """
    seam = seam_ratio(ldr, axis=1)
    height, width = ldr.shape[:2]
    if (seam.ratio <= 1.2 and seam.row_p99 <= 2.0) or width < 16:
        return ldr
    out = ldr.astype(np.float32, copy=True)
    jump = out[:, 0] - out[:, -1]
    slope = 0.5 * ((out[:, -1] - out[:, -2]) + (out[:, 1] - out[:, 0]))
    excess = jump - slope
    padded = np.concatenate([excess[::-1], excess, excess[::-1]], axis=0)
    smooth = gaussian_blur_wrap(padded[:, None, :], 4.0, 0.0)[height : 2 * height, 0]
    for part, band in ((smooth, max(8, width // 32)), (excess - smooth, min(4, width // 4))):
        ramp = np.clip(1.0 - (np.arange(band) + 0.5) / band, 0.0, 1.0).astype(np.float32)
        out[:, :band] -= 0.5 * part[:, None, :] * ramp[None, :, None]
        out[:, width - band :] += 0.5 * part[:, None, :] * ramp[::-1][None, :, None]
    return np.clip(out, 0.0, 1.0)


def clean_poles(pano: np.ndarray, start_deg: float = 70.0, blur_deg: float = 2.5) -> np.ndarray:
    """Blur rows near the poles around the wrap, more the closer to the pole, so each pole is one colour.

    The angular blur grows from 0 at `start_deg` latitude to `blur_deg`; in pixels it is divided by
    cos(latitude), so the pole rows become their own mean, as a single direction must.
    """
    height, width = pano.shape[:2]
    latitude = np.abs(elevations(height))
    rows = np.nonzero(np.degrees(latitude) > start_deg)[0]
    if rows.size == 0:
        return pano
    out = pano.astype(np.float32, copy=True)
    angle = np.radians(blur_deg) * smoothstep(start_deg, 90.0, np.degrees(latitude[rows]))
    sigma = angle / ((2.0 * np.pi / width) * np.maximum(np.cos(latitude[rows]), 1e-9))
    transfer = np.exp(-2.0 * np.pi**2 * (sigma[:, None] * np.fft.rfftfreq(width)[None, :]) ** 2)
    # FFT along the last, contiguous axis: along a strided axis numpy's FFT is several times slower.
    band = np.ascontiguousarray(out[rows].transpose(0, 2, 1))
    blurred = np.fft.irfft(np.fft.rfft(band, axis=-1) * transfer[:, None, :], n=width, axis=-1)
    out[rows] = blurred.transpose(0, 2, 1)
    return out


def _runs(mask: np.ndarray):
    """Row, start and end (exclusive) of every horizontal run of True."""
    edges = np.diff(np.pad(mask.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    row, start = np.nonzero(edges == 1)
    _, end = np.nonzero(edges == -1)
    return row, start, end


def _components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Label 8-connected components of `mask`, wrapping in x. Returns runs (row, start, end) and labels."""
    row, start, end = _runs(mask)
    parent = list(range(len(row)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    width = mask.shape[1]
    bounds = np.searchsorted(row, np.arange(mask.shape[0] + 1))
    for r in range(mask.shape[0]):
        lo, hi = bounds[r], bounds[r + 1]
        if hi - lo >= 2 and start[lo] == 0 and end[hi - 1] == width:
            union(lo, hi - 1)
        if r == 0:
            continue
        i, j = bounds[r - 1], lo
        while i < lo and j < hi:
            if start[i] <= end[j] and start[j] <= end[i]:
                union(i, j)
            if end[i] < end[j]:
                i += 1
            else:
                j += 1
    labels = np.array([find(i) for i in range(len(row))], dtype=np.int64)
    return row, start, end, labels


@dataclass(frozen=True)
class SunBlob:
    """A saturated blob taken for the sun: its pixels, the direction of its centre, its solid angle (sr)."""

    mask: np.ndarray  # full resolution; only pixels above the horizon
    direction: np.ndarray
    solid_angle: float


def find_sun_blob(ldr: np.ndarray) -> SunBlob | None:
    """The largest saturated blob above the horizon (by solid angle), wrap-aware in x, or None."""
    height, width = ldr.shape[:2]
    upper = np.minimum(
        np.minimum(ldr[: height // 2, :, 0], ldr[: height // 2, :, 1]), ldr[: height // 2, :, 2]
    )
    upper = upper >= SATURATED
    if not upper.any():
        return None
    # Label at <= 1024 columns: a sun is many pixels wide at 4K, and Python loops stay short.
    factor = max(1, width // 1024)
    rows, cols = upper.shape[0] // factor, width // factor
    coarse = upper[: rows * factor, : cols * factor].reshape(rows, factor, cols, factor).any(axis=(1, 3))
    row, start, end, labels = _components(coarse)
    if len(row) > MAX_RUNS or len(row) == 0:
        return None
    row_area = pixel_solid_angles(2 * rows, cols)[:rows]
    area = np.bincount(labels, weights=(end - start) * row_area[row])
    best = np.zeros_like(coarse)
    chosen = np.nonzero(labels == int(np.argmax(area)))[0]
    for i in chosen:
        best[row[i], start[i] : end[i]] = True
    full = np.zeros((height, width), dtype=bool)
    full[: rows * factor, : cols * factor] = np.repeat(np.repeat(best, factor, axis=0), factor, axis=1)
    full[: upper.shape[0]] &= upper
    r, c = np.nonzero(full)
    if r.size == 0:
        return None
    el = elevations(height)[r]
    az = (c + 0.5) / width * 2.0 * np.pi
    weight = pixel_solid_angles(height, width)[r]
    vec = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=1)
    direction = (vec * weight[:, None]).sum(axis=0)
    direction /= np.linalg.norm(direction) + 1e-12
    return SunBlob(mask=full, direction=direction, solid_angle=float(weight.sum()))


def _direction_grid(height: int, width: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    el = elevations(height)[rows][:, None]
    az = ((cols + 0.5) / width * 2.0 * np.pi)[None, :]
    return np.stack(
        [np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el) * np.ones_like(az)], axis=-1
    )


def _crop_indices(height: int, width: int, direction: np.ndarray, radius: float):
    """Rows and (wrapped) columns of the pixels within `radius` radians of `direction`."""
    el = float(np.arcsin(np.clip(direction[2], -1, 1)))
    az = float(np.arctan2(direction[1], direction[0])) % (2 * np.pi)
    row_el = elevations(height)
    rows = np.nonzero(np.abs(row_el - el) <= radius + np.pi / height)[0]
    widest = np.cos(np.clip(np.abs(el) + radius, 0, np.pi / 2 - 1e-3))
    half = radius / max(widest, 1e-3) + 2 * np.pi / width
    if half >= np.pi:
        cols = np.arange(width)
    else:
        centre = az / (2 * np.pi) * width - 0.5
        cols = (
            np.arange(
                int(np.floor(centre - half / (2 * np.pi) * width)),
                int(np.ceil(centre + half / (2 * np.pi) * width)) + 1,
            )
            % width
        )
        cols = np.unique(cols)
    return rows, cols


def _add_sun(linear: np.ndarray, blob: SunBlob | None, direction: np.ndarray, strength: float) -> float:
    """Inpaint the blob from its surroundings, then add the disc and aureole; returns the sun's share."""
    height, width = linear.shape[:2]
    pixel = np.pi / height
    blob_radius = np.sqrt(blob.solid_angle / np.pi) if blob is not None else np.radians(2.0)
    aureole_width = float(np.clip(blob_radius / 3.0, np.radians(0.5), np.radians(3.0)))
    sun_radius = np.radians(SUN_DIAMETER_DEG / 2)
    sigma = max(blob_radius, 2 * pixel)
    reach = max(blob_radius * 1.5 + 3 * sigma, sun_radius + 10 * aureole_width) + 2 * pixel
    rows, cols = _crop_indices(height, width, direction, reach)
    crop = linear[np.ix_(rows, cols)]
    cosine = _direction_grid(height, width, rows, cols) @ direction
    gamma = np.arccos(np.clip(cosine, -1.0, 1.0))
    el_rows = elevations(height)[rows]
    weight = (pixel_solid_angles(height, width)[rows] * np.maximum(np.sin(el_rows), 0.0))[:, None]
    ring_colour = np.array([1.0, 1.0, 1.0], dtype=np.float32)
    if blob is not None:
        inside = blob.mask[np.ix_(rows, cols)]
        valid = (~inside).astype(np.float32)[..., None]
        sigma_y = sigma / pixel
        sigma_x = min(sigma_y / max(np.cos(np.arcsin(direction[2])), 0.05), 4.0 * width)
        filled = gaussian_blur_wrap(crop * valid, sigma_y, sigma_x) / np.maximum(
            gaussian_blur_wrap(valid, sigma_y, sigma_x), 1e-6
        )
        crop = np.where(inside[..., None], filled, crop)
        ring = (~inside) & (gamma < blob_radius * 2.0)
        if ring.any():
            ring_colour = crop[ring].mean(axis=0)
    # The sun is mostly white, tinted a little by the sky around it (orange at sunset).
    tint = ring_colour / max(float(luminance(ring_colour[None, None])[0, 0]), 1e-6)
    colour = 0.7 + 0.3 * np.clip(tint, 0.0, 3.0)
    colour = (colour / float(luminance(colour[None, None].astype(np.float32))[0, 0])).astype(np.float32)
    linear[np.ix_(rows, cols)] = crop
    sky_weights = (pixel_solid_angles(height, width) * np.sin(elevations(height)))[: height // 2, None]
    sky = float((luminance(linear[: height // 2]) * sky_weights).sum())
    sun_total = SUN_SKY_RATIO * strength * sky
    disc = np.clip((sun_radius - gamma) / pixel + 0.5, 0.0, 1.0)
    aureole = np.exp(-np.maximum(gamma - sun_radius, 0.0) / aureole_width) * (1.0 - disc)
    disc_irradiance = float((disc * weight).sum())
    aureole_irradiance = float((aureole * weight).sum())
    if disc_irradiance <= 0 or sky <= 0:
        return 0.0
    profile = disc * ((1 - AUREOLE_SHARE) * sun_total / disc_irradiance)
    if aureole_irradiance > 0:
        profile = profile + aureole * (AUREOLE_SHARE * sun_total / aureole_irradiance)
    profile[el_rows < 0] = 0.0  # the sun and its aureole are sky; the ground below stays as it was
    linear[np.ix_(rows, cols)] = crop + profile[..., None].astype(np.float32) * colour
    return sun_total / (sun_total + sky)


def _brightest_direction(linear: np.ndarray) -> np.ndarray:
    """Direction of the brightest 1/64-wide patch above the horizon, for a sun forced on without a blob."""
    height, width = linear.shape[:2]
    lum = luminance(linear[: height // 2])
    block = max(1, width // 64)
    rows, cols = lum.shape[0] // block, width // block
    if rows == 0:
        block, rows, cols = 1, lum.shape[0], width
    means = lum[: rows * block, : cols * block].reshape(rows, block, cols, block).mean(axis=(1, 3))
    r, c = np.unravel_index(int(np.argmax(means)), means.shape)
    el = max(float(elevations(height)[min(int((r + 0.5) * block), height // 2 - 1)]), np.pi / height)
    az = (c + 0.5) * block / width * 2.0 * np.pi
    return np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])


def _limit_range(linear: np.ndarray, median_sky: float) -> np.ndarray:
    """Without a light source: a soft knee keeps every pixel under NO_SOURCE_CAP x the median sky, and the
    darkest pixels are lifted to within NO_SOURCE_STOPS of the peak (below what 8 bits tell apart)."""
    lum = luminance(linear)
    cap = NO_SOURCE_CAP * max(median_sky, 1e-6)
    knee = 0.5 * cap
    over = lum > knee
    if over.any():
        squeezed = knee + (cap - knee) * (1.0 - np.exp(-(lum[over] - knee) / (cap - knee)))
        linear[over] *= (squeezed / lum[over])[:, None]
    floor = float(luminance(linear).max()) * 2.0**-NO_SOURCE_STOPS
    return np.maximum(linear, np.float32(max(floor, 1e-9)))


def convert_panorama(ldr_srgb: np.ndarray, options: HdrOptions = HdrOptions()) -> HdrResult:
    """panorama_to_hdr, also returning the prepared LDR (resized, seam-blended, poles cleaned) and the sun."""
    ldr = np.clip(finite(np.asarray(ldr_srgb, dtype=np.float32)), 0.0, 1.0)
    if options.output_width and options.output_width != ldr.shape[1]:
        ldr = resize_panorama(ldr, options.output_width)
    ldr = blend_seam(ldr)
    ldr = np.clip(clean_poles(ldr) if options.poles == "blend" else ldr, 0.0, 1.0)
    height = ldr.shape[0]
    # Elementwise, not .max(axis=-1): a reduction over a length-3 axis is several times slower.
    peak_channel = np.maximum(np.maximum(ldr[..., 0], ldr[..., 1]), ldr[..., 2])
    linear = srgb_to_linear(ldr)
    unsaturated_sky = luminance(linear[: max(1, height // 2) : 2, ::2])[
        peak_channel[: max(1, height // 2) : 2, ::2] < SATURATED
    ]
    median_sky = float(np.median(unsaturated_sky)) if unsaturated_sky.size else 1.0
    mask = smoothstep(0.85, 1.0, peak_channel)
    linear *= (1.0 + (HIGHLIGHT_GAIN - 1.0) * mask * mask)[..., None]
    blob = find_sun_blob(ldr) if options.sun != "off" else None
    wanted = options.sun == "on" or (
        options.sun == "auto"
        and blob is not None
        and median_sky >= DAYLIGHT_SKY
        and _looks_like_sun(blob, height)
    )
    sun = None
    if wanted:
        direction = blob.direction if blob is not None else _brightest_direction(linear)
        share = _add_sun(linear, blob, direction, options.sun_strength)
        if share > 0:
            az = float(np.degrees(np.arctan2(direction[1], direction[0])) % 360.0)
            sun = Sun(
                elevation=float(np.degrees(np.arcsin(direction[2]))), azimuth=az, irradiance_share=share
            )
        floor = max(median_sky, 1e-4) * 1e-6
        linear = np.maximum(linear, np.float32(floor))
    else:
        linear = _limit_range(linear, float(np.median(luminance(linear[: max(1, height // 2) : 2, ::2]))))
    linear *= np.float32(2.0**options.exposure)
    return HdrResult(radiance=linear.astype(np.float32, copy=False), ldr=ldr, sun=sun)


def _looks_like_sun(blob: SunBlob, height: int) -> bool:
    """A sun blob is at least a few pixels and about a degree, and no bigger than a 35-degree glare; larger
    clipped areas are clouds or haze."""
    pixel = (np.pi / height) ** 2
    return max(4 * pixel, 2.4e-4) <= blob.solid_angle <= 0.3


def panorama_to_hdr(ldr_srgb: np.ndarray, options: HdrOptions = HdrOptions()) -> np.ndarray:
    """Turn an sRGB equirectangular panorama (float32 HxWx3 in [0, 1], rows top first) into float32 linear
    Rec.709 radiance: finite, every value above 0, a sun where the sky has one (see the module docstring)."""
    return convert_panorama(ldr_srgb, options).radiance
