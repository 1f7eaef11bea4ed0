"""Every option of a job, declared once: name, type, range, default, help and the kinds of job it applies to.

The sidebar's properties, the operators' properties, the CLI's flags and the checks of a request (in
Blender and on a server) are all made from this table, so they cannot drift apart: a new option is one
line here. No bpy: the Blender side turns an `Option` into a property (properties.py).
"""

import dataclasses
import math
import numbers
import os
from dataclasses import dataclass

from .engine.memory_plan import MEMORY_MODES
from .engine.quantize import CHOICES as QUANTIZE
from .engine.request import (
    DEVICES,
    MAX_SEED,
    MAX_SIZE,
    MAX_STEPS,
    MIN_SIZE,
    POLES,
    PRECISIONS,
    SCHEDULERS,
    WRAP_MODES,
)
from .engine.upscaler import FACTORS as UPSCALE_FACTORS
from .errors import InvalidRequest
from .setup.depth_models import DEFAULT as DEFAULT_DEPTH_MODEL
from .setup.upscalers import DEFAULT as DEFAULT_UPSCALER

# The kinds of job. A world or material from an image runs no model, so it takes no model options.
GENERATE = frozenset({"world", "material"})
WORLD = frozenset({"world", "world_from_image"})
MATERIAL = frozenset({"material", "material_from_image"})
# A world you can stand in: its depth, its mesh (depth first, when none is given), its exports.
DEPTH = frozenset({"depth", "mesh"})
EXPORT = frozenset({"export"})
# A texture projected onto objects from views of them: a generation, with its own options and no wrap.
PROJECT = frozenset({"project"})
KINDS = GENERATE | WORLD | MATERIAL | DEPTH | EXPORT | PROJECT
# Characters of a prompt: a server's limit too, far above what any supported text encoder reads (77 or
# 512 tokens); a longer one would be stored whole in every file header and cut by the tokenizer anyway.
MAX_TEXT = 2000


@dataclass(frozen=True)
class Option:
    """One option. `type` is str, int, float, bool, or "loras" (LoRAs stacked on the model)."""

    name: str
    type: object
    default: object
    help: str
    kinds: frozenset
    low: float | None = None  # the hard range: outside it a value is an error
    high: float | None = None  # for text: the most characters
    soft_high: float | None = None  # where the sidebar's slider stops (typing more is allowed)
    choices: tuple = ()
    sidebar: bool = False  # stored on the scene and drawn in the sidebar (the scene's value is the default)
    label: str = ""
    choice_labels: tuple = ()  # what the sidebar shows for each choice (default: the choice, capitalised)
    kind_defaults: tuple = ()  # (kind, default) pairs where a kind of job starts from another default
    # Names a model or a file (a path here, an id): a server takes only the names it offers for it, and
    # what it reports (status, files, their metadata) carries the client's name, never its own paths.
    names_a_file: bool = False
    sidebar_default: object = None  # the sidebar's value where the option's own default is "unset"

    def default_for(self, kind: str):
        return dict(self.kind_defaults).get(kind, self.default)

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").title()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


G, W, M = GENERATE | PROJECT, WORLD, MATERIAL
MAX_UPSCALED = {"world": (8192, 4096), "material": (4096, 4096)}  # the largest width and height upscaled


def check_upscaled_size(factor: int, width: int, height: int, target: str) -> None:
    """Refuse, in words, an upscale of a `target` ("world" or "material") beyond MAX_UPSCALED."""
    most_width, most_height = MAX_UPSCALED[target]
    if width * factor > most_width or height * factor > most_height:
        raise InvalidRequest(
            f"upscale={factor} would make {width}x{height} {width * factor}x{height * factor}; a {target} "
            f"is upscaled to at most {most_width}x{most_height}: choose a smaller factor or size"
        )


