"""Change what you have: remix a world or material, redraw one region of a world, grow a photo into a
world. Options have the API's names; unset ones take the sidebar's values."""

import bpy
from bpy.props import IntProperty, StringProperty

from ..flow import edits, runner
from .from_image import IMAGE_FILTER
from .generate import operator_properties, overrides, run_task

SOURCE_HELP = "An image file to start from (empty: the scene's world)"
KEY = IntProperty(
    name="Result", description="A result of the History to start from (-1: none)", default=-1, min=-1,
    options={"SKIP_SAVE"},
)  # fmt: skip


def _history_file(operator, what: str):
    """The file of the History result the operator's `key` names (the Remix button), or None."""
    entry = runner.history_entry(operator.key) if operator.key >= 0 else None
    return getattr(entry.outputs, what, None) if entry is not None else None


def _source(operator, context):
    if (found := _history_file(operator, "exr")) is not None:
        return str(found)
    return bpy.path.abspath(operator.filepath) if operator.filepath else context.scene.world


def _prompt(operator, context, kind: str) -> tuple[str, dict]:
    options = overrides(operator, kind)
    return options.pop("prompt", context.scene.promptscape.prompt), options


class PROMPTSCAPE_OT_remix_world(bpy.types.Operator):
    """Redraw the scene's world (or a panorama file) from the prompt, keeping as much of it as Remix
    Strength says (0 keeps it, 1 redraws it whole), seamless around the horizon"""

    bl_idname = "promptscape.remix_world"
    bl_label = "Remix World"
    bl_options = {"REGISTER"}
    __annotations__ = {
        **operator_properties("remix_world"),
        "filepath": StringProperty(name="Source", description=SOURCE_HELP, subtype="FILE_PATH"),
        "key": KEY,
    }

    def execute(self, context):
        prompt, options = _prompt(self, context, "remix_world")
        return run_task(
            self, lambda: edits.start_remix_world(context.scene, _source(self, context), prompt, **options)
        )


class PROMPTSCAPE_OT_remix_material(bpy.types.Operator):
    """Redraw the active object's material (or a texture file) from the prompt, keeping as much of it as
    Remix Strength says, seamless in both directions"""

    bl_idname = "promptscape.remix_material"
    bl_label = "Remix Material"
    bl_options = {"REGISTER"}
    __annotations__ = {
        **operator_properties("remix_material"),
        "filepath": StringProperty(
            name="Source", description="A texture file (empty: the active object's material)",
            subtype="FILE_PATH",
        ),
        "key": KEY,
    }  # fmt: skip

    def execute(self, context):
        prompt, options = _prompt(self, context, "remix_material")
        obj = context.active_object
        source = bpy.path.abspath(self.filepath) if self.filepath else getattr(obj, "active_material", None)
        if (found := _history_file(self, "albedo")) is not None:
            source = str(found)
        if source is None:
            self.report({"ERROR"}, "Select an object with a Promptscape material, or give a texture file")
            return {"CANCELLED"}
        return run_task(self, lambda: edits.start_remix_material(context.scene, source, prompt, **options))


class PROMPTSCAPE_OT_inpaint_world(bpy.types.Operator):
    """Redraw one region of the scene's world from the prompt: the cone of Yaw, Pitch and Angle, or the
    white of a mask image; the rest of the world stays exactly as it is"""

    bl_idname = "promptscape.inpaint_world"
    bl_label = "Redraw Region"
    bl_options = {"REGISTER"}
    __annotations__ = {
        **operator_properties("inpaint_world"),
        "filepath": StringProperty(name="Source", description=SOURCE_HELP, subtype="FILE_PATH"),
    }

    def execute(self, context):
        prompt, options = _prompt(self, context, "inpaint_world")
        return run_task(
            self, lambda: edits.start_inpaint_world(context.scene, _source(self, context), prompt, **options)
        )


class PROMPTSCAPE_OT_world_from_photo(bpy.types.Operator):
    """Grow a photo into a 360° world: it lies where a camera with its field of view, looking along Yaw
    and Pitch, sees it, and the model paints the rest from the prompt"""

    bl_idname = "promptscape.world_from_photo"
    bl_label = "World from Photo"
    bl_options = {"REGISTER"}
    __annotations__ = {
        **operator_properties("world_from_photo"),
        "filepath": StringProperty(name="Photo", description="The photo", subtype="FILE_PATH"),
        "filter_glob": StringProperty(default=IMAGE_FILTER, options={"HIDDEN"}),
    }

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        prompt, options = _prompt(self, context, "world_from_photo")
        if not self.filepath:
            self.report({"ERROR"}, "Choose a photo to grow into a world")
            return {"CANCELLED"}
        path = bpy.path.abspath(self.filepath)
        return run_task(self, lambda: edits.start_world_from_photo(context.scene, path, prompt, **options))


classes = (
    PROMPTSCAPE_OT_remix_world,
    PROMPTSCAPE_OT_remix_material,
    PROMPTSCAPE_OT_inpaint_world,
    PROMPTSCAPE_OT_world_from_photo,
)
