"""The Promptscape sidebar tab and the status-bar progress: UI only, no logic."""

import bpy

from .. import preferences
from ..flow import runner, settings, start
from ..generation import options as declared
from ..generation.engine import progress
from ..generation.setup import dependencies, world_presets
from ..scene import world as world_nodes
from .previews import live_icon

TOP = ("prompt", "negative_prompt", "steps", "guidance")  # drawn above the fold


def progress_text(task) -> tuple[float, str]:
    """(fraction, words) describing where a task is, in the words every surface uses (engine/progress.py),
    with time taken and left while the model denoises and the server's name for a job on a server."""
    job = task.job
    now = progress.of(job)
    where = getattr(getattr(job, "server", None), "where", "")  # a job on a Promptscape server
    text = now.text[:1].upper() + now.text[1:]
    if now.denoising:
        eta = getattr(job, "eta", None)
        text += f", {getattr(job, 'elapsed', 0.0):.0f} s" + (f", {eta:.0f} s left" if eta is not None else "")
    return now.fraction, text + (f" on {where}" if where else "")


def advanced_options(kind: str) -> list[str]:
    """The sidebar settings of `kind` drawn under the fold: every declared one the top does not show."""
    return [option.name for option in declared.for_kind(kind) if option.sidebar and option.name not in TOP]


class SidebarSubpanel:
    """Where every Promptscape subpanel sits: under the Promptscape tab of the 3D viewport's sidebar,
    closed until opened."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Promptscape"
    bl_parent_id = "PROMPTSCAPE_PT_main"
    bl_options = {"DEFAULT_CLOSED"}


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
        layout.prop(props, "prompt", text="", placeholder="Prompt")
        layout.prop(props, "negative_prompt", text="", placeholder="Negative prompt")
        row = layout.row(align=True)
        row.prop(props, "random_seed", text="", icon="FILE_REFRESH")
        sub = row.row(align=True)
        sub.enabled = not props.random_seed
        sub.prop(props, "seed")
        col = layout.column(align=True)
        col.prop(props, "model_defaults")
        sub = col.column(align=True)
        sub.enabled = not props.model_defaults
        sub.prop(props, "steps")
        sub.prop(props, "guidance")
        col.prop(props, "world_size" if props.mode == "WORLD" else "texture_size")
        row = layout.row(align=True)
        row.prop(preferences.get(context), "model", text="", icon="FILE_3D")
        row.operator("promptscape.unload_model", text="", icon="TRASH")
        if props.mode == "WORLD":
            if (preset := start.world_preset(wait=False)) is not None:
                layout.label(text=f"World model: {preset.name}", icon="WORLD")
            else:
                layout.label(text=world_presets.PLAIN_WARNING, icon="INFO")

        header, body = layout.panel("promptscape_advanced", default_closed=True)
        header.label(text="HDR" if props.mode == "WORLD" else "Material")
        if body:
            for name in advanced_options(
                {"WORLD": "world", "PROJECT": "project"}.get(props.mode, "material")
            ):
                body.prop(props, name)

        layout.label(text=settings.memory_estimate(context.scene), icon="MEMORY")
        generate = layout.row()
        generate.scale_y = 1.5
        generate.operator("promptscape.generate", icon="SHADERFX")
        self.draw_tasks(layout)
        if not runner.tasks() and (plan := runner.last_memory_plan()):
            layout.label(text=f"Last memory plan: {plan}")
        if error := runner.last_error():
            box = layout.box()
            box.alert = True
            box.label(text=error, icon="ERROR")

        row = layout.row(align=True)
        row.operator("promptscape.world_from_image", icon="WORLD")
        row.operator("promptscape.material_from_image", icon="MATERIAL")
        mapping = world_nodes.mapping_node(context.scene.world)
        if mapping is not None:
            row = layout.row(align=True)
            row.prop(mapping.inputs["Rotation"], "default_value", index=2, text="World Rotation")
            row.operator("promptscape.use_settings", text="", icon="PASTEDOWN").key = -1

    def draw_tasks(self, layout):
        tasks = runner.tasks()
        if not tasks:
            return
        box = layout.box()
        if icon := live_icon(tasks[0].job):
            box.template_icon(icon_value=icon, scale=6.0)
        for task in tasks:
            fraction, text = progress_text(task)
            box.label(text=f"{task.kind.capitalize()}: {task.label[:40]}")
            box.progress(factor=fraction, text=text)
            if plan := getattr(task.job, "metadata", {}).get("memory_plan"):
                box.label(text=f"Memory plan: {plan}")
        box.operator("promptscape.cancel", icon="CANCEL")


def draw_status_bar(self, context):
    """Progress in the status bar, visible with the sidebar closed."""
    tasks = runner.tasks()
    if tasks:
        fraction, text = progress_text(tasks[0])
        more = f" (+{len(tasks) - 1} queued)" if len(tasks) > 1 else ""
        self.layout.progress(factor=fraction, text=f"Promptscape: {text}{more}")


classes = (PROMPTSCAPE_PT_main,)
