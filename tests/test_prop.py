"""A prop from a prompt on tiny offline models: the tiny SD draws the image, a tiny TripoSR (saved as a
download lands: config.yaml and model.ckpt) gives the shape."""

import importlib

import numpy as np
import pytest
from scene_helpers import new_scene

FAST = {"steps": 2, "width": 64, "height": 64, "seed": 3, "device": "cpu"}


@pytest.fixture(scope="module")
def tiny_props(addon):
    return importlib.import_module(addon.__name__ + ".generation.setup.tiny_props")


@pytest.fixture(scope="module")
def blob_model(tiny_props, tmp_path_factory):
    """A tiny TripoSR that always finds an object (three crossed cylinders), whatever the image."""
    return tiny_props.save_tiny_triposr(tmp_path_factory.mktemp("props") / "TripoSR", "blob")


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
