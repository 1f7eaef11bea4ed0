"""What the bench rows share: a timed call, the peak RSS, a row of the table, and a world's build against
Blender's own load of its EXR (the baseline every apply figure is a ratio of). Only the last needs bpy."""

import resource
import time

import numpy as np


def timed(function, *args, **kwargs):
    """(seconds, result) of one call."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def print_row(name: str, value: float, unit: str, target: str = "", ok: bool | None = None) -> None:
    mark = "" if ok is None else ("ok" if ok else "MISSED")
    print(f"{name:<58} {value:>10.3f} {unit:<6} {target:<14} {mark}", flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _read_pixels(image) -> None:
    """Blender loads an image's pixels lazily: reading them makes the load happen inside the timing."""
    pixels = np.empty(image.size[0] * image.size[1] * image.channels, np.float32)
    image.pixels.foreach_get(pixels)


def apply_against_load(apply_world, exr, meta: dict, repeats: int) -> tuple[float, float]:
    """(best seconds of `apply_world(scene, exr, meta)` on a new scene with its pixels read, best seconds of
    bpy.data.images.load of the same EXR with its pixels read), each the best of `repeats`."""
    import bpy

    def blender_load():
        image = bpy.data.images.load(str(exr), check_existing=False)
        _read_pixels(image)
        bpy.data.images.remove(image)

    def apply():
        scene = bpy.data.scenes.new("Bench")
        bpy.context.window.scene = scene
        made = apply_world(scene, exr, meta)
        _read_pixels(made.node_tree.nodes["Promptscape Environment"].image)

    baseline = min(timed(blender_load)[0] for _ in range(repeats))
    applied = min(timed(apply)[0] for _ in range(repeats))
    return applied, baseline
