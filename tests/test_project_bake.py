"""Projected textures in real Blender: arrays, depth against Cycles, projection truth, occlusion, coverage.

The truths are Blender's own: Cycles renders the planar depth (Camera Data > View Z Depth, the value its Z
pass holds; the Z pass itself too where the file gets it) and the textured object, both with a 0.01 px
pixel filter so each pixel is its centre's sample.
"""

import importlib
import math

import bpy
import numpy as np
import pytest
from scene_helpers import new_scene

SIZE = 64  # the view's pixels
BAKE = 256  # the texture's texels


@pytest.fixture(scope="module")
def mods(addon):
    class Modules:
        surface = importlib.import_module(addon.__name__ + ".scene.surface")
        raster = importlib.import_module(addon.__name__ + ".generation.imaging.raster")
        bake = importlib.import_module(addon.__name__ + ".generation.imaging.texture_bake")
        cameras = importlib.import_module(addon.__name__ + ".generation.imaging.cameras")

    return Modules


def default_camera(scene):
    """Blender's default camera (50 mm, 36 mm sensor), made the scene's camera."""
    data = bpy.data.cameras.new("Camera")
    camera = bpy.data.objects.new("Camera", data)
    scene.collection.objects.link(camera)
    camera.location = (7.3589, -6.9258, 4.9583)
    camera.rotation_euler = (math.radians(63.6), 0.0, math.radians(46.7))
    scene.camera = camera
    return camera


def add(kind, **kwargs):
    getattr(bpy.ops.mesh, f"primitive_{kind}_add")(**kwargs)
    return bpy.context.active_object


def render(scene, path, samples=1, passes=False):
    """Cycles on the CPU, 64 x 64, point-sampled pixel centres, linear RGBA with rows top first; with
    `passes`, (RGBA, the Z pass or None where this Blender leaves it out of the file)."""
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.cycles.filter_width = 0.01
    scene.render.film_transparent = True
    scene.render.resolution_x = scene.render.resolution_y = SIZE
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = "Standard"
    settings = scene.render.image_settings
    if passes and hasattr(settings, "media_type"):  # Blender 5: a multilayer file is a media type
        settings.media_type = "MULTI_LAYER_IMAGE"
    settings.file_format = "OPEN_EXR_MULTILAYER" if passes else "OPEN_EXR"
    settings.color_mode = "RGBA"
    settings.color_depth = "32"
    scene.view_layers[0].use_pass_z = passes
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True, scene=scene.name)
    import OpenEXR

    channels = OpenEXR.File(str(path)).channels()
    if passes:
        rgba = channels[next(name for name in channels if name.endswith("Combined"))].pixels
        z = next((channels[name].pixels for name in channels if name.endswith("Depth.Z")), None)
        return rgba, z
    if "RGBA" in channels:
        return channels["RGBA"].pixels
    return np.stack([channels[name].pixels for name in "RGBA"], axis=-1)


def emission_material(name, build):
    """A material whose surface emits what `build(tree)` returns (a socket), and nothing else."""
    material = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0):
        material.use_nodes = True
    tree = material.node_tree
    tree.nodes.clear()
    emission = tree.nodes.new("ShaderNodeEmission")
    output = tree.nodes.new("ShaderNodeOutputMaterial")
    tree.links.new(build(tree), emission.inputs["Color"])
    tree.links.new(emission.outputs["Emission"], output.inputs["Surface"])
    return material


def texture_image(name, pixels):
    """A float image holding `pixels` (rows top first) exactly: Non-Color before the pixels are set."""
    height, width = pixels.shape[:2]
    image = bpy.data.images.new(name, width, height, float_buffer=True)
    image.colorspace_settings.name = "Non-Color"
    rgba = np.concatenate([pixels, np.ones((height, width, 1))], axis=-1)[::-1]
    image.pixels.foreach_set(np.ascontiguousarray(rgba, dtype=np.float32).ravel())
    return image


def test_depth_matches_cycles_and_control_is_its_inverse(mods, tmp_path):
    scene = new_scene("Depth")
    camera = default_camera(scene)
    cube = add("cube")
    sphere = add("uv_sphere", location=(-1.5, 2.5, 0.5))
    depth_shader = emission_material("View Z", lambda tree: tree.nodes.new("ShaderNodeCameraData").outputs[1])
    for obj in (cube, sphere):
        obj.data.materials.append(depth_shader)
    meshes = [mods.surface.mesh_arrays(obj) for obj in (cube, sphere)]
    view = mods.surface.scene_camera(camera, SIZE, SIZE)
    ours = mods.raster.depth_map(view, *mods.surface.occluders(meshes))
    truth, z_pass = render(scene, tmp_path / "depth.exr", passes=True)
    covered = truth[..., 3] > 0.5
    assert np.array_equal(covered, np.isfinite(ours))  # the silhouette, pixel for pixel
    span = ours[covered].max() - ours[covered].min()
    # Measured: the largest difference is 3e-6 of the range, against either.
    assert np.abs(ours[covered] - truth[..., 0][covered]).max() < 0.01 * span
    if z_pass is not None:  # Blender 4.2 writes its Z pass into the file; the bpy 5.x module does not
        assert np.abs(ours[covered] - z_pass[covered]).max() < 0.01 * span
    control = mods.raster.control_image(ours)
    inverse = 1.0 / ours[covered]
    expected = 0.1 + 0.9 * (inverse - inverse.min()) / (inverse.max() - inverse.min())
    assert np.allclose(control[covered], expected, atol=1e-6) and not control[~covered].any()


