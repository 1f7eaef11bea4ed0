"""Redrawing one region of a world: what the model sees, and how its result goes back into the radiance.

The region (a cone given by yaw, pitch and angle, or a painted equirectangular mask) is shown to the model
on a perspective view centred on it, where the image is least distorted, in the display encoding an
upscaler also sees (hdr.to_display: invertible, the sun near 1 instead of clipped). The redrawn view is
decoded back to radiance at the input's own exposure and pasted through the region's feathered weight:
every pixel whose weight is 0 is copied from the input bit for bit, so no HDR conversion, sun refit or pole
repair ever touches what the artist did not ask to change. numpy only.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidRequest
from .hdr import DisplayEncoding, from_display, resize_wrap, to_display
from .projection import sample_equirect
from .views import View, feather_width, feathered_region, mask_centre, view_for_region, view_to_equirect

MAX_REACH = 63.0  # degrees from the view's centre to the farthest redrawn pixel (a 150° view at most)


@dataclass(frozen=True)
class Region:
    """Where to redraw: the cone (yaw, pitch, angle in degrees; for a mask the smallest cone around it),
    how far the paste reaches from its centre, the view that sees it, and a painted mask's weight."""

    yaw: float
    pitch: float
    angle: float
    reach: float
    view: View
    painted: np.ndarray | None = None  # float32 (H, W): a mask's paste weight; None: the feathered cone

    def weight(self, height: int, width: int) -> np.ndarray:
        """The paste weight on an H x W panorama: 0 = untouched."""
        if self.painted is not None:
            return self.painted
        return feathered_region(height, width, self.yaw, self.pitch, self.angle)


@dataclass(frozen=True)
class RegionEdit:
    """A prepared region: what the model sees of it, where it redraws (1 = redraw, view pixels) and the
    paste weight on the panorama (0 = untouched)."""

    region: Region
    image: np.ndarray  # the view in display sRGB, float32 (h, w, 3) in [0, 1]
    mask: np.ndarray  # float32 (h, w)
    weight: np.ndarray  # float32 (H, W)
    encoding: DisplayEncoding

    @property
    def view(self) -> View:
        return self.region.view


def mask_weight(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """A painted mask (white = redraw; grey = partly, its soft edge is the feather) as a paste weight at
    the panorama's size."""
    data = np.asarray(mask, dtype=np.float32)
    if data.ndim == 3:
        data = data[..., :3].mean(axis=-1)
    if data.shape != (height, width):
        if abs(data.shape[1] - 2 * data.shape[0]) > max(1, round(0.005 * data.shape[1])):
            raise InvalidRequest(
                f"The mask is {data.shape[1]}x{data.shape[0]}: paint it on the world's equirectangular "
                "layout (2:1, white = redraw)"
            )
        data = resize_wrap(data[..., None], height, width)[..., 0]
    weight = np.clip(data, 0.0, 1.0)
    weight[weight < 1.0 / 255.0] = 0.0  # what an 8-bit mask calls black stays untouched
    return weight


def find_region(
    height: int,
    width: int,
    yaw: float = 0.0,
    pitch: float = 0.0,
    angle: float = 0.0,
    mask: np.ndarray | None = None,
    multiple: int = 64,
) -> Region:
    """The region of an H x W world to redraw: the cone of yaw, pitch and angle, or a painted `mask`; its
    view's side is a multiple of `multiple` (any model's latent grid). Raises InvalidRequest for a region of
    no size or one too wide for one view. A cone costs nothing here; a mask is read once (numpy)."""
    painted = None
    if mask is not None:
        painted = mask_weight(mask, height, width)
        yaw, pitch, angle = mask_centre(painted)
        if angle <= 0.0:
            raise InvalidRequest("The mask is black everywhere: paint the region to redraw white")
        reach = angle
    else:
        if angle <= 0.0:
            raise InvalidRequest("angle is 0: the region has no size; give its radius in degrees (e.g. 20)")
        reach = angle + feather_width(angle, height)
    if reach > MAX_REACH:
        raise InvalidRequest(
            f"The region reaches {reach:.0f}° from its centre; one redraw reaches at most {MAX_REACH:.0f}°: "
            "redraw it in parts, or remix the whole world"
        )
    return Region(yaw, pitch, angle, reach, view_for_region(yaw, pitch, reach, height, multiple), painted)


def prepare_region(radiance: np.ndarray, region: Region) -> RegionEdit:
    """What the model sees of `region` on `radiance` (H, W, 3) and where it redraws (worker thread)."""
    height, width = radiance.shape[:2]
    weight = region.weight(height, width)
    display, encoding = to_display(radiance)
    directions = region.view.directions()
    image = sample_equirect(display, directions)
    # The model redraws everything the paste takes from it, and a pixel more (bilinear reads neighbours).
    seen = sample_equirect(weight[..., None], directions)[..., 0] > 0
    seen |= np.roll(seen, 1, 0) | np.roll(seen, -1, 0) | np.roll(seen, 1, 1) | np.roll(seen, -1, 1)
    return RegionEdit(region, image, seen.astype(np.float32), weight, encoding)


def paste_region(radiance: np.ndarray, edit: RegionEdit, redrawn: np.ndarray) -> np.ndarray:
    """`radiance` with the redrawn view (display sRGB, (h, w, 3)) decoded at the input's exposure and
    pasted through the region's weight; pixels of weight 0 are the input's, bit for bit."""
    new = from_display(np.clip(np.asarray(redrawn, dtype=np.float32), 0.0, 1.0), edit.encoding)
    return view_to_equirect(np.asarray(radiance, dtype=np.float32), new, edit.view, edit.weight)


def region_metadata(region: Region, mask_path: str = "") -> dict[str, str]:
    """What an edit records so Use Settings repeats it."""
    found = {
        "region_yaw_deg": f"{region.yaw:.6g}",
        "region_pitch_deg": f"{region.pitch:.6g}",
        "region_angle_deg": f"{region.angle:.6g}",
    }
    if mask_path:
        found["mask"] = mask_path
    return found
