"""The options of a generation, in one vocabulary for the sidebar, the Python API and the command line.

prompt, negative_prompt, seed, steps, guidance, width, height, model, ... Unset options come from the
scene's Promptscape settings and the add-on preferences; every value is checked before work starts.
"""

import numbers
import re
import time
from pathlib import Path

import bpy

from . import preferences
from .generation import outputs
from .generation.errors import InvalidRequest, PromptscapeError
from .generation.request import GenerationRequest, LoraSpec
from .properties import size_of

REQUEST_OPTIONS = (
    "prompt", "negative_prompt", "seed", "steps", "guidance", "width", "height",
    "model", "scheduler", "device", "precision", "loras",
)  # fmt: skip
WORLD_OPTIONS = ("exposure", "sun", "sun_strength", "hdr_width", "strength", "pack")
MATERIAL_OPTIONS = ("tiling", "normal_strength", "height_mode", "seamless", "pack")
HEIGHT_MODES = ("BUMP", "DISPLACEMENT")
SELECT_OBJECTS = "Select the objects to put the material on (or make one active), then try again"


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
    check_scene_options(options, kind)
    return options


def check_scene_options(options: dict, kind: str):
    """The options that shape the scene rather than the image: a bad value is an error, not a default."""
    ranges = (
        {"strength": (0.0, 1000.0)}
        if kind == "world"
        else {"tiling": (1e-3, 1e4), "normal_strength": (0.0, 20.0)}
    )
    for name, (low, high) in ranges.items():
        value = options[name]
        if not isinstance(value, numbers.Real) or not low <= value <= high:
            raise InvalidRequest(f"{name} must be a number from {low:g} to {high:g}, not {value!r}")
    if kind == "material":
        options["height_mode"] = str(options["height_mode"]).upper()
        if options["height_mode"] not in HEIGHT_MODES:
            raise InvalidRequest(
                f"height_mode must be one of {', '.join(HEIGHT_MODES)}, not {options['height_mode']!r}"
            )
    if not isinstance(options["model"], str | Path) or not str(options["model"]).strip():
        raise InvalidRequest("model: give a Hugging Face id, a diffusers folder or a .safetensors file")


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
        elif isinstance(lora, tuple | list) and len(lora) == 2 and isinstance(lora[1], numbers.Real):
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
    # Never a download as a side effect of Generate: models come from Download Model, with its progress.
    request = GenerationRequest(**fields, mode=mode, allow_download=False, allow_pickle=prefs.allow_pickle)
    return request.validate()
