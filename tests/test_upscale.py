"""Upscaled worlds and materials in Blender: generated, from an image, and upscaled afterwards."""

import importlib

import bpy
import numpy as np
import pytest
import torch
from PIL import Image
from scene_helpers import new_scene, read_exr, sky_panorama, wait_until, write_png

FAST = {"steps": 2, "width": 256, "height": 128, "device": "cpu"}  # two 128-pixel tiles on the CPU


def environment(world):
    return world.node_tree.nodes["Promptscape Environment"].image


def scene_state(scene):
    return (scene.world, len(bpy.data.worlds), len(bpy.data.materials), len(bpy.data.images))


def pump(runner, task, timeout=300):
    wait_until(lambda: (runner.tick(), task.finished)[1], timeout, "the task finishing")


def test_a_generated_world_is_upscaled_before_its_hdr(api, quality, tiny_sd, tiny_esrgan):
    scene = new_scene()
    stages, previews = set(), []
    job = api.generate_world("dunes", scene=scene, model=str(tiny_sd), upscale=4, upscaler=str(tiny_esrgan),
                             seed=3, wait=False, **FAST)  # fmt: skip
    task = job._task

    def watch():
        stages.add(task.job.stage)
        if task.job.preview is not None:
            previews.append(task.job.preview.shape)
        return task.job.done

    wait_until(watch, 300, "the world")
    world = job.result()
    radiance = read_exr(bpy.path.abspath(environment(world).filepath))
    assert radiance.shape == (512, 1024, 3) and np.isfinite(radiance).all() and radiance.min() > 0
    assert {"upscaling, tile 1 of 2", "upscaling, tile 2 of 2"} & stages
    assert previews and previews[-1] == (256, 512, 3)
    recorded = world["promptscape"]
    assert recorded["prompt"] == "dunes" and recorded["memory_plan"].startswith(("full", "tiled"))
    upscale = {"upscale": "4", "upscaler": tiny_esrgan.name, "detail": "0"}
    assert {name: recorded[name] for name in upscale} == upscale
    with Image.open(task.job.outputs.preview) as preview:  # the files say so too
        assert {name: preview.info.get(name) for name in upscale} == upscale
        assert preview.info["memory_plan"] == recorded["memory_plan"]


def test_world_from_image_upscaled_x2_stays_seamless(api, quality, tiny_esrgan, tmp_path):
    path = write_png(tmp_path / "sky.png", sky_panorama())  # 256x128
    world = api.world_from_image(str(path), scene=new_scene(), upscale=2, upscaler=str(tiny_esrgan))
    radiance = read_exr(bpy.path.abspath(environment(world).filepath))
    assert radiance.shape == (256, 512, 3)
    log_luminance = np.log(quality.luminance(radiance))
    assert quality.seam_ratio(log_luminance[..., None]).ratio <= 1.2


def test_sizes_beyond_the_limit_and_pickles_are_refused_before_work(
    api, errors, tiny_sd, tiny_esrgan, tmp_path
):
    scene = new_scene()
    before = scene_state(scene)
    path = write_png(tmp_path / "big.png", np.full((2048, 4096, 3), 0.5, np.float32))
    with pytest.raises(errors.InvalidRequest, match="at most 8192x4096"):
        api.world_from_image(str(path), scene=scene, upscale=4, upscaler=str(tiny_esrgan))

    class Payload:
        def __reduce__(self):
            return (print, ("this ran",))

    unsafe = tmp_path / "unsafe.pth"
    torch.save({"params": {}, "extra": Payload()}, unsafe)
    small = write_png(tmp_path / "small.png", sky_panorama())
    with pytest.raises(errors.PromptscapeError, match=r"Allow \.ckpt/\.bin Models"):
        api.world_from_image(str(small), scene=scene, upscale=2, upscaler=str(unsafe))
    # A generation reads the .pth in the worker (never on Blender's main thread) before its first step.
    job = api.generate_world("dunes", scene=scene, model=str(tiny_sd), upscale=2, upscaler=str(unsafe),
                             wait=False, **FAST)  # fmt: skip
    with pytest.raises(errors.PromptscapeError, match=r"Allow \.ckpt/\.bin Models"):
        job.result()
    assert job._task.job.step == 0 and "denoise" not in job.timings
    assert scene_state(scene) == before


