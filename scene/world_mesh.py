"""The world mesh in the scene: an inward-facing mesh at the world's depth, lit by nothing, seen by the
camera only, textured with the world's own panorama and turning with the world's rotation."""

import bpy
import numpy as np

from ..generation.engine import server_trust
from ..generation.errors import PromptscapeError
from . import images, nodes, world

OBJECT_NAME = "Promptscape World Mesh"
MARK = "promptscape_world_mesh"  # on the object: names change (.001 in another scene), marks do not
# The ray types the mesh hides from: it must not shadow or block the world's light or a Sun lamp.
HIDDEN_FROM = (
    "visible_diffuse",
    "visible_glossy",
    "visible_transmission",
    "visible_volume_scatter",
    "visible_shadow",
)


def build_mesh(name: str, arrays) -> bpy.types.Mesh:
    """A mesh datablock from imaging.world_mesh.MeshArrays, in one foreach_set per attribute. The arrays
    are checked first (they may come from a server): an inconsistent set fails before Blender sees it."""
    arrays = server_trust.checked_mesh(
        arrays.positions, arrays.corners, arrays.sizes, arrays.uvs, arrays.split
    )
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(arrays.positions))
    mesh.vertices.foreach_set("co", arrays.positions.ravel())
    mesh.loops.add(len(arrays.corners))
    mesh.loops.foreach_set("vertex_index", arrays.corners)
    mesh.polygons.add(arrays.face_count)
    starts = np.concatenate([[0], np.cumsum(arrays.sizes)[:-1]]).astype(np.int32)
    mesh.polygons.foreach_set("loop_start", starts)
    if bpy.app.version < (4, 0, 0):  # newer Blenders derive loop_total from the starts
        mesh.polygons.foreach_set("loop_total", arrays.sizes)
    uv = mesh.uv_layers.new(name="UVMap")
    uv.data.foreach_set("uv", arrays.uvs.ravel())
    # validate() first: it derives the edges from the corners and repairs what update() would trust.
    mesh.validate(clean_customdata=False)
    mesh.update()
    return mesh


def _material(environment_image, metadata: dict):
    material = bpy.data.materials.new("PS World Mesh")
    tree = nodes.ensure_node_tree(material)
    for node in list(tree.nodes):
        tree.nodes.remove(node)
    texture = nodes.ours(tree, "Panorama", "ShaderNodeTexImage", (-500, 300))
    texture.image = environment_image
    emission = nodes.ours(tree, "Emission", "ShaderNodeEmission", (-200, 300))
    output = nodes.output_node(tree, "ShaderNodeOutputMaterial", (100, 300))
    nodes.link(tree, texture.outputs["Color"], emission.inputs["Color"])
    nodes.link(tree, emission.outputs["Emission"], output.inputs["Surface"])
    images.tag(material, metadata)
    return material


def apply_world_mesh(scene, arrays, metadata: dict):
    """Put the world mesh of `scene`'s world into it, replacing an earlier one of ours; return it."""
    environment = world.environment_node(scene.world)
    if environment is None or environment.image is None:
        raise PromptscapeError("The scene's world is not a Promptscape world: make or apply one first")
    mesh = build_mesh(OBJECT_NAME, arrays)
    try:
        mesh.materials.append(_material(environment.image, metadata))
        previous = find_world_mesh(scene)
        obj = bpy.data.objects.new(OBJECT_NAME, mesh)
        scene.collection.objects.link(obj)
    except Exception:
        bpy.data.meshes.remove(mesh)
        raise
    for flag in HIDDEN_FROM:
        setattr(obj, flag, False)
    nodes.follow_world_rotation(obj, scene.world)
    images.tag(obj, metadata)
    obj[MARK] = True
    if previous is not None:  # ours, made earlier: the new one replaces it
        old_mesh = previous.data
        bpy.data.objects.remove(previous)
        if old_mesh.users == 0:
            bpy.data.meshes.remove(old_mesh)
    return obj


def find_world_mesh(scene):
    """The world mesh Promptscape put in `scene`, or None."""
    return next((obj for obj in scene.objects if obj.get(MARK)), None)