MAX_DETAIL = 0.6  # beyond it the detail pass draws new things in each window instead of detail
# fmt: off
OPTIONS = (
    Option("prompt", str, "", "What to generate, in words", G, high=MAX_TEXT, sidebar=True),
    Option("negative_prompt", str, "", "What to keep out of the image", G, high=MAX_TEXT, sidebar=True),
    Option("seed", int, None, "Same seed and prompt give the same image (unset: random)", G, 0, MAX_SEED),
    Option("steps", int, None, "Denoising steps: more is slower and finer (unset: the model's own, 25 for "
           "SD and SDXL, 8 Z-Image, 4 FLUX.2 klein, 50 Qwen-Image)", G, 1, MAX_STEPS, sidebar=True,
           sidebar_default=25),
    Option("guidance", float, None, "How closely to follow the prompt (unset: the model's own, 7 for SD and "
           "SDXL, 0 Z-Image Turbo, 4 Qwen-Image)", G, 0.0, 100.0, 20.0, sidebar=True, sidebar_default=7.0),
    Option("width", int, None, "Width in pixels, a multiple of 8 (worlds are 2:1)", G, MIN_SIZE, MAX_SIZE),
    Option("height", int, None, "Height in pixels, a multiple of 8", G, MIN_SIZE, MAX_SIZE),
    Option("model", str, "", "A Hugging Face id, a diffusers folder or a .safetensors file", G,
           names_a_file=True),
    Option("scheduler", str, "default", "The sampler: the model's own, or another", G, choices=SCHEDULERS),
    Option("device", str, "auto", "Where to run: CUDA, then Apple Metal, then the CPU", G, choices=DEVICES),
    Option("precision", str, "auto", "Half precision on GPUs, full on the CPU", G, choices=PRECISIONS),
    Option("loras", "loras", (), "A LoRA file, folder or id to stack on the model, with its weight", G,
           names_a_file=True),
    Option("memory", str, "auto", "Fit the GPU: auto plans from free memory; low always decodes in tiles", G,
           choices=MEMORY_MODES, sidebar=True),
    Option("transformer", str, "", "A transformer file (.safetensors or .gguf) in place of the model's: a "
           "fine-tune or quantisation of a Z-Image, FLUX.2 klein or Qwen-Image model", G, names_a_file=True),
    Option("quantize", str, "auto", "Load a transformer model in 8 or 4 bits to fit an 8-12 GB NVIDIA card "
           "(auto: only as far as the GPU needs; none on the CPU and Apple Metal)", G, choices=QUANTIZE),
    Option("wrap_mode", str, "roll", "How a transformer model's image wraps: roll (latents rolled between "
           "steps) or periodic (rotary positions snapped to whole turns: exact, but it changes frequencies "
           "the model was trained on, so opt-in until measured on real weights); UNet models ignore it",
           G, choices=WRAP_MODES),
    Option("vae", str, "", "A replacement VAE: id, folder or file (SDXL: madebyollin/sdxl-vae-fp16-fix)", G,
           names_a_file=True),
    Option("server", str, "", "A Promptscape server's URL to generate on (empty: this computer)",
           G | DEPTH),
    Option("exposure", float, 0.0, "Brightness of the world in stops", W, -20.0, 20.0, 4.0, sidebar=True),
    Option("sun", str, "auto", "Add a sun where the image shows one (auto), always (on), never (off)", W,
           choices=("auto", "on", "off"), sidebar=True),
    Option("sun_strength", float, 1.0, "Scales the fitted sun (1: as the sky shows it)", W, 0.05, 20.0, 4.0,
           sidebar=True),
    Option("sun_lamp", bool, False, "Carry the sun in a Sun lamp that follows the world (sharp shadows)", W,
           sidebar=True),
    Option("upscale", int, 1, "Make it 2 or 4 times larger with a learned, wrap-aware upscaler (worlds up to "
           "8192x4096, materials up to 4096x4096)", W | M, choices=UPSCALE_FACTORS,
           choice_labels=("Off", "2x", "4x"), sidebar=True),
    Option("upscaler", str, DEFAULT_UPSCALER, "The upscaler: real-esrgan-x4plus, or an ESRGAN-family "
           ".safetensors/.pth file or a folder holding one", W | M, names_a_file=True),
    Option("detail", float, 0.0, "After upscaling, the model redraws the image at this strength for real "
           "detail (0: off; 0.2-0.4 adds detail, more redraws)", G, 0.0, MAX_DETAIL, sidebar=True),
    Option("hdr_width", int, 0, "Deprecated, use upscale: width of the saved HDRI (0: as generated)", W,
           choices=(0, 2048, 4096, 8192), label="HDR Width"),
    Option("strength", float, 1.0, "World light strength", W, 0.0, 1000.0, 10.0, sidebar=True),
    Option("tiling", float, 1.0, "How many times the texture repeats", M, 1e-3, 1e4, 32.0, sidebar=True),
    Option("normal_strength", float, 1.0, "Strength of the normal map", M, 0.0, 20.0, 4.0, sidebar=True),
    Option("height_mode", str, "BUMP", "Bump (shading only) or displacement (Cycles, dense mesh)", M,
           choices=("BUMP", "DISPLACEMENT"), sidebar=True, label="Height"),
    Option("seamless", bool, True, "Tile without visible seams (wrap-around in both directions)",
           frozenset({"material"}), sidebar=True),
    Option("poles", str, "repair", "Poles redrawn on the cube by the model, rows blended, or as drawn", W,
           choices=POLES, kind_defaults=(("world_from_image", "blend"),)),
    Option("pack", bool, False, "Pack the images into the .blend", W | M),
    Option("camera_height", float, 1.6, "Metres from the ground up to the camera: the world's scale", DEPTH,
           0.05, 100.0, 5.0, sidebar=True),
    Option("depth_model", str, DEFAULT_DEPTH_MODEL, "A depth model: a Hugging Face id or a folder", DEPTH,
           names_a_file=True),
    Option("depth", str, "", "Your own depth map instead of an estimate (EXR in metres; 8/16-bit near dark)",
           frozenset({"mesh"}), names_a_file=True),
    Option("mesh_resolution", int, 256, "Columns of the world mesh; it has half as many rows",
           frozenset({"mesh"}), 16, 2048, 1024, sidebar=True),
    Option("split_angle", float, 84.0, "Faces seen more edge-on than this are cut at depth jumps (degrees)",
           frozenset({"mesh"}), 76.0, 89.9, sidebar=True),
    Option("format", str, "glb", "What to export: the world mesh (.glb), six cube faces, or the depth map "
           "(default: from the name)", EXPORT, choices=("glb", "cubemap", "depth")),
    Option("views", int, 1, "Views drawn around the objects: 1 is the camera's; each later view continues "
           "what earlier ones painted", PROJECT, choices=(1, 2, 4, 6, 8), sidebar=True),
    Option("bake_size", int, 2048, "Size of each object's projected texture, in texels", PROJECT,
           choices=(1024, 2048, 4096), sidebar=True),
    Option("controlnet", str, "", "A depth ControlNet: a Hugging Face id, a diffusers folder or a file "
           "(empty: the curated one for the model's family, when downloaded; none: no depth control)",
           PROJECT, names_a_file=True),
    Option("camera", str, "", "The camera to project from (empty: the scene's camera)", PROJECT),
    Option("occluders", bool, False, "Let every other visible mesh of the scene hide what it covers, so no "
           "texel takes the colour of a wall in front of it (off: only the objects projected onto occlude)",
           PROJECT, sidebar=True),
)
# fmt: on
# A prop: an object from a prompt (text -> image -> TripoSR -> mesh). It takes the text-to-image options
# of a generation (a square image, 512 unless given) and its own.
PROP = frozenset({"prop"})
KINDS = KINDS | PROP
PROP_SHARES = (
    "prompt",
    "negative_prompt",
    "seed",
    "steps",
    "guidance",
    "width",
    "height",
    "model",
    "scheduler",
    "device",
    "precision",
    "loras",
    "memory",
    "transformer",
    "quantize",
    "vae",
    "server",
)
PROP_SIZE = 512
OPTIONS = (
    *(dataclasses.replace(option, kinds=option.kinds | PROP, kind_defaults=(
        *option.kind_defaults, *((("prop", PROP_SIZE),) if option.name in ("width", "height") else ())))
      if option.name in PROP_SHARES else option for option in OPTIONS),
    Option("size", float, 1.0, "The prop's largest side, in metres", PROP, 0.001, 1000.0, 10.0),
    Option("location", "location", None, "Where the prop stands: x, y, z of the middle of its base "
           "(unset: the 3D cursor)", PROP),
    Option("texture", bool, False, "Also unwrap the prop (xatlas) and bake its colours into a texture, for "
           "tools that read no vertex colours", PROP),
    Option("prop_model", str, "stabilityai/TripoSR", "The image-to-3D model: TripoSR's Hugging Face id, or "
           "a folder or file holding its model.ckpt", PROP, names_a_file=True),
)  # fmt: skip

