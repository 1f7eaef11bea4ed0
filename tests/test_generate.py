"""Generating worlds and materials through the operators and the Python API, on the tiny offline model."""

import importlib

import bpy
import numpy as np
import pytest
from PIL import Image
from scene_helpers import new_scene, read_exr

FAST = {"steps": 2, "width": 128, "height": 64, "seed": 5, "device": "cpu"}


def environment_image(world):
    return world.node_tree.nodes["Promptscape Environment"].image


def test_generate_world_operator_builds_a_lit_world(tiny_sd):
    scene = new_scene()
    scene.promptscape.prompt = "sunny alpine meadow"
    result = bpy.ops.promptscape.generate_world(model=str(tiny_sd), steps=2, width=128, height=64, seed=5)
    assert result == {"FINISHED"}
    world = scene.world
    image = environment_image(world)
    exr = read_exr(bpy.path.abspath(image.filepath))
    assert exr.shape == (64, 128, 3) and exr.dtype == np.float32
    assert np.isfinite(exr).all() and exr.min() > 0
    assert image.colorspace_settings.name == "Linear Rec.709"
    request = dict(world["promptscape"])
    assert (
        request["prompt"] == "sunny alpine meadow" and request["seed"] == "5" and request["mode"] == "world"
    )
    assert dict(image["promptscape"]) == request


def test_same_seed_same_world_file(api, tiny_sd):
    first = api.generate_world("a night sky", scene=new_scene(), model=str(tiny_sd), **FAST)
    second = api.generate_world("a night sky", scene=new_scene(), model=str(tiny_sd), **FAST)
    a = read_exr(bpy.path.abspath(environment_image(first).filepath))
    b = read_exr(bpy.path.abspath(environment_image(second).filepath))
    assert environment_image(first).filepath != environment_image(second).filepath  # never overwritten
    assert np.array_equal(a, b)


def test_generate_material_operator_textures_the_selection(tiny_sd):
    new_scene()
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    cube.select_set(True)
    result = bpy.ops.promptscape.generate_material(
        prompt="mossy cobblestones", model=str(tiny_sd), steps=2, width=64, height=64, seed=1
    )
    assert result == {"FINISHED"}
    material = cube.active_material
    assert material["promptscape"]["prompt"] == "mossy cobblestones"
    assert material["promptscape"]["mode"] == "texture"
    nodes = material.node_tree.nodes
    albedo = Image.open(bpy.path.abspath(nodes["Promptscape Albedo"].image.filepath))
    assert albedo.size == (64, 64) and albedo.mode == "RGB"
    height = Image.open(bpy.path.abspath(nodes["Promptscape Height"].image.filepath))
    assert height.size == (64, 64) and height.mode.startswith("I")  # 16-bit


def test_api_returns_world_and_material(api, tiny_sd):
    scene = new_scene()
    world = api.generate_world("desert dunes at noon", scene=scene, model=str(tiny_sd), **FAST)
    assert world == scene.world and world["promptscape"]["prompt"] == "desert dunes at noon"
    bpy.ops.mesh.primitive_plane_add()
    plane = bpy.context.active_object
    material = api.generate_material(
        "cracked mud", objects=[plane], scene=scene, model=str(tiny_sd), **{**FAST, "width": 64}
    )
    assert plane.active_material == material


