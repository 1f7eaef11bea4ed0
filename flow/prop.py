"""Stage 2 for a prop: text -> image -> cut-out -> TripoSR -> a coloured mesh standing in the scene.

The request is a text-to-image generation of the wrapped prompt (a square image); the worker runs it, then
the prop's stages (generation/engine/prop_job.py) write the image, the mask and the mesh before the main
thread builds the object. The shape model is found here, on the main thread, so a missing one is refused
with the id to download before anything runs.
"""

import logging
from pathlib import Path

import bpy

from ..generation.engine import devices, prop_image, prop_job, prop_shape, server_trust, worker
from ..generation.engine.triposr_checkpoint import resolve_prop_model
from ..generation.errors import InvalidRequest, PromptscapeError
from ..generation.options import PROP_SIZE
from ..scene import glb, images
from ..scene import prop as prop_writer
from . import remote, runner
from .settings import blender_path, build_request, file_stem, merge_options, output_folder, remote_server

log = logging.getLogger(__name__)


def start_prop(scene, **overrides) -> runner.Task:
    """Make a prop from a prompt in the background; the task puts the object into `scene` when done."""
    options = merge_options(scene, "prop", {**sidebar_defaults(scene, overrides), **overrides})
    # On a server the server finds its own shape model; here it must be downloaded before anything runs.
    model_path = None if options["server"] else resolve_prop_model(blender_path(options["prop_model"]))
    location = options["location"]
    if location is None:
        location = tuple(scene.cursor.location)
    options.update(
        prompt=prop_image.wrap_prompt(options["prompt"]),
        negative_prompt=prop_image.wrap_negative(options["negative_prompt"]),
        width=options["width"] or PROP_SIZE,
        height=options["height"] or PROP_SIZE,
    )
    request = build_request(options, "image")
    folder = output_folder()
    settings = prop_job.PropSettings(
        model_path, options["size"], tuple(location), options["device"], options["texture"]
    )
    if not options["server"] and _on_cpu(options["device"]):
        log.warning("Promptscape: %s", prop_shape.CPU_NOTE)
    recorded = prop_job.recorded(request.prompt, options["prop_model"], settings)

    def postprocess(image, resolved, job):  # the worker thread: no bpy here
        job.metadata.update(recorded)
        stem = file_stem("prop", recorded["prop_prompt"], resolved.seed)
        return prop_job.run_stages(image, settings, folder, stem, job)

    if options["server"]:
        job = _remote(options, tuple(location), folder, recorded["prop_prompt"])
    else:
        job = worker.get_worker().submit(request, on_image=postprocess)
    uid = scene.session_uid

    def apply(task):
        target = next((s for s in bpy.data.scenes if s.session_uid == uid), None)
        if target is None:
            raise PromptscapeError("The scene was deleted while making the prop; its files are on disk")
        name = prop_writer.prop_name(task.metadata.get("prop_prompt", ""))
        outputs = task.job.outputs
        return prop_writer.add_prop(target, outputs.mesh, task.metadata, name, outputs.texture)

    return runner.start(runner.Task(job, "prop", recorded["prop_prompt"], apply))


def _remote(options: dict, location: tuple, folder: Path, label: str):
    """The whole prop on the server `options["server"]` names; the image, mask and mesh come back."""
    server = remote_server(options["server"])
    sent = {name: value for name, value in options.items() if name not in ("server", "device")}
    sent["loras"] = [str(getattr(lora, "path_or_id", lora)) for lora in sent["loras"]]
    sent["location"] = list(location)  # the cursor is this scene's: sent as numbers

    def stem(metadata):
        return file_stem("prop", label, server_trust.seed_of(metadata))

    return remote.RemoteJob(server, "prop", sent, folder, stem)


def sidebar_defaults(scene, overrides: dict) -> dict:
    """The sidebar's seed (unless Random Seed) and its model defaults, as a world or material takes them."""
    props, found = scene.promptscape, {}
    if "seed" not in overrides and not props.random_seed:
        found["seed"] = props.seed
    if props.model_defaults:  # unset: the worker takes the model family's own
        found.update({name: None for name in ("steps", "guidance") if name not in overrides})
    return found


def _on_cpu(device: str) -> bool:
    try:
        return devices.resolve_device(device) == "cpu"
    except PromptscapeError:
        return False  # the job itself says what is wrong with the device


def export_prop(obj, path) -> runner.Task:
    """Write a prop (any mesh object) to a .glb with Blender's glTF exporter, its colours included."""
    target = Path(blender_path(str(path)))
    if target.suffix.lower() != ".glb":
        raise InvalidRequest(f"{target.name}: a prop exports to a .glb file")
    if obj is None or obj.type != "MESH":
        raise InvalidRequest("export a prop: give the prop's object (a mesh)")
    uid = obj.session_uid

    def work(job):  # the exporter reads the scene: it runs in apply, on the main thread
        return target

    def apply(task):
        found = next((o for o in bpy.data.objects if o.session_uid == uid), None)
        if found is None:
            raise PromptscapeError("The prop was deleted meanwhile: nothing was exported")
        scene = found.users_scene[0] if found.users_scene else bpy.context.scene
        return glb.export_object(scene, found, target)

    job = worker.get_worker().submit_conversion(work, images.metadata_of(obj))
    return runner.start(runner.Task(job, "export", target.name, apply))
