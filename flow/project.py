"""A texture projected onto objects (the `project` kind): checks, arrays and cameras on the main thread; the
views drawn and baked in the worker (engine/project_draw.py, imaging/texture_project.py); the files on disk
before the materials go on the objects.
"""

import logging

import bpy
import numpy as np

from ..generation.engine import controlnets, project_draw, worker
from ..generation.errors import Cancelled, InvalidRequest, PromptscapeError
from ..generation.imaging import cameras, raster
from ..generation.imaging.projected_outputs import write_projection
from ..generation.imaging.texture_project import Projection
from ..properties import size_of
from ..scene import material, surface
from . import runner
from .settings import build_request, file_stem, merge_options, output_folder
from .start import material_name

log = logging.getLogger(__name__)

SELECT_MESHES = "Select the mesh objects to texture (or make one active), then try again"
CHECK_SIZE = 128  # pixels of the quick look that tells whether the camera sees the objects at all


def project_targets(context, objects=None) -> list:
    """The meshes a texture is projected onto: the given ones (objects or names), else the selected meshes,
    else the active one; anything else, or a mesh without faces, is refused by name."""
    if objects is None:
        found = [obj for obj in (getattr(context, "selected_objects", None) or []) if obj.type == "MESH"]
        active = getattr(context, "active_object", None)
        if not found and active is not None and active.type == "MESH":
            found = [active]
        if not found:
            raise PromptscapeError(SELECT_MESHES)
    else:
        if isinstance(objects, str | bpy.types.Object):
            objects = [objects]
        found = [material.named_object(entry) for entry in objects]
        if not found:
            raise PromptscapeError(SELECT_MESHES)
    refused = [obj.name for obj in found if obj.type != "MESH" or not material.editable(obj)]
    if refused:
        raise PromptscapeError(
            f"{', '.join(refused)} cannot take a projected texture (not a mesh of this file): give meshes"
        )
    empty = [obj.name for obj in found if not obj.data.polygons]
    if empty:
        raise PromptscapeError(
            f"{', '.join(empty)} has no faces to put a texture on: select meshes with faces"
        )
    return found


def chosen_camera(scene, name: str):
    """The camera named, else the scene's; refused in words when there is none."""
    if name:
        camera = bpy.data.objects.get(name)
        if camera is None or camera.type != "CAMERA":
            raise PromptscapeError(f"No camera named {name!r} in the file: give a camera object's name")
        return camera
    if scene.camera is None:
        raise PromptscapeError("The scene has no camera to project from: add one, or give camera=NAME")
    return scene.camera


def start_project(scene, objects=None, camera=None, **overrides) -> runner.Task:
    """Project a texture drawn from `prompt` onto `objects` (default: the selected meshes) from `camera`
    (default: the scene's) and `views` - 1 more views around them; each object gets its own material."""
    if camera is not None:
        overrides["camera"] = camera.name if isinstance(camera, bpy.types.Object) else str(camera)
    options = merge_options(scene, "project", overrides)
    if options.get("server"):
        raise InvalidRequest("A projected texture is drawn on this computer for now: leave server empty")
    if options.get("detail"):
        raise InvalidRequest("detail applies to upscaled worlds and materials, not to projected textures")
    targets = project_targets(bpy.context, objects)
    camera_obj = chosen_camera(scene, options["camera"])
    if options.get("width") is None or options.get("height") is None:
        width, height = size_of(scene.promptscape.texture_size)
        options["width"] = options.get("width") or width
        options["height"] = options.get("height") or height
    request = build_request(options, "project")
    controlnet = controlnets.resolve(options["controlnet"], request.model)
    first = surface.scene_camera(camera_obj, request.width, request.height)
    meshes = [surface.mesh_arrays(obj, uvs=False) for obj in targets]
    check_camera_sees(first, meshes, camera_obj.name)
    # Objects without a UV map get Smart UV Project's, made on a copy: the scene changes only when applied.
    made_uvs = {obj.name: surface.smart_uvs(obj) for obj in targets if not obj.data.uv_layers}
    notes = [f"Made a UV map for {name} with Smart UV Project" for name in made_uvs]
    meshes = [surface.mesh_arrays(obj, loop_uvs=made_uvs.get(obj.name)) for obj in targets]
    surfaces = [surface.world_surface(mesh) for mesh in meshes]
    hiding = occluding_meshes(scene, targets) if options["occluders"] else None
    points = np.concatenate([s.vertices for s in surfaces])
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    radius = float(np.linalg.norm(points - centre, axis=1).max())
    around = cameras.views_around(first, centre, radius, options["views"])
    recorded = {
        "views": str(options["views"]),
        "bake_size": str(options["bake_size"]),
        "camera": camera_obj.name,
        "controlnet": controlnet.name if controlnet else "",
        "occluders": str(options["occluders"]),
        "objects": ",".join(obj.name for obj in targets),
        "cameras": ";".join(",".join(f"{v:.6g}" for v in np.asarray(c.world).ravel()) for c in around),
    }
    folder = output_folder()
    uids = [(obj.session_uid, obj.name) for obj in targets]
    state = {}

    def draw(_worker, job, pipe, resolved, device):  # worker thread, in place of text-to-image: no bpy
        job.notes.extend(notes)  # said when the job ends, with its result
        job.stage = "finding the texels"
        state["projection"] = projection = Projection(surfaces, around, options["bake_size"], hiding)
        stop_if_cancelled(job, "finding the texels")
        net = controlnet.load(pipe) if controlnet else None
        return project_draw.draw_views(job, pipe, resolved, device, projection, net)

    def postprocess(images, resolved, job):  # worker thread: no bpy here
        projection = state["projection"]
        job.stage = "baking the texture"
        textures = dict(zip([s.name for s in surfaces], projection.textures(), strict=True))
        stop_if_cancelled(job, "baking the texture")
        job.metadata.update(recorded)
        depths = [projection.depth(k) for k in range(len(around))]
        stem = file_stem("project", resolved.prompt, resolved.seed)
        files = write_projection(textures, images, depths, projection.coverage(), folder, stem, job.metadata)
        job.metadata["view_images"] = ",".join(path.name for path in files.view_images)
        job.metadata["coverage"] = f"{files.coverage:.4f}"
        return files

    def apply(task):
        return apply_projection(task.job.outputs, task.metadata, uids, made_uvs)

    job = worker.get_worker().submit(request, on_image=postprocess, edit=draw)
    return runner.start(runner.Task(job, "project", request.prompt, apply))


