"""LDR equirectangular panorama (sRGB) -> HDR radiance (float32 linear Rec.709) that lights a scene.

The method of QUALITY.md: exact inverse sRGB; unclipped pixels keep their linear value (times
2**exposure) and anchor everything else. Where the sky shows a sun (sun_finder), a Preetham sky fitted to
the unclipped sky fills the channels that really clipped, and a 0.53-degree sun disc is added whose share
of the light (Bird and Hulstrom's clear-sky split) and colour (the atmosphere's transmittance) follow from
the fitted turbidity and the sun's elevation. Without a sun (overcast, night, interiors) clipped channels
above the horizon are light sources and are raised; clipped floors stay as they are. Pure numpy.
"""

from dataclasses import dataclass, replace

import numpy as np

from ..errors import InvalidRequest
from . import sky_model
from .quality import (
    LUMA,
    direction_angles,
    elevations,
    finite,
    gaussian_blur_wrap,
    horizontal_irradiance,
    pixel_solid_angles,
    seam_ratio,
)
from .sun_finder import CLIPPED, SkyAnalysis, analyse_sky

SUN_DIAMETER_DEG = 0.53
SOURCE_GAIN = 4.0  # without a sun, a clipped lamp, window or softbox is at least this many times the clip
LOCAL_FIT_DEG = 40.0  # the sky model is scaled to the unclipped sky within this angle of the sun
FLOOR = 1e-6  # of the median sky: every value stays above 0
RING_DEG = (5.0, 15.0)  # the sky around the sun whose colour corrects the model's sun colour
# A sun found with less confidence than this (one asked for where no source shows) gets proportionally
# less light: weaker rather than wrong. Every sky of the light truth tests is found more surely.
CONFIDENT = 0.3


@dataclass(frozen=True)
class HdrOptions:
    """How a panorama becomes radiance: exposure in stops, sun "auto" | "on" | "off", sun strength
    (a multiplier on the fitted sun: 1 = as fitted), the output width (None keeps the input's), and
    whether a Sun lamp will carry the sun (then the radiance without it is kept and written too)."""

    exposure: float = 0.0
    sun: str = "auto"
    sun_strength: float = 1.0
    output_width: int | None = None
    poles: str = "blend"  # "blend": rows near the poles blurred into one colour; "off": left as they are
    sun_lamp: bool = False  # a Sun lamp carries the sun: keep the radiance without it too (one more image)

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
    """The sun that was added, in the panorama's own frame (a world rotation turns it): world-space
    direction, elevation and azimuth in degrees (Blender's convention, counter-clockwise from +X), its
    share of horizontal irradiance, the fitted turbidity, its colour (linear Rec.709, luminance 1) and
    colour temperature, its irradiance on a surface facing it (a Sun lamp's strength, in the map's units)
    and its angular diameter in degrees."""

    direction: tuple[float, float, float]
    elevation: float
    azimuth: float
    irradiance_share: float
    turbidity: float
    colour: tuple[float, float, float]
    temperature: float
    strength: float
    angular_diameter: float = SUN_DIAMETER_DEG
    confidence: float = 1.0  # how sure the direction is (sun_finder); a doubtful sun is made weaker


