"""A world or a material from an existing image file: no model, no torch."""

import bpy
from bpy.props import StringProperty
from bpy_extras.io_utils import ImportHelper

from ..flow import start
from .generate import run_task

IMAGE_FILTER = "*.png;*.jpg;*.jpeg;*.exr;*.hdr;*.tif;*.tiff;*.webp;*.bmp"


class PROMPTSCAPE_OT_world_from_image(bpy.types.Operator, ImportHelper):
    """Make the scene's world from a panorama image (2:1); LDR images get real HDR light"""

    bl_idname = "promptscape.world_from_image"
    bl_label = "World from Image"
    bl_options = {"REGISTER"}

    filter_glob: StringProperty(default=IMAGE_FILTER, options={"HIDDEN"})

    def execute(self, context):
        return run_task(self, lambda: start.world_from_image(context.scene, self.filepath))


class PROMPTSCAPE_OT_material_from_image(bpy.types.Operator, ImportHelper):
    """Make a seamless PBR material from a texture image and put it on the selected objects"""

    bl_idname = "promptscape.material_from_image"
    bl_label = "Material from Image"
    bl_options = {"REGISTER"}

    filter_glob: StringProperty(default=IMAGE_FILTER, options={"HIDDEN"})

    def execute(self, context):
        return run_task(self, lambda: start.material_from_image(context.scene, self.filepath))


classes = (PROMPTSCAPE_OT_world_from_image, PROMPTSCAPE_OT_material_from_image)
