"""The `project` job: a texture drawn on the tiny model and baked onto meshes, through the API and CLI."""

import math
import time
from pathlib import Path

import bpy
import numpy as np
import pytest
from PIL import Image
from scene_helpers import new_scene

FAST = {"steps": 2, "width": 64, "height": 64, "seed": 3, "device": "cpu", "bake_size": 1024}


def camera_scene():
    """A fresh scene with Blender's default camera and a cube before it, selected and active."""
    scene = new_scene("Project")
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.location = (7.3589, -6.9258, 4.9583)
    camera.rotation_euler = (math.radians(63.6), 0.0, math.radians(46.7))
    scene.camera = camera
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    cube.select_set(True)
    return scene, cube


def scene_state():
    return (len(bpy.data.materials), len(bpy.data.images), sum(len(m.uv_layers) for m in bpy.data.meshes))


def test_two_views_project_a_material_with_its_files(api, tiny_sd):
    scene, cube = camera_scene()
    cube.data.uv_layers.remove(cube.data.uv_layers[0])  # Smart UV Project's map comes with the result
    generation = api.project_texture(
        "a wooden crate", [cube], views=2, model=str(tiny_sd), controlnet="none", wait=False, **FAST
    )
    assert not cube.data.uv_layers  # made on a copy: the scene is as it was until the result is applied
    material = generation.result(timeout=120)
    assert cube.active_material == material and len(cube.data.uv_layers) == 1
    assert f"Made a UV map for {cube.name} with Smart UV Project" in generation._task.job.message
    request = dict(material["promptscape"])
    assert request["mode"] == "project" and request["views"] == "2" and request["bake_size"] == "1024"
    assert request["objects"] == cube.name and len(request["cameras"].split(";")) == 2
    albedo_path = Path(bpy.path.abspath(material.node_tree.nodes["Promptscape Albedo"].image.filepath))
    folder = albedo_path.parent
    views = request["view_images"].split(",")
    assert len(views) == 2 and all((folder / name).is_file() for name in views)
    assert Image.open(folder / views[0]).size == (64, 64)
    albedo = np.asarray(Image.open(albedo_path), dtype=np.float32) / 255
    assert albedo.shape == (1024, 1024, 3) and albedo.std() > 0.01
    assert float(request["coverage"]) > 0.3  # the camera's and the opposite view see half the cube at least
    log = generation._task.job.stage_log
    assert "view 1 of 2, step 1 of 2" in log and "view 2 of 2, step 2 of 2" in log
    # Re-apply puts the same files on the same object again; Use Settings takes the project kind back.
    entry = next(entry for entry in api.runner.history() if entry.kind == "project")
    assert bpy.ops.promptscape.reapply(key=entry.key) == {"FINISHED"}
    again = cube.active_material
    assert cube.active_material == again and again != material
    assert bpy.ops.promptscape.use_settings(key=entry.key) == {"FINISHED"}
    assert scene.promptscape.mode == "PROJECT" and scene.promptscape.views == "2"


def test_bad_input_is_refused_in_words_and_the_scene_is_unchanged(api, errors, tiny_sd):
    scene, cube = camera_scene()
    options = {"model": str(tiny_sd), **FAST}
    while cube.data.uv_layers:
        cube.data.uv_layers.remove(cube.data.uv_layers[0])
    before = scene_state()
    for obj in scene.objects:
        obj.select_set(False)
    bpy.context.view_layer.objects.active = None
    with pytest.raises(errors.PromptscapeError, match="Select the mesh objects"):
        api.project_texture("a crate", controlnet="none", **options)
    # The operator and the sidebar's Generate in Project mode say so too (a script sees the report as an
    # error), and change nothing.
    with pytest.raises(RuntimeError, match="Select the mesh objects"):
        bpy.ops.promptscape.project_texture(prompt="a crate", controlnet="none", model=str(tiny_sd))
    scene.promptscape.mode, scene.promptscape.prompt = "PROJECT", "a crate"
    with pytest.raises(RuntimeError, match="Select the mesh objects"):
        bpy.ops.promptscape.generate()
    empty = bpy.data.objects.new("Empty mesh", bpy.data.meshes.new("Empty mesh"))
    scene.collection.objects.link(empty)
    with pytest.raises(errors.PromptscapeError, match="no faces"):
        api.project_texture("a crate", [empty], controlnet="none", **options)
    cube.location = (0.0, 0.0, 40.0)  # above the camera's view
    with pytest.raises(errors.PromptscapeError, match="sees none of Cube"):
        api.project_texture("a crate", [cube], controlnet="none", **options)
    cube.location = (0.0, 0.0, 0.0)
    with pytest.raises(
        errors.PromptscapeError, match="lllyasviel/control_v11f1p_sd15_depth is not downloaded"
    ):
        api.project_texture("a crate", [cube], **options)
    with pytest.raises(errors.PromptscapeError, match="No camera named"):
        api.project_texture("a crate", [cube], camera="Nowhere", controlnet="none", **options)
    with pytest.raises(errors.PromptscapeError, match="views must be one of"):
        api.project_texture("a crate", [cube], views=3, controlnet="none", **options)
    assert scene_state() == before  # not even the UV map Smart UV Project would have made


