"""This session's results: apply one again, or take its settings back into the sidebar."""

import bpy
from bpy.props import IntProperty

from ..flow import edits, project, runner, start
from ..generation.errors import PromptscapeError
from ..properties import use_request
from ..scene import images


class PROMPTSCAPE_OT_reapply(bpy.types.Operator):
    """Apply this result again: as the scene's world, or as a material on the selected objects"""

    bl_idname = "promptscape.reapply"
    bl_label = "Re-apply"
    bl_options = {"REGISTER", "UNDO"}

    key: IntProperty(name="Result", description="Which result of the history", min=0)

    def execute(self, context):
        entry = runner.history_entry(self.key)
        if entry is None:
            self.report({"ERROR"}, "That result is no longer in the history")
            return {"CANCELLED"}
        try:
            if entry.kind == "project":  # onto the objects it was made for: its UVs fit those only
                result = project.reapply(entry)
            else:
                result = start.reapply(entry, context.scene)
        except PromptscapeError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        names = ", ".join(made.name for made in (result if isinstance(result, list) else [result]))
        self.report({"INFO"}, f"Promptscape: '{names}' applied")
        return {"FINISHED"}


class PROMPTSCAPE_OT_use_settings(bpy.types.Operator):
    """Put the prompt, seed and settings that made this result into the sidebar, to generate it again
    or a variation of it"""

    bl_idname = "promptscape.use_settings"
    bl_label = "Use Settings"
    bl_options = {"REGISTER", "UNDO"}

    key: IntProperty(name="Result", description="Which result of the history; -1: the scene's world", min=-1)

    def execute(self, context):
        if self.key < 0:
            metadata = images.metadata_of(context.scene.world) if context.scene.world else {}
        else:
            entry = runner.history_entry(self.key)
            metadata = entry.metadata if entry is not None else {}
        if "edit" in metadata:  # an edit's prompt and seed; its own settings repeat through the API
            metadata = edits.sidebar_record(metadata)
        elif "source_image" in metadata:
            self.report({"ERROR"}, "This result was made from an image file: it has no prompt or seed")
            return {"CANCELLED"}
        if "seed" not in metadata:
            self.report({"ERROR"}, "No Promptscape settings to take: generate something first")
            return {"CANCELLED"}
        try:  # the values come from a .blend, perhaps someone else's: data to check, never trusted
            use_request(context.scene.promptscape, metadata)
        except (ValueError, TypeError, OverflowError) as error:
            self.report({"ERROR"}, f"The stored settings cannot be used ({error})")
            return {"CANCELLED"}
        return {"FINISHED"}


classes = (PROMPTSCAPE_OT_reapply, PROMPTSCAPE_OT_use_settings)
