"""A prop's stages after its image, in the worker thread: cut-out, shape, mesh, and the files.

The image stage is the worker's own generation (the prompt wrapped by prop_image.py); what it draws comes
here as `image`. Each stage names itself on the job, counts its steps and checks cancel; every file is
written before the scene is touched (the main thread builds the object from the mesh file).
"""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import Cancelled, GenerationFailed
from ..imaging import prop_files, prop_mask, prop_mesh, prop_texture
from ..imaging.hdr import srgb_to_linear
from . import devices, memory_plan, prop_image, prop_shape

STAGES = ("cutting out", "shaping", "building the mesh", "baking the texture")
# Test seam: called as stage_hook(job, stage) as each of STAGES begins, before its cancel check.
stage_hook = None


@dataclass(frozen=True)
class PropSettings:
    """What the stages need beyond the image: the shape model's weights, the size and place of the prop."""

    model_path: Path
    size: float
    location: tuple[float, float, float]
    device: str = "auto"
    texture: bool = False  # unwrap (xatlas) and bake the colours into a texture


def recorded(prompt: str, prop_model: str, settings: PropSettings) -> dict[str, str]:
    """What a prop records beside its request (the files, the object, the history): the artist's own
    words, the shape model as they named it, the size and the place."""
    return {
        "mode": "prop",
        "prop_prompt": prop_image.unwrap_prompt(prompt),
        "prop_model": prop_model,
        "size": f"{settings.size:g}",
        "location": ",".join(f"{value:g}" for value in settings.location),
        "texture": str(settings.texture),
    }


def run_stages(
    image: np.ndarray, settings: PropSettings, folder: Path, stem: str, job
) -> prop_files.PropOutputs:
    """From the drawn image to the prop's files: image, mask, mesh (the mesh's vertices in metres, placed)."""
    metadata = job.metadata
    image_path = prop_files.write_image(folder, stem, image, metadata)
    _begin(job, "cutting out")
    start = time.perf_counter()
    mask = prop_mask.cutout_mask(image)
    mask_path = prop_files.write_mask(folder, stem, mask, metadata)
    job.timings["mask"] = time.perf_counter() - start
    _begin(job, "shaping")
    start = time.perf_counter()
    device = devices.resolve_device(settings.device)
    _note_memory(job, device)
    framed = prop_mask.framed(image, mask)
    model, triplane = prop_shape.run_shape(settings.model_path, framed, device, job)
    config = model.config
    density = prop_shape.density_grid(model, triplane, config.mesh_resolution, job)
    job.timings["shape"] = time.perf_counter() - start - job.timings.get("load_prop_model", 0.0)
    _begin(job, "building the mesh")
    start = time.perf_counter()
    vertices, faces = prop_mesh.extract_surface(
        density, config.density_threshold, -config.radius, config.radius
    )
    colours = prop_shape.vertex_colours(model, triplane, vertices)
    placed = prop_mesh.place(prop_mesh.turn_front(vertices), settings.size, settings.location)
    mesh = prop_mesh.PropMesh(placed, faces.astype(np.int32), srgb_to_linear(colours).astype(np.float32))
    job.timings["mesh"] = time.perf_counter() - start
    texture_path = None
    if settings.texture:
        _begin(job, "baking the texture")
        start = time.perf_counter()
        mesh = prop_texture.unwrap(mesh)
        texture_path = prop_files.write_texture(folder, stem, prop_texture.bake(mesh), metadata)
        job.timings["texture"] = time.perf_counter() - start
    mesh_path = prop_files.write_mesh(folder, stem, mesh)
    metadata.update(vertices=str(len(mesh.vertices)), triangles=str(len(faces)))
    return prop_files.PropOutputs(image_path, mask_path, mesh_path, texture_path)


def _begin(job, stage: str) -> None:
    if stage_hook is not None:
        stage_hook(job, stage)
    if job.cancel_requested:
        raise Cancelled(f"cancelled before {stage}; the files written are kept and the scene is unchanged")
    job.stage, job.step, job.steps = stage, 0, 0


def _note_memory(job, device: str) -> None:
    """The shape stage's place in memory: slow on the CPU (said so); on a GPU beside the image model, or
    alone once that model has left the device (memory_plan.plan_prop_shape), or refused in words."""
    if device == "cpu":
        job.notes.append(prop_shape.CPU_NOTE[0].upper() + prop_shape.CPU_NOTE[1:])
        return
    pipe, size, request = getattr(job, "pipe", None), getattr(job, "model_size", None), job.resolved
    if pipe is None or size is None:  # no image model loaded here (a server's own stage): nothing to move
        return
    precision = devices.resolve_precision(device, request.precision)
    try:
        where = memory_plan.plan_prop_shape(
            size, precision, job.plan.placement, devices.memory_budget(device)
        )
    except memory_plan.DoesNotFit as error:
        raise GenerationFailed(f"Not enough memory on {device}: {error}") from None
    job.metadata["prop_memory_plan"] = where
    if where == "alone":
        import torch

        pipe.to("cpu")  # its GPU memory back for the shape model; the cache forgets it after this job
        job.release_model = True
        if device == "cuda":
            torch.cuda.empty_cache()