@pytest.mark.parametrize("when", ["queued", "view 2 of 2, step 2 of 12"])
def test_cancel_leaves_the_scene_as_it_was(api, errors, tiny_sd, when):
    _scene, cube = camera_scene()
    cube.data.uv_layers.remove(cube.data.uv_layers[0])
    before = (cube.active_material, *scene_state())
    generation = api.project_texture(
        "a crate", [cube], views=2, model=str(tiny_sd), controlnet="none", wait=False, **{**FAST, "steps": 12}
    )
    job = generation._task.job
    deadline = time.monotonic() + 120
    while when != "queued" and when not in job.stage_log and time.monotonic() < deadline and not job.done:
        time.sleep(0.001)
    generation.cancel()
    with pytest.raises(errors.Cancelled):
        generation.result(timeout=60)
    assert (cube.active_material, *scene_state()) == before
    if when != "queued":
        assert "view 2 of 2" in job.message and "step 12 of 12" not in " ".join(job.stage_log[-3:])


@pytest.fixture(scope="module")
def tiny_controlnet(addon, tiny_sd):
    import importlib

    from conftest import TINY_MODEL_CACHE

    tiny = importlib.import_module(addon.__name__ + ".generation.setup.tiny_controlnets")
    return tiny.ensure_tiny_controlnet("sd", TINY_MODEL_CACHE)


def first_view(material) -> np.ndarray:
    folder = Path(bpy.path.abspath(material.node_tree.nodes["Promptscape Albedo"].image.filepath)).parent
    return np.asarray(Image.open(folder / material["promptscape"]["view_images"].split(",")[0]), np.float32)


def test_the_depth_controlnet_sees_the_depth_map(api, tiny_sd, tiny_controlnet):
    """Same prompt, seed and camera, a differently shaped object: with depth control the view changes, and
    without it the view is the same picture (the model saw nothing of the object)."""
    drawn = {}
    for control in ("none", str(tiny_controlnet)):
        for scale in (1.0, 1.6):
            _scene, cube = camera_scene()
            cube.scale = (scale, 1.0, 1.0)
            made = api.project_texture("a crate", [cube], model=str(tiny_sd), controlnet=control, **FAST)
            drawn[control, scale] = first_view(made)
            assert made["promptscape"]["controlnet"] == ("" if control == "none" else control)
    assert np.array_equal(drawn["none", 1.0], drawn["none", 1.6])
    # Measured: 1.5 levels of 255 on average (the tiny random VAE flattens what the UNet changes).
    assert np.abs(drawn[str(tiny_controlnet), 1.0] - drawn[str(tiny_controlnet), 1.6]).mean() > 0.3


def test_a_downloaded_curated_controlnet_is_the_default_and_no_lora(addon, api, tiny_sd, tiny_controlnet):
    import importlib
    import shutil

    from scene_helpers import cache_repo

    catalog = importlib.import_module(addon.__name__ + ".generation.setup.model_catalog")
    hub = cache_repo("lllyasviel/control_v11f1p_sd15_depth", tiny_controlnet)  # as Download Model leaves it
    catalog.forget_cache_scan()
    try:
        assert "lllyasviel/control_v11f1p_sd15_depth" in catalog.cached_controlnets()
        assert "lllyasviel/control_v11f1p_sd15_depth" not in catalog.cached_loras() + catalog.cached_models()
        _scene, cube = camera_scene()
        made = api.project_texture("a crate", [cube], model=str(tiny_sd), **FAST)
        assert made["promptscape"]["controlnet"] == "lllyasviel/control_v11f1p_sd15_depth"
    finally:
        shutil.rmtree(hub)
        catalog.forget_cache_scan()