def test_cancel_between_tiles_keeps_the_scene_and_the_earlier_world(api, tiny_esrgan, tmp_path):
    runner = importlib.import_module(api.__name__.rsplit(".", 1)[0] + ".flow.runner")
    scene = new_scene()
    earlier = api.world_from_image(str(write_png(tmp_path / "a.png", sky_panorama())), scene=scene)
    earlier_file = bpy.path.abspath(environment(earlier).filepath)
    earlier_pixels = read_exr(earlier_file)
    before = scene_state(scene)
    big = write_png(tmp_path / "b.png", np.tile(sky_panorama(), (4, 4, 1)))  # 1024x512: 32 tiles
    job = api.upscale_world(str(big), scene=scene, upscale=2, upscaler=str(tiny_esrgan), wait=False)
    wait_until(lambda: job._task.job.stage.startswith("upscaling, tile 2 ") or job._task.job.done, 300)
    job.cancel()
    pump(runner, job._task)
    assert job._task.job.state == "cancelled" and job._task.job.step < job._task.job.steps
    assert scene_state(scene) == before and environment(scene.world) == environment(earlier)
    np.testing.assert_array_equal(read_exr(earlier_file), earlier_pixels)


def test_upscale_an_existing_world_and_material(api, tiny_esrgan, tmp_path):
    scene = new_scene()
    world = api.world_from_image(str(write_png(tmp_path / "sky.png", sky_panorama())), scene=scene)
    bigger = api.upscale_world(world, scene=scene, upscale=2, upscaler=str(tiny_esrgan))
    assert bigger.name == scene.world.name and environment(scene.world).size[:] == (512, 256)
    with pytest.raises(RuntimeError, match="not downloaded"):  # the operator, with the curated default
        bpy.ops.promptscape.upscale_world("EXEC_DEFAULT", upscale="2")

    rng = np.random.default_rng(2)
    texture = write_png(tmp_path / "rock.png", rng.uniform(0.2, 0.8, (32, 32, 3)))
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    old = api.material_from_image(str(texture), objects=[cube])
    nodes = old.node_tree.nodes
    old_name, old_images = old.name, {n.image.name for n in nodes if n.bl_idname == "ShaderNodeTexImage"}
    new = api.upscale_material(old, scene=scene, upscaler=str(tiny_esrgan))
    assert cube.active_material == new and new.name != old_name
    # Replaced the way a new generation replaces one: the old material and its images leave the file.
    assert old_name not in bpy.data.materials and not old_images & set(bpy.data.images.keys())
    textures = [n.image for n in new.node_tree.nodes if n.bl_idname == "ShaderNodeTexImage"]
    albedo = next(image for image in textures if image.filepath.endswith("-albedo.png"))
    assert tuple(albedo.size) == (128, 128)  # the largest factor within 4096x4096: 4
    assert new["promptscape"]["upscale"] == "4" and new["promptscape"]["upscaler"] == tiny_esrgan.name


def albedo_of(material):
    textures = [n.image for n in material.node_tree.nodes if n.bl_idname == "ShaderNodeTexImage"]
    image = next(image for image in textures if image.filepath.endswith("-albedo.png"))
    return np.asarray(Image.open(bpy.path.abspath(image.filepath)).convert("RGB"), np.float32) / 255.0


@pytest.mark.parametrize("model", ["tiny_sd", "tiny_sdxl"])
def test_the_detail_pass_runs_in_a_generated_world_and_material(api, quality, tiny_esrgan, model, request):
    path = str(request.getfixturevalue(model))
    scene = new_scene()
    stages = set()
    job = api.generate_world("dunes", scene=scene, model=path, upscale=2, upscaler=str(tiny_esrgan),
                             detail=0.3, seed=3, wait=False, **FAST)  # fmt: skip
    wait_until(lambda: (stages.add(job._task.job.stage), job._task.job.done)[1], 300, "the world")
    world = job.result()
    assert "adding detail, step 1 of 1" in stages  # ceil(2 steps x 0.3)
    radiance = read_exr(bpy.path.abspath(environment(world).filepath))
    assert radiance.shape == (256, 512, 3) and np.isfinite(radiance).all() and radiance.min() > 0
    assert quality.seam_ratio(np.log(quality.luminance(radiance))[..., None]).ratio <= 1.2
    assert world["promptscape"]["prompt"] == "dunes" and world["promptscape"]["detail"] == "0.3"

    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    made = api.generate_material("bark", objects=[cube], scene=scene, model=path, upscale=2, detail=0.3,
                                 upscaler=str(tiny_esrgan), seed=4, **{**FAST, "width": 128})  # fmt: skip
    albedo = albedo_of(made)
    assert albedo.shape == (256, 256, 3) and cube.active_material == made
    for axis in (0, 1):
        assert quality.seam_ratio(albedo, axis=axis).ratio <= 1.2


