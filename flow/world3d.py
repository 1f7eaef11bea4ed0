"""Stage 2 for a world you can stand in: its depth, its mesh and its exports, submitted like generations.

The depth model, the merge, the mesh arrays and every file run in the worker thread; the main thread only
reads the world's pixels (Blender reads every format) and, once the files are on disk, builds the mesh or
runs Blender's glTF exporter. Exports of cube faces and depth maps need no torch.
"""

import shutil
from pathlib import Path

import bpy
import numpy as np

from .. import preferences
from ..generation.engine import depth_estimator, worker, world_depth
from ..generation.errors import Cancelled, InvalidRequest, PromptscapeError
from ..generation.imaging import depth as depth_maps
from ..generation.imaging import image_files, outputs, projection
from ..scene import glb, images, world
from ..scene import world_mesh as mesh_writer
from . import remote, runner
from .settings import blender_path, file_stem, merge_options, output_folder, remote_server

DEPTH_KEY = "promptscape_depth"  # on the World: the depth map made for it, which the depth export copies


def panorama_of(source) -> tuple[np.ndarray, bool, dict, str]:
    """(pixels, is_hdr, metadata, label) of a World made by Promptscape or of a panorama file."""
    if isinstance(source, bpy.types.World):
        environment = world.environment_node(source)
        if environment is None or environment.image is None:
            raise PromptscapeError(
                f"The world {source.name!r} has no Promptscape panorama: make or apply one"
            )
        # Under a Sun lamp the world shows its sun-less file; upscales and depth start from the whole sky.
        path = outputs.with_its_sun(Path(bpy.path.abspath(environment.image.filepath)))
        pixels, is_hdr = images.read_pixels(path)
        return pixels, is_hdr, images.metadata_of(source), source.name
    path = Path(blender_path(source)).expanduser().resolve()  # recorded absolute, never cwd-relative
    pixels, is_hdr = images.read_pixels(path)
    return pixels, is_hdr, {"source_image": str(path), "prompt": path.stem}, path.name


def display_srgb(pixels: np.ndarray, is_hdr: bool) -> np.ndarray:
    """What a depth model (or an LDR export) sees: radiance as a picture, an 8-bit panorama as it is."""
    return outputs.display_srgb(pixels) if is_hdr else pixels


def start_depth(scene, source, mesh: bool = False, **overrides) -> runner.Task:
    """Estimate the depth of a world (or use `depth=` a map of one's own) and, with `mesh`, build its mesh.

    The depth files are written in the worker; the World gets the path, a mesh job puts the mesh in.
    """
    kind = "mesh" if mesh else "depth"
    options = check_depth(scene, kind, overrides)
    pixels, is_hdr, metadata, label = panorama_of(source)
    given = options.get("depth") or ""
    supplied = images.read_pixels(Path(blender_path(given))) if given else None
    depth_model = blender_path(options["depth_model"])  # bpy: here on the main thread, not in work()
    metadata = {**metadata, "mode": kind, "camera_height": f"{options['camera_height']:g}"}
    folder, stem = output_folder(), file_stem("world", metadata.get("prompt", label), "depth")
    device = preferences.get().device
    shape = world_depth.MeshSettings(options["mesh_resolution"], options["split_angle"]) if mesh else None

    def work(job):  # the worker thread: no bpy here
        if supplied is not None:
            values, metres = supplied
            found = depth_maps.depth_from_image(values, metres, options["camera_height"])
        else:
            display = display_srgb(pixels, is_hdr)
            found = world_depth.estimate(display, depth_model, device, options["camera_height"], job)
        return world_depth.write(found, job, folder, stem, metadata, shape)

    if options["server"] and supplied is None:  # a depth map of one's own needs no model: it stays here
        job = remote_depth(kind, options, pixels, is_hdr, metadata, folder, stem)
    else:
        job = worker.get_worker().submit_conversion(work, metadata)

    target_uid = scene.session_uid
    world_uid = source.session_uid if isinstance(source, bpy.types.World) else None

    def apply(task):
        if world_uid is not None:
            for candidate in bpy.data.worlds:
                if candidate.session_uid == world_uid:
                    candidate[DEPTH_KEY] = str(task.job.outputs.exr)
        if not mesh:
            return task.job.outputs.exr
        target = next((s for s in bpy.data.scenes if s.session_uid == target_uid), None)
        if target is None:
            raise PromptscapeError("The scene was deleted meanwhile; the depth files are on disk")
        return mesh_writer.apply_world_mesh(target, task.job.outputs.mesh, task.metadata)

    return runner.start(runner.Task(job, kind, label, apply))


def check_depth(scene, kind: str, overrides: dict) -> dict:
    """The checked options of a depth or mesh job; the depth model it will run must be there (a server
    finds its own; a depth map of one's own needs none). Before any work: a `--mesh` after a generation
    fails here, not after the world has been made."""
    options = merge_options(scene, kind, overrides)
    if not options["server"] and not options.get("depth"):
        depth_estimator.check_source(blender_path(options["depth_model"]))
    return options


