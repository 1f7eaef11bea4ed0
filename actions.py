"""What the operators, the Python API and the CLI share: options -> request -> worker -> files -> scene.

Options use one vocabulary everywhere (operator properties, API keyword arguments, CLI flags):
prompt, negative_prompt, seed, steps, guidance, width, height, model, ... Unset options come from the
scene's Promptscape settings and the add-on preferences.
"""

import re
import time
from pathlib import Path

import bpy

from . import job_runner, preferences
from .generation import outputs, worker
from .generation.errors import InvalidRequest, PromptscapeError
from .generation.request import GenerationRequest, LoraSpec
from .properties import size_of
from .scene import images, material, world

REQUEST_OPTIONS = (
    "prompt", "negative_prompt", "seed", "steps", "guidance", "width", "height",
    "model", "scheduler", "device", "precision", "loras",
)  # fmt: skip
WORLD_OPTIONS = ("exposure", "sun", "sun_strength", "hdr_width", "strength", "pack")
MATERIAL_OPTIONS = ("tiling", "normal_strength", "height_mode", "seamless", "pack")


def default_options(scene, kind: str) -> dict:
    """The options the sidebar shows for `kind` ("world" or "material"), with the preferences' model."""
    props = scene.promptscape
    prefs = preferences.get()
    width, height = size_of(props.world_size if kind == "world" else props.texture_size)
    return {
        "prompt": props.prompt,
        "negative_prompt": props.negative_prompt,
        "seed": None if props.random_seed else props.seed,
        "steps": props.steps,
        "guidance": props.guidance,
        "width": width,
        "height": height,
        "model": prefs.model,
        "scheduler": "default",
        "device": prefs.device,
        "precision": prefs.precision,
        "loras": (),
        "exposure": props.exposure,
        "sun": props.sun.lower(),
        "sun_strength": props.sun_strength,
        "hdr_width": int(props.hdr_width),
        "strength": props.strength,
        "tiling": props.tiling,
        "normal_strength": props.normal_strength,
        "height_mode": props.height_mode,
        "seamless": props.seamless,
        "pack": False,
    }


def merge_options(scene, kind: str, overrides: dict) -> dict:
    """Defaults for `kind` with `overrides` on top; an unknown name is an error, not silently ignored."""
    allowed = set(REQUEST_OPTIONS) | set(WORLD_OPTIONS if kind == "world" else MATERIAL_OPTIONS)
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise InvalidRequest(
            f"Unknown option {', '.join(unknown)} for a {kind}; known: {', '.join(sorted(allowed))}"
        )
    options = default_options(scene, kind)
    options.update(overrides)
    return options


def output_folder() -> Path:
    """Where results go: //promptscape/ beside a saved .blend, else the preferences' folder or user folder."""
    prefs = preferences.get()
    if bpy.data.filepath:
        folder = Path(bpy.path.abspath("//promptscape"))
    elif prefs.output_folder:
        folder = Path(bpy.path.abspath(prefs.output_folder))
    else:
        folder = Path(bpy.utils.extension_path_user(preferences.__package__, path="outputs", create=True))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".promptscape-write-test-{time.monotonic_ns()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise PromptscapeError(
            f"Cannot write to {folder} ({error.strerror}): save the .blend in a writable folder or set "
            "an Output Folder in Preferences > Add-ons > Promptscape"
        ) from None
    return folder


def file_stem(kind: str, label: str, seed) -> str:
    """A readable, unique-enough file name stem: kind, a slug of the prompt, the seed and the time."""
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:40] or kind
    return f"{kind}-{slug}-{seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def hdr_options(options: dict) -> outputs.HdrOptions:
    return outputs.HdrOptions(
        exposure=options["exposure"],
        sun=options["sun"],
        sun_strength=options["sun_strength"],
        output_width=options["hdr_width"] or None,
    )


def blender_path(path) -> str:
    """A model or LoRA location with Blender's "//" (beside the .blend) made absolute; ids pass through."""
    path = str(path)
    return bpy.path.abspath(path) if path.startswith("//") else path


def lora_specs(loras) -> tuple[LoraSpec, ...]:
    """LoRAs as given by a script: paths or ids, (path, scale) pairs, or LoraSpec objects."""
    specs = []
    for lora in loras or ():
        if isinstance(lora, LoraSpec):
            specs.append(LoraSpec(blender_path(lora.path_or_id), lora.scale))
        elif isinstance(lora, str | Path):
            specs.append(LoraSpec(blender_path(lora)))
        elif isinstance(lora, tuple | list) and len(lora) == 2:
            specs.append(LoraSpec(blender_path(lora[0]), float(lora[1])))
        else:
            raise InvalidRequest(f"loras: {lora!r} is not a path, an id, or a (path, scale) pair")
    return tuple(specs)


def build_request(options: dict, mode: str) -> GenerationRequest:
    """The request for `options`, checked: a bad value raises before any work starts."""
    fields = {name: options[name] for name in REQUEST_OPTIONS}
    fields["loras"] = lora_specs(fields["loras"])
    fields["model"] = blender_path(fields["model"])
    prefs = preferences.get()
    request = GenerationRequest(
        **fields, mode=mode, allow_download=bpy.app.online_access, allow_pickle=prefs.allow_pickle
    )
    return request.validate()


def _scene_by_name(name: str):
    scene = bpy.data.scenes.get(name)
    if scene is None:
        raise PromptscapeError(f"The scene '{name}' was deleted while generating; the result is on disk")
    return scene


