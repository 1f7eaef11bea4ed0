"""Where the sun is in an 8-bit panorama, and what sky it shines in: found the way the sky shows it.

A clipped disc of any size, or a clipped glow, above the horizon; a clipped band along the horizon (haze,
light pollution) is not a sun, though a glow rising out of it is. The direction is the clipped region's
deepest part (all channels clipped), round about the sun even where haze stretches the rest; of several
clipped sources, the sun is the one a Preetham sky fitted to the unclipped pixels agrees with best. A
clipped region no bigger than a disc is the sun itself; a wider glow gets its elevation from the aureole
around it and, where cloud cuts it, its azimuth from the vertical the sky around it is symmetric about;
the wider or the more cut the glow, the less sure the direction (`confidence`, 0-1). No
sun under a sky that is not a blue daylight sky (overcast, night, interiors), and none without a clipped
source unless one is asked for. Pure numpy; world-space directions (Blender's: +Z up, the image centre
looks along +X).
"""

from dataclasses import dataclass

import numpy as np

from . import sky_model
from .quality import elevations, luminance, panorama_directions, pixel_solid_angles

CLIPPED = 254.0 / 255.0  # an 8-bit channel at 255 (254.5 after rounding) is clipped
ANALYSIS_WIDTH = 256
BAND_SPAN_DEG = 45.0  # a clipped region this wide along the horizon is a band, unless a glow rises from it
BUMP_DEG = 3.0  # a glow rises at least this far above the band it sits on
MAX_SOURCE_SR = 1.0  # larger clipped areas (wider than a 32-degree glow) are cloud or haze, not a sun
BLUE_SKY = 1.05  # B/R of the unclipped sky's light below which the sky is not a daylight sky
DARK_SKY = 0.02  # median linear sky below which a blue sky is a night sky (a daylight photo is brighter)
SEARCH_TURBIDITY = 3.0
DISC_SR = np.pi * np.radians(2.0) ** 2  # a clipped region within a 2-degree cap is the disc itself
FORCED_CONFIDENCE = 0.25  # a sun asked for where the sky shows no clipped source
# A glow this wide (radius), or an aureole that moves its centre this far, halves the confidence: its
# clipped core no longer pins the sun, and the aureole that places it is read in 8 bits.
WIDE_GLOW_DEG = 20.0
AUREOLE_MOVE_DEG = 10.0
# A glow whose mirror image about its own vertical misses more than this share of it is cut (by cloud or
# trees): its clipped pixels' centre is off to the side it still shows (skies' glows: 0-0.04; cut: 0.37).
CUT_GLOW = 0.15
SYMMETRY_SEARCH_DEG = 6.0  # how far, on the sky, the glow's vertical is looked for from its centre


@dataclass(frozen=True)
class SkyAnalysis:
    """What the sky shows: the sun's direction (None: no sun), the fitted turbidity, and the
    analysis-resolution samples of the unclipped sky the fit used."""

    sun: np.ndarray | None
    turbidity: float
    directions: np.ndarray  # Nx3 unit vectors of unclipped sky samples
    rgb: np.ndarray  # Nx3 linear values there
    weights: np.ndarray  # N solid angle x cos(zenith)
    confidence: float = 0.0  # how sure the sun's direction is: 1 for a clipped disc, less for a wide glow
    disc: bool = False  # the sun was found as a clipped disc: the pixels there are the sun's own


