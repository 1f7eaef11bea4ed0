"""A prop from the prompt: an object drawn, cut out and shaped by TripoSR, standing at the 3D cursor."""

import bpy

from ..flow import prop
from .generate import operator_properties, overrides, run_task


class PROMPTSCAPE_OT_generate_prop(bpy.types.Operator):
    """Make a 3D object from the prompt: the model draws it, TripoSR gives it a shape and colours, and it
    stands at the 3D cursor (its back is guessed from one view)"""

    bl_idname = "promptscape.generate_prop"
    bl_label = "Generate Prop"
    bl_options = {"REGISTER", "UNDO"}
    __annotations__ = operator_properties("prop")

    def execute(self, context):
        options = overrides(self, "prop")  # unset ones come from the sidebar (location: the 3D cursor)
        return run_task(self, lambda: prop.start_prop(context.scene, **options))


classes = (PROMPTSCAPE_OT_generate_prop,)