def test_random_seed_is_reported_back(api, tiny_sd):
    options = {**FAST, "seed": None}
    world = api.generate_world("stormy sea", scene=new_scene(), model=str(tiny_sd), **options)
    assert int(world["promptscape"]["seed"]) >= 0


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"prompt": "   "}, "prompt"),
        ({"width": 100}, "width"),
        ({"steps": 0}, "steps"),
        ({"guidance": float("nan")}, "guidance"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_options_raise_before_any_work_and_leave_the_scene(api, errors, tiny_sd, options, field):
    scene = new_scene()
    before = scene.world
    prompt = options.pop("prompt", "a valid prompt")
    with pytest.raises(errors.PromptscapeError, match=field):
        api.generate_world(prompt, scene=scene, model=str(tiny_sd), **{**FAST, **options})
    assert scene.world == before


def test_missing_model_is_a_clear_error(api, errors, tmp_path):
    scene = new_scene()
    before = scene.world
    with pytest.raises(errors.PromptscapeError, match="Preferences"):
        api.generate_world("sky", scene=scene, model=str(tmp_path / "nowhere"), **FAST)
    assert scene.world == before


def test_material_without_objects_says_what_to_do(api, errors, tiny_sd):
    new_scene()
    with pytest.raises(errors.PromptscapeError, match="Select"):
        api.generate_material("bricks", objects=[], model=str(tiny_sd), **FAST)


def test_cancelled_generation_leaves_the_scene_as_it_was(api, errors, tiny_sd):
    scene = new_scene()
    before = (scene.world, len(bpy.data.worlds), len(bpy.data.images))
    generation = api.generate_world(
        "a canyon", scene=scene, wait=False, model=str(tiny_sd), **{**FAST, "steps": 50}
    )
    generation.cancel()
    with pytest.raises(errors.Cancelled):
        generation.result(timeout=60)
    assert generation.state == "cancelled"
    assert (scene.world, len(bpy.data.worlds), len(bpy.data.images)) == before
    # The worker serves the next job.
    assert api.generate_world("a canyon", scene=scene, model=str(tiny_sd), **FAST) == scene.world


def test_seamless_off_generates_a_plain_image(api, tiny_sd):
    new_scene()
    bpy.ops.mesh.primitive_plane_add()
    plane = bpy.context.active_object
    options = {**FAST, "width": 64, "height": 64}
    material = api.generate_material("a label", [plane], model=str(tiny_sd), seamless=False, **options)
    assert material["promptscape"]["mode"] == "image"
    tiles = api.generate_material("tiles", [plane], model=str(tiny_sd), **options)
    assert tiles["promptscape"]["mode"] == "texture"


def test_free_model_memory_unloads_and_the_next_run_loads_again(api, addon, tiny_sd):
    worker = importlib.import_module(addon.__name__ + ".generation.engine.worker").get_worker()
    api.generate_world("a sky", scene=new_scene(), model=str(tiny_sd), **FAST)
    assert worker.cache.loaded_key is not None
    assert bpy.ops.promptscape.unload_model() == {"FINISHED"}
    assert worker.cache.loaded_key is None
    generation = api.generate_world("a sky", scene=new_scene(), wait=False, model=str(tiny_sd), **FAST)
    generation.result()
    assert generation.timings["load"] > 0


def test_loras_from_the_api_and_the_command_line(api, addon, tiny_sd, tmp_path):
    tiny_models = importlib.import_module(addon.__name__ + ".generation.setup.tiny_models")
    cli = importlib.import_module(addon.__name__ + ".cli")
    lora = tiny_models.write_tiny_lora(tiny_sd, tmp_path)
    plain = api.generate_world("a sky", scene=new_scene(), model=str(tiny_sd), **FAST)
    styled = api.generate_world("a sky", scene=new_scene(), model=str(tiny_sd), loras=[(lora, 0.8)], **FAST)
    assert styled["promptscape"]["loras"] == f"{lora}:0.8"
    pixels = [read_exr(bpy.path.abspath(environment_image(world).filepath)) for world in (plain, styled)]
    assert not np.allclose(*pixels)
    assert cli.lora_argument(f"{lora}:0.5") == (str(lora), 0.5)
    assert cli.lora_argument(r"C:\loras\style.safetensors") == (r"C:\loras\style.safetensors", 1.0)
    argv = ["world", "sky", "--lora", "a.safetensors:0.3", "--lora", "org/name"]
    args = cli.build_parser().parse_args(argv)
    assert args.loras == [("a.safetensors", 0.3), ("org/name", 1.0)]


def test_model_paths_relative_to_the_blend_file(api, tiny_sd, tmp_path):
    import shutil

    shutil.copytree(tiny_sd, tmp_path / "models" / "tiny")
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "project.blend"))
    try:
        world = api.generate_world("a sky", model="//models/tiny", **FAST)
        assert world["promptscape"]["model"] == str(tmp_path / "models" / "tiny")
    finally:
        bpy.ops.wm.read_homefile(use_empty=True)


def test_the_sidebar_button_reports_mistakes_in_words(tiny_sd):
    scene = new_scene()
    scene.promptscape.prompt = ""
    scene.promptscape.mode = "WORLD"
    with pytest.raises(RuntimeError) as raised:
        bpy.ops.promptscape.generate()
    assert "prompt" in str(raised.value) and "Traceback" not in str(raised.value)
    scene.promptscape.mode = "MATERIAL"
    scene.promptscape.prompt = "bricks"
    bpy.ops.object.select_all(action="DESELECT")
    bpy.context.view_layer.objects.active = None
    with pytest.raises(RuntimeError, match="Select the objects") as raised:
        bpy.ops.promptscape.generate()
    assert "Traceback" not in str(raised.value)


def test_a_script_polling_done_sees_the_result_applied(api, tiny_sd):
    import time

    scene = new_scene()
    generation = api.generate_world("polled sky", scene=scene, wait=False, model=str(tiny_sd), **FAST)
    deadline = time.monotonic() + 60
    while not generation.done:  # a TD's loop in `blender -b`: no timers run there
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert generation.state == "done" and scene.world["promptscape"]["prompt"] == "polled sky"


