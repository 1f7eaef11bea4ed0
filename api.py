"""Promptscape from Python: the console, scripts and `blender -b`.

    from bl_ext.user_default.promptscape import api
    world = api.generate_world("alpine meadow at golden hour, snowy peaks", seed=7)
    mat = api.generate_material("mossy cobblestones", objects=[bpy.context.active_object])

Every function waits for its result by default and returns the new World or Material. With
`wait=False` it returns a `Generation` at once: poll `progress`, call `cancel()`, or `result()`.
Options have the same names as the sidebar's and the CLI's: prompt, negative_prompt, seed, steps,
guidance, width, height, model, scheduler, device, precision, loras (paths, ids or (path, scale)
pairs, stacked on the model for that call); worlds also take exposure, sun
("auto", "on", "off"), sun_strength, strength, pack; materials tiling, normal_strength, height_mode
("BUMP", "DISPLACEMENT"), seamless, pack; both upscale (1, 2, 4: a learned, wrap-aware upscaler; worlds
up to 8192x4096, materials up to 4096x4096), upscaler (an id, a file or a folder) and detail (0 to 0.6:
the model redraws the upscaled image at that strength; generations only). hdr_width is deprecated (use
upscale). Each is declared once, with its range and help, in generation/options.py.
Errors a user can fix raise `PromptscapeError`.
"""

import bpy

from .flow import edits, project, prop, runner, start, upscale, world3d
from .generation.engine import progress
from .generation.errors import Cancelled, PromptscapeError

__all__ = [
    "Generation",
    "PromptscapeError",
    "export_prop",
    "export_world",
    "generate_material",
    "generate_prop",
    "generate_world",
    "inpaint_world",
    "material_from_image",
    "project_texture",
    "remix_material",
    "remix_world",
    "upscale_material",
    "upscale_world",
    "world_depth",
    "world_from_image",
    "world_from_photo",
    "world_mesh",
]


class Generation:
    """A generation in flight: its progress, cancel() and result().

    In background mode (`blender -b`, the bpy module) there is no timer to apply a finished result: reading
    `state`, `done` or `progress` does it, as does `result()`.
    """

    def __init__(self, task: runner.Task):
        self._task = task

    def _poll(self):
        if bpy.app.background:
            runner.tick()

    @property
    def state(self) -> str:
        """queued, loading, running, postprocessing, done, failed or cancelled."""
        self._poll()
        return "cancelled" if self._task.cancelled else getattr(self._task.job, "state", "done")

    @property
    def timings(self) -> dict[str, float]:
        """Seconds spent loading the model, denoising, decoding, post-processing and applying."""
        return {**getattr(self._task.job, "timings", {}), "apply": self._task.apply_seconds}

    @property
    def progress(self) -> progress.Progress:
        """Where it is: `.text` ("step 3 of 25", "upscaling, tile 2 of 8"), `.fraction`, `.state`; it
        unpacks as (step, steps) of the current stage."""
        self._poll()
        return progress.of(self._task.job)

    @property
    def done(self) -> bool:
        """True once the result is applied to the scene, or the generation failed or was cancelled."""
        self._poll()
        return self._task.finished

    def cancel(self):
        """Stop it; nothing is applied to the scene."""
        self._task.cancel()

    def result(self, timeout: float | None = None):
        """Wait for it (applying it to the scene) and return the World or Material; raises on failure."""
        if not runner.wait(self._task, timeout):
            raise TimeoutError(f"Promptscape is still generating after {timeout} s")
        if self._task.error:
            raise PromptscapeError(self._task.error)
        if not self._task.applied:
            raise Cancelled("The generation was cancelled")
        return self._task.result


def _finish(task: runner.Task, wait: bool):
    generation = Generation(task)
    return generation.result() if wait else generation


def generate_world(prompt: str, *, scene=None, wait: bool = True, **options):
    """Generate a 360° HDRI from `prompt` and make it the world of `scene` (default: the current one)."""
    scene = scene or bpy.context.scene
    return _finish(start.start_world(scene, prompt=prompt, **options), wait)


