"""The scene settings the sidebar draws: what to generate and how.

Stored on the scene (`scene.promptscape`) so they are saved with the .blend. Names match the API's
keyword arguments and the CLI's flags (prompt, negative_prompt, seed, steps, guidance, width, height).
"""

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

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
    props.mode = "WORLD" if world else "MATERIAL"
    props.prompt = metadata.get("prompt", "")
    props.negative_prompt = metadata.get("negative_prompt", "")
    props.random_seed = False
    props.seed, props.steps, props.guidance = seed, steps, guidance
    if not world:  # a world always wraps; the material toggle is left as the artist set it
        props.seamless = metadata.get("mode") != "image"
    preset = f"{metadata.get('width')}x{metadata.get('height')}"
    sizes = WORLD_SIZES if world else TEXTURE_SIZES
    if any(preset == item[0] for item in sizes):  # a size the sidebar offers; others keep the current one
        setattr(props, "world_size" if world else "texture_size", preset)


class PromptscapeSceneProperties(bpy.types.PropertyGroup):
    mode: EnumProperty(
        name="Mode",
        items=(
            ("WORLD", "World", "A 360° HDRI panorama that lights the scene", "WORLD", 0),
            ("MATERIAL", "Material", "A seamless PBR material on the selected objects", "MATERIAL", 1),
        ),
    )
    prompt: StringProperty(name="Prompt", description="What to generate, in words")
    negative_prompt: StringProperty(name="Negative Prompt", description="What to keep out of the image")
    seed: IntProperty(name="Seed", description="Same seed and prompt give the same image", min=0)
    random_seed: BoolProperty(
        name="Random Seed", description="Pick a new seed for every generation", default=True
    )
    steps: IntProperty(
        name="Steps", description="Denoising steps: more is slower and finer", default=25, min=1, max=150
    )
    guidance: FloatProperty(
        name="Guidance", description="How closely to follow the prompt", default=7.0, min=0.0, soft_max=20.0
    )
    world_size: EnumProperty(name="Size", items=WORLD_SIZES, default="1024x512")
    texture_size: EnumProperty(name="Size", items=TEXTURE_SIZES, default="512x512")
    show_advanced: BoolProperty(name="Advanced", description="Seamless and HDR options", default=False)
    # World (HDR) options.
    exposure: FloatProperty(
        name="Exposure", description="Brightness of the world in stops", default=0.0, soft_min=-4, soft_max=4
    )
    sun: EnumProperty(
        name="Sun",
        items=(
            ("AUTO", "Auto", "Add a bright sun where the image shows one"),
            ("ON", "On", "Always add a sun at the brightest spot above the horizon"),
            ("OFF", "Off", "No added sun: overcast, night or interior light"),
        ),
    )
    sun_strength: FloatProperty(
        name="Sun Strength", description="Scales the sun's brightness", default=1.0, min=0.0, soft_max=4.0
    )
    hdr_width: EnumProperty(
        name="HDR Width",
        description="Width of the saved HDRI; upscaled from the generated panorama",
        items=(("0", "As Generated", ""), ("2048", "2K", ""), ("4096", "4K", ""), ("8192", "8K", "")),
    )
    strength: FloatProperty(
        name="Strength", description="World light strength", default=1.0, min=0.0, max=1000.0, soft_max=10.0
    )
    # Material options.
    tiling: FloatProperty(
        name="Tiling",
        description="How many times the texture repeats",
        default=1.0,
        min=0.001,
        max=10000.0,
        soft_max=32.0,
    )
    normal_strength: FloatProperty(name="Normal Strength", default=1.0, min=0.0, max=20.0, soft_max=4.0)
    seamless: BoolProperty(
        name="Seamless",
        description="Generate a texture that tiles without visible seams (wrap-around in both directions)",
        default=True,
    )
    height_mode: EnumProperty(
        name="Height",
        items=(
            ("BUMP", "Bump", "Shading-only relief; works everywhere"),
            ("DISPLACEMENT", "Displacement", "Real displacement in Cycles; needs a dense mesh"),
        ),
    )


def register():
    bpy.utils.register_class(PromptscapeSceneProperties)
    bpy.types.Scene.promptscape = PointerProperty(type=PromptscapeSceneProperties)


def unregister():
    del bpy.types.Scene.promptscape
    bpy.utils.unregister_class(PromptscapeSceneProperties)
