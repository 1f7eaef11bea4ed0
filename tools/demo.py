"""The main job: a world, a material and a projected texture from prompts, in a .blend with a preview.

Runs offline on a fresh machine: it builds Promptscape's zip with Blender's own builder, installs it
the way a user does, builds the tiny random-weight test model, then goes through the command line's
code path (`blender -c promptscape world ...`, `... material ...` and `... project ...`) and renders a
Cycles preview of a sphere under the new world wearing the new material, beside a crate wearing a texture
projected onto it. The model is a test model with random weights: the images are noise, but every step
a real model takes is taken. Point `--model` at a real one
(a Hugging Face id such as stabilityai/stable-diffusion-xl-base-1.0, or a local folder) on a GPU machine.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="promptscape-demo-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import bpy  # noqa: E402  (after the environment above is set)

import blender_tools  # noqa: E402


def make_scene(blend: Path):
    """An empty file with a sphere, a camera looking at it, and a floor."""
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.mesh.primitive_uv_sphere_add(radius=1.0, location=(0, 0, 1))
    bpy.context.active_object.name = "Sphere"
    bpy.ops.object.shade_smooth()
    bpy.ops.mesh.primitive_cube_add(size=0.7, location=(1.35, -1.2, 0.35), rotation=(0, 0, 0.5))
    bpy.context.active_object.name = "Crate"
    bpy.ops.mesh.primitive_plane_add(size=20)
    bpy.ops.object.camera_add(location=(0, -6, 2.5), rotation=(1.3, 0, 0))
    bpy.context.scene.camera = bpy.context.active_object
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))


def render_preview(path: Path, size: int, samples: int):
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)


def light_from_a_physical_sky(out: Path, addon) -> None:
    """Light, not noise: Blender's physical sky rendered as a panorama, saved as the 8-bit PNG a generator
    would give, made a world by World from Image, and the scene rendered under it beside the scene under
    the sky itself; the figures of tests/physical_sky.py printed."""
    from importlib import import_module

    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(ROOT / "tests"))
    from physical_sky import SKIES, figures, truth
    from pure.synthetic import photograph

    api = import_module(addon.__name__ + ".api")
    hdr = import_module(addon.__name__ + ".generation.imaging.hdr")
    quality = import_module(addon.__name__ + ".generation.imaging.quality")
    world_writer = import_module(addon.__name__ + ".scene.world")
    image_files = import_module(addon.__name__ + ".generation.imaging.image_files")
    sky = SKIES[0]
    found = truth(sky, quality)
    ldr = photograph(found.radiance)
    png = out / "physical-sky.png"
    Image.fromarray((ldr * 255 + 0.5).astype(np.uint8)).save(png)
    scene = bpy.context.scene
    api.world_from_image(str(png), scene=scene)
    ours = out / "lit-by-world-from-image.png"
    render_preview(ours, size=256, samples=16)
    scale = 0.18 / np.median(quality.luminance(found.radiance[: found.radiance.shape[0] // 2]))
    sky_exr = out / "physical-sky-truth.exr"
    image_files.write_exr(sky_exr, found.radiance * scale, {}, compression="none")
    world_writer.apply_world(scene, sky_exr, {"prompt": f"physical sky ({sky.name})"})
    original = out / "lit-by-the-physical-sky.png"
    render_preview(original, size=256, samples=16)
    pair = [np.asarray(Image.open(path).convert("RGB")) for path in (original, ours)]
    side_by_side = out / "light-physical-sky-vs-world-from-image.png"
    Image.fromarray(np.concatenate(pair, axis=1)).save(side_by_side)
    # The figures measure the sun apart from the sky: from a conversion that keeps it for a Sun lamp.
    f = figures(found, hdr.convert_panorama(ldr, hdr.HdrOptions(sun_lamp=True)), quality)
    print(f"light: {sky.name} (Blender's multiple-scattering sky) -> 8-bit PNG -> World from Image")
    print(f"  sun direction error {f['direction_error']:.1f} deg")
    print(f"  sun share           truth {f['share']:.2f}  ours {f['share_ours']:.2f}")
    print(f"  lit/shadow          truth {f['lit_shadow']:.1f}  ours {f['lit_shadow_ours']:.1f}")
    rg_truth, rg_ours = np.round(f["chromaticity"], 3), np.round(f["chromaticity_ours"], 3)
    print(f"  light (r, g)        truth {rg_truth}  ours {rg_ours}")
    print(f"  rendered {side_by_side} (left: the sky itself, right: World from Image)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "demo-output"), help="folder for the .blend and preview")
    parser.add_argument("--model", help="a real model instead of the tiny test model")
    parser.add_argument("--steps", default="8")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    addon = blender_tools.install_extension(blender_tools.build_zip(Path(tempfile.mkdtemp())))
    from importlib import import_module

    cli = import_module(addon.__name__ + ".cli")
    if args.model:
        model = args.model
    else:
        tiny_models = import_module(addon.__name__ + ".generation.setup.tiny_models")
        model = str(tiny_models.ensure_tiny_pipeline("sd", ROOT / ".cache" / "tiny-models"))

    blend = out / "promptscape-demo.blend"
    make_scene(blend)
    common = [
        "--model",
        model,
        "--steps",
        args.steps,
        "--seed",
        "7",
        "--blend",
        str(blend),
        "--output",
        str(blend),
    ]
    steps = (
        [
            "world",
            "sunny alpine meadow, snowy peaks, clear blue sky",
            "--width",
            "512",
            "--height",
            "256",
            *common,
        ],
        [
            "material",
            "mossy cobblestones",
            "--object",
            "Sphere",
            "--width",
            "256",
            "--height",
            "256",
            *common,
        ],
        # A texture projected onto the crate from the scene's camera and one view opposite it; the tiny
        # model has no depth ControlNet, so it draws without depth control (a real model: leave it out).
        [
            "project",
            "a weathered wooden crate with iron bands",
            "--object",
            "Crate",
            "--views",
            "2",
            "--controlnet",
            "none",
            "--width",
            "256",
            "--height",
            "256",
            "--bake-size",
            "1024",
            *common,
        ],
    )
    for argv in steps:
        print("blender -c promptscape", " ".join(f'"{a}"' if " " in a else a for a in argv), flush=True)
        if cli.main(argv) != 0:
            return 1

    bpy.ops.wm.open_mainfile(filepath=str(blend))
    preview = out / "promptscape-demo.png"
    render_preview(preview, size=256, samples=16)
    print(f"world:    {bpy.context.scene.world.name} ({bpy.context.scene.world['promptscape']['prompt']})")
    print(f"material: {bpy.data.objects['Sphere'].active_material.name}")
    print(f"projected: {bpy.data.objects['Crate'].active_material.name}")
    light_from_a_physical_sky(out, addon)
    print(f"saved {blend}\nrendered {preview}\nin {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
