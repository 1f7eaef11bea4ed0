"""Operators: read the scene settings, build a request, submit it, apply the result."""

import bpy

from . import dependencies, from_image, generate, history, models

classes = generate.classes + from_image.classes + history.classes + dependencies.classes + models.classes


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    dependencies.activate_installed()


def unregister():
    dependencies.unregister_timers()
    models.unregister_timers()
    dependencies.deactivate_installed()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
