"""A photo grown into a world: where it lies on the sphere, what the model paints, and how it is kept.

The photo is an upright pinhole picture with a known horizontal field of view looking along (yaw, pitch)
(views.py's convention); it is placed on the equirectangular canvas by the view's inverse, the model
paints everything else (wrapped around the horizon), and after the HDR conversion the photo's own pixels
are put back inside its footprint, as linear radiance at the conversion's exposure: so its interior is the
photo's resampled projection exactly, whatever the outpainting, the pole repair or the sun fit did there.
numpy only.
"""

import math
import struct
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidImage
from .hdr import srgb_to_linear
from .views import View, view_to_equirect

MIN_PHOTO = 64  # pixels on its shorter side: less is too little for a model to continue
BORDER_PIXELS = 3.0  # canvas pixels over which the photo fades into what the model painted
GREY = 0.5  # what the model sees where it paints (masked anyway)


@dataclass(frozen=True)
class PhotoCanvas:
    """The photo on the canvas: its view, the canvas in sRGB (grey where the model paints), the photo's
    weight (1 inside its footprint away from the border, fading to 0 over it) and where the model paints
    (1 = paint: everywhere the weight is below 1)."""

    view: View
    canvas: np.ndarray  # float32 (H, W, 3) sRGB
    placed: np.ndarray  # float32 (H, W, 3) the photo's projection (sRGB), 0 outside the footprint
    weight: np.ndarray  # float32 (H, W)
    paint: np.ndarray  # float32 (H, W)


def check_photo(photo: np.ndarray, name: str) -> None:
    height, width = photo.shape[:2]
    if min(height, width) < MIN_PHOTO:
        raise InvalidImage(
            f"{name} is {width}x{height}: a photo needs at least {MIN_PHOTO} pixels on each side to grow "
            "a world from; use a larger picture"
        )


def photo_weight(view: View, height: int, width: int) -> np.ndarray:
    """The photo's weight on an H x W canvas: 1 inside, a smooth fade over BORDER_PIXELS canvas pixels at
    its edges, 0 outside its footprint."""
    # Canvas pixels per photo pixel at the photo's centre: the canvas has width / 2π per radian there.
    band = BORDER_PIXELS * view.focal / (width / (2.0 * np.pi))
    columns = np.arange(view.width) + 0.5
    rows = np.arange(view.height) + 0.5
    edge = np.minimum(
        np.minimum(columns, view.width - columns)[None, :], np.minimum(rows, view.height - rows)[:, None]
    )
    t = np.clip((edge - 0.5) / max(band, 1.0), 0.0, 1.0)
    inside = (t * t * (3.0 - 2.0 * t)).astype(np.float32)
    empty = np.zeros((height, width, 1), dtype=np.float32)
    return view_to_equirect(empty, inside[..., None], view)[..., 0]


def place_photo(
    photo: np.ndarray, height: int, width: int, yaw: float, pitch: float, fov: float
) -> PhotoCanvas:
    """The photo (float32 (h, w, 3) sRGB) placed on an H x W canvas as a camera with horizontal field of
    view `fov` looking along (yaw, pitch), upright, sees it."""
    view = View(yaw, pitch, fov, photo.shape[1], photo.shape[0])
    placed = view_to_equirect(np.zeros((height, width, 3), dtype=np.float32), photo.astype(np.float32), view)
    weight = photo_weight(view, height, width)
    canvas = placed * weight[..., None] + np.float32(GREY) * (1.0 - weight[..., None])
    paint = (weight < 1.0).astype(np.float32)
    return PhotoCanvas(view, canvas.astype(np.float32), placed, weight, paint)


def keep_photo(radiance: np.ndarray, placed: PhotoCanvas, gain: float) -> np.ndarray:
    """The converted world with the photo put back: its linear pixels times `gain` (the conversion's
    exposure) blended in by its weight; pixels of weight 0 are the world's as converted."""
    out = np.asarray(radiance, dtype=np.float32).copy()
    chosen = placed.weight > 0
    w = placed.weight[chosen][:, None]
    photo = srgb_to_linear(placed.placed[chosen]) * np.float32(gain)
    # Radiance stays above zero: a black photo pixel becomes the faintest light, not none.
    out[chosen] = np.maximum(photo * w + out[chosen] * (1.0 - w), np.float32(1e-9))
    return out


FULL_FRAME_DIAGONAL = 43.267  # mm: what a "35 mm equivalent" focal length is measured against


def exif_fov(data: bytes, width: int, height: int) -> float | None:
    """The horizontal field of view in degrees that a JPEG's EXIF says (its 35 mm equivalent focal length,
    measured on the full frame's diagonal), or None where it has none. Reads the bytes only; no library."""
    start = data.find(b"Exif\x00\x00")
    if not data.startswith(b"\xff\xd8") or start < 0:
        return None
    tiff = data[start + 6 :]
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None:
        return None

    def entries(offset: int):
        if offset + 2 > len(tiff):
            return
        count = int.from_bytes(tiff[offset : offset + 2], "little" if order == "<" else "big")
        for index in range(min(count, 512)):
            entry = tiff[offset + 2 + 12 * index : offset + 14 + 12 * index]
            if len(entry) == 12:
                yield struct.unpack(order + "HHI4s", entry)

    first = struct.unpack(order + "I", tiff[4:8])[0]
    exif = next(
        (struct.unpack(order + "I", value)[0] for tag, _, _, value in entries(first) if tag == 0x8769), None
    )
    if exif is None:
        return None
    focal = next(
        (struct.unpack(order + "H", value[:2])[0] for tag, _, _, value in entries(exif) if tag == 0xA405), 0
    )
    if not focal:
        return None
    across = FULL_FRAME_DIAGONAL * width / math.hypot(width, height)
    return math.degrees(2.0 * math.atan(across / (2.0 * focal)))
