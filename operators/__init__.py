"""Operators: read the scene settings, build a request, submit it, apply the result."""

import bpy

from . import from_image, generate, history

classes = generate.classes + from_image.classes + history.classes


def register():
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
