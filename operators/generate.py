"""Generate a world or a material from the prompt, and cancel."""

import bpy

from ..flow import runner, start
from ..flow.settings import parse_loras
from ..generation import options as declared
from ..generation.errors import PromptscapeError
from ..properties import blender_property, sidebar_value


def operator_properties(kind: str) -> dict:
    """Every option of `kind` as an optional operator property: unset ones take the sidebar's value."""
    return {
        option.name: blender_property(option, clamp=False, options={"SKIP_SAVE"})
        for option in declared.for_kind(kind)
    }


def overrides(operator, kind: str) -> dict:
    """The options a script set on the operator, as the API takes them."""
    values = {}
    for option in declared.for_kind(kind):
        if operator.properties.is_property_set(option.name):
            value = getattr(operator, option.name)
            values[option.name] = (
                parse_loras(value) if option.type == "loras" else sidebar_value(option, value)
            )
    return values


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
    runner.wait(task)
    if task.error:
        operator.report({"ERROR"}, task.error)
        return {"CANCELLED"}
    if not task.applied:
        operator.report({"WARNING"}, "Promptscape: cancelled")
        return {"CANCELLED"}
    names = ", ".join(made.name for made in (task.result if isinstance(task.result, list) else [task.result]))
    operator.report({"INFO"}, f"Promptscape: {task.kind} '{names}' applied")
    return {"FINISHED"}


class PROMPTSCAPE_OT_generate_world(bpy.types.Operator):
    """Generate a 360° HDRI from the prompt and make it the scene's world"""

    bl_idname = "promptscape.generate_world"
    bl_label = "Generate World"
    bl_options = {"REGISTER"}
    __annotations__ = operator_properties("world")

    def execute(self, context):
        options = overrides(self, "world")
        return run_task(self, lambda: start.start_world(context.scene, **options))


class PROMPTSCAPE_OT_generate_material(bpy.types.Operator):
    """Generate a seamless PBR material from the prompt and put it on the selected objects"""

    bl_idname = "promptscape.generate_material"
    bl_label = "Generate Material"
    bl_options = {"REGISTER"}
    __annotations__ = operator_properties("material")

    def execute(self, context):
        return run_task(
            self, lambda: start.start_material(context.scene, None, **overrides(self, "material"))
        )


class PROMPTSCAPE_OT_generate(bpy.types.Operator):
    """Generate what the sidebar's mode says: a world or a material"""

    bl_idname = "promptscape.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}

    def execute(self, context):
        # Started here, not through the other operators: a nested operator's error report would reach
        # the artist as a Python traceback.
        if context.scene.promptscape.mode == "WORLD":
            return run_task(self, lambda: start.start_world(context.scene))
        if context.scene.promptscape.mode == "PROJECT":
            from ..flow import project

            return run_task(self, lambda: project.start_project(context.scene))
        return run_task(self, lambda: start.start_material(context.scene, None))


class PROMPTSCAPE_OT_cancel(bpy.types.Operator):
    """Stop the running generation and drop the queued ones; the scene stays as it is"""

    bl_idname = "promptscape.cancel"
    bl_label = "Cancel"
    bl_options = {"REGISTER"}

    def execute(self, context):
        if not runner.tasks():
            self.report({"INFO"}, "Promptscape: nothing to cancel")
            return {"CANCELLED"}
        runner.cancel_all()
        runner.tick()
        return {"FINISHED"}


classes = (
    PROMPTSCAPE_OT_generate_world,
    PROMPTSCAPE_OT_generate_material,
    PROMPTSCAPE_OT_generate,
    PROMPTSCAPE_OT_cancel,
)
