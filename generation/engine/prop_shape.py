"""A prop's shape stage: TripoSR reads the framed cut-out and gives a triplane; its density is sampled on a
grid in chunks (the job's progress, a cancel check between chunks) and, later, its colour at the mesh's
vertices. torch is imported on use.
"""

import time

import numpy as np

from ..errors import Cancelled
from . import triposr_checkpoint

CPU_NOTE = (
    "the shape model runs on the CPU: expect several minutes for the full-size TripoSR (a GPU with 6 GB "
    "takes seconds)"
)
CHUNK = 262_144  # grid points a query: a few hundred MB of activations at TripoSR's width


def _cancelled(job, where: str):
    def check():
        if job is not None and job.cancel_requested:
            raise Cancelled(f"cancelled while {where}; the image and mask written are kept")

    return check


def conditioning(framed: np.ndarray, size: int):
    """The framed cut-out (S, S, 3) in 0-1 resized to size x size, as a (1, 3, size, size) tensor."""
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(framed.transpose(2, 0, 1)))[None].float()
    return F.interpolate(tensor, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def run_shape(model_path, framed: np.ndarray, device: str, job=None):
    """(model, triplane) for the framed image: the model loaded (strictly, cached) and run once."""
    import torch

    start = time.perf_counter()
    if job is not None:
        job.stage, job.step, job.steps = "loading the shape model", 0, 0
    model = triposr_checkpoint.load_triposr(model_path, device)
    if job is not None:
        job.timings["load_prop_model"] = time.perf_counter() - start
        job.stage = "shaping"
    check = _cancelled(job, "shaping the prop")
    check()
    with torch.inference_mode():
        image = conditioning(framed, model.config.image_size).to(device)
        triplane = model(image, cancelled=check)[0]
    return model, triplane


def density_grid(model, triplane, resolution: int, job=None) -> np.ndarray:
    """The density at resolution³ points spanning TripoSR's cube (x, y, z = the grid's axes)."""
    import torch

    radius = model.config.radius
    axis = torch.linspace(-radius, radius, resolution, device=triplane.device)
    total = resolution**3
    chunks = -(-total // CHUNK)
    density = np.empty(total, np.float32)
    check = _cancelled(job, "sampling the prop's shape")
    with torch.inference_mode():
        for number, start in enumerate(range(0, total, CHUNK), 1):
            check()
            if job is not None:
                job.stage, job.step, job.steps = "sampling the shape", number, chunks
            index = torch.arange(start, min(start + CHUNK, total), device=triplane.device)
            x, rest = index // (resolution * resolution), index % (resolution * resolution)
            points = torch.stack([axis[x], axis[rest // resolution], axis[rest % resolution]], dim=1)
            density[start : start + len(index)] = model.query(triplane, points)[0].float().cpu().numpy()
    return density.reshape(resolution, resolution, resolution)


def vertex_colours(model, triplane, vertices: np.ndarray) -> np.ndarray:
    """TripoSR's colour (sRGB, 0-1) at each vertex, in TripoSR's own coordinates."""
    import torch

    colours = []
    with torch.inference_mode():
        for start in range(0, len(vertices), CHUNK):
            points = torch.from_numpy(vertices[start : start + CHUNK].astype(np.float32)).to(triplane.device)
            colours.append(model.query(triplane, points)[1].float().cpu().numpy())
    return np.concatenate(colours) if colours else np.zeros((0, 3), np.float32)
