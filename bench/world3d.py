"""Bench rows for a world you can stand in: depth + mesh of a 2048x1024 world on the CPU, with the tiny
depth model and with the full-size Depth Anything V2 Small architecture (random weights), and the mesh
build against Blender's own UV sphere of the same vertex count. Called by bench/run.py."""

import time
from importlib import import_module
from pathlib import Path

import bpy
import numpy as np
from measure import peak_rss_mb


def world3d(bench, addon_name: str, cache: Path, out: Path):
    depth_models = import_module(f"{addon_name}.generation.setup.depth_models")
    mesh_writer = import_module(f"{addon_name}.scene.world_mesh")
    world_mesh = import_module(f"{addon_name}.generation.imaging.world_mesh")
    height, width = 1024, 2048
    rows = np.linspace(0.8, 0.3, height, dtype=np.float32)[:, None, None]
    pano = np.broadcast_to(rows * np.array([0.6, 0.7, 0.9], np.float32), (height, width, 3)).copy()
    path = out / "bench-world.png"
    image = bpy.data.images.new("bench-world", width, height)
    rgba = np.ones((height, width, 4), np.float32)
    rgba[..., :3] = pano
    image.pixels.foreach_set(rgba[::-1].ravel())
    image.filepath_raw, image.file_format = str(path), "PNG"
    image.save()
    scene = bpy.data.scenes.new("Bench 3D")
    bpy.context.window.scene = scene
    world = bench.api.world_from_image(str(path), scene=scene)
    for size in ("tiny", "small"):
        model = depth_models.ensure_depth_model(size, cache)
        before = peak_rss_mb()
        start = time.perf_counter()
        obj = bench.api.world_mesh(world, scene=scene, depth_model=str(model), mesh_resolution=256)
        seconds = time.perf_counter() - start
        label = "tiny depth model" if size == "tiny" else "Depth Anything V2 Small architecture"
        bench.row(f"depth + mesh, 2048x1024, {label} (CPU)", seconds, "s")
        bench.row(f"  peak RSS after it (grew {peak_rss_mb() - before:.0f} MB)", peak_rss_mb(), "MB")
    arrays = world_mesh.build_world_mesh(np.full((height, width), 5.0, np.float32), 256, 128)
    ours = min(
        _timed(lambda: bpy.data.meshes.remove(mesh_writer.build_mesh("bench", arrays))) for _ in range(3)
    )
    theirs = min(_timed(_uv_sphere) for _ in range(3))
    assert len(obj.data.vertices) == 256 * 127 + 2
    bench.row(
        "world mesh build / Blender's UV sphere (same vertices)",
        ours / theirs,
        "x",
        "<= 3",
        ours / theirs <= 3,
    )


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def _uv_sphere():
    bpy.ops.mesh.primitive_uv_sphere_add(segments=256, ring_count=128)
    obj = bpy.context.active_object
    mesh = obj.data
    bpy.data.objects.remove(obj)
    bpy.data.meshes.remove(mesh)