def downsample(image: np.ndarray, width: int) -> np.ndarray:
    """Block mean (float32) down to about `width` columns: the largest block that divides both sides."""
    height, full = image.shape[:2]
    factor = next(f for f in range(max(1, full // width), 0, -1) if full % f == 0 and height % f == 0)
    if factor == 1:
        return image.astype(np.float32)
    width = full // factor
    # Rows first, over contiguous memory, then columns: a reduction over two strided axes at once is
    # several times slower.
    tail = image.shape[2:]
    total = np.uint16 if image.dtype == np.uint8 else np.float32  # counts of clipped pixels stay integers
    rows = image.reshape(height // factor, factor, -1).sum(axis=1, dtype=total)
    blocks = rows.reshape(height // factor, width, factor, *tail).sum(axis=2)
    return blocks / np.float32(factor * factor)


def analyse_sky(ldr: np.ndarray, linear: np.ndarray, sun: str = "auto", clipped=None) -> SkyAnalysis:
    """Find the sun and fit the sky in an sRGB panorama `ldr` (its linear values `linear`, and its
    clipped channels `clipped` when the caller has them)."""
    clipped = ldr >= CLIPPED if clipped is None else clipped
    small_linear = downsample(linear, ANALYSIS_WIDTH)
    small_clipped = downsample(clipped.view(np.uint8), ANALYSIS_WIDTH)
    height, width = small_linear.shape[:2]
    directions = panorama_directions(height, width)
    elevation = elevations(height)[:, None] * np.ones((1, width))
    weight = (pixel_solid_angles(height, width)[:, None] * np.maximum(np.sin(elevation), 0.0)) + 1e-12
    any_clipped = small_clipped.max(axis=-1) > 0
    sky = (~any_clipped) & (elevation > np.radians(1.0))
    samples = directions[sky], small_linear[sky].astype(np.float64), weight[sky]
    light = (samples[1] * samples[2][:, None]).sum(axis=0)
    daylight = bool(
        samples[2].size >= 16
        and light[2] >= BLUE_SKY * max(light[0], 1e-12)
        and float(np.median(luminance(samples[1].astype(np.float32)))) >= DARK_SKY
    )
    found, confidence, disc = None, 0.0, False
    # Without enough unclipped sky there is nothing to fit a sun to, even when one is asked for.
    if sun != "off" and (daylight or sun == "on") and samples[2].size >= 16:
        # A source is where at least two channels clipped: one clipped channel is a bright blue horizon.
        source = (np.sort(small_clipped, axis=-1)[..., 1] > 0) & (elevation > -np.radians(2.0))
        fraction = small_clipped.max(axis=-1)
        depth = small_clipped.sum(axis=-1) ** 4
        all_clipped = pixel_solid_angles(height, width)[:, None] * small_clipped.min(axis=-1)
        regions = _sun_regions(source, fraction, elevation)
        area = pixel_solid_angles(height, width)[:, None] * fraction
        # The sun is the brightest source: of those about as deeply clipped as the deepest, the one the
        # unclipped sky's gradient points at.
        core = [float(all_clipped[region].sum()) for region in regions]
        candidates = [
            (_region_direction(region, depth, directions), float(area[region].sum()), region)
            for region, deep in zip(regions, core, strict=True)
            if deep >= 0.5 * max(core)
        ]
        if candidates:
            best = int(np.argmin([_fit_error(c, samples) for c, *_ in candidates]))
            found, confidence = _place_sun(*candidates[best], small_linear, samples)
            disc = candidates[best][1] <= DISC_SR
        elif sun == "on":
            found = _search_direction(directions[elevation > 0].reshape(-1, 3), samples)
            confidence = FORCED_CONFIDENCE
    if found is not None and found[2] < np.sin(np.radians(0.5)):
        found = None if sun != "on" else _lift(found)
    if found is None:
        return SkyAnalysis(None, 0.0, *samples)
    turbidity = sky_model.fit_turbidity(*samples, found)
    return SkyAnalysis(found, turbidity, *samples, confidence, disc)


def _place_sun(centre, size, region, linear, samples) -> tuple[np.ndarray, float]:
    """The sun's direction from the clipped source around it, and how sure that is (0-1)."""
    # A disc pins the sun; an aureole read around it would only add the cloud's or haze's doubt.
    if size <= DISC_SR:
        return centre, 1.0
    radius = np.degrees(np.sqrt(size / np.pi))
    cut = _asymmetry(region, _column(centre, region.shape[1]))
    if cut > CUT_GLOW:
        centre = _symmetric_azimuth(centre, linear, radius)
    found = _aureole_elevation(centre, samples)
    shift = np.degrees(np.arccos(np.clip(found @ centre, -1.0, 1.0)))
    confidence = (1.0 - cut) / (1.0 + (radius / WIDE_GLOW_DEG) ** 2 + (shift / AUREOLE_MOVE_DEG) ** 2)
    return found, float(confidence)


def _lift(direction: np.ndarray) -> np.ndarray:
    """The same azimuth one degree above the horizon: a forced sun is always in the sky."""
    horizontal = direction[:2] / (np.linalg.norm(direction[:2]) + 1e-12)
    return np.array([*(horizontal * np.cos(np.radians(1.0))), np.sin(np.radians(1.0))])


def _sun_regions(source: np.ndarray, fraction: np.ndarray, elevation: np.ndarray) -> list[np.ndarray]:
    """The clipped regions that may be the sun (discs or glows, horizon bands cut away), at most four,
    largest first."""
    height, width = source.shape
    labels = label_components(source)
    area = pixel_solid_angles(height, width)[:, None] * fraction
    found = []
    for label in range(labels.max() + 1):
        region = _without_band(labels == label, elevation, width)
        if region is None or elevation[region].max() <= 0:
            continue
        solid_angle = float(area[region].sum())
        if solid_angle <= MAX_SOURCE_SR:
            found.append((solid_angle, label, region))
    return [region for _, _, region in sorted(found, key=lambda item: item[:2], reverse=True)[:4]]


def _without_band(region: np.ndarray, elevation: np.ndarray, width: int) -> np.ndarray | None:
    """`region` without a horizon band: only the columns where a glow rises above the band; None when
    the region is all band."""
    columns = np.nonzero(region.any(axis=0))[0]
    span = len(columns) * 360.0 / width
    lowest = float(np.degrees(elevation[region].min()))
    if span < BAND_SPAN_DEG or lowest > 3.0:
        return region
    top = np.where(region, np.degrees(elevation), -90.0).max(axis=0)
    band_top = float(np.median(top[columns]))
    rising = top >= band_top + BUMP_DEG
    if not rising.any():
        return None
    return region & rising[None, :]


def _region_direction(region, depth, directions) -> np.ndarray:
    """The centre of a clipped disc or glow, where it is deepest (all channels clipped): a glow falls off
    with the angle from the sun, so its core is round about the sun even where haze stretches the rest."""
    weight = (pixel_solid_angles(*region.shape)[:, None] * depth)[region]
    centre = (directions[region] * weight[:, None]).sum(axis=0)
    return centre / (np.linalg.norm(centre) + 1e-12)


AUREOLE_REACH_DEG = 35.0  # the unclipped sky this close to the sun shapes its aureole
AUREOLE_SEARCH_DEG = (-3.0, 15.0, 0.25)  # elevations tried, relative to the clipped region's centre
# Moved only for a clearly better fit of a real aureole (physical skies: 0.08-0.65 of the centre's error,
# slopes -0.55 to -1.4; a glare blob without an aureole fits about as well anywhere, slope about -0.3).
AUREOLE_GAIN = 0.9
AUREOLE_SLOPE = -0.4


def _aureole_elevation(sun: np.ndarray, samples) -> np.ndarray:
    """The sun's elevation from the unclipped aureole around it, at the clipped region's azimuth.

    Below a low or hazy sun the horizon brightens the sky, so the clipped region reaches further down
    than up and its centre sits low (6-7 degrees in Blender's hazy physical skies). Around the true sun
    the unclipped sky's log luminance is a straight line in log(angle from the sun) plus a smooth
    function of elevation (the horizon's brightening): the elevation where that fits clearly best is the
    sun's; without a clear best (no aureole to read) the centre stays.
    A Preetham fit cannot tell this (its aureole differs from a multiple-scattering sky's), so this is
    written here as a small least-squares search.
    """
    directions, rgb, _ = samples
    centre = np.degrees(np.arcsin(np.clip(sun[2], -1.0, 1.0)))
    azimuth = np.arctan2(sun[1], sun[0])
    # Only samples that some candidate's reach can touch (one dot product and log for all of them).
    low, high, step = AUREOLE_SEARCH_DEG
    reach = np.radians(AUREOLE_REACH_DEG + max(-low, high))
    nearby = directions @ sun > np.cos(reach)
    directions = directions[nearby]
    log_y = np.log(np.maximum(luminance(rgb[nearby].astype(np.float32)).astype(np.float64), 1e-9))
    elevation = np.arcsin(np.clip(directions[:, 2], -1.0, 1.0))

    def fit(offset: float):
        el = np.radians(np.clip(centre + offset, 0.5, 89.5))
        candidate = np.array([np.cos(el) * np.cos(azimuth), np.cos(el) * np.sin(azimuth), np.sin(el)])
        angle = np.arccos(np.clip(directions @ candidate, -1.0, 1.0))
        near = (angle < np.radians(AUREOLE_REACH_DEG)) & (angle > 1e-4)
        if near.sum() < 32:
            return None
        terms = np.stack([np.ones(near.sum()), np.log(angle[near]), elevation[near], elevation[near] ** 2], 1)
        coefficients, *_ = np.linalg.lstsq(terms, log_y[near], rcond=None)
        return float(np.mean((log_y[near] - terms @ coefficients) ** 2)), coefficients[1], candidate

    centre_fit = fit(0.0)
    if centre_fit is None:
        return sun
    # Whole degrees first, then quarter degrees around the best of them.
    coarse = {offset: fit(offset) for offset in np.arange(low, high, 1.0)}
    best = min((o for o in coarse if coarse[o] is not None), key=lambda o: coarse[o][0])
    fine = {offset: fit(offset) for offset in best + np.arange(-1.0 + step, 1.0, step)}
    fits = [found for found in (*coarse.values(), *fine.values()) if found is not None]
    error, slope, candidate = min(fits, key=lambda found: found[0])
    return candidate if error <= AUREOLE_GAIN * centre_fit[0] and slope <= AUREOLE_SLOPE else sun


def _search_direction(candidates: np.ndarray, samples) -> np.ndarray:
    """Of `candidates` (Kx3), the sun direction whose Preetham sky best fits the unclipped samples'
    log luminance (exposure free): every 16th candidate against every 4th sample first, then finer
    grids around the best."""
    sky_dirs, rgb, weights = samples
    log_y = np.log(np.maximum(luminance(rgb.astype(np.float32)).astype(np.float64), 1e-9))
    w = weights / weights.sum()
    best = _best_of(candidates[::16], sky_dirs[::4], log_y[::4], w[::4] / w[::4].sum())
    for step, reach in ((2.0, 4), (0.5, 4)):
        el, az = np.arcsin(np.clip(best[2], -1, 1)), np.arctan2(best[1], best[0])
        offsets = np.radians(step) * np.arange(-reach, reach + 1)
        grid_el, grid_az = np.meshgrid(el + offsets, az + offsets / max(np.cos(el), 0.1), indexing="ij")
        grid_el = np.clip(grid_el, np.radians(0.5), np.radians(89.5))
        grid = np.stack(
            [np.cos(grid_el) * np.cos(grid_az), np.cos(grid_el) * np.sin(grid_az), np.sin(grid_el)], -1
        )
        best = _best_of(grid.reshape(-1, 3), sky_dirs, log_y, w)
    return best


def _column(direction: np.ndarray, width: int) -> float:
    """The (fractional) column of a direction in a panorama `width` wide."""
    return (0.5 - np.arctan2(direction[1], direction[0]) / (2 * np.pi)) * width - 0.5


def _asymmetry(region: np.ndarray, column: float) -> float:
    """The share of a clipped region its mirror image about the vertical through `column` misses: about
    0 for a glow, which is symmetric about the sun's vertical; large where cloud or trees cut it."""
    rows, cols = np.nonzero(region)
    mirrored = np.round(2 * column - cols).astype(np.int64) % region.shape[1]
    return float(1.0 - region[rows, mirrored].mean())


def _symmetric_azimuth(sun: np.ndarray, linear: np.ndarray, radius_deg: float) -> np.ndarray:
    """The sun at the azimuth about whose vertical the sky around it is most nearly mirror-symmetric:
    the aureole, and the glow's clipped core, fall off alike on both sides of the sun, where cloud
    over one side moves the clipped pixels' centre. Log luminance, within twice the glow's radius
    (at least 10 degrees), compared with its mirror image; the same elevation."""
    height, width = linear.shape[:2]
    degree = width / 360.0  # columns per degree of azimuth
    el = float(np.arcsin(np.clip(sun[2], -1.0, 1.0)))
    reach = max(10.0, 2.0 * radius_deg)
    rows = np.nonzero(np.abs(np.degrees(elevations(height) - el)) <= reach)[0]
    log_y = np.log(np.maximum(luminance(linear[rows]).astype(np.float64), 1e-9))
    stretch = degree / max(np.cos(el), 0.1)  # columns per degree on the sky at this elevation
    offsets = np.arange(1, int(np.ceil(reach * stretch)) + 1)
    centre = _column(sun, width)
    grid = np.arange(width + 1)
    wrapped = np.concatenate([log_y, log_y[:, :1]], axis=1)  # one column more for interpolating across

    def mirror_error(column: float) -> float:
        left = (column - offsets) % width
        right = (column + offsets) % width
        sides = [np.stack([np.interp(at, grid, row) for row in wrapped]) for at in (left, right)]
        return float(np.mean((sides[0] - sides[1]) ** 2))

    tries = centre + np.arange(-SYMMETRY_SEARCH_DEG, SYMMETRY_SEARCH_DEG + 1e-9, 0.25) * stretch
    column = tries[int(np.argmin([mirror_error(c) for c in tries]))]
    azimuth = np.pi - 2.0 * np.pi * (column + 0.5) / width
    return np.array([np.cos(el) * np.cos(azimuth), np.cos(el) * np.sin(azimuth), np.sin(el)])


def _fit_error(sun: np.ndarray, samples) -> float:
    """How far the unclipped sky is from a Preetham sky with the sun at `sun` (log luminance variance)."""
    sky_dirs, rgb, weights = samples
    log_y = np.log(np.maximum(luminance(rgb.astype(np.float32)).astype(np.float64), 1e-9))
    return float(_errors(sun[None, :], sky_dirs, log_y, weights / weights.sum())[0])


def _best_of(candidates, sky_dirs, log_y, w) -> np.ndarray:
    return candidates[int(np.argmin(_errors(candidates, sky_dirs, log_y, w)))]


def _errors(candidates, sky_dirs, log_y, w) -> np.ndarray:
    errors = np.empty(len(candidates))
    for start in range(0, len(candidates), 64):
        chunk = candidates[start : start + 64]
        gamma = np.arccos(np.clip(sky_dirs @ chunk.T, -1.0, 1.0))
        model = sky_model.perez(sky_dirs[:, 2:3], gamma, SEARCH_TURBIDITY, "Y")
        residual = log_y[:, None] - np.log(np.maximum(model, 1e-9))
        mean = w @ residual
        errors[start : start + 64] = w @ (residual - mean) ** 2
    return errors


def _runs(mask: np.ndarray):
    """Row, start and end (exclusive) of every horizontal run of True."""
    edges = np.diff(np.pad(mask.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    row, start = np.nonzero(edges == 1)
    _, end = np.nonzero(edges == -1)
    return row, start, end


def label_components(mask: np.ndarray) -> np.ndarray:
    """Labels 0.. of the 8-connected components of `mask`, wrapping in x; -1 outside it."""
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
            # Runs touching diagonally are connected: [start, end) and [start', end') within one column.
            if start[i] <= end[j] and start[j] <= end[i]:
                union(i, j)
            if end[i] < end[j]:
                i += 1
            else:
                j += 1
    roots = np.array([find(i) for i in range(len(row))], dtype=np.int64)
    _, compact = np.unique(roots, return_inverse=True)
    labels = np.full(mask.shape, -1, dtype=np.int64)
    for i in range(len(row)):
        labels[row[i], start[i] : end[i]] = compact[i]
    return labels
