"""Stage 2 of a request: submit it. What the operators, the Python API and the CLI share.

Each start_* function checks its options (settings.py), submits the request to the worker and returns a
runner.Task whose apply step builds the world or material on the main thread once the files exist.
"""

from pathlib import Path

import bpy

from .. import preferences
from ..generation.engine import server_trust, worker
from ..generation.engine.upscaler import UpscalePlan, upscale_in_job
from ..generation.errors import InvalidRequest, PromptscapeError
from ..generation.imaging import outputs
from ..generation.imaging.hdr import from_display, linear_to_srgb, to_display
from ..generation.setup import world_presets
from ..scene import images, material, world, world_mesh
from ..scene import prop as prop_writer
from . import remote, runner
from .settings import (
    SELECT_OBJECTS,
    blender_path,
    build_request,
    default_options,
    file_stem,
    merge_options,
    output_folder,
    remote_server,
    upscale_plan,
    without_detail,
)


def _find(collection, uid: int, what: str):
    """A datablock by its session id, which survives renames (names do not identify it for long)."""
    for idblock in collection:
        if idblock.session_uid == uid:
            return idblock
    raise PromptscapeError(
        f"The {what} was deleted while generating; the result is on disk and in the history"
    )


def _submit(request, options: dict, kind: str, postprocess, folder: Path, plan: UpscalePlan):
    """The job for `request`: on the local worker (which readies the upscaler before its first step), or
    on the server the `server` option names."""
    if not options["server"]:
        return worker.get_worker().submit(request, on_image=postprocess, prepare=plan.prepare)
    server = remote_server(options["server"])
    # The server decides its own device (the preferences' device is this computer's).
    sent = {name: value for name, value in options.items() if name not in ("server", "device")}
    sent["loras"] = [str(getattr(lora, "path_or_id", lora)) for lora in sent["loras"]]  # as JSON text

    def stem(metadata):  # named like a local result, once the server says which seed it used
        return file_stem(kind, metadata.get("prompt", ""), server_trust.seed_of(metadata))

    return remote.RemoteJob(server, kind, sent, folder, stem)


def world_applier(scene, options: dict):
    """The apply step of a world task: into `scene`, found again when the result is ready."""
    uid = scene.session_uid

    def apply(task):
        target = _find(bpy.data.scenes, uid, "scene")
        files = task.job.outputs
        return world.apply_world(
            target,
            files.exr,
            task.metadata,
            options["strength"],
            options["pack"],
            sun_lamp=options["sun_lamp"],
            sunless_path=getattr(files, "sunless_exr", None),
        )

    return apply


def start_world(scene, **overrides) -> runner.Task:
    """Generate a world HDRI for `scene` in the background; the task applies it when done.

    Without an explicit model, the world preset of the preferences applies (a model trained on 360°
    panoramas, its trigger words and native size); an explicit `model` always wins.
    """
    options = merge_options(scene, "world", overrides)
    if "model" not in overrides and (preset := world_preset()) is not None:
        options = world_presets.apply(preset, options, set(overrides))
    request = build_request(options, "world")
    folder = output_folder()
    hdr = outputs.hdr_options(options)
    plan = upscale_plan(options, "world", request.width, request.height)
    recorded = recorded_settings(options, "world")

    def postprocess(image, resolved, job):  # runs in the worker thread: no bpy here
        stem = file_stem("world", resolved.prompt, resolved.seed)
        # Upscaled in LDR first: the HDR (and its sun) is made at the final size.
        image = upscale_in_job(image, job, plan)
        # job.metadata: the request with the memory plans that ran and the upscale, as the World gets them.
        job.metadata.update(recorded)
        return outputs.write_world(image, folder, stem, job.metadata, hdr)

    job = _submit(request, options, "world", postprocess, folder, plan)
    return runner.start(runner.Task(job, "world", request.prompt, world_applier(scene, options)))


def world_preset(wait: bool = True):
    """The 360 preset worlds are made with now (None: the plain model of the preferences); `wait=False`
    (the sidebar's draw) answers from the last scan of the model cache, never scanning on the main thread."""
    return world_presets.choose(
        preferences.get().world_model, lambda preset: world_presets.is_downloaded(preset, wait)
    )


