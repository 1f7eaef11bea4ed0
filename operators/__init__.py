"""Operators: read the scene settings, build a request, submit it, apply the result."""

import bpy

from .. import preferences
from ..flow import installs
from . import dependencies, edits, from_image, generate, history, models, project, prop, upscale, world3d

classes = (
    generate.classes
    + from_image.classes
    + history.classes
    + dependencies.classes
    + models.classes
    + world3d.classes
    + upscale.classes
    + prop.classes
    + edits.classes
    + project.classes
)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    installs.activate_installed(preferences.get())


def unregister():
    installs.unregister()
    installs.deactivate_installed(preferences.get())
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
