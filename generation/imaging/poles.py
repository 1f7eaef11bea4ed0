"""Pole repair on the cube: the caps of a panorama redrawn on the Up and Down faces, pasted back softly.

A model trained on ordinary photos stretches the top and bottom of a 2:1 image along the meridians, which
Blender's world shows as a pinched point straight up and down. Here each cap is projected onto the central
window of the Up (pz) or Down (nz) cube face, where a pole is an ordinary point, its centre is redrawn by
an inpainting callable (the engine passes the loaded model), and only the changed pixels go back into the
panorama through a feathered mask. Pixels outside the caps are never touched. A clipped sun inside a cap
is kept out of the mask, so it survives for the HDR stage. numpy only (see projection.py).
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .projection import equirect_directions, equirect_to_face, face_coordinates, sample_face

CAP_LATITUDE = 73.0  # redrawn in full beyond this latitude: the caps cover everything past 75°
FEATHER_DEG = 6.0  # blended over this band below it; untouched below CAP_LATITUDE - FEATHER_DEG
WINDOW_DEG = 32.0  # the face window's half-width, as the angle from the pole to its edge centre
SUN_LEVEL = 0.98  # sRGB value at which a pixel is clipped (a sun)
SUN_MARGIN_DEG = 1.5  # how far around a clipped sun the repair keeps its hands off
POLES = ("pz", "nz")

Inpaint = Callable[[np.ndarray, np.ndarray, str], np.ndarray]


@dataclass(frozen=True)
class PoleRepair:
    """The repaired panorama and, per pole, the mask that was pasted (1 = redrawn) in panorama rows."""

    pano: np.ndarray
    masks: dict[str, np.ndarray]  # pole -> (H, W) float32 weight of the redrawn image
    window: int  # the face window's size in pixels


def window_size(height: int) -> int:
    """The face window's side: the panorama's resolution at the pole (H/π pixels per radian), in
    multiples of 64 so any model's latent grid fits, at least 128."""
    extent = np.tan(np.radians(WINDOW_DEG))
    pixels = 2.0 * extent * height / np.pi
    return max(128, int(np.ceil(pixels / 64.0)) * 64)


def cap_weight(angle_from_pole_deg: np.ndarray) -> np.ndarray:
    """1 in the cap, a smooth ramp over the feather band, 0 outside."""
    inner = 90.0 - CAP_LATITUDE
    t = np.clip((angle_from_pole_deg - inner) / FEATHER_DEG, 0.0, 1.0)
    return (1.0 - t * t * (3.0 - 2.0 * t)).astype(np.float32)


def _sun_keepout(pano: np.ndarray, directions: np.ndarray, pole_axis: np.ndarray) -> np.ndarray:
    """Weight 0 within SUN_MARGIN_DEG of any clipped pixel of the cap, else 1 (per panorama pixel).

    Linear in the pixels: a clipped row dilates, wrapping in x, into each row within the margin's angle
    by the widest column offset whose pixel centres are still within the margin (the spherical law of
    cosines, about margin / cos(latitude) columns), so it marks exactly the pixels an angular test would."""
    height, width = pano.shape[:2]
    keep = np.ones((height, width), dtype=np.float32)
    # The cap is a band of rows around the pole axis (z): one pixel per row decides.
    cap_rows = np.nonzero(
        directions[:, 0] @ pole_axis > np.cos(np.radians(90.0 - CAP_LATITUDE + FEATHER_DEG))
    )[0]
    clipped = np.zeros((height, width), dtype=bool)
    clipped[cap_rows] = pano[cap_rows].min(axis=-1) >= SUN_LEVEL
    sources = np.nonzero(clipped.any(axis=1))[0]
    if sources.size == 0:
        return keep
    latitude = np.pi * (0.5 - (np.arange(height) + 0.5) / height)
    margin = np.radians(SUN_MARGIN_DEG)
    reach = int(np.ceil(margin * height / np.pi)) + 1  # rows farther apart than the margin never meet
    for row in cap_rows:
        near = sources[np.abs(sources - row) <= reach]
        if near.size == 0:
            continue
        blocked = np.zeros(width, dtype=bool)
        for source in near:
            columns = _reach_in_columns(latitude[row], latitude[source], margin, width)
            if columns >= 0:
                blocked |= _dilate_wrapped(clipped[source], columns)
        keep[row, blocked] = 0.0
    return keep