def start_material(scene, objects=None, **overrides) -> runner.Task:
    """Generate a seamless PBR material and put it on `objects` (default: the selected, else the active)."""
    targets = material.objects_to_texture(bpy.context, objects)
    if not targets:
        raise PromptscapeError(SELECT_OBJECTS)
    options = merge_options(scene, "material", overrides)
    # Seamless wraps the generation in both axes; off, the image is plain (a label, a decal).
    request = build_request(options, "texture" if options["seamless"] else "image")
    folder = output_folder()
    uids = [obj.session_uid for obj in targets]
    plan = upscale_plan(options, "material", request.width, request.height)

    recorded = recorded_settings(options, "material")

    def postprocess(image, resolved, job):  # runs in the worker thread: no bpy here
        stem = file_stem("material", resolved.prompt, resolved.seed)
        image = upscale_in_job(image, job, plan)
        job.metadata.update(recorded)
        return outputs.write_material(image, folder, stem, job.metadata)

    def apply(task):
        return apply_material(task.job.outputs, task.metadata, uids, options)

    job = _submit(request, options, "material", postprocess, folder, plan)
    return runner.start(runner.Task(job, "material", request.prompt, apply))


def apply_material(files, metadata: dict, object_uids: list[int], options: dict, replace: str | None = None):
    """Build the material from written map files and assign it to those of the objects that still exist;
    with `replace`, into the slots that hold the material of that name (an upscaled one takes its place)."""
    targets = [obj for obj in bpy.data.objects if obj.session_uid in object_uids]
    if not targets:
        raise PromptscapeError("The objects to texture were deleted while generating; the maps are on disk")
    maps = material.MaterialMaps(files.albedo, files.normal, files.roughness, files.height, files.ao)
    made = material.build_material(
        material_name(metadata.get("prompt", "")),
        maps,
        metadata,
        tiling=options["tiling"],
        normal_strength=options["normal_strength"],
        height_mode=options["height_mode"],
        box_mapping=material.needs_box_mapping(targets),
        pack=options["pack"],
    )
    slots = [slot for obj in targets for slot in obj.material_slots if replace and slot.name == replace]
    try:
        if slots:
            material.replace_in_slots(made, slots)
        else:
            material.assign(made, targets)
    except Exception:
        material.remove_with_images(made)
        raise
    return made


def material_name(prompt: str) -> str:
    words = " ".join(prompt.split()[:5])
    return f"PS {words}" if words else "PS Material"


def image_metadata(path: Path, kind: str, pixels) -> dict[str, str]:
    """What a result made from an image records: the image as an absolute path (image_path) and its size
    (an upscale records its factor beside it)."""
    height, width = pixels.shape[:2]
    return {
        "generator": "Promptscape",
        "mode": kind,
        "source_image": str(path),
        "prompt": Path(path).stem,
        "width": str(width),
        "height": str(height),
    }


def world_from_image(scene, path, **overrides) -> runner.Task:
    """Turn an existing panorama (LDR or HDR) into the scene's world, without a model or torch."""
    path = image_path(path)
    options = merge_options(scene, "world_from_image", without_detail(overrides))
    if options["poles"] == "repair":
        raise InvalidRequest(
            "poles='repair' redraws the poles with the model, for generated worlds; for an image use "
            "'blend' (rows blended into one colour) or 'off'"
        )
    pixels, is_hdr = images.read_pixels(Path(path))  # Blender reads every format: main thread
    if is_hdr and (given := sorted({"sun", "sun_strength"} & set(overrides))):
        raise InvalidRequest(
            f"{' and '.join(given)} shape the light made from an 8-bit panorama; {Path(path).name} is "
            "already HDR and holds its own light: leave them out (exposure and hdr_width still apply)"
        )
    # An HDR file is a photographed or rendered world: its poles are right as they are.
    metadata = {**image_metadata(path, "world", pixels), "poles": "off" if is_hdr else options["poles"]}
    metadata.update(recorded_settings(options, "world"))
    folder, stem = output_folder(), file_stem("world", Path(path).stem, "image")
    plan = upscale_plan(options, "world_from_image", pixels.shape[1], pixels.shape[0])
    convert = world_conversion(pixels, is_hdr, plan, folder, stem, outputs.hdr_options(options))
    job = worker.get_worker().submit_conversion(convert, metadata)
    return runner.start(runner.Task(job, "world", Path(path).name, world_applier(scene, options)))


def image_path(path) -> Path:
    """A source image's path as it is recorded: absolute ("//" is beside the .blend), never relative to
    the folder Blender happened to be started in."""
    return Path(blender_path(str(path))).expanduser().resolve()


