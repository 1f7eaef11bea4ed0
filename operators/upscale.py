"""Upscale a world or a material that exists, from the History or a script, without generating again."""

import bpy
from bpy.props import EnumProperty, IntProperty

from ..flow import runner, upscale
from .generate import run_task

FACTORS = (
    ("0", "Largest", "As large as allowed: worlds 8192x4096, materials 4096x4096"),
    ("2", "2x", "Twice the width and height"),
    ("4", "4x", "Four times the width and height"),
)


def _factor(operator) -> dict:
    return {"upscale": int(operator.upscale)} if operator.upscale != "0" else {}


class PROMPTSCAPE_OT_upscale_world(bpy.types.Operator):
    """Make this world 2 or 4 times larger (up to 8K) with a learned upscaler that wraps around the
    seam, and make it the scene's world; nothing is generated again"""

    bl_idname = "promptscape.upscale_world"
    bl_label = "Upscale World"
    bl_options = {"REGISTER"}

    key: IntProperty(name="Result", description="Which result of the history; -1: the scene's world", min=-1,
                     default=-1)  # fmt: skip
    upscale: EnumProperty(name="Upscale", items=FACTORS)

    def execute(self, context):
        scene = context.scene
        entry = runner.history_entry(self.key) if self.key >= 0 else None
        if self.key >= 0 and entry is None:
            self.report({"ERROR"}, "That result is no longer in the history")
            return {"CANCELLED"}
        source = entry.outputs.exr if entry is not None else scene.world
        return run_task(self, lambda: upscale.start_upscale_world(scene, source, **_factor(self)))


class PROMPTSCAPE_OT_upscale_material(bpy.types.Operator):
    """Make this material 2 or 4 times larger (up to 4K) with a learned upscaler that wraps in both
    directions, and derive its maps again; the new material takes the old one's place"""

    bl_idname = "promptscape.upscale_material"
    bl_label = "Upscale Material"
    bl_options = {"REGISTER", "UNDO"}

    key: IntProperty(name="Result", description="Which result of the history; -1: the active material",
                     min=-1, default=-1)  # fmt: skip
    upscale: EnumProperty(name="Upscale", items=FACTORS)

    def execute(self, context):
        scene = context.scene
        if self.key >= 0:
            entry = runner.history_entry(self.key)
            if entry is None:
                self.report({"ERROR"}, "That result is no longer in the history")
                return {"CANCELLED"}
            source = entry.outputs.albedo
        else:
            source = context.object.active_material if context.object else None
            if source is None:
                self.report({"ERROR"}, "Select an object with a Promptscape material, then try again")
                return {"CANCELLED"}
        return run_task(self, lambda: upscale.start_upscale_material(scene, source, **_factor(self)))


classes = (PROMPTSCAPE_OT_upscale_world, PROMPTSCAPE_OT_upscale_material)