def _reach_in_columns(lat_a: float, lat_b: float, margin: float, width: int) -> int:
    """The largest column offset k at which pixel centres at latitudes a and b are within `margin`
    (cos d = sin a sin b + cos a cos b cos(2 pi k / W)); -1 when no offset is, width // 2 when all are."""
    across = np.cos(lat_a) * np.cos(lat_b)
    needed = np.cos(margin) - np.sin(lat_a) * np.sin(lat_b)
    if across <= 1e-12 or needed / across <= -1.0:
        return width // 2 if needed <= across else -1
    if needed / across > 1.0:
        return -1
    return min(int(np.floor(np.arccos(needed / across) * width / (2.0 * np.pi) + 1e-9)), width // 2)


def _dilate_wrapped(row: np.ndarray, columns: int) -> np.ndarray:
    """Columns within `columns` of a True one, around the wrap: a running count over the row padded
    with its own ends."""
    width = row.size
    if columns >= width // 2:
        return np.full(width, row.any())
    padded = np.concatenate([row[width - columns :], row, row[:columns]]).astype(np.int32)
    count = np.cumsum(padded)
    return count[2 * columns : 2 * columns + width] - np.concatenate([[0], count[: width - 1]]) > 0


def repair_poles(pano: np.ndarray, inpaint: Inpaint, poles=POLES) -> PoleRepair:
    """Redraw the caps of an sRGB panorama (H, W, 3 in [0, 1], rows top first) with `inpaint`.

    `inpaint(window, mask, pole)` gets the face window (S, S, 3) and the region to redraw (S, S, 1 = redraw)
    and returns the redrawn window (S, S, 3); it may raise to cancel, leaving `pano` unchanged.
    """
    height, width = pano.shape[:2]
    size = window_size(height)
    extent = float(np.tan(np.radians(WINDOW_DEG)))
    directions = equirect_directions(height, width)
    out = pano.astype(np.float32, copy=True)
    masks = {}
    for pole in poles:
        axis = np.array([0.0, 0.0, 1.0 if pole == "pz" else -1.0], dtype=np.float32)
        angle = np.degrees(np.arccos(np.clip(directions @ axis, -1.0, 1.0)))
        weight = cap_weight(angle) * _sun_keepout(pano, directions, axis)
        window = equirect_to_face(pano, pole, size, extent)
        window_weight = equirect_to_face(weight[..., None], pole, size, extent)[..., 0]
        redrawn = np.asarray(inpaint(window, (window_weight > 0).astype(np.float32), pole), dtype=np.float32)
        if redrawn.shape != window.shape:
            raise ValueError(f"the inpainting returned {redrawn.shape}, not the window's {window.shape}")
        touched = weight > 0
        down, across, _ = face_coordinates(directions[touched], pole, extent)
        m = weight[touched][:, None]
        out[touched] = m * sample_face(redrawn, down, across) + (1.0 - m) * pano[touched]
        masks[pole] = weight
        _settle_pole_rows(out, 0 if pole == "pz" else height - 1, 1 if pole == "pz" else -1)
    return PoleRepair(pano=np.clip(out, 0.0, 1.0), masks=masks, window=size)


def _settle_pole_rows(pano: np.ndarray, first: int, step: int, rows: int = 3) -> None:
    """Pull the rows nearest a pole toward their mean: each of those rows is nearly one direction (the
    first spans a disc well under a degree), but a bilinear sample of the window there still picks up
    the window's finest detail pixel by pixel."""
    for k in range(min(rows, pano.shape[0] // 2)):
        row = first + step * k
        weight = np.float32(1.0 - k / rows)
        pano[row] = weight * pano[row].mean(axis=0) + (1.0 - weight) * pano[row]
