"""Perspective views of a panorama at any direction and field of view, their inverse, and regions.

A direction is given as the sun report gives it: `yaw` = azimuth counter-clockwise from +X, `pitch` =
elevation, in degrees, so (yaw, pitch) looks along (cos p cos y, cos p sin y, sin p) in world space before
the world's rotation. A view is an upright pinhole camera: its image top leans toward +Z and its right edge
stays horizontal, so it has no roll whatever the pitch (also straight up, where `yaw` sets which way the
image's top points). Edits redraw a region on such a view, where the image is least distorted, and paste
the result back through a feathered mask; a photo is placed on the sphere by the same inverse.

numpy only, vectorised and linear in pixels (as projection.py: Blender's Python has neither scipy nor torch).
"""

from dataclasses import dataclass

import numpy as np

from .projection import equirect_directions, sample_equirect


def direction(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """The unit vector of (yaw, pitch) in degrees."""
    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)
    return np.array([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)])


@dataclass(frozen=True)
class View:
    """An upright pinhole camera at the origin: where it looks, its horizontal field of view, its size."""

    yaw: float  # degrees
    pitch: float
    fov: float  # horizontal, degrees (below 180)
    width: int
    height: int

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(forward, right, up): the view's centre direction, its +column and its -row directions."""
        forward = direction(self.yaw, self.pitch)
        yaw = np.radians(self.yaw)
        right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])  # horizontal: no roll, also at the poles
        return forward, right, np.cross(right, forward)

    @property
    def focal(self) -> float:
        """The focal length in pixels."""
        return 0.5 * self.width / np.tan(np.radians(self.fov) / 2.0)

    def directions(self) -> np.ndarray:
        """Unit directions (H, W, 3) of the view's pixel centres."""
        forward, right, up = self.axes()
        across = (np.arange(self.width) + 0.5 - 0.5 * self.width) / self.focal
        down = (np.arange(self.height) + 0.5 - 0.5 * self.height) / self.focal
        d = forward + across[None, :, None] * right - down[:, None, None] * up
        return d / np.linalg.norm(d, axis=-1, keepdims=True)

    def pixel_of(self, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, column) in pixel units (centres at integers) where each direction lands on the view, and
        whether it lands inside the image, in front of the camera."""
        forward, right, up = self.axes()
        d = np.asarray(directions, dtype=np.float64)
        depth = d @ forward
        ahead = depth > 1e-9
        safe = np.where(ahead, depth, 1.0)
        cols = (d @ right) / safe * self.focal + 0.5 * self.width - 0.5
        rows = -(d @ up) / safe * self.focal + 0.5 * self.height - 0.5
        inside = ahead & (cols >= -0.5) & (cols <= self.width - 0.5) & (rows >= -0.5)
        return rows, cols, inside & (rows <= self.height - 0.5)


def equirect_to_view(pano: np.ndarray, view: View) -> np.ndarray:
    """What `view` sees of a panorama (bilinear, wrapping around the horizon)."""
    return sample_equirect(pano, view.directions())


def sample_view(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear samples of a view image at pixel coordinates (clamped at its edges)."""
    height, width = image.shape[:2]
    rows = np.clip(rows, 0, height - 1)
    cols = np.clip(cols, 0, width - 1)
    r0, c0 = np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)
    r1, c1 = np.minimum(r0 + 1, height - 1), np.minimum(c0 + 1, width - 1)
    fr, fc = rows - r0, cols - c0
    if image.ndim == 3:
        fr, fc = fr[..., None], fc[..., None]
    top = image[r0, c0] * (1 - fc) + image[r0, c1] * fc
    bottom = image[r1, c0] * (1 - fc) + image[r1, c1] * fc
    return (top * (1 - fr) + bottom * fr).astype(image.dtype, copy=False)


