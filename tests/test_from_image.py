"""A world and a material from existing image files: no model, no torch needed."""

import bpy
import numpy as np
import pytest
from scene_helpers import new_scene, read_exr, sky_panorama, write_exr, write_png


def test_world_from_ldr_panorama_has_real_dynamic_range(api, tmp_path):
    path = write_png(tmp_path / "meadow.png", sky_panorama())
    scene = new_scene()
    assert bpy.ops.promptscape.world_from_image(filepath=str(path)) == {"FINISHED"}
    image = scene.world.node_tree.nodes["Promptscape Environment"].image
    radiance = read_exr(bpy.path.abspath(image.filepath))
    assert radiance.shape == (128, 256, 3)
    assert radiance.max() > 100 * np.median(radiance)  # the clipped sun became a light source
    assert scene.world["promptscape"]["source_image"] == str(path)


def test_a_relative_source_image_is_recorded_absolute(api, tmp_path, monkeypatch):
    """A record that depends on the folder Blender was started in is no record: it is stored absolute."""
    write_png(tmp_path / "meadow.png", sky_panorama())
    monkeypatch.chdir(tmp_path)
    world = api.world_from_image("meadow.png", scene=new_scene())
    assert world["promptscape"]["source_image"] == str(tmp_path.resolve() / "meadow.png")


def test_world_from_hdr_file_keeps_its_values(api, tmp_path):
    sky = np.full((32, 64, 3), 0.5, np.float32)
    sky[4, 10] = 5000.0
    scene = new_scene()
    world = api.world_from_image(str(write_exr(tmp_path / "studio.exr", sky)), scene=scene)
    radiance = read_exr(bpy.path.abspath(world.node_tree.nodes["Promptscape Environment"].image.filepath))
    assert radiance.shape == sky.shape and radiance.max() == pytest.approx(5000.0, rel=1e-3)


def test_world_from_hdr_file_honours_exposure_and_size_and_refuses_sun_options(api, errors, tmp_path):
    sky = np.full((32, 64, 3), 0.5, np.float32)
    path = str(write_exr(tmp_path / "studio.exr", sky))
    scene = new_scene()
    world = api.world_from_image(path, scene=scene, exposure=1.0, hdr_width=2048)
    radiance = read_exr(bpy.path.abspath(world.node_tree.nodes["Promptscape Environment"].image.filepath))
    assert radiance.shape == (1024, 2048, 3)
    np.testing.assert_allclose(radiance, 1.0, rtol=1e-5)  # 0.5 one stop up
    before = scene.world
    for option in ({"sun": "on"}, {"sun_strength": 2.0}):
        with pytest.raises(errors.InvalidRequest, match="already HDR"):
            api.world_from_image(path, scene=scene, **option)
    assert scene.world == before


def test_material_from_image(api, tmp_path):
    rng = np.random.default_rng(1)
    texture = np.fft.ifft2(np.fft.fft2(rng.random((64, 64, 3)), axes=(0, 1)) * 0.5, axes=(0, 1)).real
    path = write_png(tmp_path / "rock.png", np.clip(texture, 0, 1))
    new_scene()
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    material = api.material_from_image(str(path), objects=[cube])
    assert cube.active_material == material
    assert material.node_tree.nodes["Promptscape Normal"].image.colorspace_settings.name == "Non-Color"


def test_not_a_panorama_is_a_clear_error(api, tmp_path):
    path = write_png(tmp_path / "square.png", np.full((64, 64, 3), 0.5))
    scene = new_scene()
    before = scene.world
    with pytest.raises(api.PromptscapeError, match="2:1"):
        api.world_from_image(str(path), scene=scene)
    assert scene.world == before


def test_missing_file_is_a_clear_error(api, tmp_path):
    with pytest.raises(api.PromptscapeError, match="No image file"):
        api.world_from_image(str(tmp_path / "nothing.png"), scene=new_scene())


def test_world_from_image_works_on_a_blender_without_torch(extension_zip, tmp_path):
    from blender_tools import MODULE, run_in_fresh_blender

    path = write_png(tmp_path / "sky.png", sky_panorama(128, 64))
    out = run_in_fresh_blender(
        f"""
        import importlib, sys, bpy
        import blender_tools
        blender_tools.install_extension(r"{extension_zip}")
        api = importlib.import_module("{MODULE}.api")
        world = api.world_from_image(r"{path}")
        assert sys.modules.get("torch") is None and sys.modules.get("diffusers") is None
        print("WORLD", world.name, world.node_tree.nodes["Promptscape Environment"].image.size[:])
        """,
        block_imports=("torch", "diffusers", "transformers"),
    )
    assert "WORLD" in out and "(128, 64)" in out


def test_sunny_panorama_casts_shadows_with_daylight_contrast(api, tmp_path):
    from scene_helpers import render

    scene = new_scene()
    api.world_from_image(str(write_png(tmp_path / "sunny.png", sky_panorama())), scene=scene)
    # A white ground and a 1x1x2 box seen from straight above; the sun is at 45 degrees towards +X
    # (the middle of an equirectangular image), so the box's shadow falls on the ground towards -X.
    bpy.ops.mesh.primitive_plane_add(size=20)
    bpy.ops.mesh.primitive_cube_add(size=1, location=(0, 0, 1), scale=(1, 1, 2))
    bpy.ops.object.camera_add(location=(0, 0, 10))
    camera = bpy.context.active_object
    camera.data.type = "ORTHO"
    camera.data.ortho_scale = 8  # 32 px over 8 m: 4 px per metre, x to the right, y up
    scene.camera = camera
    pixels = render(scene, tmp_path / "shadow.exr", size=32, samples=32).mean(axis=2)
    lit = pixels[14:18, 20:28].mean()  # ground at x 1..3, on the sun's side
    shadow = pixels[14:18, 8:12].mean()  # ground at x -2..-1, behind the box
    assert 3.0 <= lit / shadow <= 5.5, (lit, shadow)


def test_material_from_an_exr_texture_keeps_its_mid_tones(api, tmp_path):
    from PIL import Image

    # 18% grey radiance with some texture: as albedo it must read as a mid grey, not near black.
    rng = np.random.default_rng(3)
    radiance = (0.18 * (1 + 0.2 * rng.standard_normal((64, 64, 1)))).repeat(3, axis=2).astype(np.float32)
    new_scene()
    bpy.ops.mesh.primitive_cube_add()
    material = api.material_from_image(str(write_exr(tmp_path / "grey.exr", radiance)))
    albedo = np.asarray(
        Image.open(bpy.path.abspath(material.node_tree.nodes["Promptscape Albedo"].image.filepath))
    )
    assert 70 < albedo.mean() < 130  # linear 0.18 / 1.18 is sRGB ~0.43, about 110 of 255
