"""Stage 2 for edits of what exists: a redrawn region of a world (and, beside it, remix and a photo grown
into a world). The main thread reads the input's pixels and checks the options; the model stage, the
paste and every file run in the worker thread; the world is applied as any world is.
"""

from pathlib import Path

import bpy
import numpy as np

from ..generation import options as declared
from ..generation.engine import edits, worker
from ..generation.engine.request import MAX_SIZE, MIN_SIZE
from ..generation.engine.upscaler import UpscalePlan
from ..generation.errors import InvalidRequest, PromptscapeError
from ..generation.imaging import outputs, photo_world, region_edit
from ..generation.imaging.hdr import HdrOptions, convert_panorama, linear_to_srgb
from ..generation.setup import world_presets
from ..properties import size_of
from ..scene import images, material, world
from . import runner
from .settings import SELECT_OBJECTS, build_request, file_stem, merge_options, output_folder, parse_loras
from .start import (
    apply_material,
    image_metadata,
    image_path,
    recorded_settings,
    world_applier,
    world_conversion,
    world_preset,
)
from .upscale import albedo_of

DEFAULT_FOV = 60.0  # degrees: a phone's main camera, about 26 mm equivalent, when the photo does not say
EXIF_BYTES = 1 << 17  # a JPEG's EXIF block is at most 64 KiB, after at most a JFIF header

# Keys of the input's record that describe how it was made, not what it shows: an edit records its own.
_NOT_INHERITED = ("memory_plan", "poles_memory_plan", "upscale", "upscaler", "detail")


def world_source(source) -> tuple[Path, np.ndarray, bool, dict]:
    """(path, pixels, is_hdr, metadata) of a World made by Promptscape or of a panorama file."""
    if source is None:
        raise PromptscapeError("The scene has no world to edit: give a world or a panorama file")
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
            inherited,
            job.metadata,
            "inpaint",
            width,
            height,
            source_image=str(path),
            edit="inpaint_world",
            **keys,
            **recorded,
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


def with_world_preset(options: dict, overrides: dict) -> dict:
    """A whole world's edit (remix, photo world) takes the world preset as Generate World does, unless a
    model is given: a model trained on 360° panoramas, its LoRA and trigger words. A redrawn region is a
    perspective view: the plain model draws it."""
    if "model" in overrides or (preset := world_preset()) is None:
        return options
    return world_presets.apply(preset, options, set(overrides))


def _model_size(width: int, height: int, what: str) -> None:
    """A model draws sizes in multiples of 8 from MIN_SIZE: say so for an input it cannot redraw as is."""
    if width % 8 or height % 8 or min(width, height) < MIN_SIZE or max(width, height) > MAX_SIZE:
        raise InvalidRequest(
            f"{what} is {width}x{height}: a remix needs a width and height that are multiples of 8 from "
            f"{MIN_SIZE} to {MAX_SIZE} pixels; resize it first (or remix_strength=0 converts it as it is)"
        )


def start_remix_world(scene, source, prompt: str, **overrides) -> runner.Task:
    """Redraw a whole world (default: the scene's) or a panorama file at `remix_strength` (0: converted as
    World from Image, no model; 1: redrawn whole), wrapped around the horizon, then made HDR as a
    generated world is (its sun, its poles)."""
    options = merge_options(scene, "remix_world", {"prompt": prompt, **overrides})
    options = with_world_preset(options, overrides)
    path, pixels, is_hdr, inherited = world_source(source or scene.world)
    strength = options["remix_strength"]
    height, width = pixels.shape[:2]
    folder = output_folder()
    metadata = {"remix_strength": f"{strength:g}", "source_image": str(path), "edit": "remix_world"}
    if strength == 0:  # no model: World from Image of the input (its default poles too)
        options["poles"] = "blend" if options["poles"] == "repair" else options["poles"]
        metadata = {**image_metadata(path, "world", pixels), **metadata, "mode": "remix"}
        metadata.update(recorded_settings(options, "world"), poles="off" if is_hdr else options["poles"])
        stem = file_stem("world", inherited.get("prompt", path.stem), "remix")
        convert = world_conversion(pixels, is_hdr, UpscalePlan(), folder, stem, outputs.hdr_options(options))
        job = worker.get_worker().submit_conversion(convert, metadata)
        return runner.start(runner.Task(job, "world", path.name, world_applier(scene, options)))
    _model_size(width, height, path.name)
    request = build_request({**options, "width": width, "height": height}, "world")
    hdr, recorded = outputs.hdr_options(options), recorded_settings(options, "world")

    def postprocess(image, resolved, job):  # worker thread: no bpy here
        job.metadata.update(metadata, mode="remix", **recorded)
        stem = file_stem("world", resolved.prompt, resolved.seed)
        return outputs.write_world(image, folder, stem, job.metadata, hdr)

    job = worker.get_worker().submit(
        request,
        on_image=postprocess,
        prepare=edits.needs_pipeline("remix", "a remix"),
        edit=edits.remix_image(lambda: outputs.display_srgb(pixels) if is_hdr else pixels, strength),
    )
    return runner.start(runner.Task(job, "world", request.prompt, world_applier(scene, options)))


