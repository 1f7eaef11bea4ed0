"""Preferences > Add-ons > Promptscape: model, device, output folder, and the dependency status."""

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from .generation import dependencies

DEFAULT_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"


class PromptscapePreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    model: StringProperty(
        name="Model",
        description="A Hugging Face model id, a diffusers model folder, or a .safetensors checkpoint file",
        default=DEFAULT_MODEL,
    )
    device: EnumProperty(
        name="Device",
        items=(
            ("auto", "Automatic", "CUDA, then Apple Metal, then the CPU"),
            ("cuda", "CUDA", "An NVIDIA GPU"),
            ("mps", "Apple Metal", "Apple Silicon GPU"),
            ("cpu", "CPU", "Slow, but always works"),
        ),
    )
    precision: EnumProperty(
        name="Precision",
        items=(
            ("auto", "Automatic", "Half precision on GPUs, full on the CPU"),
            ("fp16", "Half (fp16)", "Least memory; some older GPUs (GTX 16xx) need full precision"),
            ("bf16", "bfloat16", "Recent NVIDIA GPUs"),
            ("fp32", "Full (fp32)", "Most memory, most compatible"),
        ),
    )
    output_folder: StringProperty(
        name="Output Folder",
        description="Where images go when the .blend is unsaved (empty: the extension's user folder)",
        subtype="DIR_PATH",
    )
    allow_pickle: BoolProperty(
        name="Allow .ckpt/.bin Models",
        description="Pickle checkpoints can run arbitrary code when loaded: only enable for files you trust",
        default=False,
    )

    def draw(self, context):
        layout = self.layout
        draw_dependency_status(layout)
        col = layout.column(heading="Model")
        col.prop(self, "model")
        col.prop(self, "device")
        col.prop(self, "precision")
        col.prop(self, "output_folder")
        row = col.row()
        row.alert = self.allow_pickle
        row.prop(self, "allow_pickle")


def draw_dependency_status(layout):
    """A box listing each package with its version, or what is missing and what that means."""
    box = layout.box()
    box.label(text="Dependencies", icon="SCRIPTPLUGINS")
    for name, version in dependencies.status().items():
        required = name in dependencies.REQUIRED
        icon = "CHECKMARK" if version else ("ERROR" if required else "INFO")
        box.label(text=f"{name}: {version or 'not installed'}", icon=icon)
    if missing := dependencies.missing():
        box.label(text=f"Generating needs {', '.join(missing)}; from-image tools work without them")


def get(context=None):
    """The add-on's preferences."""
    context = context or bpy.context
    return context.preferences.addons[__package__].preferences


def register():
    bpy.utils.register_class(PromptscapePreferences)


def unregister():
    bpy.utils.unregister_class(PromptscapePreferences)
