"""Images seen from cameras baked into an object's UV texture: visibility, angle weights, blending, filling.

Each texel of the UV map knows its surface point and normal (`Texels`). In every view it takes the colour at
the pixel it projects to, when it is visible there: a depth test against the view's planar depth map with a
tolerance of DEPTH_TOLERANCE of its depth plus the depth its surface slope spans over SLOPE_PIXELS pixels, on
each of the four pixels of the bilinear lookup, so an occluded texel (or one beside an occluder's edge) never
takes the occluder's colour. Views are blended with weight cos(angle to the view)^SHARPNESS. Texels no view
sees are filled from painted texels near them on the surface in 3D (multi-resolution voxel averaging: the
mean colour of the painted texels in the 27 voxels around each unpainted one, weighted by distance and by how
much the normals agree, at doubling voxel sizes until every texel has a value), which crosses UV seams where
dilation in the UV image cannot. numpy only, vectorised, in chunks of texels.
"""

from dataclasses import dataclass

import numpy as np

from .cameras import Camera
from .raster import triangle_pixels

DEPTH_TOLERANCE = 0.01  # of the texel's depth: Z-pass and interpolation error, not a gap between objects
SLOPE_PIXELS = 1.5  # a bilinear neighbour's centre lies up to 1.5 px away along a slanted surface
SHARPNESS = 4.0  # cos^4: a face seen squarely dominates one seen at 60 degrees 16:1
MIN_COS = 0.05  # grazing views (beyond about 87 degrees) paint nothing
CHUNK = 1 << 20
FILL_START = 4.0  # the first voxels span about this many texel spacings on the surface
DENSE_GRID = 1 << 23  # voxels of a grid looked up directly (64 MB of indices); beyond, by binary search
GUTTER = 4  # texels of colour grown outside the UV islands, for texture filtering and mip-maps


@dataclass(frozen=True)
class Texels:
    """The texels inside a size x size UV map's islands: flat index (row 0 at the top), world point, unit
    world normal."""

    size: int
    index: np.ndarray
    points: np.ndarray
    normals: np.ndarray


@dataclass(frozen=True)
class View:
    """One camera's picture: float RGB (H, W, 3) and planar depth (H, W), inf where nothing was seen."""

    camera: Camera
    image: np.ndarray
    depth: np.ndarray


@dataclass(frozen=True)
class Bake:
    """Per texel: blended colour (N, 3, NaN where unpainted), summed weight, best single view's weight."""

    colour: np.ndarray
    weight: np.ndarray
    best: np.ndarray

    @property
    def painted(self) -> np.ndarray:
        return self.weight > 0


def sample_texels(size: int, vertices, triangles, corner_uvs, corner_normals, matrix=None) -> Texels:
    """The texels of the UV triangles at a size x size map: positions interpolated from the triangles'
    vertices (V, 3), triangles (T, 3) vertex indices, UVs (T, 3, 2) and normals (T, 3, 3) per corner, all in
    object space, moved to world space by `matrix` (4x4). Where UV islands overlap, the first one wins."""
    vertices = np.asarray(vertices, np.float64)
    triangles = np.asarray(triangles, np.int64)
    uv = np.asarray(corner_uvs, np.float64)
    normals = np.asarray(corner_normals, np.float64)
    corners = np.stack([uv[..., 0] * size, (1.0 - uv[..., 1]) * size], axis=-1)
    parts = [[], [], []]
    for pixel, tri, bary in triangle_pixels(corners, size, size):
        parts[0].append(pixel)
        parts[1].append(np.einsum("ij,ijk->ik", bary, vertices[triangles[tri]]))
        parts[2].append(np.einsum("ij,ijk->ik", bary, normals[tri]))
    if not parts[0]:
        empty = np.zeros((0, 3))
        return Texels(size, np.zeros(0, np.int64), empty, empty)
    index, first = np.unique(np.concatenate(parts[0]), return_index=True)
    points, normal = np.concatenate(parts[1])[first], np.concatenate(parts[2])[first]
    if matrix is not None:
        matrix = np.asarray(matrix, np.float64)
        points = points @ matrix[:3, :3].T + matrix[:3, 3]
        normal = normal @ np.linalg.inv(matrix[:3, :3])  # the inverse transpose keeps normals normal
    length = np.linalg.norm(normal, axis=1, keepdims=True)
    return Texels(size, index, points, normal / np.where(length > 0, length, 1.0))


