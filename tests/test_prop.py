"""A prop from a prompt on tiny offline models: the tiny SD draws the image, a tiny TripoSR (saved as a
download lands: config.yaml and model.ckpt) gives the shape."""

import importlib
import json
from pathlib import Path

import bpy
import numpy as np
import pytest
from scene_helpers import new_scene

FAST = {"steps": 2, "width": 64, "height": 64, "seed": 3, "device": "cpu"}


@pytest.fixture(scope="module")
def tiny_props(addon):
    return importlib.import_module(addon.__name__ + ".generation.setup.tiny_props")


@pytest.fixture(scope="module")
def blob_model(tiny_triposr):
    """A tiny TripoSR that always finds an object (three crossed cylinders), whatever the image."""
    return tiny_triposr


def test_api_prop_stands_at_the_cursor_at_its_size_with_its_colours(api, tiny_sd, blob_model):
    scene = new_scene()
    scene.cursor.location = (1.0, -2.0, 0.5)
    obj = api.generate_prop("a wooden barrel", size=2.0, scene=scene, model=str(tiny_sd),
                            prop_model=str(blob_model), **FAST)  # fmt: skip
    assert obj.name in scene.objects and obj.type == "MESH"
    corners = np.array([obj.matrix_world @ v.co for v in obj.data.vertices])
    low, high = corners.min(axis=0), corners.max(axis=0)
    assert (high - low).max() == pytest.approx(2.0, rel=1e-4)
    assert low[2] == pytest.approx(0.5, abs=1e-4)
    assert (low[:2] + high[:2]) / 2 == pytest.approx([1.0, -2.0], abs=1e-4)
    colours = obj.data.color_attributes["Color"]
    assert colours.domain == "POINT" and len(colours.data) == len(obj.data.vertices)
    values = np.empty(4 * len(colours.data), np.float32)
    colours.data.foreach_get("color", values)
    assert np.isfinite(values).all() and values.reshape(-1, 4)[:, :3].std(axis=0).max() >= 0
    material = obj.active_material
    links = {(link.from_node.bl_idname, link.to_socket.name) for link in material.node_tree.links}
    assert ("ShaderNodeVertexColor", "Base Color") in links
    record = dict(obj["promptscape"])
    assert record["mode"] == "prop" and record["prop_prompt"] == "a wooden barrel"
    assert "a wooden barrel" in record["prompt"] and record["prompt"] != "a wooden barrel"  # wrapped
    assert all(len(polygon.vertices) == 3 for polygon in obj.data.polygons)
    faces = np.empty(3 * len(obj.data.polygons), np.int64)
    obj.data.polygons.foreach_get("vertices", faces)
    edges = np.sort(faces.reshape(-1, 3)[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    assert (np.unique(edges, axis=0, return_counts=True)[1] == 2).all()  # closed: two faces an edge


@pytest.fixture(scope="module")
def engine(addon):
    """The worker and the prop's stages, as installed."""
    name = addon.__name__ + ".generation.engine."
    return importlib.import_module(name + "worker"), importlib.import_module(name + "prop_job")


def scene_state(scene):
    return (sorted(obj.name for obj in scene.objects), len(bpy.data.meshes), len(bpy.data.materials))


@pytest.mark.parametrize("stage", ["image", "cutting out", "shaping", "building the mesh"])
def test_cancel_at_every_stage_leaves_the_scene_unchanged(api, tiny_sd, blob_model, engine, stage):
    worker, prop_job = engine
    scene = new_scene()
    before = scene_state(scene)

    def cancel(job, at):
        if at == stage or (stage == "image" and at == 1):
            job.cancel()

    if stage == "image":
        worker.get_worker().step_hook = cancel
    else:
        prop_job.stage_hook = cancel
    try:
        job = api.generate_prop("a lamp post", scene=scene, model=str(tiny_sd), prop_model=str(blob_model),
                                wait=False, **FAST)  # fmt: skip
        with pytest.raises(api.PromptscapeError, match="cancelled"):
            job.result()
    finally:
        worker.get_worker().step_hook = None
        prop_job.stage_hook = None
    assert job.state == "cancelled" and scene_state(scene) == before


def test_a_shape_model_that_finds_nothing_fails_in_words(api, tiny_sd, tiny_props, tmp_path):
    scene = new_scene()
    before = scene_state(scene)
    empty = tiny_props.save_tiny_triposr(tmp_path / "random", "random")  # random weights: no surface
    with pytest.raises(api.PromptscapeError, match="the shape model found no object in the image"):
        api.generate_prop("a statue", scene=scene, model=str(tiny_sd), prop_model=str(empty), **FAST)
    assert scene_state(scene) == before


def test_a_missing_shape_model_is_refused_with_the_id_to_download(api, tiny_sd):
    with pytest.raises(api.PromptscapeError, match="download stabilityai/TripoSR"):
        api.generate_prop("a crate", scene=new_scene(), model=str(tiny_sd), **FAST)


GLTF_EXITS_CLEANLY = pytest.mark.skipif(
    bpy.app.version < (5, 0, 0), reason="4.2's module crashes at exit after glTF"
)


@GLTF_EXITS_CLEANLY
def test_the_cli_makes_a_prop_and_its_glb_reimports_with_the_same_triangles(
    cli, tiny_sd, blob_model, tmp_path, capfd, fresh_file
):
    out, glb = tmp_path / "out.blend", tmp_path / "prop.glb"
    argv = ["prop", "a red fire hydrant", "--model", str(tiny_sd), "--prop-model", str(blob_model)]
    argv += ["--steps", "2", "--width", "64", "--height", "64", "--seed", "3", "--device", "cpu"]
    argv += [
        "--size",
        "0.8",
        "--location",
        "2",
        "0",
        "0",
        "--texture",
        "--export",
        str(glb),
        "--output",
        str(out),
        "--json",
    ]
    code = cli.main(argv)
    captured = capfd.readouterr()
    assert code == 0, captured.err
    made, exported = (json.loads(line) for line in captured.out.splitlines())
    assert made["kind"] == "prop" and Path(made["files"]["mesh"]).is_file() and exported["kind"] == "export"
    bpy.ops.wm.open_mainfile(filepath=str(out))
    (prop,) = [obj for obj in bpy.context.scene.objects if obj.get("promptscape_prop")]
    triangles = len(prop.data.polygons)
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=str(glb))
    (imported,) = [obj for obj in bpy.context.scene.objects if obj.type == "MESH"]
    assert sum(len(polygon.vertices) - 2 for polygon in imported.data.polygons) == triangles
    assert imported.data.color_attributes, "the vertex colours did not reach the .glb"
    assert [image for image in bpy.data.images if image.size[0] == 1024], "the baked texture did not either"


def test_a_batch_line_makes_a_prop(cli, tiny_sd, blob_model, tmp_path, capfd, fresh_file):
    line = {"kind": "prop", "prompt": "a wooden chair", "model": str(tiny_sd), "prop_model": str(blob_model),
            "location": [0, 0, 1], **FAST}  # fmt: skip
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps(line) + "\n")
    assert cli.main(["batch", str(jobs), "--output-dir", str(tmp_path / "out")]) == 0, capfd.readouterr().err
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "out" / "0001-a-wooden-chair.blend"))
    (prop,) = [obj for obj in bpy.context.scene.objects if obj.get("promptscape_prop")]
    assert min((prop.matrix_world @ v.co).z for v in prop.data.vertices) == pytest.approx(1.0, abs=1e-4)