def start_world(scene, **overrides) -> job_runner.Task:
    """Generate a world HDRI for `scene` in the background; the task applies it when done."""
    options = merge_options(scene, "world", overrides)
    request = build_request(options, "world")
    folder = output_folder()
    hdr = hdr_options(options)

    def postprocess(image, resolved):  # runs in the worker thread: no bpy here
        stem = file_stem("world", resolved.prompt, resolved.seed)
        return outputs.write_world(image, folder, stem, resolved.to_metadata(), hdr)

    scene_name = scene.name

    def apply(task):
        scene = _scene_by_name(scene_name)
        return world.apply_world(
            scene, task.job.outputs.exr, task.metadata, options["strength"], options["pack"]
        )

    job = worker.get_worker().submit(request, on_image=postprocess)
    return job_runner.start(job_runner.Task(job, "world", request.prompt, apply))


def start_material(scene, objects=None, **overrides) -> job_runner.Task:
    """Generate a seamless PBR material and put it on `objects` (default: the selected, else the active)."""
    targets = material.objects_to_texture(bpy.context, objects)
    if not targets:
        raise PromptscapeError(
            "Select the objects to put the material on (or make one active), then try again"
        )
    options = merge_options(scene, "material", overrides)
    # Seamless wraps the generation in both axes; off, the image is plain (a label, a decal).
    request = build_request(options, "texture" if options["seamless"] else "image")
    folder = output_folder()
    names = [obj.name for obj in targets]

    def postprocess(image, resolved):  # runs in the worker thread: no bpy here
        stem = file_stem("material", resolved.prompt, resolved.seed)
        return outputs.write_material(image, folder, stem, resolved.to_metadata())

    def apply(task):
        return apply_material(task.job.outputs, task.metadata, names, options)

    job = worker.get_worker().submit(request, on_image=postprocess)
    return job_runner.start(job_runner.Task(job, "material", request.prompt, apply))


def apply_material(files, metadata: dict, object_names: list[str], options: dict):
    """Build the material from written map files and assign it to the named objects that still exist."""
    targets = [bpy.data.objects[name] for name in object_names if name in bpy.data.objects]
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
    material.assign(made, targets)
    return made


def material_name(prompt: str) -> str:
    words = " ".join(prompt.split()[:5])
    return f"PS {words}" if words else "PS Material"


class FinishedJob:
    """A job that ran on the spot (conversions of an existing image): same face as a worker job."""

    state = "done"
    done = True
    error = None

    def __init__(self, outputs, metadata: dict[str, str]):
        self.outputs = outputs
        self.metadata = metadata

    def wait(self, timeout=None) -> bool:
        return True

    def cancel(self):
        pass


def image_metadata(path: Path, kind: str) -> dict[str, str]:
    return {"generator": "Promptscape", "mode": kind, "source_image": str(path), "prompt": Path(path).stem}


def world_from_image(scene, path, **overrides) -> job_runner.Task:
    """Turn an existing panorama (LDR or HDR) into the scene's world, without a model or torch."""
    options = merge_options(scene, "world", {"prompt": Path(path).stem, **overrides})
    pixels, is_hdr = images.read_pixels(Path(path))
    metadata = image_metadata(path, "world")
    folder = output_folder()
    stem = file_stem("world", Path(path).stem, "image")
    if is_hdr:
        files = outputs.write_world_hdr(pixels, folder, stem, metadata)
    else:
        files = outputs.write_world(pixels, folder, stem, metadata, hdr_options(options))
    scene_name = scene.name

    def apply(task):
        scene = _scene_by_name(scene_name)
        return world.apply_world(
            scene, task.job.outputs.exr, task.metadata, options["strength"], options["pack"]
        )

    task = job_runner.start(job_runner.Task(FinishedJob(files, metadata), "world", Path(path).name, apply))
    job_runner.tick()
    return task


def material_from_image(scene, path, objects=None, **overrides) -> job_runner.Task:
    """Turn an existing texture image into a PBR material on `objects`, without a model or torch."""
    targets = material.objects_to_texture(bpy.context, objects)
    if not targets:
        raise PromptscapeError(
            "Select the objects to put the material on (or make one active), then try again"
        )
    options = merge_options(scene, "material", {"prompt": Path(path).stem, **overrides})
    pixels, is_hdr = images.read_pixels(Path(path))
    if is_hdr:
        pixels = (pixels / (1.0 + pixels)).clip(0.0, 1.0)  # tone-map float textures into albedo range
    metadata = image_metadata(path, "texture")
    files = outputs.write_material(
        pixels, output_folder(), file_stem("material", Path(path).stem, "image"), metadata
    )
    names = [obj.name for obj in targets]

    def apply(task):
        return apply_material(task.job.outputs, task.metadata, names, options)

    task = job_runner.start(job_runner.Task(FinishedJob(files, metadata), "material", Path(path).name, apply))
    job_runner.tick()
    return task


def reapply(entry: job_runner.HistoryEntry, scene, objects=None):
    """Apply a result from the history again: to `scene`'s world, or as a new material on `objects`."""
    if entry.kind == "world":
        options = default_options(scene, "world")
        return world.apply_world(scene, entry.outputs.exr, entry.metadata, options["strength"])
    targets = material.objects_to_texture(bpy.context, objects)
    if not targets:
        raise PromptscapeError(
            "Select the objects to put the material on (or make one active), then try again"
        )
    options = default_options(scene, "material")
    return apply_material(entry.outputs, entry.metadata, [obj.name for obj in targets], options)