def start_remix_material(scene, source, prompt: str, objects=None, **overrides) -> runner.Task:
    """Redraw a material's albedo (or a texture file) at `remix_strength`, tiling in x and y, derive its
    maps again and put the new material where the old one was, or on `objects` (for a file: default the
    selection). At 0 no model runs: the texture is converted as Material from Image."""
    if isinstance(source, bpy.types.Material):
        if source.node_tree is None:
            raise InvalidRequest(f"The material {source.name!r} has no nodes: pick a Promptscape material")
        path, old_name = albedo_of(source), source.name
        users = objects or [
            obj for obj in bpy.data.objects if any(slot.material == source for slot in obj.material_slots)
        ]
    else:
        path, old_name, users = image_path(source), None, objects
    targets = material.objects_to_texture(bpy.context, users)
    if not targets:
        raise PromptscapeError(SELECT_OBJECTS)
    options = merge_options(scene, "remix_material", {"prompt": prompt, **overrides})
    strength = options["remix_strength"]
    pixels, is_hdr = images.read_pixels(path)
    height, width = pixels.shape[:2]
    folder, uids = output_folder(), [obj.session_uid for obj in targets]
    metadata = {"remix_strength": f"{strength:g}", "source_image": str(path), "mode": "remix"}
    metadata["edit"] = "remix_material"

    def texture():  # worker thread: radiance rolled off into albedo range, as Material from Image does
        return linear_to_srgb(pixels / (1.0 + pixels)) if is_hdr else pixels

    def apply(task):
        return apply_material(task.job.outputs, task.metadata, uids, options, replace=old_name)

    if strength == 0:
        metadata = {
            **image_metadata(path, "texture", pixels),
            **metadata,
            **recorded_settings(options, "material"),
        }
        stem = file_stem("material", path.stem, "remix")
        job = worker.get_worker().submit_conversion(
            lambda job: outputs.write_material(texture(), folder, stem, job.metadata), metadata
        )
        return runner.start(runner.Task(job, "material", path.name, apply))
    _model_size(width, height, path.name)
    request = build_request({**options, "width": width, "height": height}, "texture")
    recorded = recorded_settings(options, "material")

    def postprocess(image, resolved, job):  # worker thread: no bpy here
        job.metadata.update(metadata, **recorded)
        stem = file_stem("material", resolved.prompt, resolved.seed)
        return outputs.write_material(image, folder, stem, job.metadata)

    job = worker.get_worker().submit(
        request,
        on_image=postprocess,
        prepare=edits.needs_pipeline("remix", "a remix"),
        edit=edits.remix_image(texture, strength),
    )
    return runner.start(runner.Task(job, "material", request.prompt, apply))


