"""A texture projected onto several objects from several views, one view at a time (numpy only).

`Projection` holds each object's texels (texture_bake.Texels), what every view's pixels see (depth,
triangle, barycentric weights) and the running blend of the views baked so far. Between views it says what
earlier views already painted as the next view sees it (`known`): the picture to continue and the pixels
covered well enough to keep, so a later view only draws what is new.
"""

from dataclasses import dataclass

import numpy as np

from . import raster, texture_bake
from .cameras import Camera

WELL_COVERED = 0.25  # a texel's best view weight (cos^4) above which later views keep it: about 45 degrees


@dataclass(frozen=True)
class Surface:
    """One object's triangles in world space: vertices (V, 3), triangles (T, 3), per corner UVs (T, 3, 2)
    and unit normals (T, 3, 3)."""

    name: str
    vertices: np.ndarray
    triangles: np.ndarray
    corner_uvs: np.ndarray
    corner_normals: np.ndarray


class Projection:
    """Views baked onto the objects' UV maps at bake_size x bake_size, one at a time."""

    def __init__(self, surfaces: list[Surface], cameras: list[Camera], bake_size: int, occluders=None):
        """`occluders`: (vertices, triangles) in world space of other meshes, which hide what they cover
        in every view's depth map and are never baked."""
        self.surfaces, self.cameras, self.size = list(surfaces), list(cameras), int(bake_size)
        self.texels = [
            texture_bake.sample_texels(self.size, s.vertices, s.triangles, s.corner_uvs, s.corner_normals)
            for s in self.surfaces
        ]
        offsets = np.cumsum([0] + [len(s.vertices) for s in self.surfaces])
        self._vertices = np.concatenate([s.vertices for s in self.surfaces])
        self._triangles = np.concatenate(
            [s.triangles + o for s, o in zip(self.surfaces, offsets, strict=False)]
        )
        # Which object each of the combined triangles belongs to (-1: an occluder), and its index there.
        counts = [len(s.triangles) for s in self.surfaces]
        self._owner = np.repeat(np.arange(len(self.surfaces)), counts)
        self._local = np.concatenate([np.arange(count) for count in counts])
        if occluders is not None and len(occluders[1]):
            vertices, triangles = occluders
            self._triangles = np.concatenate([self._triangles, triangles + len(self._vertices)])
            self._vertices = np.concatenate([self._vertices, vertices])
            self._owner = np.concatenate([self._owner, np.full(len(triangles), -1)])
            self._local = np.concatenate([self._local, np.zeros(len(triangles), self._local.dtype)])
        self._seen: dict[int, tuple] = {}
        self._colour = [np.zeros((len(t.index), 3)) for t in self.texels]
        self._weight = [np.zeros(len(t.index)) for t in self.texels]
        self._best = [np.zeros(len(t.index)) for t in self.texels]

    def seen(self, view: int):
        """(depth, triangle, barycentric weights) of what view `view`'s pixels see (computed once)."""
        if view not in self._seen:
            self._seen[view] = raster.visible_surface(self.cameras[view], self._vertices, self._triangles)
        return self._seen[view]

    def depth(self, view: int) -> np.ndarray:
        return self.seen(view)[0]

    def add(self, view: int, image: np.ndarray) -> None:
        """Bake view `view`'s picture (float RGB, H x W x 3) onto every object."""
        baked = texture_bake.View(self.cameras[view], np.asarray(image, np.float32), self.depth(view))
        for k, texels in enumerate(self.texels):
            texture_bake.accumulate(baked, texels, self._colour[k], self._weight[k], self._best[k])

    def colours(self, k: int) -> np.ndarray:
        """Object k's texel colours: the blend of the views so far, unseen texels filled from neighbours."""
        painted = self._weight[k] > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            blend = np.where(painted[:, None], self._colour[k] / self._weight[k][:, None], np.nan)
        texels = self.texels[k]
        return texture_bake.fill_unpainted(texels.points, texels.normals, blend, painted)

    def _blend_texture(self, k: int) -> np.ndarray:
        painted = self._weight[k] > 0
        flat = np.zeros((self.size * self.size, 3), np.float32)
        flat[self.texels[k].index[painted]] = self._colour[k][painted] / self._weight[k][painted, None]
        return flat.reshape(self.size, self.size, 3)

    def textures(self) -> list[np.ndarray]:
        """Each object's texture (bake_size x bake_size RGB float32, row 0 at the top)."""
        return [texture_bake.texture(t, self.colours(k)) for k, t in enumerate(self.texels)]

    def coverage(self) -> float:
        """The share of all objects' island texels some view painted."""
        painted = sum(int((w > 0).sum()) for w in self._weight)
        return painted / max(1, sum(len(w) for w in self._weight))

    def known(self, view: int) -> tuple[np.ndarray, np.ndarray]:
        """What the views baked so far show from view `view`: the picture (H x W x 3; their blend where an
        object is seen and painted, 0 elsewhere) and the pixels covered well enough to keep (H x W bool).
        Nothing is filled here: what is not kept is drawn again."""
        textures = [self._blend_texture(k) for k in range(len(self.texels))]
        depth, triangle, weights = self.seen(view)
        height, width = depth.shape
        picture = np.zeros((height, width, 3), np.float32)
        keep = np.zeros((height, width), bool)
        rows, cols = np.nonzero(triangle >= 0)
        owner = self._owner[triangle[rows, cols]]
        for k, texels in enumerate(self.texels):
            mine = owner == k
            r, c = rows[mine], cols[mine]
            uv = np.einsum(
                "ij,ijk->ik", weights[r, c], self.surfaces[k].corner_uvs[self._local[triangle[r, c]]]
            )
            col = np.clip((uv[:, 0] * self.size).astype(np.int64), 0, self.size - 1)
            row = np.clip(((1.0 - uv[:, 1]) * self.size).astype(np.int64), 0, self.size - 1)
            picture[r, c] = textures[k][row, col]
            best = np.zeros(self.size * self.size)
            best[texels.index] = self._best[k]
            keep[r, c] = best[row * self.size + col] >= WELL_COVERED
        return picture, keep
