"""The world writer: node tree, image colour space, re-apply in place, user's nodes kept, Cycles lighting."""

import importlib

import bpy
import numpy as np
import pytest
from scene_helpers import new_scene, render, write_exr

META = {"prompt": "test sky", "seed": "7", "generator": "Promptscape"}


@pytest.fixture(scope="module")
def world_writer(addon):
    return importlib.import_module(addon.__name__ + ".scene.world")


def constant_exr(path, colour, width=64, height=32):
    return write_exr(path, np.broadcast_to(np.float32(colour), (height, width, 3)))


def test_world_nodes_links_and_image(world_writer, tmp_path):
    scene = new_scene()
    exr = write_exr(tmp_path / "sky.exr", np.full((32, 64, 3), 62000.0, np.float32))
    world = world_writer.apply_world(scene, exr, META, strength=2.0)

    assert scene.world == world
    tree = world.node_tree
    env = tree.nodes["Promptscape Environment"]
    assert env.bl_idname == "ShaderNodeTexEnvironment"
    assert bpy.path.abspath(env.image.filepath) == str(exr) and not env.image.packed_file
    assert env.image.colorspace_settings.name == "Linear Rec.709"
    assert env.image.is_float and tuple(env.image.size) == (64, 32)
    pixels = np.empty(64 * 32 * 4, np.float32)
    env.image.pixels.foreach_get(pixels)
    assert np.allclose(pixels.reshape(-1, 4)[:, :3], 62000.0)  # no colour transform on the way in
    chain = [
        ("Promptscape Coordinates", "Promptscape Mapping"),
        ("Promptscape Mapping", "Promptscape Environment"),
        ("Promptscape Environment", "Promptscape Background"),
    ]
    links = {(link.from_node.name, link.to_node.name) for link in tree.links}
    assert set(chain) <= links
    output = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeOutputWorld" and n.is_active_output)
    assert output.inputs["Surface"].links[0].from_node.name == "Promptscape Background"
    assert tree.nodes["Promptscape Background"].inputs["Strength"].default_value == 2.0
    assert dict(world["promptscape"]) == META
    assert dict(env.image["promptscape"]) == META


def test_reapply_swaps_image_in_place_and_keeps_user_nodes(world_writer, tmp_path):
    scene = new_scene()
    world = world_writer.apply_world(scene, constant_exr(tmp_path / "a.exr", 1.0), META)
    user_node = world.node_tree.nodes.new("ShaderNodeRGB")
    user_node.name = "My Colour"
    count = len(world.node_tree.nodes)
    world_writer.mapping_node(world).inputs["Rotation"].default_value[2] = 1.0

    again = world_writer.apply_world(scene, constant_exr(tmp_path / "b.exr", 2.0), META)
    assert again == world
    assert len(world.node_tree.nodes) == count
    assert world.node_tree.nodes["My Colour"] == user_node
    assert world.node_tree.nodes["Promptscape Environment"].image.filepath.endswith("b.exr")
    assert (
        world_writer.mapping_node(world).inputs["Rotation"].default_value[2] == 1.0
    )  # the user's turn stays
    assert not any(image.filepath.endswith("a.exr") for image in bpy.data.images)


def test_world_shared_by_two_scenes_is_copied(world_writer, tmp_path):
    first, second = new_scene("First"), new_scene("Second")
    shared = bpy.data.worlds.new("Shared")
    first.world = second.world = shared
    world = world_writer.apply_world(second, constant_exr(tmp_path / "c.exr", 1.0), META)
    assert world != shared and second.world == world and first.world == shared
    assert shared.node_tree is None or "Promptscape Environment" not in shared.node_tree.nodes  # 4.2: None


def test_unreadable_file_leaves_world_untouched(addon, world_writer, tmp_path):
    errors = importlib.import_module(addon.__name__ + ".generation.errors")
    scene = new_scene()
    before = scene.world
    bad = tmp_path / "broken.exr"
    bad.write_bytes(b"not an exr")
    with pytest.raises(errors.InvalidImage, match=r"broken\.exr"):
        world_writer.apply_world(scene, bad, META)
    assert scene.world == before


def test_cycles_renders_the_worlds_colour(world_writer, tmp_path):
    scene = new_scene()
    world_writer.apply_world(scene, constant_exr(tmp_path / "blue.exr", (0.2, 0.5, 0.8)), META)
    bpy.ops.object.camera_add(location=(0, 0, 0))
    scene.camera = bpy.context.active_object
    pixels = render(scene, tmp_path / "render.exr", size=16, samples=2)
    assert np.allclose(pixels.reshape(-1, 3).mean(axis=0), (0.2, 0.5, 0.8), atol=0.01)


def test_sunny_world_lights_a_sphere_with_shadow_contrast(world_writer, tmp_path):
    # Constant dim sky plus a bright patch straight above: the sphere's top is lit, its underside is not.
    sky = np.full((64, 128, 3), 0.05, np.float32)
    sky[:3] = 400.0
    scene = new_scene()
    world_writer.apply_world(scene, write_exr(tmp_path / "sun.exr", sky), META)
    bpy.ops.mesh.primitive_uv_sphere_add(radius=1.0)
    bpy.ops.object.camera_add(location=(0, -4, 0), rotation=(np.pi / 2, 0, 0))
    scene.camera = bpy.context.active_object
    pixels = render(scene, tmp_path / "sphere.exr", size=32, samples=8)
    top, bottom = pixels[9:12, 14:18].mean(), pixels[20:23, 14:18].mean()
    assert top > 3 * bottom


def test_a_failure_while_wiring_leaves_nothing_behind(addon, world_writer, tmp_path, monkeypatch):
    nodes = importlib.import_module(addon.__name__ + ".scene.nodes")
    scene = new_scene()
    counts = (len(bpy.data.worlds), len(bpy.data.images))

    def broken_link(*args):
        raise RuntimeError("simulated failure half way through the node tree")

    monkeypatch.setattr(nodes, "link", broken_link)
    with pytest.raises(RuntimeError, match="half way"):
        world_writer.apply_world(scene, constant_exr(tmp_path / "d.exr", 1.0), META)
    assert scene.world is None and (len(bpy.data.worlds), len(bpy.data.images)) == counts


def test_a_failed_update_keeps_the_world_as_it_was(addon, world_writer, tmp_path, monkeypatch):
    nodes = importlib.import_module(addon.__name__ + ".scene.nodes")
    scene = new_scene()
    world = world_writer.apply_world(scene, constant_exr(tmp_path / "first.exr", 1.0), META)
    first = world.node_tree.nodes["Promptscape Environment"].image
    images = len(bpy.data.images)
    monkeypatch.setattr(nodes, "link", lambda *args: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        world_writer.apply_world(scene, constant_exr(tmp_path / "second.exr", 2.0), META)
    assert scene.world == world and world.node_tree.nodes["Promptscape Environment"].image == first
    assert len(bpy.data.images) == images
