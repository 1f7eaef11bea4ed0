"""Generate a world or a material from the prompt, and cancel."""

import bpy
from bpy.props import FloatProperty, IntProperty, StringProperty

from .. import actions, job_runner
from ..generation.errors import PromptscapeError


class GenerateOptions:
    """Optional overrides of the sidebar settings, so scripts can pass them; unset ones use the sidebar's."""

    prompt: StringProperty(name="Prompt", options={"SKIP_SAVE"})
    negative_prompt: StringProperty(name="Negative Prompt", options={"SKIP_SAVE"})
    seed: IntProperty(name="Seed", min=0, options={"SKIP_SAVE"})
    steps: IntProperty(name="Steps", options={"SKIP_SAVE"})
    guidance: FloatProperty(name="Guidance", options={"SKIP_SAVE"})
    width: IntProperty(name="Width", options={"SKIP_SAVE"})
    height: IntProperty(name="Height", options={"SKIP_SAVE"})
    model: StringProperty(name="Model", options={"SKIP_SAVE"})

    def overrides(self) -> dict:
        names = ("prompt", "negative_prompt", "seed", "steps", "guidance", "width", "height", "model")
        return {name: getattr(self, name) for name in names if self.properties.is_property_set(name)}


def run_task(operator, start) -> set[str]:
    """Start a task; in background mode wait for it and apply it before returning, as scripts expect."""
    try:
        task = start()
    except PromptscapeError as error:
        operator.report({"ERROR"}, str(error))
        return {"CANCELLED"}
    if not bpy.app.background and not task.finished:
        operator.report({"INFO"}, f"Promptscape: generating {task.kind} for '{task.label[:60]}'")
        return {"FINISHED"}
    job_runner.wait(task)
    if task.error:
        operator.report({"ERROR"}, task.error)
        return {"CANCELLED"}
    if not task.applied:
        operator.report({"WARNING"}, "Promptscape: cancelled")
        return {"CANCELLED"}
    operator.report({"INFO"}, f"Promptscape: {task.kind} '{task.result.name}' applied")
    return {"FINISHED"}


class PROMPTSCAPE_OT_generate_world(GenerateOptions, bpy.types.Operator):
    """Generate a 360° HDRI from the prompt and make it the scene's world"""

    bl_idname = "promptscape.generate_world"
    bl_label = "Generate World"
    bl_options = {"REGISTER"}

    def execute(self, context):
        return run_task(self, lambda: actions.start_world(context.scene, **self.overrides()))


class PROMPTSCAPE_OT_generate_material(GenerateOptions, bpy.types.Operator):
    """Generate a seamless PBR material from the prompt and put it on the selected objects"""

    bl_idname = "promptscape.generate_material"
    bl_label = "Generate Material"
    bl_options = {"REGISTER"}

    def execute(self, context):
        return run_task(self, lambda: actions.start_material(context.scene, None, **self.overrides()))


class PROMPTSCAPE_OT_generate(bpy.types.Operator):
    """Generate what the sidebar's mode says: a world or a material"""

    bl_idname = "promptscape.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}

    def execute(self, context):
        # Started here, not through the other operators: a nested operator's error report would reach
        # the artist as a Python traceback.
        if context.scene.promptscape.mode == "WORLD":
            return run_task(self, lambda: actions.start_world(context.scene))
        return run_task(self, lambda: actions.start_material(context.scene, None))


class PROMPTSCAPE_OT_cancel(bpy.types.Operator):
    """Stop the running generation and drop the queued ones; the scene stays as it is"""

    bl_idname = "promptscape.cancel"
    bl_label = "Cancel"
    bl_options = {"REGISTER"}

    def execute(self, context):
        if not job_runner.tasks():
            self.report({"INFO"}, "Promptscape: nothing to cancel")
            return {"CANCELLED"}
        job_runner.cancel_all()
        job_runner.tick()
        return {"FINISHED"}


classes = (
    PROMPTSCAPE_OT_generate_world,
    PROMPTSCAPE_OT_generate_material,
    PROMPTSCAPE_OT_generate,
    PROMPTSCAPE_OT_cancel,
)