@dataclass(frozen=True)
class HdrResult:
    """Radiance plus what the conversion did: the LDR it worked from, the sun it added (if any) and the
    same radiance without that sun (None without one, or unless asked), for a Sun lamp to carry it."""

    radiance: np.ndarray
    ldr: np.ndarray
    sun: Sun | None
    sunless: np.ndarray | None = None


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """The exact piecewise inverse of the sRGB transfer function, float32."""
    x = np.asarray(srgb, dtype=np.float32)
    # In place, one branch at a time, a band of rows at a time: np.where would compute the power for
    # every pixel and copy twice, and a whole-image mask is a quarter image more.
    linear = x + np.float32(0.055)
    for source, out in zip(_bands(x), _bands(linear), strict=True):
        out /= np.float32(1.055)
        np.power(out, np.float32(2.4), out=out)
        np.divide(source, np.float32(12.92), out=out, where=source <= 0.04045)
    return linear


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer function (for previews), float32, clipped to [0, 1]."""
    return _encode_srgb(np.clip(np.asarray(linear, dtype=np.float32), 0.0, 1.0))


def _encode_srgb(x: np.ndarray) -> np.ndarray:
    """linear_to_srgb of float32 values already in [0, 1], in place, a band of rows at a time (the
    masks and the power stay a sliver of the image)."""
    for rows in _bands(x):
        low = rows <= 0.0031308
        dark = rows[low] * np.float32(12.92)
        np.power(rows, np.float32(1 / 2.4), out=rows)
        rows *= np.float32(1.055)
        rows -= np.float32(0.055)
        rows[low] = dark
    return x


def _bands(image: np.ndarray, pixels: int = 2**14):
    """Views of `image`, a few rows (about `pixels` pixels) at a time: per-pixel work in bands keeps its
    temporaries a sliver of the image. Images of the same height and width band alike."""
    rows = max(1, pixels // max(1, image.shape[1] if image.ndim > 1 else 1))
    return (image[start : start + rows] for start in range(0, image.shape[0], rows))


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
    term = np.empty_like(out)  # one tap at a time into one buffer: two images in memory, not four
    for tap in range(taps):
        np.take(image, index[:, tap], axis=axis, out=term, mode="clip")  # in range: unbuffered
        term *= weight[:, tap].astype(np.float32).reshape(shape)
        out += term
    return out


def resize_wrap(image: np.ndarray, height: int, width: int, wrap_y: bool = False) -> np.ndarray:
    """Resize HxW(xC) float32 wrapping in x (and in y if asked); values stay within the input's range."""
    image = np.asarray(image, dtype=np.float32)
    low, high = float(image.min()), float(image.max())
    # The axis that shrinks more first: the intermediate image is the smaller one (a preview of an 8K world).
    if width / image.shape[1] < height / image.shape[0]:
        out = _resample_axis(_resample_axis(image, width, 1, True), height, 0, wrap_y)
    else:
        out = _resample_axis(_resample_axis(image, height, 0, wrap_y), width, 1, True)
    return np.clip(out, low, high, out=out if out is not image else None)


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


def clean_poles(
    pano: np.ndarray, start_deg: float = 70.0, blur_deg: float = 2.5, copy: bool = True
) -> np.ndarray:
    """Blur rows near the poles around the wrap, more the closer to the pole, so each pole is one colour.

    The angular blur grows from 0 at `start_deg` latitude to `blur_deg`; in pixels it is divided by
    cos(latitude), so the pole rows become their own mean, as a single direction must. `copy` False
    blurs a float32 `pano` in place.
    """
    height, width = pano.shape[:2]
    latitude = np.abs(elevations(height))
    rows = np.nonzero(np.degrees(latitude) > start_deg)[0]
    if rows.size == 0:
        return pano
    out = pano.astype(np.float32, copy=copy)
    angle = np.radians(blur_deg) * smoothstep(start_deg, 90.0, np.degrees(latitude[rows]))
    sigma = angle / ((2.0 * np.pi / width) * np.maximum(np.cos(latitude[rows]), 1e-9))
    frequencies = np.fft.rfftfreq(width)[None, :]
    # A few rows at a time (numpy 1 transforms in complex128: the whole band would be several images),
    # along the last, contiguous axis: along a strided axis numpy's FFT is several times slower.
    for first in range(0, rows.size, 8):
        some = rows[first : first + 8]
        transfer = np.exp(-2.0 * np.pi**2 * (sigma[first : first + 8, None] * frequencies) ** 2)
        band = np.ascontiguousarray(out[some].transpose(0, 2, 1))
        blurred = np.fft.irfft(np.fft.rfft(band, axis=-1) * transfer[:, None, :], n=width)
        out[some] = blurred.transpose(0, 2, 1)
    return out


def _pixel_directions(height: int, width: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """World-space directions of the pixels (rows[i], cols[i]), as quality.panorama_directions."""
    el = elevations(height)[rows]
    az = np.pi - 2.0 * np.pi * (cols + 0.5) / width
    return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)