def generate_material(prompt: str, objects=None, *, scene=None, wait: bool = True, **options):
    """Generate a seamless PBR material from `prompt` and put it on `objects` (objects or their names;
    default: the selection)."""
    scene = scene or bpy.context.scene
    return _finish(start.start_material(scene, objects, prompt=prompt, **options), wait)


def world_from_image(path: str, *, scene=None, wait: bool = True, **options):
    """Make the world of `scene` from a 2:1 panorama file (PNG, JPEG, EXR, HDR...); no model needed."""
    scene = scene or bpy.context.scene
    return _finish(start.world_from_image(scene, path, **options), wait)


def material_from_image(path: str, objects=None, *, scene=None, wait: bool = True, **options):
    """Make a PBR material from a texture image and put it on `objects`; no model needed."""
    scene = scene or bpy.context.scene
    return _finish(start.material_from_image(scene, path, objects, **options), wait)


def world_depth(world_or_path=None, *, scene=None, wait: bool = True, **options):
    """Estimate the distance of every pixel of a world (default: the scene's) or a panorama file with a
    depth model; returns the path of the depth map (EXR, metres along each ray; a 16-bit PNG beside it).
    Options: camera_height (metres, sets the scale), depth_model (a Hugging Face id or a folder)."""
    scene = scene or bpy.context.scene
    return _finish(world3d.start_depth(scene, world_or_path or scene.world, **options), wait)


def world_mesh(
    world_or_path=None, depth=None, camera_height: float = 1.6, *, scene=None, wait=True, **options
):
    """A mesh of the world you can stand in (for VR parallax): vertices at the world's depth (estimated, or
    `depth`: a depth map file of your own), textured with the panorama, seen by the camera only; returns
    the object. Options: mesh_resolution, split_angle, depth_model."""
    scene = scene or bpy.context.scene
    given = {"depth": str(depth)} if depth else {}
    task = world3d.start_depth(
        scene, world_or_path or scene.world, mesh=True, camera_height=camera_height, **given, **options
    )
    return _finish(task, wait)


def export_world(world=None, path=None, format: str | None = None, *, scene=None, wait: bool = True):
    """Write a world for game engines and headsets: "glb" (the world mesh with its texture), "cubemap" (six
    faces px, nx, py, ny, pz, nz into the folder `path`, Blender's axes) or "depth" (.exr or .png);
    returns the path. The format comes from the name; a `format` given must agree with it."""
    scene = scene or bpy.context.scene
    if path is None:
        raise PromptscapeError(
            "export_world needs a path: a .glb file, a folder for a cube map, or a depth file"
        )
    return _finish(world3d.export_world(scene, world or scene.world, path, format=format), wait)


def upscale_world(world_or_path=None, *, scene=None, wait: bool = True, **options):
    """Upscale a world (default: the scene's) or a panorama file without generating it again and make it
    the world of `scene`; returns the World. Options: upscale (2 or 4; default the largest up to
    8192x4096), upscaler, strength, pack, exposure."""
    scene = scene or bpy.context.scene
    return _finish(upscale.start_upscale_world(scene, world_or_path or scene.world, **options), wait)


def upscale_material(material, objects=None, *, scene=None, wait: bool = True, **options):
    """Upscale a Promptscape material (default: up to 4096x4096), derive its maps again and put the new
    material where the old one was (or on `objects`); returns the Material. Options: upscale, upscaler,
    tiling, normal_strength, height_mode, pack."""
    scene = scene or bpy.context.scene
    return _finish(upscale.start_upscale_material(scene, material, objects, **options), wait)


def generate_prop(prompt: str, location=None, size: float = 1.0, *, scene=None, wait: bool = True, **options):
    """Make a 3D object from `prompt`: an image of it drawn by the model, cut out, shaped by TripoSR
    (prop_model, default stabilityai/TripoSR), with its colours; its largest side `size` metres, standing on
    the ground at `location` (default: the 3D cursor). Returns the Object. The back is TripoSR's guess."""
    scene = scene or bpy.context.scene
    given = {"location": location} if location is not None else {}
    return _finish(prop.start_prop(scene, prompt=prompt, size=size, **given, **options), wait)


