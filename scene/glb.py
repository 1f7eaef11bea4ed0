"""One object exported alone as a binary glTF (.glb), by Blender's own exporter. Main thread only."""

from pathlib import Path

import bpy

from ..generation.errors import PromptscapeError


def export_object(scene, obj, target: Path) -> Path:
    """Write `obj` of `scene` to `target`; the selection is put back as it was, whatever happens."""
    target.parent.mkdir(parents=True, exist_ok=True)
    selected = [other for other in scene.objects if other.select_get()]
    try:  # the exporter's "selection" is the objects' own select state
        for other in selected:
            other.select_set(False)
        obj.select_set(True)
        with bpy.context.temp_override(scene=scene, view_layer=scene.view_layers[0]):
            done = bpy.ops.export_scene.gltf(
                filepath=str(target), export_format="GLB", use_selection=True, use_active_scene=True
            )
    finally:
        obj.select_set(False)
        for other in selected:
            other.select_set(True)
    if done != {"FINISHED"}:
        raise PromptscapeError(f"Blender's glTF exporter did not finish ({done}); see the console")
    return target