def start_world_from_photo(scene, path, prompt: str, **overrides) -> runner.Task:
    """Grow a photo (a normal perspective picture) into a world: placed where a camera with horizontal
    field of view `fov` looking along (`yaw`, `pitch`), upright, sees it; the model paints the rest,
    wrapped around the horizon; inside its footprint the world is the photo (its radiance at the world's
    exposure)."""
    options = merge_options(scene, "world_from_photo", {"prompt": prompt, **overrides})
    options = with_world_preset(options, overrides)
    path = image_path(path)
    photo, is_hdr = images.read_pixels(path)
    photo_world.check_photo(photo, path.name)
    if is_hdr:  # radiance rolled off into a picture, as Material from Image does
        photo = linear_to_srgb(photo / (1.0 + photo))
    if options["width"] is None and options["height"] is None:
        options["width"], options["height"] = size_of(scene.promptscape.world_size)
    elif options["height"] is None or options["width"] is None:
        given = options["width"] or 2 * options["height"]
        options["width"], options["height"] = given, given // 2
    yaw, pitch, fov = options["yaw"], options["pitch"], options["fov"]
    if fov is None:  # the camera's own, where the file says it
        with open(path, "rb") as file:
            head = file.read(EXIF_BYTES)
        fov = photo_world.exif_fov(head, photo.shape[1], photo.shape[0]) or DEFAULT_FOV
    request = build_request(options, "world")
    folder, hdr = output_folder(), outputs.hdr_options(options)
    keys = {
        "photo": str(path),
        "edit": "world_from_photo",
        "photo_fov_deg": f"{fov:g}",
        "photo_yaw_deg": f"{yaw:g}",
        "photo_pitch_deg": f"{pitch:g}",
        **recorded_settings(options, "world"),
    }
    state = {}

    def prepare():  # worker thread
        state["placed"] = placed = photo_world.place_photo(
            photo, request.height, request.width, yaw, pitch, fov
        )
        return placed.canvas, placed.paint

    def postprocess(image, resolved, job):  # worker thread: no bpy here
        job.stage = "keeping the photo"
        result = convert_panorama(image, hdr)
        radiance = photo_world.keep_photo(result.radiance, state["placed"], 2.0**hdr.exposure)
        job.metadata.update(outputs.sun_metadata(result.sun), mode="world_from_photo", **keys)
        stem = file_stem("world", resolved.prompt, resolved.seed)
        return outputs.write_world_hdr(radiance, folder, stem, job.metadata)

    job = worker.get_worker().submit(
        request,
        on_image=postprocess,
        prepare=edits.needs_pipeline("inpaint", "growing a photo into a world"),
        edit=edits.outpaint_world(prepare),
    )
    apply = world_applier(scene, {**options, "sun_lamp": False})  # the photo's sun stays in the sky
    return runner.start(runner.Task(job, "world", request.prompt, apply))


# What an edit's record gives back to its call, besides its source, prompt and the edit's own settings.
_REPEATED = ("negative_prompt", "seed", "steps", "guidance", "model", "scheduler", "device", "precision",
             "memory", "vae", "transformer", "quantize", "wrap_mode")  # fmt: skip
_EDIT_KEYS = {
    "remix_world": {"remix_strength": "remix_strength"},
    "remix_material": {"remix_strength": "remix_strength"},
    "inpaint_world": {"region_yaw_deg": "yaw", "region_pitch_deg": "pitch", "region_angle_deg": "angle"},
    "world_from_photo": {"photo_fov_deg": "fov", "photo_yaw_deg": "yaw", "photo_pitch_deg": "pitch",
                         "width": "width", "height": "height"},
}  # fmt: skip


def recorded_edit(metadata: dict) -> tuple[str, str, str, dict]:
    """(kind, source, prompt, options) of the edit that made a result, from its record: the API function
    of that name called with them (api.inpaint_world(source, prompt, **options)) makes it again, seed
    included. Raises ValueError for a record that is not an edit's."""
    kind = metadata.get("edit", "")
    if kind not in _EDIT_KEYS:
        raise ValueError("this result is not an edit (remix, redrawn region or photo world)")
    options = {}
    for key, name in [*((name, name) for name in _REPEATED), *_EDIT_KEYS[kind].items()]:
        if metadata.get(key, "") != "":
            options[name] = declared.BY_NAME[name].type(metadata[key])
    if kind == "inpaint_world" and metadata.get("mask"):
        options = {name: value for name, value in options.items() if name not in ("yaw", "pitch", "angle")}
        options["mask"] = metadata["mask"]
    if metadata.get("loras"):
        options["loras"] = parse_loras(metadata["loras"])
    source = metadata["photo"] if kind == "world_from_photo" else metadata["source_image"]
    return kind, source, metadata.get("prompt", ""), options


def sidebar_record(metadata: dict) -> dict:
    """An edit's record as the sidebar's Use Settings reads a generation's: its prompt, seed, steps and
    guidance for a world or a material."""
    return {**metadata, "mode": "texture" if metadata.get("edit") == "remix_material" else "world"}
