"""A mesh of the world you can stand in: a sphere-like grid whose vertices sit at the depth map's distance.

Rings of vertices at equal elevation steps, welded across the seam (the last column's quads join the
first column's vertices; only their UVs say u = 1), closed at each pole with a fan of triangles around one
vertex, every face turned toward the origin. UVs follow Blender's equirectangular mapping exactly, so an
emission material with the panorama looks from the origin as the world does. Faces seen almost edge-on
from the origin are the walls a depth jump would stretch between a near and a far surface: they are left
out, which splits the mesh there. Arrays only; the Blender side turns them into a mesh in one go.
"""

from dataclasses import dataclass

import numpy as np

from .projection import sample_equirect

SPLIT_ANGLE_DEG = 84.0  # faces seen at more than this from their normal are left out (75° stays whole)


@dataclass(frozen=True)
class MeshArrays:
    positions: np.ndarray  # (V, 3) float32, metres
    corners: np.ndarray  # vertex index of every face corner, face after face
    sizes: np.ndarray  # corners per face: 3 at the poles, 4 elsewhere
    uvs: np.ndarray  # (corners, 2) float32
    split: int  # faces left out at depth jumps

    @property
    def face_count(self) -> int:
        return len(self.sizes)


def _direction(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Blender's equirectangular mapping inverted: texture (u, v) -> unit direction."""
    azimuth = 2.0 * np.pi * (0.5 - u)
    elevation = np.pi * (v - 0.5)
    return np.stack(
        [np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)], axis=-1
    )


def build_world_mesh(
    distance: np.ndarray, columns: int = 256, rows: int = 128, split_angle: float = SPLIT_ANGLE_DEG
) -> MeshArrays:
    """The mesh of a world from its distance map (H, W: metres along each ray), `columns` x `rows` faces."""
    if columns < 3 or rows < 2:
        raise ValueError("a world mesh needs at least 3 columns and 2 rows")
    ring_v = 1.0 - np.arange(1, rows) / rows  # rows - 1 rings, top first
    u, v = np.meshgrid(np.arange(columns) / columns, ring_v)
    directions = np.concatenate(
        [_direction(np.array([0.5]), np.array([1.0])), _direction(u, v).reshape(-1, 3),
         _direction(np.array([0.5]), np.array([0.0]))]
    )  # fmt: skip
    depth = sample_equirect(np.asarray(distance, dtype=np.float32)[..., None], directions)[..., 0]
    positions = (directions * depth[:, None]).astype(np.float32)
    south = len(positions) - 1
    j = np.arange(columns)
    i = np.arange(rows - 2)[:, None]

    def ring(row, col):  # the vertex of ring `row` (0: nearest the north pole), column `col`, wrapping
        return 1 + row * columns + col % columns

    # Corner order turns every face toward the origin (checked by the facing test below and the tests).
    north_fans = np.stack([np.zeros(columns, int), ring(0, j), ring(0, j + 1)], axis=1)
    quads = np.stack([ring(i, j), ring(i + 1, j), ring(i + 1, j + 1), ring(i, j + 1)], axis=-1).reshape(-1, 4)
    south_fans = np.stack([np.full(columns, south), ring(rows - 2, j + 1), ring(rows - 2, j)], axis=1)
    u0, u1, mid = j / columns, (j + 1) / columns, (j + 0.5) / columns
    first, last = np.full(columns, ring_v[0]), np.full(columns, ring_v[-1])
    north_uv = np.stack(
        [np.stack([mid, np.ones(columns)], 1), np.stack([u0, first], 1), np.stack([u1, first], 1)], 1
    )
    va, vb = (
        np.broadcast_to(ring_v[:-1, None], (rows - 2, columns)),
        np.broadcast_to(ring_v[1:, None], (rows - 2, columns)),
    )
    uu0, uu1 = np.broadcast_to(u0, va.shape), np.broadcast_to(u1, va.shape)
    quad_uv = np.stack([np.stack([uu0, va], -1), np.stack([uu0, vb], -1), np.stack([uu1, vb], -1),
                        np.stack([uu1, va], -1)], axis=2).reshape(-1, 4, 2)  # fmt: skip
    south_uv = np.stack(
        [np.stack([mid, np.zeros(columns)], 1), np.stack([u1, last], 1), np.stack([u0, last], 1)], 1
    )
    keep = [
        _facing(positions, faces) >= np.cos(np.radians(split_angle))
        for faces in (north_fans, quads, south_fans)
    ]
    parts = [(north_fans, north_uv), (quads, quad_uv), (south_fans, south_uv)]
    corners = np.concatenate([faces[k].ravel() for (faces, _), k in zip(parts, keep, strict=True)])
    uvs = np.concatenate([uv[k].reshape(-1, 2) for (_, uv), k in zip(parts, keep, strict=True)])
    sizes = np.concatenate(
        [np.full(int(k.sum()), faces.shape[1]) for (faces, _), k in zip(parts, keep, strict=True)]
    )
    split = sum(int((~k).sum()) for k in keep)
    return MeshArrays(
        positions, corners.astype(np.int32), sizes.astype(np.int32), uvs.astype(np.float32), split
    )


def _facing(positions: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Cosine between each face's normal and the direction from the face to the origin (1: head on)."""
    corners = positions[faces].astype(np.float64)
    centre = corners.mean(axis=1)
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, -1] - corners[:, 0])
    scale = np.linalg.norm(normal, axis=1) * np.linalg.norm(centre, axis=1)
    return -(normal * centre).sum(axis=1) / np.maximum(scale, 1e-12)
