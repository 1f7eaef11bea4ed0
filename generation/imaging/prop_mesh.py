"""A prop's mesh from a density grid: marching cubes, closed and outward, scaled and stood on the ground.

numpy only (scikit-image for marching cubes, imported on use). The grid is padded with one layer of empty
cells before the surface is extracted, so an object that touches the grid's side is still closed; the faces
are then turned so every normal points out of the object (the signed volume is positive).
"""

from dataclasses import dataclass

import numpy as np

from ..errors import GenerationFailed, missing_dependency

NO_OBJECT = (
    "the shape model found no object in the image: try another seed, or a prompt for one solid object "
    "(the image and its mask are in the output folder)"
)


@dataclass
class PropMesh:
    """Vertices (V, 3) float32 metres, triangles (F, 3) int32, vertex colours (V, 3) float32 linear 0-1, and
    once unwrapped (texture=True) a UV per vertex (V, 2)."""

    vertices: np.ndarray
    faces: np.ndarray
    colours: np.ndarray
    uvs: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        found = {"vertices": self.vertices, "faces": self.faces, "colours": self.colours}
        return found if self.uvs is None else {**found, "uvs": self.uvs}


def extract_surface(
    density: np.ndarray, level: float, low: float, high: float
) -> tuple[np.ndarray, np.ndarray]:
    """The iso-surface density == level of a cubic grid whose first and last samples sit at `low` and
    `high` on each axis (x, y, z = the grid's axes 0, 1, 2): (vertices (V, 3) float64, faces (F, 3) int64),
    closed and outward. Raises GenerationFailed when nothing in the grid reaches the level."""
    density = np.asarray(density, dtype=np.float32)
    if density.ndim != 3 or min(density.shape) < 2:
        raise ValueError(
            f"a density grid is 3-dimensional with at least 2 samples an axis, not {density.shape}"
        )
    if not np.isfinite(density).all():
        raise GenerationFailed(
            "the shape model gave invalid densities (NaN): try again on the CPU or in float32"
        )
    if not (density > level).any():
        raise GenerationFailed(NO_OBJECT)
    try:
        from skimage.measure import marching_cubes
    except ImportError as error:
        raise missing_dependency("scikit-image", "props") from error
    step = (high - low) / (np.array(density.shape) - 1)
    padded = np.pad(density, 1, constant_values=min(float(density.min()), level) - 1.0)
    vertices, faces, _, _ = marching_cubes(padded, level, spacing=tuple(step), allow_degenerate=False)
    # Undo the padding's offset; a surface crossing into the padding is pressed back onto the grid's side.
    vertices = np.clip(vertices - step + low, low, high)
    return orient_outward(vertices, faces.astype(np.int64))


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """The volume a closed mesh encloses, positive when its faces wind counter-clockwise seen from outside."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def orient_outward(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Faces flipped when the mesh's normals point inwards (marching cubes' winding depends on the
    gradient's sign)."""
    if signed_volume(vertices, faces) < 0:
        faces = faces[:, ::-1].copy()
    return vertices, faces


def edge_uses(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each undirected edge (sorted vertex pair) once, with how many faces use it."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return np.unique(np.sort(edges, axis=1), axis=0, return_counts=True)


def is_closed(faces: np.ndarray) -> bool:
    """Every edge is shared by exactly two faces."""
    _, counts = edge_uses(faces)
    return bool(len(counts)) and bool((counts == 2).all())


def is_consistently_oriented(faces: np.ndarray) -> bool:
    """Each directed edge is used once: neighbouring faces run their shared edge in opposite directions."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    _, counts = np.unique(directed, axis=0, return_counts=True)
    return bool((counts == 1).all())


def turn_front(vertices: np.ndarray) -> np.ndarray:
    """TripoSR's frame (z up, the image seen from +x) turned so the image's view is Blender's front view
    (seen from -y): a quarter turn clockwise about z."""
    x, y, z = vertices[:, 0], vertices[:, 1], vertices[:, 2]
    return np.stack([y, -x, z], axis=1)


def place(vertices: np.ndarray, size: float, location=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Vertices scaled so the largest side of their box is `size`, centred over `location` in x and y,
    standing on its z (the lowest vertex at location z)."""
    if not size > 0:
        raise ValueError(f"size must be positive, not {size}")
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    scale = size / max(float((high - low).max()), 1e-12)
    placed = (vertices - [(low[0] + high[0]) / 2, (low[1] + high[1]) / 2, low[2]]) * scale
    return (placed + np.asarray(location, dtype=np.float64)).astype(np.float32)
