"""Meshes with known geometry and UVs, as plain arrays, for the projection and bake tests."""

import numpy as np

# The six faces of a unit cube: (normal axis, sign); each face sits in one cell of a 3 x 2 UV grid.
_FACES = ((0, 1), (0, -1), (1, 1), (1, -1), (2, 1), (2, -1))


def cube(centre=(0.0, 0.0, 0.0), half=1.0):
    """(vertices (V, 3), triangles (T, 3), corner UVs (T, 3, 2), corner normals (T, 3, 3)): flat-shaded,
    each face its own UV island with a margin, 24 vertices."""
    vertices, triangles, uvs, normals = [], [], [], []
    for face, (axis, sign) in enumerate(_FACES):
        u_axis, v_axis = [a for a in range(3) if a != axis]
        if sign < 0:
            u_axis, v_axis = v_axis, u_axis  # keep the winding outward
        corners = []
        for du, dv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            p = np.zeros(3)
            p[axis], p[u_axis], p[v_axis] = sign, du, dv
            corners.append(np.asarray(centre) + half * p)
        base = len(vertices)
        vertices += corners
        cell_u, cell_v = face % 3, face // 3
        uv = [((cell_u + 0.05 + 0.9 * (du + 1) / 2) / 3, (cell_v + 0.05 + 0.9 * (dv + 1) / 2) / 2)
              for du, dv in ((-1, -1), (1, -1), (1, 1), (-1, 1))]  # fmt: skip
        normal = np.zeros(3)
        normal[axis] = sign
        for a, b, c in ((0, 1, 2), (0, 2, 3)):
            triangles.append((base + a, base + b, base + c))
            uvs.append((uv[a], uv[b], uv[c]))
            normals.append((normal, normal, normal))
    return np.array(vertices), np.array(triangles), np.array(uvs), np.array(normals)


def uv_sphere(radius=1.0, segments=32, rings=16, centre=(0.0, 0.0, 0.0)):
    """A UV sphere as Blender makes one (latitude-longitude UVs with a seam), smooth normals; poles are
    fans of thin triangles. Same tuple as cube()."""
    lon = np.linspace(0.0, 2 * np.pi, segments + 1)
    lat = np.linspace(-np.pi / 2, np.pi / 2, rings + 1)
    lon_grid, lat_grid = np.meshgrid(lon, lat)
    unit = np.stack(
        [np.cos(lat_grid) * np.cos(lon_grid), np.cos(lat_grid) * np.sin(lon_grid), np.sin(lat_grid)], -1
    )
    vertices = (radius * unit + np.asarray(centre)).reshape(-1, 3)
    normals_v = unit.reshape(-1, 3)
    uv_v = np.stack([lon_grid / (2 * np.pi), (lat_grid + np.pi / 2) / np.pi], -1).reshape(-1, 2)
    i, j = np.meshgrid(np.arange(rings), np.arange(segments), indexing="ij")
    a = (i * (segments + 1) + j).ravel()
    b, c, d = a + 1, a + segments + 2, a + segments + 1
    triangles = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    edges = vertices[triangles[:, 1:]] - vertices[triangles[:, :1]]
    area = np.linalg.norm(np.cross(edges[:, 0], edges[:, 1]), axis=1)
    triangles = triangles[area > 1e-12]  # the collapsed halves of the pole quads
    return vertices, triangles, uv_v[triangles], normals_v[triangles]


def colour_field(points):
    """A smooth, distinct colour for every point in space (values within 0.1..0.9)."""
    p = np.asarray(points, np.float64)
    return 0.5 + 0.4 * np.stack([np.sin(1.3 * p[..., 0] + 0.2), np.sin(1.1 * p[..., 1] - 0.4),
                                 np.cos(0.9 * p[..., 2] + 0.7 * p[..., 0])], -1)  # fmt: skip


def seen_points(camera, depth):
    """The world point each pixel sees (H, W, 3), from planar depth (NaN where nothing is seen)."""
    rays = camera.ray_directions()
    forward = -np.asarray(camera.world)[:3, 2]
    distance = np.where(np.isfinite(depth), depth, np.nan)[..., None] / (rays @ forward)[..., None]
    return camera.position + distance * rays
