"""A world you can stand in: depth from the tiny depth model, the world mesh, and the exports."""

import importlib
import json
import math
from pathlib import Path

import bpy
import numpy as np
import pytest
from mathutils import Vector
from scene_helpers import new_scene, read_exr, render, write_exr

# Blender 4.2's bpy module crashes on exit (signal 11) after its glTF add-on ran; 5.0 and 5.2 test .glb.
GLTF_EXITS_CLEANLY = pytest.mark.skipif(
    bpy.app.version < (5, 0, 0), reason="4.2's module crashes at exit after glTF"
)


ROOM = {"x": (-3.0, 4.0), "y": (-2.5, 3.5), "z": (-1.6, 1.4)}


def directions(height, width):
    elevation = np.pi * (0.5 - (np.arange(height) + 0.5) / height)
    azimuth = 2 * np.pi * (0.5 - (np.arange(width) + 0.5) / width)
    e, a = np.meshgrid(elevation, azimuth, indexing="ij")
    return np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], -1)


def room_distance(d):
    best = np.full(d.shape[:-1], np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis, planes in enumerate(ROOM.values()):
            for plane in planes:
                t = plane / d[..., axis]
                best = np.where((t > 0) & (t < best), t, best)
    return best


def edge_faces(mesh_data) -> list[int]:
    """How many faces use each edge (bmesh is importable only once bpy is)."""
    import bmesh

    mesh = bmesh.new()
    mesh.from_mesh(mesh_data)
    counts = [len(edge.link_faces) for edge in mesh.edges]
    mesh.free()
    return counts


def merged_positions(mesh_data) -> set:
    """The vertex positions after merging by distance (glTF splits vertices at UV seams)."""
    import bmesh

    mesh = bmesh.new()
    mesh.from_mesh(mesh_data)
    bmesh.ops.remove_doubles(mesh, verts=mesh.verts, dist=1e-4)
    found = {tuple(np.round(vertex.co[:], 3)) for vertex in mesh.verts}
    mesh.free()
    return found


@pytest.fixture(scope="module")
def world_file(tmp_path_factory) -> Path:
    """A smooth HDR panorama whose colour tells the direction: red along +X, green +Y, blue up."""
    d = directions(256, 512)  # fine enough that Blender's lookup at the poles, which wraps, barely shows
    return write_exr(tmp_path_factory.mktemp("world") / "room.exr", (0.55 + 0.45 * d).astype(np.float32))


@pytest.fixture
def room_world(api, world_file):
    scene = new_scene()
    return scene, api.world_from_image(str(world_file), scene=scene)


def test_the_tiny_depth_model_runs_the_real_estimation_path(api, room_world, tiny_depth):
    scene, world = room_world
    job = api.world_depth(world, scene=scene, depth_model=str(tiny_depth), wait=False)
    path = job.result()
    assert {"load_depth_model", "depth", "postprocess"} <= set(job.timings)  # the loading is counted
    distance = read_exr(path)[..., 0]
    assert distance.shape == (256, 512) and np.isfinite(distance).all() and distance.min() > 0
    assert distance.max() <= 90.0 and Path(path).with_suffix(".png").is_file()
    assert world["promptscape_depth"] == str(path)  # meshes and exports reuse it


def test_a_given_depth_map_puts_every_vertex_on_the_walls(api, room_world, tmp_path):
    scene, world = room_world
    depth = write_exr(tmp_path / "depth.exr", np.repeat(room_distance(directions(256, 512))[..., None], 3, 2))
    obj = api.world_mesh(world, depth=str(depth), scene=scene, mesh_resolution=64)
    positions = np.array([vertex.co[:] for vertex in obj.data.vertices])
    distance = np.linalg.norm(positions, axis=1)
    truth = room_distance(positions / distance[:, None])
    assert np.abs(distance / truth - 1).max() < 0.01
    assert positions[:, 2].min() == pytest.approx(-1.6, rel=0.01)  # the camera stands 1.6 m up
    # Closed: no edge with one face, across the seam or at the poles; every face toward the origin.
    assert set(edge_faces(obj.data)) == {2}
    assert all(poly.normal.dot(Vector(poly.center)) < 0 for poly in obj.data.polygons)
    # Seen by the camera only; far parts within the clip range; UVs on the panorama.
    assert obj.visible_camera and not obj.visible_shadow and not obj.visible_diffuse
    assert distance.max() < 100.0 and len(obj.data.uv_layers) == 1


def test_the_mesh_turns_with_the_world(api, room_world, tmp_path):
    scene, world = room_world
    depth = write_exr(tmp_path / "sphere.exr", np.full((64, 128, 3), 5.0, np.float32))
    obj = api.world_mesh(world, depth=str(depth), scene=scene, mesh_resolution=32)
    poles = [vertex.co.length for vertex in obj.data.vertices if abs(vertex.co.z) > 4.99]
    assert len(poles) == 2 and max(poles) == pytest.approx(min(poles), rel=0.02)
    world.node_tree.nodes["Promptscape Mapping"].inputs["Rotation"].default_value[2] = 0.7
    bpy.context.view_layer.update()
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    assert evaluated.rotation_euler.z == pytest.approx(-0.7, abs=1e-5)


def test_depth_jumps_split_the_mesh(api, room_world, tmp_path):
    scene, world = room_world
    distance = np.full((128, 256), 20.0, np.float32)
    distance[40:90, 100:140] = 2.0  # a near box in front of a far wall
    depth = write_exr(tmp_path / "jump.exr", np.repeat(distance[..., None], 3, 2))
    obj = api.world_mesh(world, depth=str(depth), scene=scene, mesh_resolution=64)
    assert len(obj.data.polygons) < 64 * 32  # the walls between near and far were cut, not stretched
    assert 1 in edge_faces(obj.data)


@GLTF_EXITS_CLEANLY
def test_the_glb_reimports_with_its_faces_positions_and_texture(api, room_world, tmp_path):
    scene, world = room_world
    depth = write_exr(tmp_path / "depth.exr", np.repeat(room_distance(directions(128, 256))[..., None], 3, 2))
    obj = api.world_mesh(world, depth=str(depth), scene=scene, mesh_resolution=32)
    triangles = sum(len(poly.vertices) - 2 for poly in obj.data.polygons)
    ours = {tuple(np.round(vertex.co[:], 3)) for vertex in obj.data.vertices}
    path = api.export_world(world, tmp_path / "world.glb", format="glb", scene=scene)
    assert Path(path).is_file()
    imported_scene = new_scene("Imported")
    bpy.ops.import_scene.gltf(filepath=str(path))
    (imported,) = [o for o in imported_scene.objects if o.type == "MESH"]
    assert len(imported.data.polygons) == triangles
    assert merged_positions(imported.data) == ours
    textures = [
        node for node in imported.active_material.node_tree.nodes if node.bl_idname == "ShaderNodeTexImage"
    ]
    assert textures and textures[0].image is not None


def test_a_glb_export_whose_mesh_was_deleted_while_it_waited_says_so(api, errors, room_world, tmp_path):
    """The export job finds its scene and mesh again when its turn comes, as the other jobs do."""
    scene, world = room_world
    depth = write_exr(tmp_path / "depth.exr", np.repeat(room_distance(directions(128, 256))[..., None], 3, 2))
    mesh = api.world_mesh(world, depth=str(depth), scene=scene, mesh_resolution=16)
    job = api.export_world(world, tmp_path / "world.glb", scene=scene, wait=False)
    bpy.data.objects.remove(mesh)  # while the export waits in the queue
    with pytest.raises(errors.PromptscapeError, match="deleted meanwhile: nothing was exported"):
        job.result(timeout=60)
    assert not (tmp_path / "world.glb").exists()


def test_cube_faces_look_along_blenders_axes(api, room_world, tmp_path):
    scene, world = room_world
    folder = Path(api.export_world(world, tmp_path / "cube", format="cubemap", scene=scene))
    names = sorted(path.stem for path in folder.glob("*.exr"))
    assert names == sorted(["px", "nx", "py", "ny", "pz", "nz"]) and len(list(folder.glob("*.png"))) == 6
    camera = bpy.data.objects.new("Axis camera", bpy.data.cameras.new("Axis camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    camera.data.angle = math.radians(2.0)
    # Blender's camera looks down its -Z: these rotations aim it along each axis.
    aims = {"px": (90, 0, -90), "nx": (90, 0, 90), "py": (90, 0, 0), "ny": (90, 0, 180), "pz": (180, 0, 0),
            "nz": (0, 0, 0)}  # fmt: skip
    for face, rotation in aims.items():
        camera.rotation_euler = [math.radians(angle) for angle in rotation]
        seen = render(scene, tmp_path / f"{face}-render.exr", size=16, samples=1).mean(axis=(0, 1))
        image = read_exr(folder / f"{face}.exr")
        size = image.shape[0]
        centre = image[size // 2 - 1 : size // 2 + 1, size // 2 - 1 : size // 2 + 1].mean(axis=(0, 1))
        assert image.shape[:2] == (size, size)
        # atol: straight down, Blender's bilinear lookup wraps into the top row by a hair (0.015 here).
        np.testing.assert_allclose(seen, centre, rtol=0.03, atol=0.02, err_msg=face)


@GLTF_EXITS_CLEANLY
def test_the_command_line_makes_a_world_its_mesh_and_a_glb(addon, tiny_sd, tiny_depth, tmp_path, capfd):
    cli = importlib.import_module(addon.__name__ + ".cli")
    out, glb = tmp_path / "out.blend", tmp_path / "world.glb"
    argv = ["world", "a canyon", "--model", str(tiny_sd), "--steps", "2", "--width", "128", "--height", "64"]
    argv += ["--mesh", "--depth-model", str(tiny_depth), "--mesh-resolution", "32", "--export", str(glb)]
    assert cli.main([*argv, "--device", "cpu", "--poles", "off", "--output", str(out)]) == 0
    assert glb.is_file()
    bpy.ops.wm.open_mainfile(filepath=str(out))
    (mesh,) = [obj for obj in bpy.context.scene.objects if obj.get("promptscape_world_mesh")]
    assert len(mesh.data.polygons) > 0
    folder = tmp_path / "faces"
    capfd.readouterr()
    assert cli.main(["export", str(folder), "--blend", str(out), "--json"]) == 0  # a folder: the cube map
    (result,) = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert result["kind"] == "export" and sorted(result["files"]) == sorted(
        f"{face}.{ext}" for face in ("px", "nx", "py", "ny", "pz", "nz") for ext in ("exr", "png")
    )
    assert len(list(folder.glob("*.png"))) == 6
    bpy.ops.wm.read_homefile(use_empty=True)


def test_the_operators_and_the_sidebar(room_world, tiny_depth, tmp_path):
    from test_extension import draw

    _scene, _world = room_world  # the scene whose world the operators work on
    assert bpy.ops.promptscape.world_mesh(depth_model=str(tiny_depth), mesh_resolution=32) == {"FINISHED"}
    texts = draw(bpy.types.PROMPTSCAPE_PT_world3d, bpy.context)
    assert "promptscape.world_depth" in texts and "promptscape.world_mesh" in texts
    assert {"GLB", "Cube Map", "Depth"} <= set(texts) and "prop:camera_height" in texts
    path = tmp_path / "depth.exr"
    assert bpy.ops.promptscape.export_world(filepath=str(path), format="depth") == {"FINISHED"}
    assert path.is_file() and path.with_suffix(".png").is_file()
