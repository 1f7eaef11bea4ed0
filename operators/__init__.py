"""Operators: read the scene settings, build a request, submit it, apply the result."""

import bpy

classes = ()


def register():
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
