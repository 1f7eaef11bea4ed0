"""Stage 2 for upscaling a result that exists: a world (or a panorama file) or a material, without
generating it again. The upscale and every file run in the worker thread; the main thread reads the
pixels before and builds the world or material after, as for any job.
"""

from pathlib import Path

import bpy

from ..generation import options as declared
from ..generation.engine import worker
from ..generation.engine.upscaler import upscale_in_job
from ..generation.errors import InvalidRequest, PromptscapeError
from ..generation.imaging import outputs
from ..scene import images, material
from . import runner
from .settings import (
    SELECT_OBJECTS,
    default_options,
    file_stem,
    merge_options,
    output_folder,
    upscale_plan,
    without_detail,
)
from .start import apply_material, image_path, world_applier, world_conversion
from .world3d import panorama_of

ALBEDO_SUFFIX = "-albedo.png"


def _factor(overrides: dict, kind: str, width: int, height: int) -> dict:
    """Without an explicit `upscale`, the largest factor that stays within the size limit."""
    if "upscale" in overrides:
        return overrides
    most_width, most_height = declared.MAX_UPSCALED[kind]
    fitting = [f for f in declared.UPSCALE_FACTORS if width * f <= most_width and height * f <= most_height]
    if max(fitting, default=1) == 1:
        raise InvalidRequest(
            f"{width}x{height} is already as large as a {kind} is upscaled to ({most_width}x{most_height})"
        )
    return {**overrides, "upscale": max(fitting)}


def start_upscale_world(scene, source, **overrides) -> runner.Task:
    """Upscale a world (default: the scene's) or a panorama file and make it the world of `scene`."""
    overrides = without_detail(overrides)
    pixels, is_hdr, metadata, label = panorama_of(source)
    overrides = _factor(overrides, "world", pixels.shape[1], pixels.shape[0])
    options = merge_options(scene, "world_from_image", {"poles": "off", **overrides})
    if options["upscale"] == 1:
        raise InvalidRequest("upscale=1 leaves the world as it is: choose 2 or 4")
    plan = upscale_plan(options, "world", pixels.shape[1], pixels.shape[0])
    folder = output_folder()
    stem = file_stem("world", metadata.get("prompt", label), f"x{options['upscale']}")
    convert = world_conversion(pixels, is_hdr, plan, folder, stem, outputs.hdr_options(options))
    job = worker.get_worker().submit_conversion(convert, metadata)
    task = runner.Task(job, "world", f"{label} x{options['upscale']}", world_applier(scene, options))
    return runner.start(task)


def albedo_of(material) -> Path:
    """The albedo file of a Promptscape material (its sRGB image texture)."""
    textures = [n for n in material.node_tree.nodes if n.bl_idname == "ShaderNodeTexImage" and n.image]
    named = [n for n in textures if n.image.filepath.endswith(ALBEDO_SUFFIX)]
    colour = [n for n in textures if n.image.colorspace_settings.name == "sRGB"]
    found = (named or colour or [None])[0]
    if found is None:
        raise PromptscapeError(f"The material {material.name!r} has no albedo image to upscale")
    return Path(bpy.path.abspath(found.image.filepath))


def start_upscale_material(scene, source, objects=None, **overrides) -> runner.Task:
    """Upscale a material's albedo (or an albedo file's), derive its maps again at the new size and put
    the new material where the old one was, or on `objects` (for a file: default the selection)."""
    overrides = without_detail(overrides)
    if isinstance(source, bpy.types.Material):
        if source.node_tree is None:
            raise InvalidRequest(f"The material {source.name!r} has no nodes: pick a Promptscape material")
        albedo, old_name, metadata = albedo_of(source), source.name, images.metadata_of(source)
        users = (
            material.objects_to_texture(bpy.context, objects)
            if objects
            else [
                obj for obj in bpy.data.objects if any(slot.material == source for slot in obj.material_slots)
            ]
        )
    else:
        albedo, old_name = image_path(source), None
        metadata = {"source_image": str(albedo), "prompt": albedo.stem.removesuffix("-albedo")}
        users = material.objects_to_texture(bpy.context, objects)
        if not users:
            raise PromptscapeError(SELECT_OBJECTS)
    pixels, _is_hdr = images.read_pixels(albedo)
    overrides = _factor(overrides, "material", pixels.shape[1], pixels.shape[0])
    options = {**default_options(scene, "material"), **merge_options(scene, "material_from_image", overrides)}
    if options["upscale"] == 1:
        raise InvalidRequest("upscale=1 leaves the material as it is: choose 2 or 4")
    plan = upscale_plan(options, "material_from_image", pixels.shape[1], pixels.shape[0])
    folder = output_folder()
    label = metadata.get("prompt", "") or albedo.stem
    stem = file_stem("material", label, f"x{options['upscale']}")
    uids = [obj.session_uid for obj in users]

    def work(job):  # the worker thread: no bpy here
        texture = upscale_in_job(pixels, job, plan)  # records the upscale in job.metadata
        return outputs.write_material(texture, folder, stem, job.metadata)

    def apply(task):
        return apply_material(task.job.outputs, task.metadata, uids, options, replace=old_name)

    job = worker.get_worker().submit_conversion(work, metadata)
    return runner.start(runner.Task(job, "material", f"{label} x{options['upscale']}", apply))
