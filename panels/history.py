"""The History subpanel: this session's results with a thumbnail and Re-apply."""

import bpy

from ..flow import runner
from .main import SidebarSubpanel
from .previews import thumbnail_icon

UPSCALABLE = {"world": "promptscape.upscale_world", "material": "promptscape.upscale_material"}
REMIXABLE = {"world": "promptscape.remix_world", "material": "promptscape.remix_material"}
ICONS = {"world": "WORLD", "material": "MATERIAL", "mesh": "MESH_UVSPHERE", "depth": "MOD_DISPLACE"}
ICONS["prop"] = "MESH_MONKEY"


class PROMPTSCAPE_PT_history(SidebarSubpanel, bpy.types.Panel):
    bl_label = "History"
    bl_idname = "PROMPTSCAPE_PT_history"

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
            if entry.metadata.get("sun") == "found":
                meta = entry.metadata
                up, around = float(meta["sun_elevation_deg"]), float(meta["sun_azimuth_deg"])
                share = float(meta["sun_share"]) * 100
                text = (
                    f"Sun {up:.0f}° up, {around:.0f}°, {share:.0f}% of light, {meta['sun_temperature_k']} K"
                )
                col.label(text=text, icon="LIGHT_SUN")
            buttons = col.row(align=True)
            buttons.operator("promptscape.reapply", text="Re-apply").key = entry.key
            buttons.operator("promptscape.use_settings", text="Use Settings").key = entry.key
            if entry.kind in UPSCALABLE:
                buttons.operator(UPSCALABLE[entry.kind], text="", icon="FULLSCREEN_ENTER").key = entry.key
            if entry.kind in REMIXABLE:  # redrawn from the sidebar's prompt at the operator's strength
                buttons.operator(REMIXABLE[entry.kind], text="", icon="SHADERFX").key = entry.key


classes = (PROMPTSCAPE_PT_history,)