# Edits of what exists: remix (img2img of the whole world or texture), a redrawn region of a world and a
# photo grown into a world. They run the generation's model, so they take its options, and make a world or
# a material, so they take what shapes one; a redrawn region keeps the input's light and exposure.
REMIX = frozenset({"remix_world", "remix_material"})
EDIT_WORLDS = frozenset({"remix_world", "inpaint_world", "world_from_photo"})
EDITS = REMIX | EDIT_WORLDS
_EDIT_MODEL = (
    "prompt",
    "negative_prompt",
    "seed",
    "steps",
    "guidance",
    "model",
    "scheduler",
    "device",
    "precision",
    "loras",
    "memory",
    "transformer",
    "quantize",
    "wrap_mode",
    "vae",
)
_EDITS_TAKE = {
    **dict.fromkeys(_EDIT_MODEL, EDITS),
    **dict.fromkeys(("strength",), EDIT_WORLDS),
    **dict.fromkeys(("pack",), EDITS),
    **dict.fromkeys(
        ("exposure", "sun", "sun_strength", "poles"), frozenset({"remix_world", "world_from_photo"})
    ),
    **dict.fromkeys(("sun_lamp",), frozenset({"remix_world"})),
    **dict.fromkeys(("width", "height"), frozenset({"world_from_photo"})),
    **dict.fromkeys(("tiling", "normal_strength", "height_mode"), frozenset({"remix_material"})),
}
_REGION = frozenset({"inpaint_world"})
_AIMED = frozenset({"inpaint_world", "world_from_photo"})
_PHOTO = frozenset({"world_from_photo"})
OPTIONS = (
    *(dataclasses.replace(option, kinds=option.kinds | _EDITS_TAKE.get(option.name, frozenset()))
      for option in OPTIONS),
    Option("remix_strength", float, 0.5, "How much a remix changes the input: 0 keeps it, 1 redraws it "
           "whole", REMIX, 0.0, 1.0),
    Option("mask", str, "", "The region to redraw, painted on the world's equirectangular layout (white: "
           "redraw; grey edges: feather); empty: the cone of yaw, pitch and angle", _REGION,
           names_a_file=True),
    Option("yaw", float, 0.0, "Where it looks: azimuth counter-clockwise from +X, in degrees (the sun "
           "report's convention)", _AIMED, -360.0, 360.0),
    Option("pitch", float, 0.0, "Where it looks: elevation above the horizon, in degrees", _AIMED,
           -90.0, 90.0),
    Option("angle", float, 20.0, "The region's radius in degrees (its edge is feathered a sixth wider)",
           _REGION, 0.0, 54.0),
    Option("fov", float, None, "The photo's horizontal field of view in degrees (unset: from its EXIF 35 "
           "mm focal length, else 60)", _PHOTO, 10.0, 170.0, label="Field of View"),
)  # fmt: skip
KINDS = KINDS | EDITS
BY_NAME = {option.name: option for option in OPTIONS}
# Options that name a model or a file, and those still to come, which must be declared with the mark.
NAMES_A_FILE = tuple(option.name for option in OPTIONS if option.names_a_file)
MARK_WHEN_DECLARED = ("transformer", "controlnet", "prop_model")


