"""A world you can stand in: its depth, its mesh and its exports, from the sidebar or a script."""

from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty
from bpy_extras.io_utils import ExportHelper

from ..flow import world3d
from .generate import operator_properties, overrides, run_task


class PROMPTSCAPE_OT_world_depth(bpy.types.Operator):
    """Estimate how far away every pixel of the scene's world is, with a depth model (for meshes, VR
    parallax and depth exports); the depth map is saved beside the world's files"""

    bl_idname = "promptscape.world_depth"
    bl_label = "World Depth"
    bl_options = {"REGISTER"}
    __annotations__ = operator_properties("depth")

    def execute(self, context):
        options = overrides(self, "depth")  # unset ones come from the sidebar
        return run_task(self, lambda: world3d.start_depth(context.scene, context.scene.world, **options))


class PROMPTSCAPE_OT_world_mesh(bpy.types.Operator):
    """Put a mesh of the world in the scene, at its depth and textured with it: move around inside the
    world (VR Scene Inspection) and see parallax. The world HDRI keeps lighting the scene"""

    bl_idname = "promptscape.world_mesh"
    bl_label = "World Mesh"
    bl_options = {"REGISTER", "UNDO"}
    __annotations__ = operator_properties("mesh")

    def execute(self, context):
        options = overrides(self, "mesh")
        start = world3d.start_depth
        return run_task(self, lambda: start(context.scene, context.scene.world, mesh=True, **options))


class PROMPTSCAPE_OT_export_world(bpy.types.Operator, ExportHelper):
    """Export the scene's world for a game engine or a headset: the world mesh as .glb, six cube faces, or
    the depth map"""

    bl_idname = "promptscape.export_world"
    bl_label = "Export World"
    bl_options = {"REGISTER"}

    filename_ext = ".glb"
    filter_glob: StringProperty(default="*.glb;*.exr;*.png", options={"HIDDEN"})
    format: EnumProperty(
        name="Format",
        items=(
            ("glb", "World Mesh (.glb)", "The world mesh with its texture, for Unity, Unreal, three.js"),
            ("cubemap", "Cube Map", "Six faces px, nx, py, ny, pz, nz (EXR and PNG) in a folder"),
            ("depth", "Depth Map", "Distance along each ray: EXR in metres and a 16-bit PNG"),
        ),
    )

    def execute(self, context):
        path = Path(self.filepath)  # the file browser adds .glb: the name follows the format chosen
        if self.format == "cubemap":  # a folder named for the file chosen
            path = path.with_suffix("")
        elif self.format == "depth" and path.suffix.lower() not in (".exr", ".png"):
            path = path.with_suffix(".exr")
        elif self.format == "glb":
            path = path.with_suffix(".glb")
        scene = context.scene
        return run_task(self, lambda: world3d.export_world(scene, scene.world, path, format=self.format))


classes = (PROMPTSCAPE_OT_world_depth, PROMPTSCAPE_OT_world_mesh, PROMPTSCAPE_OT_export_world)
