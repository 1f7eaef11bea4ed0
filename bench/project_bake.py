"""Bench: a projected texture's bake on a 100k-face mesh at 2048x2048 with 6 views, on the CPU, against
Blender's own bake of an emission from one camera-projected image (UV Project modifier + Cycles EMIT bake).

    .venv/bin/python bench/project_bake.py [--bake-size 2048] [--views 6] [--view-size 512] [--no-blender]

What is compared: ours reads the mesh (foreach_get), finds the texels, makes the views' depth maps, bakes 6
views with the depth test and fills what no view saw; Blender's bake projects one image (no visibility
test: a UV Project modifier ignores occlusion) into the same 2048x2048 UV map. Peak RSS is the process's
growth over what it held before the stage (ru_maxrss, so the stages run in order of growing need).
"""

import argparse
import os
import resource
import sys
import tempfile
import time
from importlib import import_module
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="promptscape-bench-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import bpy  # noqa: E402  (after the environment above is set)
import numpy as np  # noqa: E402
from measure import print_row  # noqa: E402  (bench/, beside this file)

import blender_tools  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sphere(segments: int = 400, rings: int = 250):
    """A UV sphere of segments x rings faces (100,000 at the defaults) with Blender's own UV map."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    bpy.ops.mesh.primitive_uv_sphere_add(segments=segments, ring_count=rings)
    obj = bpy.context.active_object
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.location = (7.3589, -6.9258, 4.9583)
    camera.rotation_euler = (np.radians(63.6), 0.0, np.radians(46.7))
    scene.camera = camera
    return scene, obj, camera


def ours(modules, obj, camera, bake_size: int, count: int, view_size: int) -> dict:
    surface, cameras, project = modules
    timings = {}
    base = rss_mb()
    start = time.perf_counter()
    mesh = surface.mesh_arrays(obj)
    world = surface.world_surface(mesh)
    timings["read mesh (foreach_get)"] = time.perf_counter() - start
    first = surface.scene_camera(camera, view_size, view_size)
    points = world.vertices
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    around = cameras.views_around(first, centre, float(np.linalg.norm(points - centre, axis=1).max()), count)
    start = time.perf_counter()
    projection = project.Projection([world], around, bake_size)
    timings["find texels"] = time.perf_counter() - start
    start = time.perf_counter()
    for view in range(count):
        projection.depth(view)
    timings["depth maps"] = time.perf_counter() - start
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for view in range(count):
        projection.add(view, rng.random((view_size, view_size, 3)))
    timings["bake views"] = time.perf_counter() - start
    start = time.perf_counter()
    texture = projection.textures()[0]
    timings["fill and texture"] = time.perf_counter() - start
    assert np.isfinite(texture).all()
    timings["coverage"] = projection.coverage()
    timings["texels"] = len(projection.texels[0].index)
    timings["peak RSS growth MB"] = peak_mb() - base
    return timings


def blender_bake(scene, obj, camera, bake_size: int, view_size: int) -> float:
    """Seconds of Cycles' EMIT bake of one image projected from the camera into a bake_size UV map."""
    obj.data.uv_layers.new(name="Projected")
    modifier = obj.modifiers.new("Project", "UV_PROJECT")
    modifier.uv_layer = "Projected"
    modifier.projectors[0].object = camera
    picture = bpy.data.images.new("View", view_size, view_size)
    target = bpy.data.images.new("Baked", bake_size, bake_size)
    material = bpy.data.materials.new("Projected")
    if bpy.app.version < (5, 0):
        material.use_nodes = True
    tree = material.node_tree
    tree.nodes.clear()
    coords = tree.nodes.new("ShaderNodeUVMap")
    coords.uv_map = "Projected"
    image = tree.nodes.new("ShaderNodeTexImage")
    image.image = picture
    emission = tree.nodes.new("ShaderNodeEmission")
    output = tree.nodes.new("ShaderNodeOutputMaterial")
    tree.links.new(coords.outputs["UV"], image.inputs["Vector"])
    tree.links.new(image.outputs["Color"], emission.inputs["Color"])
    tree.links.new(emission.outputs["Emission"], output.inputs["Surface"])
    bake_node = tree.nodes.new("ShaderNodeTexImage")
    bake_node.image = target
    tree.nodes.active = bake_node
    obj.data.materials.append(material)
    obj.data.uv_layers["UVMap"].active = True
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 1
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    start = time.perf_counter()
    bpy.ops.object.bake(type="EMIT", margin=4)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bake-size", type=int, default=2048)
    parser.add_argument("--views", type=int, default=6)
    parser.add_argument("--view-size", type=int, default=512)
    parser.add_argument("--no-blender", action="store_true", help="leave out Blender's own bake")
    args = parser.parse_args()
    addon = blender_tools.install_extension(blender_tools.build_zip(Path(tempfile.mkdtemp())))
    names = ("scene.surface", "generation.imaging.cameras", "generation.imaging.texture_project")
    modules = [import_module(f"{addon.__name__}.{name}") for name in names]
    scene, obj, camera = sphere()
    faces = len(obj.data.polygons)
    timings = ours(modules, obj, camera, args.bake_size, args.views, args.view_size)
    label = f"{faces} faces, {args.bake_size}² texels, {args.views} views of {args.view_size}²"
    print(f"projected texture bake: {label} (CPU, {os.cpu_count()} cores)")
    total = 0.0
    for name, value in timings.items():
        if name in ("coverage", "texels", "peak RSS growth MB"):
            continue
        total += value
        print_row(f"  {name}", value, "s")
    print_row("  total", total, "s")
    print_row("  texels in the UV islands", timings["texels"] / 1e6, "M")
    print_row("  painted by some view", timings["coverage"] * 100, "%")
    print_row("  peak RSS growth", timings["peak RSS growth MB"], "MB")
    if not args.no_blender:
        seconds = blender_bake(scene, obj, camera, args.bake_size, args.view_size)
        print_row("  Blender EMIT bake of 1 projected view (no occlusion)", seconds, "s")
        print_row("  ours (6 views, occlusion, fill) / Blender's (1 view)", total / seconds, "x")


if __name__ == "__main__":
    main()