def test_use_settings_makes_generate_repeat_a_result(api, tiny_sd):
    scene = new_scene()
    first = api.generate_world("repeat me", scene=scene, model=str(tiny_sd), **{**FAST, "seed": 77})
    first_file = read_exr(bpy.path.abspath(environment_image(first).filepath))
    scene.promptscape.prompt, scene.promptscape.random_seed = "something else", True
    assert bpy.ops.promptscape.use_settings(key=-1) == {"FINISHED"}  # from the scene's world
    props = scene.promptscape
    assert (props.prompt, props.seed, props.random_seed, props.steps) == ("repeat me", 77, False, 2)
    again = api.generate_world(
        props.prompt, scene=new_scene(), model=str(tiny_sd), **FAST | {"seed": props.seed}
    )
    assert np.array_equal(read_exr(bpy.path.abspath(environment_image(again).filepath)), first_file)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"height_mode": "displace"}, "height_mode"),
        ({"tiling": 0}, "tiling"),
        ({"normal_strength": 50}, "normal"),
    ],
)
def test_bad_material_options_are_errors_not_defaults(api, errors, tiny_sd, options, field):
    new_scene()
    bpy.ops.mesh.primitive_plane_add()
    with pytest.raises(errors.PromptscapeError, match=field):
        api.generate_material("tiles", [bpy.context.active_object], model=str(tiny_sd), **FAST, **options)


def test_numpy_numbers_and_lowercase_names_are_fine(api, tiny_sd):
    new_scene()
    bpy.ops.mesh.primitive_plane_add()
    options = {**FAST, "width": 64, "height": 64, "tiling": np.float32(2.5), "height_mode": "displacement"}
    material = api.generate_material("tiles", [bpy.context.active_object], model=str(tiny_sd), **options)
    assert material.node_tree.nodes["Promptscape Mapping"].inputs["Scale"].default_value[0] == 2.5
    assert "Promptscape Displacement" in material.node_tree.nodes


@pytest.mark.parametrize("family", ["zimage", "flux2-klein", "qwen-image"])
def test_a_world_and_a_material_from_a_transformer_family(api, tiny_transformers, tiny_esrgan, family):
    """Through the API into the scene with the HDR and PBR of any model, pole repair, the detail pass and
    wrap included."""
    model, prompt = str(tiny_transformers[family]), "a misty harbour at dawn, boats on the left"
    detail = {"upscale": 2, "upscaler": str(tiny_esrgan), "detail": 0.3}
    world = api.generate_world(prompt, scene=new_scene(), model=model, guidance=0.0, **FAST, **detail)
    exr = read_exr(bpy.path.abspath(environment_image(world).filepath))
    assert exr.shape == (128, 256, 3) and np.isfinite(exr).all() and exr.min() > 0
    assert world["promptscape"]["model"] == model and world["promptscape"]["detail"] == "0.3"
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    fast = {**FAST, "width": 64, "height": 64}
    material = api.generate_material(
        "bricks", objects=[cube], model=model, guidance=0.0, wrap_mode="periodic", **fast
    )
    assert cube.active_material == material and material["promptscape"]["mode"] == "texture"
    assert material["promptscape"]["wrap_mode"] == "periodic"  # exact positions in x and y, recorded


def test_objects_by_name_or_as_objects_and_anything_else_in_words(api, errors, tiny_sd):
    scene = new_scene()
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    cube.name = "Crate"
    camera = bpy.data.objects.new("Lens", bpy.data.cameras.new("Lens"))
    scene.collection.objects.link(camera)
    fast = {**FAST, "width": 64, "height": 64}
    made = api.generate_material("bricks", objects=["Crate"], scene=scene, model=str(tiny_sd), **fast)
    assert cube.active_material == made
    for objects, words in ((["Nope"], "No object named 'Nope'"), ([42], "not 42"), ([camera], "Lens cannot")):
        with pytest.raises(errors.PromptscapeError, match=words):
            api.generate_material("bricks", objects=objects, scene=scene, model=str(tiny_sd), **fast)


def test_a_refused_job_creates_no_folder(api, errors, tiny_sd, tmp_path, fresh_file):
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "project.blend"))
    with pytest.raises(errors.PromptscapeError, match="upscaler"):
        api.generate_world("sky", model=str(tiny_sd), upscale=2, upscaler=str(tmp_path / "none.pth"), **FAST)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["project.blend"]


def test_exposure_strength_and_pack_are_recorded_and_reapplied(api, addon, tiny_sd):
    start = importlib.import_module(addon.__name__ + ".flow.start")
    runner = importlib.import_module(addon.__name__ + ".flow.runner")
    world = api.generate_world(
        "lit", scene=new_scene(), model=str(tiny_sd), strength=2.5, exposure=1.0, pack=True, **FAST
    )
    recorded = world["promptscape"]
    assert (recorded["strength"], recorded["exposure"], recorded["pack"]) == ("2.5", "1", "True")
    entry = runner.history()[0]  # newest first
    again = start.reapply(entry, new_scene())  # another scene: the sidebar says nothing of these
    assert environment_image(again).packed_file is not None
    assert again["promptscape"]["strength"] == "2.5"
