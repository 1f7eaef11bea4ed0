"""A prop's files: its image, its cut-out mask and its mesh (.npz of plain arrays, read without pickle).

Written before the scene changes; the mesh file is what the scene is built from (and what a server sends
back), checked on reading: shapes, types, index ranges, finite values.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import GenerationFailed
from . import image_files
from .hdr import linear_to_srgb
from .prop_mesh import PropMesh

MAX_VERTICES = 20_000_000
MAX_METRES = 1e4


@dataclass(frozen=True)
class PropOutputs:
    """The files of a prop: the drawn image, its cut-out mask (white: the object) and the mesh arrays."""

    image: Path
    mask: Path
    mesh: Path
    texture: Path | None = None  # the baked colours, with texture=True


def write_image(folder, stem: str, image: np.ndarray, metadata: dict) -> Path:
    Path(folder).mkdir(parents=True, exist_ok=True)
    return image_files.write_png(Path(folder) / f"{stem}.png", image, 8, metadata)


def write_mask(folder, stem: str, mask: np.ndarray, metadata: dict) -> Path:
    return image_files.write_png(Path(folder) / f"{stem}-mask.png", mask.astype(np.float32), 8, metadata)


def write_mesh(folder, stem: str, mesh: PropMesh) -> Path:
    """The mesh as an .npz (np.savez writes arrays, never pickles), renamed into place once complete."""
    path = Path(folder) / f"{stem}-mesh.npz"
    partial = path.with_name(f".{path.stem}.partial.npz")
    with open(partial, "wb") as file:
        np.savez(file, **mesh.arrays())
    partial.replace(path)
    return path


def read_mesh(path) -> PropMesh:
    """The mesh of a prop's .npz, checked; GenerationFailed says what is wrong (it may come from a server)."""
    try:
        with np.load(path, allow_pickle=False) as found:
            vertices, faces, colours = (found[name] for name in ("vertices", "faces", "colours"))
            uvs = found["uvs"] if "uvs" in found.files else None
    except (OSError, KeyError, ValueError) as error:
        raise GenerationFailed(
            f"the prop's mesh file {path} cannot be read ({error}): make the prop again"
        ) from None

    def refuse(what: str):
        raise GenerationFailed(f"the prop's mesh is inconsistent: {what}; nothing was added to the scene")

    if vertices.ndim != 2 or vertices.shape[1] != 3 or vertices.dtype.kind != "f":
        refuse(f"vertices are {vertices.dtype} {vertices.shape}, not (count, 3) floats")
    if not 3 <= len(vertices) <= MAX_VERTICES or not np.isfinite(vertices).all():
        refuse(f"{len(vertices)} vertices, or not finite")
    if np.abs(vertices).max() > MAX_METRES:
        refuse(f"vertices beyond {MAX_METRES:g} m")
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.dtype.kind not in "iu" or not len(faces):
        refuse(f"faces are {faces.dtype} {faces.shape}, not (count, 3) whole numbers")
    if faces.min() < 0 or faces.max() >= len(vertices):
        refuse(f"a face names a vertex outside 0..{len(vertices) - 1}")
    if colours.shape != vertices.shape or colours.dtype.kind != "f" or not np.isfinite(colours).all():
        refuse(f"colours are {colours.dtype} {colours.shape}, not finite {vertices.shape}")
    if uvs is not None and (
        uvs.shape != (len(vertices), 2) or uvs.dtype.kind != "f" or not np.isfinite(uvs).all()
    ):
        refuse(f"uvs are {uvs.dtype} {uvs.shape}, not finite ({len(vertices)}, 2)")
    colours = np.clip(colours, 0, 1).astype(np.float32)
    uvs = None if uvs is None else uvs.astype(np.float32)
    return PropMesh(vertices.astype(np.float32), faces.astype(np.int32), colours, uvs)


def write_texture(folder, stem: str, texture: np.ndarray, metadata: dict) -> Path:
    """The baked colours (linear) as an sRGB PNG."""
    return image_files.write_png(Path(folder) / f"{stem}-texture.png", linear_to_srgb(texture), 8, metadata)