def _fill_from_sky(linear: np.ndarray, clipped: np.ndarray, analysis: SkyAnalysis) -> None:
    """Raise each clipped channel above the horizon to the fitted sky's value there, if that is higher.

    The Preetham sky is scaled per channel to the unclipped sky near the sun, so its colour and level are
    the image's own; a channel that did not clip keeps its value."""
    height, width = linear.shape[:2]
    upper = clipped[: height // 2].any(axis=-1)
    rows, cols = np.nonzero(upper)
    if rows.size == 0:
        return
    near = analysis.directions @ analysis.sun >= np.cos(np.radians(LOCAL_FIT_DEG))
    if near.sum() < 16:
        near = np.ones(len(analysis.directions), dtype=bool)
    reference = sky_model.xyy_to_rgb(
        sky_model.sky_xyy(analysis.directions[near], analysis.sun, analysis.turbidity)
    )
    scale = np.median(analysis.rgb[near] / np.maximum(reference, 1e-9), axis=0)
    model = sky_model.xyy_to_rgb(
        sky_model.sky_xyy(_pixel_directions(height, width, rows, cols), analysis.sun, analysis.turbidity)
    )
    values = linear[rows, cols]
    raised = np.maximum(values, (model * scale).astype(np.float32))
    linear[rows, cols] = np.where(clipped[rows, cols], raised, values)


def _sun_disc(height: int, width: int, direction: np.ndarray):
    """Rows, and per-pixel coverage (rows x width) of a sun disc of 0.53 degrees, at least 0.75 pixel
    in radius so a low-resolution map still holds it (its energy is set by the caller)."""
    pixel = np.pi / height
    radius = max(np.radians(SUN_DIAMETER_DEG / 2), 0.75 * pixel)
    el = float(np.arcsin(np.clip(direction[2], -1.0, 1.0)))
    rows = np.nonzero(np.abs(elevations(height) - el) <= radius + 2 * pixel)[0]
    cols = np.arange(width)
    grid_rows, grid_cols = np.meshgrid(rows, cols, indexing="ij")
    gamma = np.arccos(np.clip(_pixel_directions(height, width, grid_rows, grid_cols) @ direction, -1, 1))
    return rows, np.clip((radius - gamma) / pixel + 0.5, 0.0, 1.0)


def _sun_colour(analysis: SkyAnalysis, elevation: float) -> np.ndarray:
    """The model's sun colour, reddened (or not) as much more as the sky just around the sun is than
    the model predicts there, relative to the whole sky: that sky is lit through the same air. The
    comparison is relative, so the image's white balance and the blue of a clear sky do not tint it."""
    colour = sky_model.sun_colour(elevation, analysis.turbidity)
    model = sky_model.xyy_to_rgb(sky_model.sky_xyy(analysis.directions, analysis.sun, analysis.turbidity))
    ratio = analysis.rgb / np.maximum(model, 1e-9)
    gamma = np.degrees(np.arccos(np.clip(analysis.directions @ analysis.sun, -1.0, 1.0)))
    ring = (gamma > RING_DEG[0]) & (gamma < RING_DEG[1])
    if ring.sum() < 8:
        return colour
    weights = analysis.weights[:, None]
    near = (ratio[ring] * weights[ring]).sum(axis=0) / weights[ring].sum()
    everywhere = (ratio * weights).sum(axis=0) / weights.sum()
    colour = colour * np.clip(near / np.maximum(everywhere, 1e-9), 0.25, 4.0)
    return colour / float(colour @ LUMA)


def _seen_disc(linear: np.ndarray, clipped: np.ndarray, sun: np.ndarray, colour: np.ndarray) -> float:
    """The most horizontal irradiance (luminance) the sun can carry, as far as its disc's pixels show it:
    where a channel did not clip there, the disc's excess over the sky around it (plus one 8-bit step) is
    what the sun gives in that channel. A low red sun whose blue did not clip carries little; a disc
    clipped in every channel, or not clipped at all (a sun asked for where none shows), no limit (inf)."""
    height, width = linear.shape[:2]
    pixel = np.pi / height
    el = float(np.arcsin(np.clip(sun[2], -1.0, 1.0)))
    rows = np.nonzero(np.abs(elevations(height) - el) <= np.radians(SUN_DIAMETER_DEG / 2) + 5 * pixel)[0]
    # The columns that hold the disc and the ring around it at this elevation.
    reach = (np.radians(SUN_DIAMETER_DEG / 2) + 5 * pixel) / max(np.cos(el), 0.05) / (2 * np.pi / width)
    centre = round((0.5 - np.arctan2(sun[1], sun[0]) / (2 * np.pi)) * width - 0.5)
    cols = (centre + np.arange(-int(np.ceil(reach)), int(np.ceil(reach)) + 1)) % width
    grid_rows, grid_cols = np.meshgrid(rows, cols, indexing="ij")
    gamma = np.arccos(np.clip(_pixel_directions(height, width, grid_rows, grid_cols) @ sun, -1.0, 1.0))
    disc = gamma <= np.radians(SUN_DIAMETER_DEG / 2) + 1.5 * pixel
    ring = (gamma > np.radians(SUN_DIAMETER_DEG / 2) + 2.5 * pixel) & (
        gamma <= np.radians(SUN_DIAMETER_DEG / 2) + 4.5 * pixel
    )
    values, cut = linear[grid_rows, grid_cols], clipped[grid_rows, grid_cols]
    if not disc.any() or not ring.any() or not cut[disc].any():
        return float("inf")
    weight = (pixel_solid_angles(height, width)[grid_rows] * max(np.sin(el), 0.0))[disc]
    excess = np.maximum(values[disc] - np.median(values[ring], axis=0), 0.0)
    # One 8-bit step above each disc pixel's value: the rounding that could hide some sun.
    quantum = srgb_to_linear(linear_to_srgb(values[disc]) + 1.0 / 255.0) - values[disc]
    seen = ((excess + quantum) * weight[:, None]).sum(axis=0)
    bounds = [seen[c] / colour[c] for c in range(3) if not cut[disc][:, c].any() and colour[c] > 1e-6]
    return float(min(bounds)) if bounds else float("inf")


def _add_sun(
    linear: np.ndarray, analysis: SkyAnalysis, strength: float, clipped: np.ndarray, copy: bool
) -> tuple[np.ndarray, Sun | None]:
    """`linear` (a copy with `copy`, else itself) with the sun added: its horizontal irradiance is the
    clear-sky share (Bird and Hulstrom) of the map's own sky for the fitted turbidity, no more than a
    clipped disc's unclipped channels show, less for a doubtful direction, times `strength`; its colour
    the sky model's."""
    height, width = linear.shape[:2]
    elevation = float(np.arcsin(np.clip(analysis.sun[2], -1.0, 1.0)))
    share = sky_model.sun_share(elevation, analysis.turbidity)
    sky = float(horizontal_irradiance(linear) @ LUMA)
    if sky <= 0 or share <= 0:
        return linear, None
    colour = _sun_colour(analysis, elevation)
    sun_irradiance = sky * share / (1.0 - share)
    if analysis.disc:  # only there are the pixels at the sun's direction its own, not its glow's
        sun_irradiance = min(sun_irradiance, _seen_disc(linear, clipped, analysis.sun, colour))
    sun_irradiance *= strength * min(1.0, analysis.confidence / CONFIDENT)
    rows, cover = _sun_disc(height, width, analysis.sun)
    weight = pixel_solid_angles(height, width)[rows] * np.maximum(np.sin(elevations(height)[rows]), 0.0)
    covered = float((cover * weight[:, None]).sum())
    if covered <= 0:
        return linear, None
    lit = linear.copy() if copy else linear
    lit[rows] += (cover * (sun_irradiance / covered))[..., None].astype(np.float32) * colour.astype(
        np.float32
    )
    elevation_deg, azimuth_deg = direction_angles(analysis.sun)
    sun = Sun(
        direction=tuple(float(v) for v in analysis.sun),
        elevation=elevation_deg,
        azimuth=azimuth_deg,
        irradiance_share=sun_irradiance / (sun_irradiance + sky),
        turbidity=analysis.turbidity,
        colour=tuple(float(v) for v in colour),
        temperature=sky_model.colour_temperature(colour),
        strength=sun_irradiance / np.sin(elevation),
        confidence=analysis.confidence,
    )
    return lit, sun


def _raise_sources(linear: np.ndarray, clipped: np.ndarray) -> None:
    """Without a sun: clipped channels above the horizon are lamps, windows or softboxes, brighter than
    the clip by an unknown amount; raise them. A clipped floor below is lit, not a light: it stays."""
    upper = linear[: linear.shape[0] // 2]
    upper[clipped[: linear.shape[0] // 2]] *= np.float32(SOURCE_GAIN)


def _usable_ldr(ldr_srgb) -> np.ndarray:
    """float32 sRGB in [0, 1]: the input itself when it already is (no copy of a large image)."""
    data = np.asarray(ldr_srgb, dtype=np.float32)
    low, high = float(data.min()), float(data.max())  # NaN and Inf show in these, without a mask
    if np.isfinite(low) and np.isfinite(high) and low >= 0.0 and high <= 1.0:
        return data
    return np.clip(finite(data, posinf=1.0), 0.0, 1.0)  # +Inf is as bright as it gets: white


def convert_panorama(
    ldr_srgb: np.ndarray, options: HdrOptions = HdrOptions(), overwrite: bool = False
) -> HdrResult:
    """panorama_to_hdr, also returning the prepared LDR (resized, seam-blended, poles cleaned; the input
    itself when none of that changed it: read only), the sun, and with `options.sun_lamp` the radiance
    without it. Works in float32 and in place on its own copies: an image or two beside the input.
    `overwrite`: the caller hands a float32 `ldr_srgb` over, to be prepared in place (one copy fewer)."""
    source = None if overwrite else ldr_srgb
    ldr = _usable_ldr(ldr_srgb)
    if options.output_width and options.output_width != ldr.shape[1]:
        ldr = resize_panorama(ldr, options.output_width)
    ldr = blend_seam(ldr)
    if options.poles == "blend":
        ldr = clean_poles(ldr, copy=source is not None and np.may_share_memory(ldr, source))
        if source is None or not np.may_share_memory(ldr, source):  # the blur rings a little past [0, 1]
            np.clip(ldr, 0.0, 1.0, out=ldr)
    height = ldr.shape[0]
    linear = srgb_to_linear(ldr)
    clipped = ldr >= CLIPPED
    analysis = analyse_sky(ldr, linear, options.sun, clipped)
    median_sky = float(np.median(linear[: max(1, height // 2) : 4, ::4] @ LUMA))
    floor = np.float32(max(median_sky, 1e-4) * FLOOR)
    sun = sunless = None
    if analysis.sun is not None:
        _fill_from_sky(linear, clipped, analysis)
        np.maximum(linear, floor, out=linear)
        lit, sun = _add_sun(linear, analysis, options.sun_strength, clipped, copy=options.sun_lamp)
        del clipped
        if sun is not None and options.sun_lamp:
            sunless = linear
        linear = lit
    else:
        _raise_sources(linear, clipped)
        del clipped
        np.maximum(linear, floor, out=linear)
    gain = np.float32(2.0**options.exposure)
    if gain != 1:
        linear *= gain
        if sunless is not None:
            sunless *= gain
        if sun is not None:
            sun = replace(sun, strength=sun.strength * float(gain))
    return HdrResult(radiance=linear, ldr=ldr, sun=sun, sunless=sunless)


def panorama_to_hdr(ldr_srgb: np.ndarray, options: HdrOptions = HdrOptions()) -> np.ndarray:
    """Turn an sRGB equirectangular panorama (float32 HxWx3 in [0, 1], rows top first) into float32 linear
    Rec.709 radiance: finite, every value above 0, a sun where the sky has one (see the module docstring)."""
    return convert_panorama(ldr_srgb, options).radiance


@dataclass(frozen=True)
class DisplayEncoding:
    """How radiance was made displayable for a model that sees sRGB (an upscaler): the exposure key and
    the range of the encoded values, which decoding keeps to."""

    key: float
    low: float
    high: float


def to_display(radiance: np.ndarray) -> tuple[np.ndarray, DisplayEncoding]:
    """Radiance exposed so the upper half's median is mid grey, rolled off (x / (1 + x)) and sRGB-encoded:
    invertible, with the sun near 1 instead of clipped. float32, one new image (the result)."""
    data = np.asarray(radiance, dtype=np.float32)
    upper = data[: max(1, data.shape[0] // 2)]
    sky = np.empty(upper.shape[:2], dtype=np.float32)
    for band, lum in zip(_bands(upper), _bands(sky), strict=True):
        np.matmul(np.maximum(band, 0.0), LUMA, out=lum)
    key = 0.18 / max(float(np.median(sky, overwrite_input=True)), 1e-12)
    del sky
    out = np.maximum(data, 0.0)
    for band in _bands(out):
        band *= np.float32(key)
        band /= band + np.float32(1.0)
    encoding = DisplayEncoding(key, float(out.min()), float(out.max()))
    return _encode_srgb(out), encoding


def from_display(display: np.ndarray, encoding: DisplayEncoding) -> np.ndarray:
    """The inverse of to_display, clamped to the source's encoded range (ringing never makes a brighter
    sun or a blacker shadow than the source had); float32 radiance."""
    rolled = np.clip(srgb_to_linear(display).astype(np.float64), encoding.low, encoding.high)
    return (rolled / np.maximum(1.0 - rolled, 1e-12) / encoding.key).astype(np.float32)