def bake(texels: Texels, views: list[View]) -> Bake:
    """Blend the views' colours onto the texels they see (see the module's docstring)."""
    n = len(texels.index)
    colour = np.zeros((n, 3))
    weight = np.zeros(n)
    best = np.zeros(n)
    for view in views:
        accumulate(view, texels, colour, weight, best)
    with np.errstate(invalid="ignore", divide="ignore"):
        colour = np.where(weight[:, None] > 0, colour / weight[:, None], np.nan)
    return Bake(colour.astype(np.float32), weight, best)


def accumulate(view: View, texels: Texels, colour: np.ndarray, weight: np.ndarray, best: np.ndarray) -> None:
    """Add one view to running sums over the texels: colour x weight (N, 3), weight (N,), best weight (N,)."""
    for start in range(0, len(texels.index), CHUNK):
        part = slice(start, start + CHUNK)
        live, c, w = _view_colours(view, texels.points[part], texels.normals[part])
        live += start
        colour[live] += c * w[:, None]
        weight[live] += w
        best[live] = np.maximum(best[live], w)


def _view_colours(view: View, points: np.ndarray, normals: np.ndarray):
    """(indices of the texels the view may see, their colour in it, their weight: 0 where hidden)."""
    camera, image, depth = view.camera, np.asarray(view.image), np.asarray(view.depth)
    height, width = depth.shape
    x, y, d = camera.project(points)
    to_camera = camera.position - points
    cos = np.einsum("ij,ij->i", normals, to_camera) / np.maximum(np.linalg.norm(to_camera, axis=1), 1e-12)
    # Only texels facing the camera, in front of it and within the frame go on (about half of them).
    with np.errstate(invalid="ignore"):
        (live,) = np.nonzero((d > camera.clip_start) & (cos > MIN_COS) & (x > -1) & (x < width + 1)
                             & (y > -1) & (y < height + 1))  # fmt: skip
    x, y, d, cos = x[live], y[live], d[live], cos[live]
    tan = np.sqrt(np.maximum(1.0 - cos**2, 0.0)) / cos
    tolerance = d * (DEPTH_TOLERANCE + SLOPE_PIXELS * tan / camera.focal)
    x0, y0 = np.floor(x - 0.5).astype(np.int64), np.floor(y - 0.5).astype(np.int64)
    fx, fy = x - 0.5 - x0, y - 0.5 - y0
    seen_colour = np.zeros((len(live), 3))
    support = np.zeros(len(live))
    for dy, dx, share in (
        (0, 0, (1 - fx) * (1 - fy)),
        (0, 1, fx * (1 - fy)),
        (1, 0, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        col, row = x0 + dx, y0 + dy
        inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
        col, row = np.where(inside, col, 0), np.where(inside, row, 0)
        seen = inside & (np.abs(depth[row, col] - d) <= tolerance)  # inf (nothing there) never passes
        share = np.where(seen, share, 0.0)
        seen_colour += share[:, None] * image[row, col, :3]
        support += share
    visible = support > 1e-6
    colour = np.where(visible[:, None], seen_colour / np.where(visible, support, 1.0)[:, None], 0.0)
    # A texel seen through only part of its bilinear footprint (at an edge) counts for that part.
    return live, colour, np.where(visible, cos**SHARPNESS * support, 0.0)


def fill_unpainted(
    points: np.ndarray, normals: np.ndarray, colour: np.ndarray, painted: np.ndarray
) -> np.ndarray:
    """Colours for every texel: painted ones kept, the others from painted texels near them in 3D (see the
    module's docstring). With nothing painted at all, mid grey."""
    colour = np.array(colour, dtype=np.float64)
    missing = ~painted
    if not missing.any():
        return colour.astype(np.float32)
    if not painted.any():
        return np.full(colour.shape, 0.5, np.float32)
    points = np.asarray(points, np.float64)
    low = points.min(axis=0)
    extent = float(np.max(points.max(axis=0) - low)) or 1.0
    # Start near the spacing of the texels on the surface and double until every texel has neighbours.
    cell = extent / np.sqrt(len(points)) * FILL_START
    src_points, src_normals, src_colour = points[painted], normals[painted], colour[painted]
    while missing.any():
        query = np.nonzero(missing)[0]
        filled, found = _voxel_average(
            src_points, src_normals, src_colour, points[query], normals[query], low, cell
        )
        colour[query[found]] = filled[found]
        missing[query[found]] = False
        cell *= 2.0
    return colour.astype(np.float32)


def _voxel_average(src_points, src_normals, src_colour, points, normals, low, cell):
    """Mean painted colour of the 27 voxels of size `cell` around each query point, weighted by distance to
    each voxel's centroid and by normal agreement; returns (colours, found mask)."""
    cells = np.floor((src_points - low) / cell).astype(np.int64) + 1
    q_cells = np.floor((points - low) / cell).astype(np.int64) + 1
    dims = np.maximum(cells.max(axis=0), q_cells.max(axis=0)) + 2
    keys = (cells[:, 0] * dims[1] + cells[:, 1]) * dims[2] + cells[:, 2]
    unique, inverse = np.unique(keys, return_inverse=True)
    inverse = inverse.ravel()
    count = np.bincount(inverse).astype(np.float64)

    def voxel_mean(values):
        return (
            np.stack([np.bincount(inverse, values[:, k]) for k in range(values.shape[1])], axis=1)
            / count[:, None]
        )

    centroid, mean_normal, mean_colour = (
        voxel_mean(src_points),
        voxel_mean(src_normals),
        voxel_mean(src_colour),
    )
    # Voxel lookup: a dense grid of voxel numbers where it is small, else a binary search of the keys.
    dense = None
    if int(np.prod(dims)) <= DENSE_GRID:
        dense = np.full(int(np.prod(dims)), -1, np.int64)
        dense[unique] = np.arange(len(unique))
    base = (q_cells[:, 0] * dims[1] + q_cells[:, 1]) * dims[2] + q_cells[:, 2]
    colours, found = np.zeros((len(points), 3)), np.zeros(len(points), bool)
    near = slice(None)
    if dense is not None:  # only queries with a painted voxel among their 27 need the 27 lookups
        (near,) = np.nonzero(_grown((dense >= 0).reshape(tuple(dims))).ravel()[base])
    base, points, normals = base[near], points[near], normals[near]
    total = np.zeros((len(points), 3))
    weights = np.zeros(len(points))
    for dx, dy, dz in np.stack(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1], indexing="ij"), -1).reshape(
        -1, 3
    ):
        key = base + (dx * dims[1] + dy) * dims[2] + dz  # the query cells are 1..dims-2: never out of range
        if dense is not None:
            at = dense[key]
            hit = at >= 0
            at = np.maximum(at, 0)
        else:
            at = np.clip(np.searchsorted(unique, key), 0, len(unique) - 1)
            hit = unique[at] == key
        distance2 = np.sum((centroid[at] - points) ** 2, axis=1) / cell**2
        agree = np.clip(np.einsum("ij,ij->i", mean_normal[at], normals), 0.0, 1.0)
        w = np.where(hit, count[at] / (distance2 + 0.05) * (0.05 + agree), 0.0)
        total += w[:, None] * mean_colour[at]
        weights += w
    found[near] = weights > 0
    colours[near] = total / np.where(weights > 0, weights, 1.0)[:, None]
    return colours, found


