"""Apply a result from this session's history again."""

import bpy
from bpy.props import IntProperty

from .. import actions, job_runner
from ..generation.errors import PromptscapeError


class PROMPTSCAPE_OT_reapply(bpy.types.Operator):
    """Apply this result again: as the scene's world, or as a material on the selected objects"""

    bl_idname = "promptscape.reapply"
    bl_label = "Re-apply"
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty(name="Index", description="Position in the history, newest first", min=0)

    def execute(self, context):
        history = job_runner.history()
        if self.index >= len(history):
            self.report({"ERROR"}, "That result is no longer in the history")
            return {"CANCELLED"}
        try:
            result = actions.reapply(history[self.index], context.scene)
        except PromptscapeError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Promptscape: '{result.name}' applied")
        return {"FINISHED"}


classes = (PROMPTSCAPE_OT_reapply,)
