"""The sidebar panels (View3D > Sidebar > Promptscape) and the status-bar progress: UI only, no logic."""

import bpy

from . import history, main, previews, prop, world3d

classes = main.classes + history.classes + world3d.classes + prop.classes


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    previews.register()
    bpy.types.STATUSBAR_HT_header.append(main.draw_status_bar)


def unregister():
    bpy.types.STATUSBAR_HT_header.remove(main.draw_status_bar)
    previews.unregister()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
