"""Stage 2 for edits of what exists: a redrawn region of a world (and, beside it, remix and a photo grown
into a world). The main thread reads the input's pixels and checks the options; the model stage, the
paste and every file run in the worker thread; the world is applied as any world is.
"""

from pathlib import Path

import bpy
import numpy as np

from ..generation.engine import edits, worker
from ..generation.errors import InvalidRequest, PromptscapeError
from ..generation.imaging import outputs, region_edit
from ..generation.imaging.hdr import HdrOptions, convert_panorama
from ..scene import images, world
from . import runner
from .settings import build_request, file_stem, merge_options, output_folder
from .start import image_path, recorded_settings, world_applier

# Keys of the input's record that describe how it was made, not what it shows: an edit records its own.
_NOT_INHERITED = ("memory_plan", "poles_memory_plan", "upscale", "upscaler", "detail")


def world_source(source) -> tuple[Path, np.ndarray, bool, dict]:
    """(path, pixels, is_hdr, metadata) of a World made by Promptscape or of a panorama file."""
    if isinstance(source, bpy.types.World):
        environment = world.environment_node(source)
        if environment is None or environment.image is None:
            raise PromptscapeError(
                f"The world {source.name!r} has no Promptscape panorama: make or apply one"
            )
        # Under a Sun lamp the world shows its sun-less file; an edit starts from the whole sky.
        path = outputs.with_its_sun(Path(bpy.path.abspath(environment.image.filepath)))
        metadata = images.metadata_of(source)
    else:
        path = image_path(source)
        metadata = {"prompt": path.stem}
    pixels, is_hdr = images.read_pixels(path)
    return path, pixels, is_hdr, metadata


def edit_metadata(inherited: dict, job_metadata: dict, mode: str, width: int, height: int, **keys) -> dict:
    """An edit's record: what the input shows (its sun, its light) under the edit's own request."""
    kept = {name: value for name, value in inherited.items() if name not in _NOT_INHERITED}
    return {**kept, **job_metadata, "mode": mode, "width": str(width), "height": str(height), **keys}


def start_inpaint_world(scene, source, prompt: str, **overrides) -> runner.Task:
    """Redraw one region of a world (default: the scene's) or a panorama file: the cone of `yaw`, `pitch`
    and `angle` (degrees), or the white of `mask` (an equirectangular image). Outside the region's feathered
    edge the new world's radiance is the input's, bit for bit."""
    given = sorted({"yaw", "pitch", "angle"} & set(overrides))
    if overrides.get("mask") and given:
        raise InvalidRequest(
            f"give the region as a mask or as yaw, pitch and angle, not both (also given: {', '.join(given)})"
        )
    options = merge_options(scene, "inpaint_world", {"prompt": prompt, **overrides})
    path, pixels, is_hdr, inherited = world_source(source or scene.world)
    height, width = pixels.shape[:2]
    if abs(width - 2 * height) > max(1, round(0.005 * width)):
        raise InvalidRequest(f"{path.name} is {width}x{height}: a world is a 2:1 equirectangular panorama")
    mask_path = str(image_path(options["mask"])) if options["mask"] else ""
    mask = images.read_pixels(Path(mask_path))[0] if mask_path else None
    region = region_edit.find_region(
        height, width, options["yaw"], options["pitch"], options["angle"], mask
    )  # fmt: skip
    view = region.view
    request = build_request({**options, "width": view.width, "height": view.height}, "image")
    folder = output_folder()
    # The input's exposure is kept (its radiance is pasted as it is): recorded as the input recorded it.
    recorded = recorded_settings({**options, "exposure": float(inherited.get("exposure", 0))}, "world")
    state = {}

    def prepare():  # worker thread: the input as radiance (an 8-bit panorama converted as World from Image)
        radiance = pixels if is_hdr else convert_panorama(pixels, HdrOptions(poles="blend")).radiance
        state["radiance"] = radiance
        state["edit"] = region_edit.prepare_region(radiance, region)
        return state["edit"]

    def postprocess(redrawn, resolved, job):  # worker thread: no bpy here
        job.stage = "pasting the region"
        radiance = region_edit.paste_region(state["radiance"], state["edit"], redrawn)
        keys = region_edit.region_metadata(region, mask_path)
        job.metadata = edit_metadata(
            inherited, job.metadata, "inpaint", width, height, source_image=str(path), **keys, **recorded
        )
        stem = file_stem("world", resolved.prompt, resolved.seed)
        return outputs.write_world_hdr(radiance, folder, stem, job.metadata)

    job = worker.get_worker().submit(
        request,
        on_image=postprocess,
        prepare=edits.needs_pipeline("inpaint", "redrawing a region"),
        edit=edits.redraw_region(prepare),
    )
    apply = world_applier(scene, {**options, "sun_lamp": False})
    return runner.start(runner.Task(job, "world", request.prompt, apply))
