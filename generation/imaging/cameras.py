"""Pinhole cameras as Blender renders them, and the cameras placed around objects for a projected texture.

A camera looks down its local -Z with +Y up (Blender's convention); image pixels are addressed with row 0 at
the top and pixel centres at (column + 0.5, row + 0.5). Planar depth is the distance along the view axis
(what Blender's Z pass holds), not the distance along the ray. numpy only.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    """A perspective camera: `world` maps camera space to world space (4x4), `focal` is in pixels."""

    world: np.ndarray
    focal: float
    cx: float
    cy: float
    width: int
    height: int
    clip_start: float = 0.1

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points (N, 3) in camera space (x right, y up, looking down -z)."""
        inverse = np.linalg.inv(np.asarray(self.world, dtype=np.float64))
        return points @ inverse[:3, :3].T + inverse[:3, 3]

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World points (N, 3) -> pixel x (columns), pixel y (rows from the top), planar depth."""
        local = self.to_camera(np.asarray(points, dtype=np.float64))
        depth = -local[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.where(depth > 0, 1.0 / depth, np.nan)
        return self.cx + self.focal * local[:, 0] * inv, self.cy - self.focal * local[:, 1] * inv, depth

    @property
    def position(self) -> np.ndarray:
        return np.asarray(self.world, dtype=np.float64)[:3, 3]

    def ray_directions(self) -> np.ndarray:
        """Unit world directions through every pixel centre, (H, W, 3)."""
        cols = (np.arange(self.width) + 0.5 - self.cx) / self.focal
        rows = (self.cy - (np.arange(self.height) + 0.5)) / self.focal
        local = np.stack(np.broadcast_arrays(cols[None, :], rows[:, None], -np.ones((1, 1))), axis=-1)
        world = local @ np.asarray(self.world, dtype=np.float64)[:3, :3].T
        return world / np.linalg.norm(world, axis=-1, keepdims=True)


def camera_from_lens(
    world,
    lens: float,
    sensor_width: float,
    sensor_height: float,
    sensor_fit: str,
    width: int,
    height: int,
    shift_x: float = 0.0,
    shift_y: float = 0.0,
    clip_start: float = 0.1,
) -> Camera:
    """A Blender camera's lens (mm), sensor (mm) and fit, at a render size of width x height square pixels.

    As Blender computes its view plane: AUTO fits the sensor width to the larger side; HORIZONTAL fits the
    width to the image width, VERTICAL the height to the image height; shifts are fractions of that side.
    """
    horizontal = sensor_fit == "HORIZONTAL" or (sensor_fit == "AUTO" and width >= height)
    side = width if horizontal else height
    sensor = sensor_height if sensor_fit == "VERTICAL" else sensor_width
    focal = lens / sensor * side
    return Camera(
        world=np.asarray(world, dtype=np.float64),
        focal=float(focal),
        cx=width / 2 + shift_x * side,
        cy=height / 2 - shift_y * side,
        width=int(width),
        height=int(height),
        clip_start=float(clip_start),
    )


def look_at(position, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """The camera-to-world matrix of a camera at `position` looking at `target` (`up` kept when it can be)."""
    position, target = np.asarray(position, np.float64), np.asarray(target, np.float64)
    back = position - target
    back /= np.linalg.norm(back)
    up = np.asarray(up, np.float64)
    if abs(float(back @ up)) > 0.999:  # looking straight up or down: any horizontal up will do
        up = np.array([0.0, 1.0, 0.0])
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = right, np.cross(back, right), back, position
    return matrix


# Directions of the views after the first, as (azimuth turn from the first view, elevation) in degrees. The
# first is the user's camera; the ring follows it round the vertical axis, then tops and bottoms.
VIEW_LAYOUTS = {
    1: (),
    2: ((180, None),),
    4: ((90, None), (180, None), (270, None)),
    6: ((90, None), (180, None), (270, None), (0, 89.9), (0, -89.9)),
    8: ((90, None), (180, None), (270, None), (45, 60), (225, 60), (135, -60), (315, -60)),
}


def views_around(first: Camera, centre, radius: float, count: int) -> list[Camera]:
    """`count` cameras: `first`, then others on a sphere round `centre` at its distance, each framing a ball
    of `radius` (the selection's bounds) with the first camera's focal length, at the same image size."""
    if count not in VIEW_LAYOUTS:
        raise ValueError(f"views must be one of {sorted(VIEW_LAYOUTS)}, not {count}")
    centre = np.asarray(centre, np.float64)
    offset = first.position - centre
    distance = float(np.linalg.norm(offset))
    # Far enough that the whole ball fits the shorter side of the frame.
    half_angle = np.arctan(min(first.width, first.height) / 2 / first.focal)
    distance = max(distance, radius / np.sin(half_angle) * 1.05)
    azimuth0 = np.arctan2(offset[1], offset[0])
    elevation0 = np.arcsin(np.clip(offset[2] / max(np.linalg.norm(offset), 1e-12), -1, 1))
    cameras = [first]
    for turn, elevation in VIEW_LAYOUTS[count]:
        azimuth = azimuth0 + np.radians(turn)
        tilt = elevation0 if elevation is None else np.radians(elevation)
        direction = np.array([np.cos(tilt) * np.cos(azimuth), np.cos(tilt) * np.sin(azimuth), np.sin(tilt)])
        world = look_at(centre + distance * direction, centre)
        cameras.append(
            Camera(
                world,
                first.focal,
                first.width / 2,
                first.height / 2,
                first.width,
                first.height,
                first.clip_start,
            )
        )
    return cameras
