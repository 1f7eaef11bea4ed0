"""A prop's colours as a texture (texture=True): the mesh unwrapped by xatlas, its vertex colours baked.

Each triangle is rasterised in UV space with its corners' colours interpolated (barycentric, at texel
centres), then the charts are grown a few texels into the empty space so filtering at their edges never
reads the background. The work is vectorised over triangles: they are grouped by the size of their box in
texels and each group is evaluated at once on a window of that size, so no loop runs over texels. numpy,
and xatlas (imported on use).
"""

import numpy as np

from ..errors import missing_dependency
from .prop_mesh import PropMesh

TEXTURE_SIZE = 1024
PADDING = 4  # texels the charts grow into the empty space
BATCH = 4_000_000  # texel evaluations a batch


def unwrap(mesh: PropMesh) -> PropMesh:
    """The mesh cut along xatlas's seams with a UV per vertex (0-1, v up): vertices on a seam are split."""
    try:
        import xatlas
    except ImportError as error:
        raise missing_dependency("xatlas", "a prop's texture (texture=True)") from error
    mapping, faces, uvs = xatlas.parametrize(mesh.vertices.astype(np.float32), mesh.faces.astype(np.uint32))
    mapping = mapping.astype(np.int64)
    return PropMesh(
        mesh.vertices[mapping], faces.astype(np.int32), mesh.colours[mapping], uvs.astype(np.float32)
    )


def bake(mesh: PropMesh, size: int = TEXTURE_SIZE, padding: int = PADDING) -> np.ndarray:
    """The vertex colours of an unwrapped mesh as a (size, size, 3) texture, rows top first (v = 1 at the
    top), charts grown by `padding` texels."""
    texture = np.zeros((size, size, 3), np.float32)
    filled = np.zeros((size, size), bool)
    corners = mesh.uvs[mesh.faces].astype(np.float64)  # (F, 3, 2)
    points = np.stack([corners[..., 0] * size, (1.0 - corners[..., 1]) * size], axis=-1)  # (x, y) in texels
    low = np.floor(points.min(axis=1) - 0.5).astype(np.int64)
    extent = (np.ceil(points.max(axis=1) - 0.5).astype(np.int64) - low).max(axis=1) + 1
    window = 1
    while True:
        group = np.flatnonzero((extent <= window) & (extent > window // 2))
        step = max(1, BATCH // (window * window))
        for start in range(0, len(group), step):
            _rasterise(group[start : start + step], window, low, points, mesh, texture, filled)
        if window >= extent.max(initial=1):
            break
        window *= 2
    return _grow(texture, filled, padding)


def _rasterise(chosen, window, low, points, mesh, texture, filled) -> None:
    size = texture.shape[0]
    offset = np.arange(window)
    shape = (len(chosen), window, window)  # texel centres of each triangle's window
    x = np.broadcast_to(low[chosen, 0, None, None] + offset[None, None, :] + 0.5, shape)
    y = np.broadcast_to(low[chosen, 1, None, None] + offset[None, :, None] + 0.5, shape)
    a, b, c = (points[chosen, i] for i in range(3))
    denominator = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
    safe = np.where(np.abs(denominator) < 1e-12, np.inf, denominator)[:, None, None]
    dx, dy = x - c[:, 0, None, None], y - c[:, 1, None, None]
    w0 = ((b[:, 1] - c[:, 1])[:, None, None] * dx + (c[:, 0] - b[:, 0])[:, None, None] * dy) / safe
    w1 = ((c[:, 1] - a[:, 1])[:, None, None] * dx + (a[:, 0] - c[:, 0])[:, None, None] * dy) / safe
    w2 = 1.0 - w0 - w1
    column, row = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    inside = (w0 >= -1e-6) & (w1 >= -1e-6) & (w2 >= -1e-6) & np.isfinite(safe)
    inside &= (column >= 0) & (column < size) & (row >= 0) & (row < size)
    colours = mesh.colours[mesh.faces[chosen]]  # (n, 3 corners, 3)
    blend = (
        w0[..., None] * colours[:, 0, None, None]
        + w1[..., None] * colours[:, 1, None, None]
        + w2[..., None] * colours[:, 2, None, None]
    )
    texture[row[inside], column[inside]] = blend[inside]
    filled[row[inside], column[inside]] = True


def _grow(texture: np.ndarray, filled: np.ndarray, padding: int) -> np.ndarray:
    """Empty texels next to filled ones take their filled neighbours' mean, `padding` times over."""
    for _ in range(padding):
        total = np.zeros_like(texture)
        count = np.zeros(filled.shape, np.float32)
        for axis, shift in ((0, 1), (0, -1), (1, 1), (1, -1)):
            moved = np.roll(filled, shift, axis=axis)
            edge = [slice(None), slice(None)]
            edge[axis] = 0 if shift == 1 else -1  # no wrap-around from the opposite side
            moved[tuple(edge)] = False
            total += np.roll(texture * filled[..., None], shift, axis=axis) * moved[..., None]
            count += moved
        grown = ~filled & (count > 0)
        texture[grown] = total[grown] / count[grown][:, None]
        filled = filled | grown
    return texture