def world_conversion(pixels, is_hdr: bool, plan, folder: Path, stem: str, hdr: outputs.HdrOptions):
    """The worker's part of a world made from an image (World from Image, an upscale): the panorama or the
    HDR upscaled, then its files. In the worker thread, which keeps a 4K or 8K conversion off Blender's
    UI: no bpy here."""

    def convert(job):
        if is_hdr:
            radiance = upscaled_radiance(pixels, job, plan)
            exposure, width = hdr.exposure, hdr.output_width
            return outputs.write_world_hdr(radiance, folder, stem, job.metadata, exposure, width)
        return outputs.write_world(upscale_in_job(pixels, job, plan), folder, stem, job.metadata, hdr)

    return convert


def upscaled_radiance(radiance, job, plan):
    """HDR radiance upscaled through the display encoding the upscaler was trained on, and back; no
    value beyond the source's range is invented (worker thread)."""
    if plan.factor == 1:
        return radiance
    display, encoding = to_display(radiance)
    return from_display(upscale_in_job(display, job, plan), encoding)


def material_from_image(scene, path, objects=None, **overrides) -> runner.Task:
    """Turn an existing texture image into a PBR material on `objects`, without a model or torch."""
    path = image_path(path)
    targets = material.objects_to_texture(bpy.context, objects)
    if not targets:
        raise PromptscapeError(SELECT_OBJECTS)
    options = merge_options(scene, "material_from_image", without_detail(overrides))
    pixels, is_hdr = images.read_pixels(Path(path))
    metadata = {**image_metadata(path, "texture", pixels), **recorded_settings(options, "material")}
    folder, stem = output_folder(), file_stem("material", Path(path).stem, "image")
    uids = [obj.session_uid for obj in targets]
    plan = upscale_plan(options, "material_from_image", pixels.shape[1], pixels.shape[0])

    def convert(job):  # in the worker thread: no bpy here
        # Radiance: roll the highlights off into albedo range, then encode as sRGB like any texture.
        texture = linear_to_srgb(pixels / (1.0 + pixels)) if is_hdr else pixels
        texture = upscale_in_job(texture, job, plan)
        return outputs.write_material(texture, folder, stem, job.metadata)

    def apply(task):
        return apply_material(task.job.outputs, task.metadata, uids, options)

    job = worker.get_worker().submit_conversion(convert, metadata)
    return runner.start(runner.Task(job, "material", Path(path).name, apply))


def reapply(entry: runner.HistoryEntry, scene, objects=None):
    """Apply a result from the history again: to `scene`'s world, as its world mesh, or as a new material on
    `objects`. Depths and exports are files only: there is nothing to apply."""
    if entry.kind == "world":
        options = {**default_options(scene, "world"), **settings_recorded(entry.metadata)}
        return world.apply_world(
            scene,
            entry.outputs.exr,
            entry.metadata,
            options["strength"],
            options["pack"],
            sun_lamp=options["sun_lamp"],
            sunless_path=getattr(entry.outputs, "sunless_exr", None),
        )
    if entry.kind == "mesh":
        return world_mesh.apply_world_mesh(scene, entry.outputs.mesh, entry.metadata)
    if entry.kind == "prop":  # the same object again, where it was made (its vertices are placed)
        name = prop_writer.prop_name(entry.metadata.get("prop_prompt", ""))
        return prop_writer.add_prop(scene, entry.outputs.mesh, entry.metadata, name, entry.outputs.texture)
    if entry.kind != "material":
        raise PromptscapeError(f"A {entry.kind} result is files on disk: {entry.outputs}")
    targets = material.objects_to_texture(bpy.context, objects)
    if not targets:
        raise PromptscapeError(SELECT_OBJECTS)
    options = {**default_options(scene, "material"), **settings_recorded(entry.metadata)}
    return apply_material(entry.outputs, entry.metadata, [obj.session_uid for obj in targets], options)


# What shapes a result beyond its request, recorded with it (files, the World, the history): nothing is
# applied that is not recorded, and applying it again from the history repeats it.
RECORDED = {"world": ("exposure", "strength", "pack"), "material": ("pack",)}


def recorded_settings(options: dict, kind: str) -> dict[str, str]:
    return {
        name: f"{options[name]:g}" if isinstance(options[name], float) else str(options[name])
        for name in RECORDED[kind]
    }


def settings_recorded(metadata: dict) -> dict:
    """The recorded settings back as options (results made before they were recorded have none)."""
    found = {}
    for name in ("exposure", "strength"):
        if name in metadata:
            found[name] = float(metadata[name])
    if "pack" in metadata:
        found["pack"] = metadata["pack"] == "True"
    return found
