"""Triangles rasterised at pixel centres in numpy: the texels of a UV map, and a camera's depth map.

Every triangle's bounding box of pixel centres is expanded into candidate pixels with np.repeat (in chunks
of a bounded number of candidates), and the barycentric test keeps those inside: no Python loop over pixels.
numpy only.
"""

from collections.abc import Iterator

import numpy as np

from .cameras import Camera

CHUNK = 1 << 21  # candidate pixels per chunk: about 100 MB of temporaries at most
EDGE = -1e-7  # barycentric slack, so a pixel centre on an edge shared by two triangles is not lost


def triangle_pixels(corners: np.ndarray, width: int, height: int) -> Iterator[tuple]:
    """Yield (pixel index row * width + column, triangle index, barycentric weights (K, 3)) for the pixel
    centres inside each triangle; `corners` is (T, 3, 2) in pixel units (x = column, y = row). A centre on
    an edge shared by two triangles may come from both."""
    corners = np.asarray(corners, dtype=np.float64)
    finite = np.isfinite(corners).all(axis=(1, 2))
    low = np.floor(np.nanmin(np.where(finite[:, None, None], corners, np.nan), axis=1) - 0.5) + 1
    high = np.floor(np.nanmax(np.where(finite[:, None, None], corners, np.nan), axis=1) - 0.5)
    low = np.where(finite[:, None], np.maximum(low, 0), 0).astype(np.int64)
    high = np.where(finite[:, None], np.minimum(high, [width - 1, height - 1]), -1).astype(np.int64)
    spans = np.maximum(high - low + 1, 0)
    counts = spans[:, 0] * spans[:, 1]
    # Twice the signed area: degenerate triangles cover nothing.
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    counts = np.where(np.abs(area) > 1e-12, counts, 0)
    (live,) = np.nonzero(counts)
    ends = np.cumsum(counts[live])
    start = 0
    while start < len(live):
        stop = max(
            int(np.searchsorted(ends, (ends[start - 1] if start else 0) + CHUNK, side="right")), start + 1
        )
        yield from _chunk(corners, area, low, spans, counts, live[start:stop], width)
        start = stop


def _chunk(corners, area, low, spans, counts, tris, width):
    n = counts[tris]
    tri = np.repeat(tris, n)
    first = np.cumsum(n) - n
    k = np.arange(int(n.sum()), dtype=np.int64) - np.repeat(first, n)
    span_x = spans[tri, 0]
    px = low[tri, 0] + k % span_x
    py = low[tri, 1] + k // span_x
    x, y = px + 0.5, py + 0.5
    a, b, c = corners[tri, 0], corners[tri, 1], corners[tri, 2]
    inv = 1.0 / area[tri]
    w1 = ((x - a[:, 0]) * (c[:, 1] - a[:, 1]) - (y - a[:, 1]) * (c[:, 0] - a[:, 0])) * inv
    w2 = ((b[:, 0] - a[:, 0]) * (y - a[:, 1]) - (b[:, 1] - a[:, 1]) * (x - a[:, 0])) * inv
    w0 = 1.0 - w1 - w2
    inside = (w0 >= EDGE) & (w1 >= EDGE) & (w2 >= EDGE)
    bary = np.stack([w0[inside], w1[inside], w2[inside]], axis=1)
    yield py[inside] * width + px[inside], tri[inside], bary


def depth_map(camera: Camera, vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Planar depth (H, W) of the nearest surface at every pixel centre; inf where nothing is seen.

    Depth is interpolated exactly (its inverse is affine in screen space). Triangles reaching behind the
    near clip plane are left out (as the camera would clip them; their visible part is not drawn).
    """
    return visible_surface(camera, vertices, triangles)[0]


def visible_surface(camera: Camera, vertices: np.ndarray, triangles: np.ndarray):
    """What every pixel centre sees: planar depth (H, W; inf for nothing), the triangle's index (H, W; -1
    for nothing) and the perspective-correct barycentric weights of the point on it (H, W, 3)."""
    x, y, d = camera.project(np.asarray(vertices, dtype=np.float64))
    triangles = np.asarray(triangles, dtype=np.int64)
    (kept,) = np.nonzero((d[triangles] > camera.clip_start).all(axis=1))
    corners = np.stack([x[triangles[kept]], y[triangles[kept]]], axis=-1)
    inverse = 1.0 / d[triangles[kept]]
    size = camera.width * camera.height
    depth, which, weights = np.full(size, np.inf), np.full(size, -1, np.int64), np.zeros((size, 3))
    for pixel, tri, bary in triangle_pixels(corners, camera.width, camera.height):
        inv_depth = np.einsum("ij,ij->i", bary, inverse[tri])
        # Nearest first per pixel; a chunk's winners replace earlier ones only where nearer.
        order = np.lexsort((-inv_depth, pixel))
        pixel, first = np.unique(pixel[order], return_index=True)
        pick = order[first]
        nearer = 1.0 / inv_depth[pick] < depth[pixel]
        pixel, pick = pixel[nearer], pick[nearer]
        depth[pixel] = 1.0 / inv_depth[pick]
        which[pixel] = kept[tri[pick]]
        corrected = bary[pick] * inverse[tri[pick]]  # screen-space weights to weights on the surface
        weights[pixel] = corrected / corrected.sum(axis=1, keepdims=True)
    shape = (camera.height, camera.width)
    return depth.reshape(shape), which.reshape(shape), weights.reshape(*shape, 3)


def control_image(depth: np.ndarray) -> np.ndarray:
    """Normalised inverse depth as depth ControlNets take it (near bright): 1 at the nearest point, 0.1 at
    the farthest seen one, 0 where nothing is seen; float32 (H, W)."""
    seen = np.isfinite(depth) & (depth > 0)
    if not seen.any():
        return np.zeros(depth.shape, np.float32)
    inverse = np.where(seen, 1.0 / np.where(seen, depth, 1.0), 0.0)
    near, far = inverse[seen].max(), inverse[seen].min()
    if near - far <= 1e-12:
        return seen.astype(np.float32)
    # The farthest seen surface keeps a little brightness, so it stands apart from the empty background.
    return np.where(seen, 0.1 + 0.9 * (inverse - far) / (near - far), 0.0).astype(np.float32)