def view_to_equirect(
    pano: np.ndarray, image: np.ndarray, view: View, weight: np.ndarray | None = None
) -> np.ndarray:
    """`pano` with `image` (what `view` sees) pasted back: each panorama pixel the view covers becomes
    pano * (1 - w) + image * w, where w is `weight` (H, W of the panorama, 0-1; default 1 on the view's
    footprint). Pixels where w is 0 are copied bit for bit: only what changed is computed."""
    height, width = pano.shape[:2]
    if weight is None:
        weight = view_footprint(view, height, width)
    out = pano.copy()
    changed = np.nonzero(weight > 0)
    if not changed[0].size:
        return out
    directions = equirect_directions(height, width, np.float64)[changed]
    rows, cols, inside = view.pixel_of(directions)
    w = np.where(inside, weight[changed], 0.0).astype(np.float32)[:, None]
    seen = sample_view(image.astype(np.float32), rows, cols)
    out[changed] = (pano[changed] * (1 - w) + seen * w).astype(pano.dtype)
    return out


def view_footprint(view: View, height: int, width: int) -> np.ndarray:
    """1 where a panorama pixel's direction falls inside the view, else 0 (H, W float32)."""
    return view.pixel_of(equirect_directions(height, width, np.float64))[2].astype(np.float32)


def angular_distance(height: int, width: int, yaw: float, pitch: float) -> np.ndarray:
    """The angle in degrees between each panorama pixel's direction and (yaw, pitch)."""
    cosine = equirect_directions(height, width, np.float64) @ direction(yaw, pitch)
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def region_mask(height: int, width: int, yaw: float, pitch: float, angle: float) -> np.ndarray:
    """1 for the panorama pixels whose direction is within `angle` degrees of (yaw, pitch), else 0."""
    return (angular_distance(height, width, yaw, pitch) <= angle).astype(np.float32)


def feather_width(angle: float, height: int) -> float:
    """Degrees over which a region's paste fades out beyond its edge: a sixth of its radius, at least two
    panorama pixels (180 / H degrees each)."""
    return max(angle / 6.0, 2.0 * 180.0 / height)


def feathered_region(height: int, width: int, yaw: float, pitch: float, angle: float) -> np.ndarray:
    """The paste weight of a region: 1 within `angle`, a smooth ramp to 0 over feather_width beyond it,
    exactly 0 further out (those pixels are never touched)."""
    feather = feather_width(angle, height)
    t = np.clip((angular_distance(height, width, yaw, pitch) - angle) / feather, 0.0, 1.0)
    return (1.0 - t * t * (3.0 - 2.0 * t)).astype(np.float32)


def mask_centre(mask: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, angle) of the smallest cone around a mask's mean direction that holds all of it (its
    pixels > 0, weighted by their solid angle); the angle is 0 for an empty mask."""
    height, width = mask.shape[:2]
    chosen = mask > 0
    if not chosen.any():
        return 0.0, 0.0, 0.0
    directions = equirect_directions(height, width, np.float64)
    solid = np.cos(np.pi * (0.5 - (np.arange(height) + 0.5) / height))[:, None] * np.ones((1, width))
    mean = (directions[chosen] * solid[chosen][:, None]).sum(axis=0)
    if np.linalg.norm(mean) < 1e-9:  # a band all around: any centre is as good
        mean = directions[chosen][0]
    mean /= np.linalg.norm(mean)
    yaw = float(np.degrees(np.arctan2(mean[1], mean[0])))
    pitch = float(np.degrees(np.arcsin(np.clip(mean[2], -1.0, 1.0))))
    cosine = directions[chosen] @ mean
    angle = float(np.degrees(np.arccos(np.clip(cosine.min(), -1.0, 1.0))))
    return yaw, pitch, angle + 0.5 * 180.0 / height  # the pixels' own half-width


def view_for_region(yaw: float, pitch: float, reach: float, height: int, multiple: int = 8) -> View:
    """A square view centred on (yaw, pitch) that sees everything within `reach` degrees with a margin, at
    about the panorama's own resolution (H / π pixels per radian at the centre), in pixels a multiple of
    `multiple` (the model's latent grid), at least 64."""
    fov = min(2.0 * reach * 1.15 + 4.0, 150.0)
    side = 2.0 * np.tan(np.radians(fov) / 2.0) * height / np.pi
    side = max(64, int(np.ceil(side / multiple)) * multiple)
    return View(yaw, pitch, fov, side, side)