def test_detail_zero_is_the_plain_upscale_and_detail_changes_it(api, tiny_sd, tiny_esrgan):
    def world_pixels(**options):
        world = api.generate_world("dunes", scene=new_scene(), model=str(tiny_sd), upscale=2, seed=3,
                                   upscaler=str(tiny_esrgan), **options, **FAST)  # fmt: skip
        return read_exr(bpy.path.abspath(environment(world).filepath))

    plain, zero, detailed = world_pixels(), world_pixels(detail=0.0), world_pixels(detail=0.3)
    np.testing.assert_array_equal(zero, plain)
    assert np.abs(np.log(detailed) - np.log(plain)).mean() > 1e-3


def test_cancel_during_the_detail_pass_keeps_the_scene(api, tiny_sd, tiny_esrgan):
    runner = importlib.import_module(api.__name__.rsplit(".", 1)[0] + ".flow.runner")
    scene = new_scene()
    before = scene_state(scene)
    job = api.generate_world("dunes", scene=scene, model=str(tiny_sd), upscale=2, upscaler=str(tiny_esrgan),
                             detail=0.6, seed=3, wait=False, **{**FAST, "steps": 20})  # fmt: skip
    wait_until(lambda: job._task.job.stage.startswith("adding detail, step 2 ") or job._task.job.done, 300)
    job.cancel()
    pump(runner, job._task)
    assert job._task.job.state == "cancelled" and "adding detail" in job._task.job.message
    assert scene_state(scene) == before


def test_detail_without_a_generation_is_refused_in_words(api, errors, tiny_sd, tiny_esrgan, tmp_path):
    scene = new_scene()
    world = api.world_from_image(str(write_png(tmp_path / "sky.png", sky_panorama())), scene=scene)
    before = scene_state(scene)
    with pytest.raises(errors.InvalidRequest, match="detail needs the model loaded by a generation"):
        api.upscale_world(world, scene=scene, upscale=2, upscaler=str(tiny_esrgan), detail=0.3)
    with pytest.raises(errors.InvalidRequest, match="detail needs the model loaded by a generation"):
        api.world_from_image(str(tmp_path / "sky.png"), scene=scene, detail=0.3)
    with pytest.raises(errors.InvalidRequest, match="set upscale to 2 or 4"):
        api.generate_world("dunes", scene=scene, model=str(tiny_sd), detail=0.3, **FAST)
    with pytest.raises(errors.InvalidRequest, match=r"detail must be a number from 0 to 0\.6"):
        api.generate_world("dunes", scene=scene, model=str(tiny_sd), upscale=2, detail=0.9, **FAST)
    assert scene_state(scene) == before


def test_upscaling_a_sun_lamp_world_keeps_its_sun(api, tiny_esrgan, tmp_path):
    """Under a Sun lamp the world shows its sun-less file; the upscale starts from the whole sky."""
    scene = new_scene()
    world = api.world_from_image(
        str(write_png(tmp_path / "sky.png", sky_panorama())), scene=scene, sun_lamp=True
    )
    shown = bpy.path.abspath(environment(world).filepath)
    assert shown.endswith("-sunless.exr"), "the test sky's sun was not found"
    bigger = api.upscale_world(world, scene=scene, upscale=2, upscaler=str(tiny_esrgan))
    upscaled, sunless = read_exr(bpy.path.abspath(environment(bigger).filepath)), read_exr(shown)
    assert upscaled.max() > 10 * sunless.max()  # the sun came along


def test_a_material_upscales_here_with_a_server_in_the_preferences(addon, api, tiny_esrgan, tmp_path):
    """Only generations go to a server; an upscale of an existing material runs on this computer."""
    preferences = bpy.context.preferences.addons[addon.__name__].preferences
    saved, preferences.server = preferences.server, "http://127.0.0.1:9"  # nothing listens there
    try:
        new_scene()
        bpy.ops.mesh.primitive_cube_add()
        cube = bpy.context.active_object
        texture = write_png(tmp_path / "rock.png", np.random.default_rng(3).uniform(0.2, 0.8, (32, 32, 3)))
        old = api.material_from_image(str(texture), objects=[cube])
        new = api.upscale_material(old, upscale=2, upscaler=str(tiny_esrgan))
        assert cube.active_material == new and new["promptscape"]["upscale"] == "2"
    finally:
        preferences.server = saved