def for_kind(kind: str) -> tuple[Option, ...]:
    """The options a kind of job takes, in declaration order."""
    if kind not in KINDS:
        raise InvalidRequest(f"Unknown kind of job {kind!r}; known: {', '.join(sorted(KINDS))}")
    return tuple(option for option in OPTIONS if kind in option.kinds)


def check(values: dict, kind: str) -> dict:
    """Check option values for `kind` against their declaration; return them normalised (a copy).

    Unknown names, wrong types, values out of range and unknown choices raise InvalidRequest naming the
    option and what it accepts. Cross-field rules (2:1 worlds, model paths) are the request's to check.
    """
    declared = {option.name: option for option in for_kind(kind)}
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise InvalidRequest(
            f"Unknown option {', '.join(unknown)} for a {kind.replace('_', ' ')}; "
            f"known: {', '.join(sorted(declared))}"
        )
    return {name: _checked(declared[name], value) for name, value in values.items()}


def _checked(option: Option, value):
    if value is None and option.default is None:
        return None
    if option.type == "location":
        return _location(option, value)
    if option.type == "loras":
        if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
            raise InvalidRequest(f"{option.name}: give a list of LoRAs, not {value!r}")
        return tuple(value)
    if option.type is bool:
        if not isinstance(value, bool):
            raise InvalidRequest(f"{option.name} must be True or False, not {value!r}")
        return value
    if option.type is str:
        if isinstance(value, os.PathLike):  # a model or file given as a Path
            value = os.fspath(value)
        if not isinstance(value, str):
            raise InvalidRequest(f"{option.name} must be text, not {value!r}")
        if option.high is not None and len(value) > option.high:
            raise InvalidRequest(
                f"{option.name} is {len(value)} characters long; the most is {number_text(option.high)} "
                "(more than any text encoder reads): shorten it"
            )
        if option.choices:
            value = _choice(option, value)
        return value
    if option.type is int and not (isinstance(value, numbers.Integral) and not isinstance(value, bool)):
        raise InvalidRequest(f"{option.name} must be a whole number, not {value!r}")
    if option.type is float and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise InvalidRequest(f"{option.name} must be a number, not {value!r}")
    value = option.type(value)
    if option.choices and value not in option.choices:
        raise InvalidRequest(
            f"{option.name} must be one of {', '.join(map(str, option.choices))}, not {value!r}"
        )
    if not math.isfinite(value) or not _in_range(option, value):
        raise InvalidRequest(f"{option.name} must be {range_text(option)}, not {value!r}")
    return value


