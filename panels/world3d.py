"""The Depth & Mesh subpanel: a world you can stand in, and its exports. UI only."""

import bpy

from ..generation import options as declared
from ..scene import world as world_nodes
from ..scene import world_mesh
from .main import SidebarSubpanel


class PROMPTSCAPE_PT_world3d(SidebarSubpanel, bpy.types.Panel):
    bl_label = "Depth & Mesh"
    bl_idname = "PROMPTSCAPE_PT_world3d"

    def draw(self, context):
        layout = self.layout
        if world_nodes.environment_node(context.scene.world) is None:
            layout.label(text="Generate or apply a world first", icon="INFO")
            return
        props = context.scene.promptscape
        for option in declared.OPTIONS:
            if option.sidebar and option.kinds & declared.DEPTH:
                layout.prop(props, option.name)
        row = layout.row(align=True)
        row.operator("promptscape.world_depth", icon="MOD_DISPLACE")
        row.operator("promptscape.world_mesh", icon="MESH_UVSPHERE")
        layout.label(text="Export")
        row = layout.row(align=True)
        glb = row.row(align=True)
        glb.enabled = world_mesh.find_world_mesh(context.scene) is not None  # the .glb is the world mesh
        glb.operator("promptscape.export_world", text="GLB").format = "glb"
        row.operator("promptscape.export_world", text="Cube Map").format = "cubemap"
        row.operator("promptscape.export_world", text="Depth").format = "depth"


classes = (PROMPTSCAPE_PT_world3d,)