def occluding_meshes(scene, targets) -> tuple[np.ndarray, np.ndarray]:
    """Every other visible mesh with faces, as one (vertices, triangles) pair in world space: what hides
    the targets from a view without being textured (walls, props in front)."""
    others = [
        surface.mesh_arrays(obj, uvs=False)
        for obj in scene.objects
        if obj.type == "MESH" and obj not in targets and obj.visible_get() and obj.data.polygons
    ]
    return surface.occluders(others)


def stop_if_cancelled(job, stage: str) -> None:
    """Between the stages of the worker's part: a cancel stops before the next one (and before any file)."""
    if job.cancel_requested:
        raise Cancelled(f"cancelled while {stage}; nothing was written")


def check_camera_sees(camera: cameras.Camera, meshes: list, name: str) -> None:
    """Refuse, in words, a camera that sees none of the objects (a quick look at CHECK_SIZE pixels)."""
    scale = CHECK_SIZE / max(camera.width, camera.height)
    small = cameras.Camera(
        camera.world, camera.focal * scale, camera.cx * scale, camera.cy * scale,
        max(1, round(camera.width * scale)), max(1, round(camera.height * scale)), camera.clip_start,
    )  # fmt: skip
    vertices, triangles = surface.occluders(meshes)
    x, y, d = camera.project(vertices)
    with np.errstate(invalid="ignore"):  # a vertex in the frame, or a face across it at the quick look's size
        inside = (d > camera.clip_start) & (x >= 0) & (x <= camera.width) & (y >= 0) & (y <= camera.height)
    if not inside.any() and not np.isfinite(raster.depth_map(small, vertices, triangles)).any():
        raise PromptscapeError(
            f"The camera {name} sees none of {', '.join(mesh.name for mesh in meshes)}: aim it at them "
            "(View > Align Active Camera to View) or choose another camera"
        )


def apply_projection(outputs, metadata: dict, uids: list, made_uvs: dict | None = None) -> object:
    """Each object's material from its written maps, put on it (with the UV map made for it, where it had
    none and still has none); the Material, or a list for several."""
    made = []
    for uid, name in uids:
        obj = next((obj for obj in bpy.data.objects if obj.session_uid == uid), None)
        files = outputs.materials.get(name)
        if obj is None or files is None:
            continue
        maps = material.MaterialMaps(files.albedo, files.normal, files.roughness, files.height, files.ao)
        if name in (made_uvs or {}) and not obj.data.uv_layers:
            if len(obj.data.loops) != len(made_uvs[name]):
                raise PromptscapeError(f"{name} changed while its texture was made: project it again")
            surface.add_uv_map(obj, made_uvs[name])
        words = material_name(metadata.get("prompt", ""))
        built = material.build_material(f"{words} ({name})", maps, metadata)
        try:
            material.assign(built, [obj])
        except Exception:
            material.remove_with_images(built)
            raise
        made.append(built)
    if not made:
        raise PromptscapeError("The objects to texture were deleted while generating; the maps are on disk")
    return made[0] if len(made) == 1 else made


def reapply(entry, objects=None):
    """A projected texture from the history, again: onto the objects it was made for (by name), or onto
    `objects` of the same names."""
    names = [name for name in entry.metadata.get("objects", "").split(",") if name]
    found = [bpy.data.objects[name] for name in names if name in bpy.data.objects]
    if objects is not None:
        found = [obj for obj in project_targets(bpy.context, objects) if obj.name in entry.outputs.materials]
    if not found:
        raise PromptscapeError(
            f"None of the objects this texture was projected onto ({', '.join(names)}) is in the file; its "
            "UVs fit those objects only"
        )
    return apply_projection(entry.outputs, entry.metadata, [(obj.session_uid, obj.name) for obj in found])
