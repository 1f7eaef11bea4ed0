"""A prop in the scene: the mesh from its file, its vertex colours as a colour attribute, a material that
shows them, standing where its vertices were placed (the 3D cursor by default)."""

from pathlib import Path

import bpy
import numpy as np

from ..generation.imaging.prop_files import read_mesh
from . import images, nodes

COLOURS = "Color"  # the colour attribute: glTF exports it as COLOR_0
MARK = "promptscape_prop"


def build_mesh(name: str, path) -> bpy.types.Mesh:
    """A mesh datablock from a prop's .npz (checked on reading), one foreach_set per attribute."""
    arrays = read_mesh(path)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(arrays.vertices))
    mesh.vertices.foreach_set("co", arrays.vertices.ravel())
    mesh.loops.add(3 * len(arrays.faces))
    mesh.loops.foreach_set("vertex_index", arrays.faces.ravel())
    mesh.polygons.add(len(arrays.faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * len(arrays.faces), 3, dtype=np.int32))
    if bpy.app.version < (4, 0, 0):  # newer Blenders derive loop_total from the starts
        mesh.polygons.foreach_set("loop_total", np.full(len(arrays.faces), 3, np.int32))
    colours = mesh.color_attributes.new(COLOURS, "FLOAT_COLOR", "POINT")
    rgba = np.concatenate([arrays.colours, np.ones((len(arrays.colours), 1), np.float32)], axis=1)
    colours.data.foreach_set("color", rgba.ravel())
    mesh.color_attributes.active_color = colours
    if arrays.uvs is not None:  # unwrapped for its texture: a UV per vertex, given to each corner
        mesh.uv_layers.new(name="UVMap").data.foreach_set("uv", arrays.uvs[arrays.faces].ravel())
    mesh.validate(clean_customdata=False)
    mesh.update()
    return mesh


def _material(name: str, metadata: dict, texture=None):
    """A Principled BSDF whose base colour is the colour attribute, or the baked texture when there is one
    (rough, not metallic: TripoSR gives colour only)."""
    material = bpy.data.materials.new(name)
    tree = nodes.ensure_node_tree(material)
    for node in list(tree.nodes):
        tree.nodes.remove(node)
    attribute = nodes.ours(tree, "Colours", "ShaderNodeVertexColor", (-400, 300))
    attribute.layer_name = COLOURS
    shader = nodes.ours(tree, "Surface", "ShaderNodeBsdfPrincipled", (-150, 300))
    shader.inputs["Roughness"].default_value = 0.8
    output = nodes.output_node(tree, "ShaderNodeOutputMaterial", (200, 300))
    source = attribute.outputs["Color"]
    if texture is not None:
        image = nodes.ours(tree, "Texture", "ShaderNodeTexImage", (-400, 0))
        image.image = images.load(Path(texture), "sRGB", metadata)
        source = image.outputs["Color"]
    nodes.link(tree, source, shader.inputs["Base Color"])
    nodes.link(tree, shader.outputs["BSDF"], output.inputs["Surface"])
    images.tag(material, metadata)
    return material


def prop_name(prompt: str) -> str:
    words = " ".join(prompt.split()[:4])
    return f"PS {words}" if words else "PS Prop"


def add_prop(scene, mesh_path, metadata: dict, name: str, texture=None):
    """The prop as a new object in `scene`; returns it. Nothing is left behind when building it fails."""
    mesh = build_mesh(name, mesh_path)
    try:
        mesh.materials.append(_material(name, metadata, texture))
        obj = bpy.data.objects.new(name, mesh)
        scene.collection.objects.link(obj)
    except Exception:
        for material in mesh.materials:
            if material is not None:
                bpy.data.materials.remove(material)
        bpy.data.meshes.remove(mesh)
        raise
    images.tag(obj, metadata)
    obj[MARK] = True
    return obj
