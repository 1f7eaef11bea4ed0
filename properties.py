"""The scene settings the sidebar draws: what to generate and how.

Stored on the scene (`scene.promptscape`) so they are saved with the .blend. Names match the API's
keyword arguments and the CLI's flags (prompt, negative_prompt, seed, steps, guidance, width, height).
"""

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    FloatProperty,
    FloatVectorProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from .generation import options as declared

# Worlds are equirectangular, so always 2:1. These are generated sizes; the saved HDR width is separate.
WORLD_SIZES = (
    ("1024x512", "1024 x 512", "Fast; SD 1.x models are trained near 512"),
    ("1536x768", "1536 x 768", "Balanced"),
    ("2048x1024", "2048 x 1024", "SDXL-class models; needs more memory"),
)
TEXTURE_SIZES = (
    ("512x512", "512 x 512", "SD 1.x native size"),
    ("768x768", "768 x 768", "SD 2.x native size"),
    ("1024x1024", "1024 x 1024", "SDXL-class models"),
)


def size_of(preset: str) -> tuple[int, int]:
    """Width and height of a size preset such as '1024x512'."""
    width, height = preset.split("x")
    return int(width), int(height)


def use_request(props, metadata: dict[str, str]):
    """Fill the sidebar from a stored request (strings, as tagged on images), so Generate repeats it.

    Every value is read before any is set: a bad one raises ValueError and changes nothing.
    """
    world = metadata.get("mode") == "world"
    seed, steps = int(metadata["seed"]), int(metadata.get("steps", props.steps))
    guidance = float(metadata.get("guidance", props.guidance))
    if metadata.get("mode") == "prop":  # the Prop subpanel makes one from the prompt, seed, steps, guidance
        props.prompt = metadata.get("prop_prompt", "")  # the artist's words, not the wrapped prompt
        props.random_seed = props.model_defaults = False
        props.seed, props.steps, props.guidance = seed, steps, guidance
        return
    projected = metadata.get("mode") == "project"  # its own kind: views and bake size, no seamless
    views, bake_size = metadata.get("views", props.views), metadata.get("bake_size", props.bake_size)
    props.mode = "WORLD" if world else "PROJECT" if projected else "MATERIAL"
    if projected:
        props.views, props.bake_size = str(int(views)), str(int(bake_size))
    props.prompt = metadata.get("prompt", "")
    props.negative_prompt = metadata.get("negative_prompt", "")
    props.random_seed = props.model_defaults = False
    props.seed, props.steps, props.guidance = seed, steps, guidance
    if not world and not projected:  # a world always wraps; the material toggle is left as the artist set it
        props.seamless = metadata.get("mode") != "image"
    preset = f"{metadata.get('width')}x{metadata.get('height')}"
    sizes = WORLD_SIZES if world else TEXTURE_SIZES
    if any(preset == item[0] for item in sizes):  # a size the sidebar offers; others keep the current one
        setattr(props, "world_size" if world else "texture_size", preset)


def blender_property(option: declared.Option, clamp: bool = True, **extra):
    """The Blender property for a declared option: same name, default, range and help everywhere.

    With `clamp` off the range only bounds the slider: an operator called from a script with a value out
    of range must get the check's error in words, not a value Blender quietly clamped.
    """
    common = {"name": option.title, "description": option.help, **extra}
    if option.choices:
        labels = option.choice_labels or [str(choice).capitalize() for choice in option.choices]
        items = [
            (str(choice), label, option.help) for choice, label in zip(option.choices, labels, strict=True)
        ]
        return EnumProperty(items=items, default=str(option.default), **common)
    if option.type is bool:
        return BoolProperty(default=option.default, **common)
    if option.type == "location":  # unset on an operator: the option's own default (the 3D cursor)
        return FloatVectorProperty(size=3, subtype="TRANSLATION", unit="LENGTH", **common)
    if option.type in (int, float):
        prop = IntProperty if option.type is int else FloatProperty
        shown = option.sidebar_default if option.default is None else option.default
        bounds = {"default": shown or 0}
        if option.low is not None:
            bounds.update(min=option.low, max=option.high) if clamp else bounds.update(soft_max=option.high)
            bounds.update(soft_min=option.low)
        if option.soft_high is not None:
            bounds.update(soft_max=option.soft_high, soft_min=max(option.low, -option.soft_high))
        return prop(**bounds, **common)
    return StringProperty(default=option.default if isinstance(option.default, str) else "", **common)


def sidebar_value(option: declared.Option, value):
    """A property's value as the option's type (an enum of numbers stores them as text)."""
    return option.type(value) if option.choices and option.type is not str else value


class PromptscapeSceneProperties(bpy.types.PropertyGroup):
    # What only the sidebar has; every other setting is a declared option (generation/options.py).
    __annotations__ = {
        "mode": EnumProperty(
            name="Mode",
            items=(
                ("WORLD", "World", "A 360° HDRI panorama that lights the scene", "WORLD", 0),
                ("MATERIAL", "Material", "A seamless PBR material on the selected objects", "MATERIAL", 1),
                (
                    "PROJECT",
                    "Project",
                    "A texture drawn from the camera's view onto the selected objects",
                    "MOD_UVPROJECT",
                    2,
                ),
            ),
        ),
        "seed": IntProperty(name="Seed", description="Same seed and prompt give the same image", min=0),
        "random_seed": BoolProperty(
            name="Random Seed", description="Pick a new seed for every generation", default=True
        ),
        "model_defaults": BoolProperty(
            name="Model's Steps and Guidance",
            description="Use the steps and guidance each model is made for (Z-Image Turbo: 8 steps without "
            "guidance; SDXL: 25 and 7): untick to set your own",
            default=True,
        ),
        "world_size": EnumProperty(name="Size", items=WORLD_SIZES, default="1024x512"),
        "texture_size": EnumProperty(name="Size", items=TEXTURE_SIZES, default="512x512"),
        "show_advanced": BoolProperty(name="Advanced", description="Seamless and HDR options", default=False),
        **{option.name: blender_property(option) for option in declared.OPTIONS if option.sidebar},
    }


def register():
    bpy.utils.register_class(PromptscapeSceneProperties)
    bpy.types.Scene.promptscape = PointerProperty(type=PromptscapeSceneProperties)


def unregister():
    del bpy.types.Scene.promptscape
    bpy.utils.unregister_class(PromptscapeSceneProperties)
