"""The Prop subpanel: a 3D object from the sidebar's prompt, at the 3D cursor. UI only."""

import bpy

from ..generation.engine.memory_plan import GIB, PROP_SHAPE_BYTES
from .main import SidebarSubpanel


class PROMPTSCAPE_PT_prop(SidebarSubpanel, bpy.types.Panel):
    bl_label = "Prop"
    bl_idname = "PROMPTSCAPE_PT_prop"

    def draw(self, context):
        layout = self.layout
        layout.label(text="The prompt as one object, at the 3D cursor", icon="INFO")
        layout.operator("promptscape.generate_prop", icon="MESH_MONKEY")
        layout.label(text=f"Shape: TripoSR (MIT), about {PROP_SHAPE_BYTES / GIB:g} GB GPU; slow on the CPU")


classes = (PROMPTSCAPE_PT_prop,)