def texels_of(mods, mesh, size):
    return mods.bake.sample_texels(
        size, mesh.vertices, mesh.triangles, mesh.corner_uvs, mesh.corner_normals, mesh.matrix
    )


def known_image():
    """A picture with detail at several scales: what a generator might have drawn."""
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    return np.stack([0.5 + 0.4 * np.sin(9 * x + 2 * y), 0.5 + 0.4 * np.cos(7 * y - 3 * x),
                     0.3 + 0.6 * ((np.floor(x * 4) + np.floor(y * 4)) % 2)], axis=-1)  # fmt: skip


@pytest.mark.parametrize("kind", ["cube", "uv_sphere"])
def test_a_projected_texture_renders_back_as_the_image(mods, tmp_path, kind):
    scene = new_scene("Truth")
    camera = default_camera(scene)
    obj = add(kind)
    mesh = mods.surface.mesh_arrays(obj)
    view = mods.surface.scene_camera(camera, SIZE, SIZE)
    depth = mods.raster.depth_map(view, *mods.surface.occluders([mesh]))
    image = known_image()
    texels = texels_of(mods, mesh, BAKE)
    result = mods.bake.bake(texels, [mods.bake.View(view, image, depth)])
    filled = mods.bake.fill_unpainted(texels.points, texels.normals, result.colour, result.painted)
    baked = texture_image("Baked", mods.bake.texture(texels, filled))

    def textured(tree):
        node = tree.nodes.new("ShaderNodeTexImage")
        node.image = baked
        return node.outputs["Color"]

    obj.data.materials.append(emission_material("Projected", textured))
    rendered = render(scene, tmp_path / "truth.exr", samples=4)
    covered = rendered[..., 3] > 0.5
    assert np.array_equal(covered, np.isfinite(depth))  # the silhouette equals the depth's coverage
    # Pixels inside the silhouette whose neighbours are inside too: an edge pixel mixes in the gutter.
    padded = np.pad(covered, 1)
    inner = covered & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    error = np.abs(rendered[..., :3] - image)[inner]
    # Measured: mean 0.0017, 99th percentile 0.032 (the cube), 0.0019 and 0.031 (the sphere), unblurred.
    assert inner.sum() > 100 and error.mean() < 0.02 and np.percentile(error, 99) < 0.06


def test_occluded_texels_never_take_the_occluders_colour(mods):
    scene = new_scene("Occlusion")
    camera = default_camera(scene)
    back = mods.surface.mesh_arrays(add("cube"))
    front = mods.surface.mesh_arrays(add("cube", size=0.8, location=(3.0, -2.8, 2.2)))
    view = mods.surface.scene_camera(camera, SIZE, SIZE)
    depth = mods.raster.depth_map(view, *mods.surface.occluders([back, front]))
    front_depth = mods.raster.depth_map(view, *mods.surface.occluders([front]))
    sees_front = np.isfinite(front_depth) & (front_depth <= depth)
    red, green = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    image = np.where(sees_front[..., None], green, red)
    texels = texels_of(mods, back, BAKE)
    result = mods.bake.bake(texels, [mods.bake.View(view, image, depth)])
    assert sees_front.sum() > 50 and result.painted.sum() > 1000
    assert np.all(result.colour[result.painted] == red)


@pytest.mark.parametrize("kind", ["cube", "uv_sphere"])
def test_six_views_paint_nearly_every_texel(mods, kind):
    scene = new_scene("Coverage")
    camera = default_camera(scene)
    mesh = mods.surface.mesh_arrays(add(kind))
    first = mods.surface.scene_camera(camera, SIZE, SIZE)
    points = mesh.world_vertices()
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    radius = float(np.linalg.norm(points - centre, axis=1).max())
    texels = texels_of(mods, mesh, 128)
    views = []
    for view in mods.cameras.views_around(first, centre, radius, 6):
        views.append(
            mods.bake.View(view, known_image(), mods.raster.depth_map(view, *mods.surface.occluders([mesh])))
        )
    result = mods.bake.bake(texels, views)
    assert mods.bake.coverage(result) >= 0.99
    filled = mods.bake.fill_unpainted(texels.points, texels.normals, result.colour, result.painted)
    texture = mods.bake.texture(texels, filled)
    assert np.isfinite(texture).all() and texture.min() > 0.05


def test_a_mesh_without_uvs_gets_smart_uv_project_and_one_without_faces_is_refused(mods, errors):
    new_scene("UVs")
    cube = add("cube")
    while cube.data.uv_layers:
        cube.data.uv_layers.remove(cube.data.uv_layers[0])
    with pytest.raises(errors.PromptscapeError, match="no UV map"):
        mods.surface.mesh_arrays(cube)
    assert mods.surface.ensure_uv_map(cube) and not mods.surface.ensure_uv_map(cube)
    texels = texels_of(mods, mods.surface.mesh_arrays(cube), 64)
    assert len(texels.index) > 0.5 * 64 * 64  # Smart UV Project packs the six faces into the square
    empty = bpy.data.objects.new("Empty mesh", bpy.data.meshes.new("Empty mesh"))
    bpy.context.scene.collection.objects.link(empty)
    with pytest.raises(errors.PromptscapeError, match="no faces"):
        mods.surface.mesh_arrays(empty)
