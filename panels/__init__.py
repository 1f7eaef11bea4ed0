"""The sidebar panels (View3D > Sidebar > Promptscape): UI only, no logic."""

import bpy

from . import main

classes = main.classes


def register():
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
