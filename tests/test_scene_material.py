"""The material writer: nodes, colour spaces, tiling, box mapping without UVs, the user's materials kept."""

import importlib

import bpy
import numpy as np
import pytest
from scene_helpers import new_scene, write_png

META = {"prompt": "mossy stones", "seed": "3", "generator": "Promptscape"}


@pytest.fixture(scope="module")
def writer(addon):
    return importlib.import_module(addon.__name__ + ".scene.material")


@pytest.fixture
def maps(writer, tmp_path):
    rng = np.random.default_rng(0)
    colour = rng.random((16, 16, 3))
    grey = rng.random((16, 16))
    return writer.MaterialMaps(
        albedo=write_png(tmp_path / "albedo.png", colour),
        normal=write_png(tmp_path / "normal.png", np.full((16, 16, 3), (0.5, 0.5, 1.0))),
        roughness=write_png(tmp_path / "roughness.png", grey, bits=16),
        height=write_png(tmp_path / "height.png", grey, bits=16),
        ao=write_png(tmp_path / "ao.png", np.ones((16, 16)), bits=16),
    )


def test_material_nodes_colour_spaces_and_tiling(writer, maps):
    material = writer.build_material("PS stones", maps, META, tiling=4.0, normal_strength=0.5)
    nodes = material.node_tree.nodes
    spaces = {role: nodes[f"Promptscape {role}"].image.colorspace_settings.name for role in
              ("Albedo", "Normal", "Roughness", "Height", "Ao")}  # fmt: skip
    assert spaces == {"Albedo": "sRGB", "Normal": "Non-Color", "Roughness": "Non-Color",
                      "Height": "Non-Color", "Ao": "Non-Color"}  # fmt: skip
    assert tuple(nodes["Promptscape Mapping"].inputs["Scale"].default_value) == (4.0, 4.0, 4.0)
    assert nodes["Promptscape Normal Map"].inputs["Strength"].default_value == 0.5
    bsdf = next(node for node in nodes if node.bl_idname == "ShaderNodeBsdfPrincipled")
    assert bsdf.inputs["Base Color"].links[0].from_node.name == "Promptscape AO Multiply"
    assert bsdf.inputs["Roughness"].links[0].from_node.name == "Promptscape Roughness"
    assert bsdf.inputs["Normal"].links[0].from_node.name == "Promptscape Bump"
    for role in ("Albedo", "Normal", "Roughness", "Height", "Ao"):
        texture = nodes[f"Promptscape {role}"]
        assert texture.inputs["Vector"].links[0].from_node.name == "Promptscape Mapping"
        assert not texture.image.packed_file and dict(texture.image["promptscape"]) == META
    assert nodes["Promptscape Mapping"].inputs["Vector"].links[0].from_socket.name == "UV"
    assert dict(material["promptscape"]) == META


def test_displacement_mode_wires_material_output(writer, maps):
    material = writer.build_material("PS disp", maps, META, height_mode="DISPLACEMENT")
    output = next(n for n in material.node_tree.nodes if n.bl_idname == "ShaderNodeOutputMaterial")
    assert output.inputs["Displacement"].links[0].from_node.name == "Promptscape Displacement"
    assert material.displacement_method == "BOTH"


def test_objects_without_uvs_get_box_mapping(writer, maps):
    new_scene()
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    while cube.data.uv_layers:
        cube.data.uv_layers.remove(cube.data.uv_layers[0])
    assert writer.needs_box_mapping([cube])
    material = writer.build_material("PS box", maps, META, box_mapping=True)
    nodes = material.node_tree.nodes
    assert nodes["Promptscape Albedo"].projection == "BOX"
    assert nodes["Promptscape Mapping"].inputs["Vector"].links[0].from_socket.name == "Object"


def test_assign_keeps_the_users_material(writer, maps):
    new_scene()
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    mine = bpy.data.materials.new("My Hand-Made Material")
    cube.data.materials.append(mine)
    bpy.ops.mesh.primitive_plane_add()
    plane = bpy.context.active_object
    generated = writer.build_material("PS new", maps, META)

    kept = writer.assign(generated, [cube, plane])
    assert cube.active_material == generated and plane.active_material == generated
    assert kept == ["My Hand-Made Material"] and mine.use_fake_user  # still saved with the file
    assert len(cube.material_slots) == 1


def test_unreadable_map_builds_nothing(addon, writer, maps, tmp_path):
    errors = importlib.import_module(addon.__name__ + ".generation.errors")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    broken = writer.MaterialMaps(maps.albedo, tmp_path / "broken.png", maps.roughness, maps.height, maps.ao)
    before = len(bpy.data.materials)
    with pytest.raises(errors.InvalidImage):
        writer.build_material("PS broken", broken, META)
    assert len(bpy.data.materials) == before


def test_a_failure_while_wiring_builds_nothing(addon, writer, maps, monkeypatch):
    nodes = importlib.import_module(addon.__name__ + ".scene.nodes")
    counts = (len(bpy.data.materials), len(bpy.data.images))
    monkeypatch.setattr(nodes, "link", lambda *args: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        writer.build_material("PS half", maps, META)
    assert (len(bpy.data.materials), len(bpy.data.images)) == counts


def test_assign_puts_every_slot_back_when_one_object_fails(writer, maps, errors):
    new_scene()
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    mine = bpy.data.materials.new("Mine")
    cube.data.materials.append(mine)
    bpy.ops.mesh.primitive_plane_add()
    plane = bpy.context.active_object  # no slots: assign adds one
    bpy.ops.object.empty_add()
    empty = bpy.context.active_object  # no data to hold a material: assign fails here
    generated = writer.build_material("PS all or none", maps, META)
    with pytest.raises(AttributeError):
        writer.assign(generated, [cube, plane, empty])
    assert cube.active_material == mine and len(plane.data.materials) == 0
    with pytest.raises(errors.PromptscapeError, match="Empty cannot take a material"):  # said, not dropped
        writer.objects_to_texture(bpy.context, [cube, empty])