def number_text(value) -> str:
    """A limit as people write it: 2147483647, not 2.14748e+09; 0.5, not 0.500000."""
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def range_text(option: Option) -> str:
    """ "a number from 0 to 2147483647", "a whole number from 1 to 150", "at least 0", for messages and
    --help."""
    what = "a whole number" if option.type is int else "a number"
    if option.low is not None and option.high is not None:
        return f"{what} from {number_text(option.low)} to {number_text(option.high)}"
    if option.low is not None:
        return f"{what} of at least {number_text(option.low)}"
    if option.high is not None:
        return f"{what} of at most {number_text(option.high)}"
    return what


def _choice(option: Option, value: str) -> str:
    for choice in option.choices:
        if value.lower() == choice.lower():
            return choice
    raise InvalidRequest(f"{option.name} must be one of {', '.join(option.choices)}, not {value!r}")


def _in_range(option: Option, value) -> bool:
    return (option.low is None or value >= option.low) and (option.high is None or value <= option.high)


def _location(option: Option, value) -> tuple[float, float, float]:
    """Three finite numbers (x, y, z), from any sequence of them (a tuple, a list, a Blender Vector)."""
    try:
        numbers_given = tuple(float(number) for number in value)
    except (TypeError, ValueError):
        numbers_given = ()
    if len(numbers_given) != 3 or not all(map(math.isfinite, numbers_given)):
        raise InvalidRequest(f"{option.name} must be three numbers x, y, z (metres), not {value!r}")
    return numbers_given