@pytest.mark.slow
def test_sdxl_draws_two_views_with_depth_control(addon, api, tiny_sdxl):
    import importlib

    from conftest import TINY_MODEL_CACHE

    tiny = importlib.import_module(addon.__name__ + ".generation.setup.tiny_controlnets")
    net = tiny.ensure_tiny_controlnet("sdxl", TINY_MODEL_CACHE)
    _scene, cube = camera_scene()
    generation = api.project_texture(
        "a crate", [cube], views=2, model=str(tiny_sdxl), controlnet=str(net), wait=False, **FAST
    )
    made = generation.result(timeout=120)
    assert made["promptscape"]["controlnet"] == str(net) and cube.active_material == made
    assert "view 2 of 2, step 2 of 2" in generation._task.job.stage_log


def test_project_command_and_a_batch_line(cli, tiny_sd, tmp_path, capfd, fresh_file):
    import json

    bpy.ops.wm.read_homefile(use_empty=True)
    _scene, cube = camera_scene()
    cube.name = "Crate"
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0.0, -2.0, 0.0))
    bpy.context.active_object.name = "Box"
    source = tmp_path / "in.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(source))
    out = tmp_path / "out.blend"
    capfd.readouterr()
    argv = ["project", "old planks", "--object", "Crate", "--object", "Box", "--model", str(tiny_sd)]
    argv += ["--controlnet", "none"]
    sizes = ["--steps", "2", "--width", "64", "--height", "64", "--bake-size", "1024"]
    assert cli.main([*argv, *sizes, "--blend", str(source), "--output", str(out), "--json"]) == 0
    (result,) = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert result["kind"] == "project" and Path(result["files"]["Crate albedo"]).is_file()
    assert Path(result["files"]["Box albedo"]).is_file()  # each object its own texture and material
    assert Path(result["files"]["view1"]).is_file() and Path(result["files"]["depth1"]).is_file()
    bpy.ops.wm.open_mainfile(filepath=str(out))
    crate, box = bpy.data.objects["Crate"].active_material, bpy.data.objects["Box"].active_material
    assert (
        crate["promptscape"]["mode"] == "project"
        and crate != box
        and crate["promptscape"]["objects"] == "Crate,Box"
    )
    lines = tmp_path / "jobs.jsonl"
    line = {"kind": "project", "prompt": "a crate", "objects": ["Crate"], "model": str(tiny_sd),
            "controlnet": "none", "steps": 2, "width": 64, "height": 64, "bake_size": 1024}  # fmt: skip
    lines.write_text(json.dumps(line) + "\n")
    code = cli.main(["batch", str(lines), "--output-dir", str(tmp_path / "batch"), "--blend", str(source)])
    assert code == 0


def test_a_wall_in_front_hides_the_object_only_when_occluders_are_on(api, tiny_sd):
    """A wall between the camera and the cube, not selected: with occluders it hides the cube's near faces
    from the view (fewer texels painted, the rest filled), without them the cube is painted through it."""
    scene, cube = camera_scene()
    bpy.ops.mesh.primitive_plane_add(
        size=3, location=(3.6, -3.4, 2.4), rotation=(math.radians(63.6), 0, math.radians(46.7))
    )
    wall = bpy.context.active_object
    for obj in scene.objects:
        obj.select_set(obj == cube)
    coverage = {}
    for hidden in (False, True):
        material = api.project_texture("a crate", [cube], model=str(tiny_sd), controlnet="none",
                                       occluders=hidden, **FAST)  # fmt: skip
        coverage[hidden] = float(material["promptscape"]["coverage"])
        assert material["promptscape"]["occluders"] == str(hidden)
    assert coverage[True] < 0.5 * coverage[False], coverage
    assert wall.active_material is None  # an occluder is never textured
