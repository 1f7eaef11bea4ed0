"""Equirectangular panoramas and cube faces, in Blender's axes and mapping, with bilinear sampling.

Blender's Environment Texture maps a direction (x, y, z) to u = 0.5 - atan2(y, x) / 2π and
v = 0.5 + asin(z) / π: the image centre looks along +X, the left and right edges along -X, the top row
straight up (+Z). Rows here are top first, so row r holds v = 1 - (r + 0.5) / H.

Cube faces are named for the axis they look along (px looks along +X, pz straight up), each seen from
the inside: the four side faces have +Z at the top of the image; pz and nz are the views from px tilted
straight up and straight down, so their image top points along -X and +X.

Written here in numpy rather than taken from a projection library: Blender's own Python has numpy but
neither scipy nor torch, and pole repair and the world exports (cube maps) must run there.
"""

import numpy as np

# face -> (forward, right, up): the direction of the face centre, of the image's +column and of -row.
FACES = {
    "px": ((1, 0, 0), (0, -1, 0), (0, 0, 1)),
    "nx": ((-1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "py": ((0, 1, 0), (1, 0, 0), (0, 0, 1)),
    "ny": ((0, -1, 0), (-1, 0, 0), (0, 0, 1)),
    "pz": ((0, 0, 1), (0, -1, 0), (-1, 0, 0)),
    "nz": ((0, 0, -1), (0, -1, 0), (1, 0, 0)),
}


def equirect_directions(height: int, width: int, dtype=np.float32) -> np.ndarray:
    """Unit directions (H, W, 3) of every pixel centre of an equirectangular image."""
    elevation = np.pi * (0.5 - (np.arange(height) + 0.5) / height)
    azimuth = 2.0 * np.pi * (0.5 - (np.arange(width) + 0.5) / width)
    cos_e = np.cos(elevation)[:, None]
    return np.stack(
        np.broadcast_arrays(cos_e * np.cos(azimuth), cos_e * np.sin(azimuth), np.sin(elevation)[:, None]),
        axis=-1,
    ).astype(dtype)


def direction_to_pixel(directions: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) in pixel units (centres at integers) of each direction in an H x W panorama."""
    d = np.asarray(directions, dtype=np.float64)
    norm = np.linalg.norm(d, axis=-1)
    u = (0.5 - np.arctan2(d[..., 1], d[..., 0]) / (2.0 * np.pi)) % 1.0
    v = 0.5 + np.arcsin(np.clip(d[..., 2] / np.maximum(norm, 1e-12), -1.0, 1.0)) / np.pi
    return (1.0 - v) * height - 0.5, u * width - 0.5


def sample_equirect(pano: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """The panorama seen along each direction: bilinear, wrapping around the horizon, clamped at the poles."""
    height, width = pano.shape[:2]
    rows, cols = direction_to_pixel(directions, height, width)
    r0 = np.floor(rows).astype(np.int64)
    c0 = np.floor(cols).astype(np.int64)
    fr, fc = (rows - r0)[..., None], (cols - c0)[..., None]
    r0c, r1c = np.clip(r0, 0, height - 1), np.clip(r0 + 1, 0, height - 1)
    c0w, c1w = c0 % width, (c0 + 1) % width
    top = pano[r0c, c0w] * (1 - fc) + pano[r0c, c1w] * fc
    bottom = pano[r1c, c0w] * (1 - fc) + pano[r1c, c1w] * fc
    return (top * (1 - fr) + bottom * fr).astype(pano.dtype, copy=False)


def face_directions(face: str, size: int, extent: float = 1.0) -> np.ndarray:
    """Directions (S, S, 3) of a face's pixel centres; `extent` < 1 gives the central window of the face
    (its half-width in tan units: 1 is the whole 90° face)."""
    forward, right, up = (np.asarray(axis, dtype=np.float64) for axis in FACES[face])
    steps = (2.0 * (np.arange(size) + 0.5) / size - 1.0) * extent
    across, down = np.meshgrid(steps, steps)
    d = forward + across[..., None] * right - down[..., None] * up
    return (d / np.linalg.norm(d, axis=-1, keepdims=True)).astype(np.float32)


def equirect_to_face(pano: np.ndarray, face: str, size: int, extent: float = 1.0) -> np.ndarray:
    """One cube face (or its central window) of a panorama."""
    return sample_equirect(pano, face_directions(face, size, extent))


def equirect_to_cube(pano: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """All six faces, S x S each, keyed px, nx, py, ny, pz, nz."""
    return {face: equirect_to_face(pano, face, size) for face in FACES}


def face_coordinates(directions: np.ndarray, face: str, extent: float = 1.0):
    """Where each direction lands on a face window: (row, column) in pixel units of an S=1 window scaled
    to [-1, 1] tan units / extent, and whether it lies in front of the face at all."""
    forward, right, up = (np.asarray(axis, dtype=np.float64) for axis in FACES[face])
    d = np.asarray(directions, dtype=np.float64)
    depth = d @ forward
    ahead = depth > 1e-9
    safe = np.where(ahead, depth, 1.0)
    across = (d @ right) / safe / extent
    down = -(d @ up) / safe / extent
    return down, across, ahead


def sample_face(image: np.ndarray, down: np.ndarray, across: np.ndarray) -> np.ndarray:
    """Bilinear samples of a face window at window coordinates in [-1, 1] (clamped at its edges)."""
    size = image.shape[0]
    rows = np.clip((down + 1.0) * 0.5 * size - 0.5, 0, size - 1)
    cols = np.clip((across + 1.0) * 0.5 * size - 0.5, 0, size - 1)
    r0, c0 = np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)
    r1, c1 = np.minimum(r0 + 1, size - 1), np.minimum(c0 + 1, size - 1)
    fr, fc = (rows - r0)[..., None], (cols - c0)[..., None]
    top = image[r0, c0] * (1 - fc) + image[r0, c1] * fc
    bottom = image[r1, c0] * (1 - fc) + image[r1, c1] * fc
    return (top * (1 - fr) + bottom * fr).astype(image.dtype, copy=False)


def cube_to_equirect(faces: dict[str, np.ndarray], height: int, width: int) -> np.ndarray:
    """A panorama from six cube faces: each pixel from the face its direction points into."""
    directions = equirect_directions(height, width)
    out = np.zeros((height, width, next(iter(faces.values())).shape[2]), dtype=np.float32)
    # The face a direction points into is the one whose axis its largest component follows.
    axis = np.abs(directions).argmax(axis=-1)
    sign = np.take_along_axis(directions, axis[..., None], axis=-1)[..., 0] > 0
    for face, image in faces.items():
        index = "xyz".index(face[1])
        chosen = (axis == index) & (sign == (face[0] == "p"))
        down, across, _ = face_coordinates(directions[chosen], face)
        out[chosen] = sample_face(image, down, across)
    return out