def export_prop(obj=None, path=None, *, wait: bool = True):
    """Write a prop (default: the active object) to a .glb file with its vertex colours; returns the path."""
    if path is None:
        raise PromptscapeError("export_prop needs a path: a .glb file")
    return _finish(prop.export_prop(obj or bpy.context.active_object, path), wait)


def inpaint_world(world_or_path=None, prompt: str = "", *, scene=None, wait: bool = True, **options):
    """Redraw one region of a world (default: the scene's) or a panorama file from `prompt` and make the
    result the world of `scene`; returns the World. The region is `mask=` an equirectangular image (white:
    redraw) or the cone of `yaw` (azimuth counter-clockwise from +X), `pitch` (elevation) and `angle` (its
    radius), in degrees. Outside its feathered edge the world is unchanged, bit for bit. Takes the model
    options of a generation (model, steps, guidance, seed, ...), strength and pack."""
    scene = scene or bpy.context.scene
    return _finish(edits.start_inpaint_world(scene, world_or_path, prompt, **options), wait)


def remix_world(
    world_or_path=None, prompt: str = "", remix_strength: float = 0.5, *, scene=None, wait=True, **options
):
    """Redraw a whole world (default: the scene's) or a panorama file from `prompt` at `remix_strength` (0:
    kept, converted as World from Image; 1: redrawn whole), seamless around the horizon, and make it the
    world of `scene`; returns the World. Takes a generation's model and world options (seed, steps, model,
    exposure, sun, poles, strength, ...)."""
    scene = scene or bpy.context.scene
    task = edits.start_remix_world(scene, world_or_path, prompt, remix_strength=remix_strength, **options)
    return _finish(task, wait)


def remix_material(
    material,
    prompt: str = "",
    remix_strength: float = 0.5,
    objects=None,
    *,
    scene=None,
    wait: bool = True,
    **options,
):
    """Redraw a material's albedo (a Promptscape Material, or a texture file) from `prompt` at
    `remix_strength`, tiling in x and y, derive its maps again and put the new material where the old one
    was (or on `objects`); returns the Material. Takes a generation's model and material options."""
    scene = scene or bpy.context.scene
    task = edits.start_remix_material(
        scene, material, prompt, objects, remix_strength=remix_strength, **options
    )
    return _finish(task, wait)


def world_from_photo(
    path,
    prompt: str = "",
    fov: float | None = None,
    yaw: float = 0.0,
    pitch: float = 0.0,
    *,
    scene=None,
    wait: bool = True,
    **options,
):
    """Grow a photo into a 360° world from `prompt` and make it the world of `scene`; returns the World.
    The photo lies where an upright camera with horizontal field of view `fov` (None: from the photo's
    EXIF 35 mm focal length, else 60°) looking along `yaw`
    (azimuth counter-clockwise from +X) and `pitch` (elevation), in degrees, sees it; the model paints the
    rest, seamless around the horizon. Takes a generation's model and world options (width, height, seed,
    steps, model, exposure, sun, poles, strength, ...)."""
    scene = scene or bpy.context.scene
    given = {"fov": fov} if fov is not None else {}
    task = edits.start_world_from_photo(scene, path, prompt, yaw=yaw, pitch=pitch, **given, **options)
    return _finish(task, wait)


def project_texture(
    prompt: str, objects=None, camera=None, views: int = 1, *, scene=None, wait: bool = True, **options
):
    """Draw a texture from `prompt` as `camera` (default: the scene's) sees `objects` (default: the selected
    meshes), and from `views` - 1 more views around them (1, 2, 4, 6 or 8), each later view continuing what
    earlier ones painted; bake it into each object's UV map (made with Smart UV Project where there is
    none) with the PBR maps, as a new material on each. Returns the Material (a list for several objects).
    Options: bake_size (1024, 2048, 4096), controlnet (an id, folder or file; empty: the curated depth
    ControlNet of the model's family; "none": no depth control), and the generation's options."""
    scene = scene or bpy.context.scene
    return _finish(project.start_project(scene, objects, camera, prompt=prompt, views=views, **options), wait)