def test_the_operator_places_a_prop_where_it_is_told_and_reapply_puts_it_again(addon, tiny_sd, blob_model):
    scene = new_scene()
    result = bpy.ops.promptscape.generate_prop(
        prompt="a stone urn", model=str(tiny_sd), prop_model=str(blob_model), location=(0, 3, 0), size=0.5,
        texture=True, **FAST,
    )  # fmt: skip
    assert result == {"FINISHED"}
    (prop,) = [obj for obj in scene.objects if obj.get("promptscape_prop")]
    corners = np.array([prop.matrix_world @ v.co for v in prop.data.vertices])
    assert (corners.max(axis=0) - corners.min(axis=0)).max() == pytest.approx(0.5, rel=1e-4)
    assert corners[:, 1].min() > 2.5 and corners[:, 2].min() == pytest.approx(0.0, abs=1e-4)
    assert prop.data.uv_layers and len(prop.data.uv_layers[0].data) == 3 * len(prop.data.polygons)
    texture = prop.active_material.node_tree.nodes["Promptscape Texture"].image
    assert texture.size[:] == (1024, 1024) and texture.colorspace_settings.name == "sRGB"
    newest = importlib.import_module(addon.__name__ + ".flow.runner").history()[0]
    assert newest.kind == "prop" and bpy.ops.promptscape.reapply(key=newest.key) == {"FINISHED"}
    again = [obj for obj in scene.objects if obj.get("promptscape_prop") and obj != prop]
    assert len(again) == 1 and len(again[0].data.polygons) == len(prop.data.polygons)
    scene.promptscape.prompt, scene.promptscape.seed = "something else", 99
    assert bpy.ops.promptscape.use_settings(key=newest.key) == {"FINISHED"}
    assert (scene.promptscape.prompt, scene.promptscape.seed) == ("a stone urn", 3)