def remote_depth(kind: str, options: dict, pixels, is_hdr: bool, metadata: dict, folder: Path, stem: str):
    """The depth (and mesh) job on the server `options["server"]` names: the panorama goes as the 8-bit
    sRGB picture the depth model sees; the files and the mesh's arrays come back (flow/remote.py)."""
    sent = {name: options[name] for name in ("camera_height", "depth_model")}
    if kind == "mesh":
        sent.update(mesh_resolution=options["mesh_resolution"], split_angle=options["split_angle"])
    return remote.RemoteJob(
        remote_server(options["server"]), kind, sent, folder, lambda found: stem,
        upload=display_srgb(pixels, is_hdr), metadata=metadata,
    )  # fmt: skip


def export_world(scene, source, path, **overrides) -> runner.Task:
    """Write a world for other tools: `format` "glb" (the world mesh, with its texture), "cubemap" (six faces
    px, nx, py, ny, pz, nz as EXR and PNG into the folder `path`) or "depth" (the depth map as EXR and
    16-bit PNG). Nothing in the scene changes."""
    target = Path(blender_path(str(path)))
    overrides = {**overrides, "format": export_format(target, overrides.get("format"))}
    options = merge_options(scene, "export", overrides)
    if options["format"] == "glb":
        return _export_glb(scene, source, target)
    if options["format"] == "depth":
        return _export_depth(source, target)
    pixels, is_hdr, metadata, label = panorama_of(source)

    def work(job):
        target.mkdir(parents=True, exist_ok=True)
        size = max(16, pixels.shape[1] // 4)  # a face spans 90°: a quarter of the panorama's width
        text = {str(k): str(v) for k, v in metadata.items()}
        written = []
        for number, (face, image) in enumerate(projection.equirect_to_cube(pixels, size).items(), 1):
            if job.cancel_requested:
                raise Cancelled("cancelled while exporting the cube map; the faces written are kept")
            job.stage, job.step, job.steps = f"writing cube face {face}", number, 6
            if is_hdr:
                written.append(image_files.write_exr(target / f"{face}.exr", image, text))
            written.append(
                image_files.write_png(target / f"{face}.png", display_srgb(image, is_hdr), 8, text)
            )
        return written

    job = worker.get_worker().submit_conversion(work, metadata)
    return runner.start(runner.Task(job, "export", label, lambda task: target))


EXPORT_SUFFIXES = {".glb": "glb", ".exr": "depth", ".png": "depth", "": "cubemap"}


def export_format(path, given: str | None = None) -> str:
    """What an export writes, from its name: a .glb file, a depth map (.exr, .png) or a folder (no
    extension) for the cube faces. A `given` format must agree with the name; a name that says neither
    is refused, never written under another extension."""
    inferred = EXPORT_SUFFIXES.get(Path(path).suffix.lower())
    if inferred is None:
        raise InvalidRequest(
            f"{Path(path).name}: export to a .glb file, a depth map (.exr or .png) or a folder without an "
            "extension (the cube map's faces)"
        )
    if given and given != inferred:
        named = {"glb": "a .glb name", "depth": "a .exr or .png name", "cubemap": "a folder name"}[given]
        raise InvalidRequest(
            f"{Path(path).name} names a {inferred} export, but the format is {given}: give {named}, or "
            "leave the format out to take it from the name"
        )
    return inferred


def _export_depth(source, target: Path) -> runner.Task:
    if not isinstance(source, bpy.types.World) or not source.get(DEPTH_KEY):
        raise InvalidRequest("This world has no depth map yet: run World Depth (api.world_depth) first")
    made = Path(source[DEPTH_KEY])
    stem = target.with_suffix("")

    def work(job):  # copies of the files made with the world: EXR in metres, 16-bit PNG near dark
        stem.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(made, stem.with_suffix(".exr"))
        shutil.copyfile(made.with_suffix(".png"), stem.with_suffix(".png"))
        return [stem.with_suffix(".exr"), stem.with_suffix(".png")]

    job = worker.get_worker().submit_conversion(work, images.metadata_of(source))
    return runner.start(runner.Task(job, "export", source.name, lambda task: stem.with_suffix(".exr")))


def _export_glb(scene, source, target: Path) -> runner.Task:
    """Blender's own glTF exporter, on the world mesh alone; it runs on the main thread, as operators do."""
    mesh = mesh_writer.find_world_mesh(scene)
    if mesh is None:
        raise InvalidRequest("This scene has no world mesh yet: run World Mesh (api.world_mesh) first")
    scene_uid, mesh_uid = scene.session_uid, mesh.session_uid

    def work(job):  # nothing to compute off the main thread: the exporter reads the scene
        return target

    def apply(task):  # after a wait in the queue: the scene and mesh are found again, not kept
        scene = next((s for s in bpy.data.scenes if s.session_uid == scene_uid), None)
        mesh = next((o for o in bpy.data.objects if o.session_uid == mesh_uid), None)
        if scene is None or mesh is None or mesh.name not in scene.objects:
            raise PromptscapeError("The scene or its world mesh was deleted meanwhile: nothing was exported")
        return glb.export_object(scene, mesh, target)

    job = worker.get_worker().submit_conversion(work, images.metadata_of(mesh))
    return runner.start(runner.Task(job, "export", target.name, apply))
