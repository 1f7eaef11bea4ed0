"""The Promptscape sidebar tab."""

import bpy

from ..generation import dependencies


class PROMPTSCAPE_PT_main(bpy.types.Panel):
    bl_label = "Promptscape"
    bl_idname = "PROMPTSCAPE_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Promptscape"

    def draw(self, context):
        layout = self.layout
        props = context.scene.promptscape
        if missing := dependencies.missing():
            box = layout.box()
            box.alert = True
            box.label(text=f"Missing: {', '.join(missing)}", icon="ERROR")
            box.label(text="Install them in Preferences > Add-ons > Promptscape")
        layout.row().prop(props, "mode", expand=True)
        layout.prop(props, "prompt", text="")
        layout.prop(props, "negative_prompt", text="")


classes = (PROMPTSCAPE_PT_main,)