def _grown(occupied: np.ndarray) -> np.ndarray:
    """A 3D mask grown by one voxel in every direction (26 neighbours)."""
    for axis in range(3):
        grown = occupied.copy()
        lead = [slice(None)] * 3
        trail = [slice(None)] * 3
        lead[axis], trail[axis] = slice(1, None), slice(None, -1)
        grown[tuple(lead)] |= occupied[tuple(trail)]
        grown[tuple(trail)] |= occupied[tuple(lead)]
        occupied = grown
    return occupied


def texture(texels: Texels, colour: np.ndarray, gutter: int = GUTTER) -> np.ndarray:
    """The size x size RGB texture (float32, row 0 at the top) of every texel's colour, grown `gutter`
    texels outside the islands (the mean of the filled neighbours), the rest the islands' mean colour."""
    size = texels.size
    flat = np.zeros((size * size, 3), np.float32)
    known = np.zeros(size * size, bool)
    flat[texels.index] = colour
    known[texels.index] = True
    image, known = flat.reshape(size, size, 3), known.reshape(size, size)
    for _ in range(gutter):
        padded = np.pad(image * known[..., None], ((1, 1), (1, 1), (0, 0)))
        count = np.pad(known, 1).astype(np.float32)
        total = padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]
        n = count[:-2, 1:-1] + count[2:, 1:-1] + count[1:-1, :-2] + count[1:-1, 2:]
        grow = ~known & (n > 0)
        image = np.where(grow[..., None], total / np.maximum(n, 1)[..., None], image)
        known = known | grow
    mean = colour.mean(axis=0) if len(colour) else np.full(3, 0.5)
    return np.where(known[..., None], image, mean).astype(np.float32)


def coverage(result: Bake) -> float:
    """The share of the island texels some view painted."""
    return float(result.painted.mean()) if len(result.weight) else 0.0
