"""The History subpanel: this session's results with a thumbnail and Re-apply."""

import bpy

from ..flow import runner
from .previews import thumbnail_icon

ICONS = {"world": "WORLD", "material": "MATERIAL", "mesh": "MESH_UVSPHERE", "depth": "MOD_DISPLACE"}


class PROMPTSCAPE_PT_history(bpy.types.Panel):
    bl_label = "History"
    bl_idname = "PROMPTSCAPE_PT_history"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Promptscape"
    bl_parent_id = "PROMPTSCAPE_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        entries = runner.history()
        if not entries:
            layout.label(text="Results of this session appear here")
        for entry in entries[:20]:
            row = layout.row()
            row.template_icon(icon_value=thumbnail_icon(entry), scale=2.0)
            col = row.column(align=True)
            col.label(text=entry.label[:40], icon=ICONS.get(entry.kind, "FILE"))
            col.label(text=f"Seed {entry.metadata.get('seed', '-')}")
            buttons = col.row(align=True)
            buttons.operator("promptscape.reapply", text="Re-apply").key = entry.key
            buttons.operator("promptscape.use_settings", text="Use Settings").key = entry.key


classes = (PROMPTSCAPE_PT_history,)
