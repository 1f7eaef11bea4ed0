"""World from Image of a photographed physical sky, with its sun in a Sun lamp: rendered against truth.

A ground plane with a floating cube, seen from above with Cycles, lit by (a) the truth sky itself, (b) our
world with its sun in the texture and (c) our sun-less world plus the Sun lamp. The lit ground and the
cube's shadow must match the truth within the QUALITY.md factors, and (b) and (c) must agree: the sun is
counted once.
"""

import importlib
import math

import bpy
import numpy as np
import pytest
from physical_sky import SKIES, needs_multiple_scattering, truth
from pure.synthetic import photograph
from scene_helpers import new_scene, read_exr, render, write_exr, write_png

pytestmark = needs_multiple_scattering

CUBE_HEIGHT = 1.5
VIEW = 14.0  # metres across the orthographic view
SIZE = 64


@pytest.fixture(scope="module")
def scene_modules(addon):
    return (
        importlib.import_module(addon.__name__ + ".scene.world"),
        importlib.import_module(addon.__name__ + ".scene.images"),
        importlib.import_module(addon.__name__ + ".scene.sun_lamp"),
    )


def stage(scene):
    """A grey ground, a cube floating above it, an orthographic camera looking straight down."""
    bpy.ops.mesh.primitive_plane_add(size=40.0)
    ground = bpy.context.active_object
    grey = bpy.data.materials.new("grey")
    grey.diffuse_color = (0.5, 0.5, 0.5, 1.0)
    ground.data.materials.append(grey)
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0.0, 0.0, CUBE_HEIGHT))
    bpy.ops.object.camera_add(location=(0.0, 0.0, 20.0), rotation=(0.0, 0.0, 0.0))
    camera = bpy.context.active_object
    camera.data.type, camera.data.ortho_scale = "ORTHO", VIEW
    scene.camera = camera


def lit_and_shadow(pixels, sun_direction) -> tuple[float, float]:
    """Mean ground brightness away from the cube and its shadow, and in the middle of the shadow."""
    d = np.asarray(sun_direction)
    shadow = -CUBE_HEIGHT / d[2] * d[:2]  # where the ray from the cube's centre to the sun meets z = 0

    def at(x, y):
        col, row = int((x / VIEW + 0.5) * SIZE), int((0.5 - y / VIEW) * SIZE)
        return pixels[row - 1 : row + 1, col - 1 : col + 1].mean()

    far = -shadow / np.linalg.norm(shadow) * 4.0  # the other side of the cube, in the sun
    return float(at(*far)), float(at(*shadow))


@pytest.mark.parametrize("sky", [SKIES[0], SKIES[3]], ids=[SKIES[0].name, SKIES[3].name])
def test_world_and_sun_lamp_light_the_scene_as_the_sky_does(api, quality, scene_modules, sky, tmp_path):
    world_writer, images, sun_lamp = scene_modules
    found = truth(sky, quality)
    ldr = photograph(found.radiance)
    scale = 0.18 / np.median(quality.luminance(found.radiance[: found.radiance.shape[0] // 2]))
    path = write_png(tmp_path / "sky.png", ldr)

    scene = new_scene("truth")
    stage(scene)
    world_writer.apply_world(
        scene, write_exr(tmp_path / "truth.exr", found.radiance * scale), {"prompt": "t"}
    )
    truth_lit, truth_shadow = lit_and_shadow(render(scene, tmp_path / "a.exr", SIZE, 64), sky.sun_direction)

    world = api.world_from_image(str(path), scene=scene, sun_lamp=False)
    assert sun_lamp.sun_lamp_of(scene) is None
    with_sun = render(scene, tmp_path / "b.exr", SIZE, 64)
    world = api.world_from_image(str(path), scene=scene, sun_lamp=True)
    lamp = sun_lamp.sun_lamp_of(scene)
    assert lamp is not None and lamp.data.type == "SUN"
    environment = world.node_tree.nodes["Promptscape Environment"].image
    assert environment.filepath.endswith("-sunless.exr")
    sunless = read_exr(bpy.path.abspath(environment.filepath))
    assert sunless.max() < 50.0 * np.median(sunless), "the world's own sun is removed"
    with_lamp = render(scene, tmp_path / "c.exr", SIZE, 64)

    meta = images.metadata_of(world)
    direction = [float(v) for v in meta["sun_world_direction"].split(",")]
    assert quality.angle_between(direction, sky.sun_direction) <= 3.0, meta
    lamp_points_to = np.array(lamp.matrix_world.col[2][:3])  # its +Z, against which it shines
    assert quality.angle_between(lamp_points_to, sky.sun_direction) <= 3.0

    for pixels in (with_sun, with_lamp):
        lit, shadow = lit_and_shadow(pixels, sky.sun_direction)
        assert 0.5 <= lit / truth_lit <= 2.0, (lit, truth_lit)
        assert 0.5 <= (lit / shadow) / (truth_lit / truth_shadow) <= 2.0, (
            lit,
            shadow,
            truth_lit,
            truth_shadow,
        )
    # The sun is counted once: the lamp gives the ground what the world's own sun gave it.
    assert lit_and_shadow(with_lamp, sky.sun_direction)[0] == pytest.approx(
        lit_and_shadow(with_sun, sky.sun_direction)[0], rel=0.15
    )


def test_sun_lamp_follows_the_world_rotation_and_goes_when_turned_off(api, quality, scene_modules, tmp_path):
    sun_lamp = scene_modules[2]
    found = truth(SKIES[0], quality)
    path = write_png(tmp_path / "sky.png", photograph(found.radiance))
    scene = new_scene("turn")
    world = api.world_from_image(str(path), scene=scene, sun_lamp=True)
    lamp = sun_lamp.sun_lamp_of(scene)
    bpy.context.view_layer.update()
    before = np.array(lamp.matrix_world.col[2][:3])
    world.node_tree.nodes["Promptscape Mapping"].inputs["Rotation"].default_value[2] = math.radians(40.0)
    bpy.context.view_layer.update()
    after = np.array(lamp.evaluated_get(bpy.context.evaluated_depsgraph_get()).matrix_world.col[2][:3])
    turned = math.degrees(math.atan2(after[1], after[0]) - math.atan2(before[1], before[0]))
    assert (turned + 180) % 360 - 180 == pytest.approx(-40.0, abs=0.5)
    assert after[2] == pytest.approx(before[2], abs=1e-4)
    # The world's metadata follows too, when the world is applied again with its new rotation.
    world = api.world_from_image(str(path), scene=scene, sun_lamp=True)
    meta = scene_modules[1].metadata_of(world)
    assert float(meta["sun_world_rotation_deg"]) == pytest.approx(40.0, abs=0.01)
    expected = (float(meta["sun_azimuth_deg"]) - 40.0) % 360
    assert float(meta["sun_world_azimuth_deg"]) == pytest.approx(expected, abs=0.05)

    world = api.world_from_image(str(path), scene=scene, sun_lamp=False)
    assert sun_lamp.sun_lamp_of(scene) is None
    assert not world.node_tree.nodes["Promptscape Environment"].image.filepath.endswith("-sunless.exr")
