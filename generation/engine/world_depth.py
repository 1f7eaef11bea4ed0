"""A world's depth job in the worker thread: the depth model on the widened cube views, the depth files,
and for a mesh its arrays. Blender runs it on its own worker; a Promptscape server runs the same code for
a remote job and sends the arrays back in an .npz (numpy arrays only, read without pickle).

No bpy: the panorama comes in as the sRGB pixels the depth model sees.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import Cancelled
from ..imaging import depth as depth_maps
from ..imaging import image_files, world_mesh
from .server_trust import read_depth_arrays

VIEW_SIZE = 518  # Depth Anything's own input size


@dataclass(frozen=True)
class DepthOutputs:
    exr: Path  # float32 metres along each ray
    png: Path  # 16-bit, near dark, far bright: distance / SKY_DISTANCE
    distance: np.ndarray
    mesh: world_mesh.MeshArrays | None = None  # for a mesh job


@dataclass(frozen=True)
class MeshSettings:
    columns: int  # the mesh has half as many rows
    split_angle: float  # degrees: faces seen more edge-on are cut at depth jumps


def estimate(
    display: np.ndarray, source: str, device: str, camera_height: float, job
) -> depth_maps.WorldDepth:
    """The depth model `source` (a folder or a cached Hub id) on the views of `display` (sRGB in [0, 1]),
    with the job's progress ("estimating depth, view 3 of 6") and cancel between views."""
    from . import depth_estimator, devices

    def check_cancel():
        if job.cancel_requested:
            raise Cancelled("cancelled while estimating depth; nothing was changed")

    def progress(done, total):
        job.step, job.steps, job.stage = done, total, f"estimating depth, view {done} of {total}"

    job.stage, job.step, job.steps = "loading the depth model", 0, 0
    start = time.perf_counter()
    model = depth_estimator.estimator(source, devices.resolve_device(device), check_cancel, progress)
    job.timings["load_depth_model"] = time.perf_counter() - start
    view = min(VIEW_SIZE, max(64, display.shape[0] // 2))
    start = time.perf_counter()
    found = depth_maps.estimate_world_depth(display, model, view, camera_height)
    job.timings["depth"] = time.perf_counter() - start
    return found


def write(found: depth_maps.WorldDepth, job, folder: Path, stem: str, metadata: dict,
          mesh: MeshSettings | None = None) -> DepthOutputs:  # fmt: skip
    """`{stem}-depth.exr` (metres) and `{stem}-depth.png` (16-bit) in `folder`, and the mesh's arrays."""
    stem, (exr, png) = image_files.unique_stem(folder, stem, ["-depth.exr", "-depth.png"])
    text = {str(k): str(v) for k, v in metadata.items()}
    image_files.write_exr(exr, np.repeat(found.distance[..., None], 3, axis=2), text)
    image_files.write_png(png, np.clip(found.distance / depth_maps.SKY_DISTANCE, 0.0, 1.0), 16, text)
    arrays = None
    if mesh is not None:
        job.stage = "building the mesh"
        arrays = world_mesh.build_world_mesh(
            found.distance, mesh.columns, mesh.columns // 2, mesh.split_angle
        )
    return DepthOutputs(exr, png, found.distance, arrays)


def save_arrays(outputs: DepthOutputs, path: Path) -> Path:
    """The distance and the mesh arrays as one .npz, for a server's client (np.savez: no pickles)."""
    arrays = {"distance": outputs.distance.astype(np.float32)}
    if outputs.mesh is not None:
        mesh = outputs.mesh
        arrays.update(positions=mesh.positions, corners=mesh.corners, sizes=mesh.sizes, uvs=mesh.uvs,
                      split=np.array(mesh.split))  # fmt: skip
    with open(path, "wb") as file:
        np.savez(file, **arrays)
    return Path(path)


def load_arrays(exr: Path, png: Path, path: Path) -> DepthOutputs:
    """What save_arrays wrote, read without pickles and checked (server_trust): a file from a server
    can hold only arrays of a depth job's shapes and sizes, or the job fails in words."""
    distance, mesh = read_depth_arrays(path)
    return DepthOutputs(Path(exr), Path(png), distance, mesh)
