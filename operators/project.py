"""Project a texture drawn from the prompt onto the selected meshes, from the camera and views around them."""

import bpy

from ..flow import project
from .generate import operator_properties, overrides, run_task


class PROMPTSCAPE_OT_project_texture(bpy.types.Operator):
    """Draw a texture from the prompt as the camera sees the selected meshes (and from views around them)
    and bake it into their UV maps, with PBR maps, as a new material on each"""

    bl_idname = "promptscape.project_texture"
    bl_label = "Project Texture"
    bl_options = {"REGISTER"}
    __annotations__ = operator_properties("project")

    def execute(self, context):
        options = overrides(self, "project")
        return run_task(self, lambda: project.start_project(context.scene, None, **options))


classes = (PROMPTSCAPE_OT_project_texture,)
