"""The glue the Blender side calls: images in, files out, bad input answered clearly."""

import os
import stat
import tracemalloc

import numpy as np
import OpenEXR
import pytest
from PIL import Image
from synthetic import periodic_noise, sunny_sky, texture

METADATA = {"prompt": "a sunny meadow", "seed": "42", "model": "tiny", "mode": "WORLD"}


@pytest.fixture(scope="module")
def sunny():
    return sunny_sky(1024)


def read_exr(path):
    with OpenEXR.File(str(path)) as exr:
        return np.asarray(exr.channels()["RGB"].pixels), dict(exr.header())


def test_world_files_carry_the_radiance_and_the_request(outputs, hdr, sunny, tmp_path):
    world = outputs.write_world(sunny, tmp_path, "meadow", METADATA, hdr.HdrOptions())
    assert (world.exr.name, world.hdr.name, world.preview.name) == (
        "meadow.exr",
        "meadow.hdr",
        "meadow-preview.png",
    )
    pixels, header = read_exr(world.exr)
    np.testing.assert_array_equal(pixels, hdr.panorama_to_hdr(sunny))
    assert all(header[key] == value for key, value in METADATA.items())
    assert b"prompt=a sunny meadow" in world.hdr.read_bytes()[:300]
    with Image.open(world.preview) as preview:
        assert preview.mode == "RGB" and preview.size == (512, 256)
        assert preview.info["seed"] == "42"
    report = world.report
    assert report["sun_added"] is True and 0.5 <= report["sun_share"] <= 0.95
    assert report["lit_shadow_ratio"] == pytest.approx(1 / (1 - report["sun_share"]), rel=1e-3)
    assert report["stops"] >= 16 and report["peak_over_median"] >= 1e4 and report["finite"] is True
    assert report["seam_ratio_srgb"] <= 1.2 and report["pole_top"] < 0.02
    assert all(type(value) in (float, bool) for value in report.values())


def test_a_world_with_a_sun_keeps_a_sunless_copy_and_says_where_the_sun_is(
    outputs, hdr, quality, sunny, tmp_path
):
    world = outputs.write_world(sunny, tmp_path, "meadow", METADATA, hdr.HdrOptions(sun_lamp=True))
    result = hdr.convert_panorama(sunny, hdr.HdrOptions(sun_lamp=True))
    assert world.sunless_exr.name == "meadow-sunless.exr"
    sunless, header = read_exr(world.sunless_exr)
    np.testing.assert_array_equal(sunless, result.sunless)
    assert header["prompt"] == METADATA["prompt"]
    light = world.light
    assert light["sun"] == "found" and all(type(value) is str for value in light.values())
    direction = [float(v) for v in light["sun_direction"].split(",")]
    assert quality.angle_between(direction, result.sun.direction) < 0.01
    assert float(light["sun_elevation_deg"]) == pytest.approx(45.0, abs=1.0)
    assert float(light["sun_strength"]) == pytest.approx(result.sun.strength, rel=1e-5)
    overcast = outputs.write_world(np.full((64, 128, 3), 0.6, np.float32), tmp_path, "grey", METADATA)
    assert overcast.sunless_exr is None and overcast.light == {"sun": "none"}
    assert not (tmp_path / "grey-sunless.exr").exists()
    # Without a Sun lamp the sun stays in the world and no sun-less file is written (an image less).
    plain = outputs.write_world(sunny, tmp_path, "plain", METADATA, hdr.HdrOptions())
    assert plain.sunless_exr is None and plain.light["sun"] == "found"
    assert not (tmp_path / "plain-sunless.exr").exists()
    np.testing.assert_array_equal(read_exr(plain.exr)[0], read_exr(world.exr)[0])


def test_the_sun_lamp_option_reaches_the_hdr_options(outputs):
    options = {"exposure": 0.0, "sun": "auto", "sun_strength": 1.0, "poles": "repair"}
    assert outputs.hdr_options({**options, "sun_lamp": True}).sun_lamp is True
    assert outputs.hdr_options({**options, "sun_lamp": False}).sun_lamp is False


def test_the_world_preview_wraps_in_x_only(outputs):
    """Sky above, ground below: wrapping in y would blend the ground into the top row of the preview."""
    world = np.full((512, 1024, 3), 0.1, dtype=np.float32)
    world[:256] = 0.9
    world[:, ::2] += 0.05  # detail across x, which the resize averages around the wrap
    preview = outputs._preview(world)
    assert preview.shape == (256, 512, 3)
    np.testing.assert_allclose(preview[0], 0.925, atol=1e-5)
    np.testing.assert_allclose(preview[-1], 0.125, atol=1e-5)


def test_an_earlier_world_is_never_overwritten(outputs, sunny, tmp_path):
    first = outputs.write_world(sunny[::4, ::4], tmp_path, "sky", METADATA)
    before = first.exr.read_bytes()
    second = outputs.write_world(sunny[::4, ::4], tmp_path, "sky", {"prompt": "other"})
    assert second.exr.name == "sky-2.exr" and second.preview.name == "sky-2-preview.png"
    assert first.exr.read_bytes() == before


def test_output_width(outputs, hdr, sunny, tmp_path):
    world = outputs.write_world(sunny, tmp_path, "wide", METADATA, hdr.HdrOptions(output_width=2048))
    pixels, _ = read_exr(world.exr)
    assert pixels.shape == (1024, 2048, 3)


@pytest.mark.parametrize("shape", [(8, 8, 3), (100, 300, 3), (512, 512, 3), (300, 100)])
def test_a_world_needs_a_2_to_1_panorama(outputs, errors, tmp_path, shape):
    with pytest.raises(errors.InvalidImage, match="2:1"):
        outputs.write_world(np.zeros(shape, dtype=np.float32), tmp_path, "bad", METADATA)
    assert list(tmp_path.iterdir()) == []


def test_not_an_image(outputs, errors, tmp_path):
    for bad in (np.zeros(10), np.zeros((32, 64, 5)), np.array([["a"] * 64] * 32)):
        with pytest.raises(errors.InvalidImage):
            outputs.write_world(bad, tmp_path, "bad", METADATA)


def _world_radiance(outputs, image, tmp_path, stem):
    world = outputs.write_world(image, tmp_path, stem, METADATA)
    pixels, _ = read_exr(world.exr)
    assert pixels.dtype == np.float32 and np.isfinite(pixels).all() and pixels.min() > 0
    return pixels


def test_input_formats_give_the_same_world(outputs, sunny, tmp_path):
    small = sunny[::8, ::8].copy()
    reference = _world_radiance(outputs, small, tmp_path, "ref")
    eight_bit = np.rint(small * 255)
    as_uint8 = _world_radiance(outputs, eight_bit.astype(np.uint8), tmp_path, "u8")
    as_float255 = _world_radiance(outputs, eight_bit.astype(np.float32), tmp_path, "f255")
    np.testing.assert_allclose(as_uint8, as_float255, rtol=1e-6)
    sixteen = np.rint(small * 65535)
    as_uint16 = _world_radiance(outputs, sixteen.astype(np.uint16), tmp_path, "u16")
    as_float65535 = _world_radiance(outputs, sixteen.astype(np.float32), tmp_path, "f65535")
    np.testing.assert_allclose(as_uint16, as_float65535, rtol=1e-6)
    np.testing.assert_allclose(as_uint16, reference, rtol=1e-3, atol=1e-6)
    rgba = np.concatenate([small, np.full((*small.shape[:2], 1), 0.3, dtype=np.float32)], axis=2)
    np.testing.assert_array_equal(_world_radiance(outputs, rgba, tmp_path, "rgba"), reference)


def test_grey_black_white_and_non_finite_worlds(outputs, tmp_path):
    grey = _world_radiance(
        outputs, np.linspace(0, 1, 64 * 128, dtype=np.float32).reshape(64, 128), tmp_path, "g"
    )
    assert grey.shape == (64, 128, 3)
    np.testing.assert_array_equal(grey[..., 0], grey[..., 1])
    _world_radiance(outputs, np.zeros((64, 128, 3), dtype=np.float32), tmp_path, "black")
    _world_radiance(outputs, np.ones((64, 128, 3), dtype=np.float32), tmp_path, "white")
    broken = np.full((64, 128, 3), 0.4, dtype=np.float32)
    broken[3, 4], broken[5, 6], broken[7, 8] = np.nan, np.inf, -np.inf
    # NaN and -Inf read as black, +Inf as white: the world of the image with those values.
    repaired = broken.copy()
    repaired[3, 4], repaired[5, 6], repaired[7, 8] = 0.0, 1.0, 0.0
    np.testing.assert_array_equal(
        _world_radiance(outputs, broken, tmp_path, "broken"),
        _world_radiance(outputs, repaired, tmp_path, "fixed"),
    )
    _world_radiance(outputs, np.full((8, 16, 3), 0.5, dtype=np.float32), tmp_path, "tiny")


def test_an_hdr_input_is_written_as_it_is(outputs, tmp_path):
    radiance = np.exp(np.random.default_rng(4).uniform(-5, 12, size=(32, 64, 3))).astype(np.float32)
    broken = radiance.copy()
    broken[0, 0], broken[1, 1], broken[2, 2] = np.nan, -3.0, np.inf
    world = outputs.write_world_hdr(broken, tmp_path, "imported", METADATA)
    pixels, header = read_exr(world.exr)
    assert np.isfinite(pixels).all() and pixels.min() > 0 and header["prompt"] == METADATA["prompt"]
    keep = np.ones(radiance.shape[:2], dtype=bool)
    keep[0, 0] = keep[1, 1] = keep[2, 2] = False
    np.testing.assert_array_equal(pixels[keep], radiance[keep])
    assert (pixels[2, 2] == radiance[np.isfinite(radiance)].max()).all()
    with Image.open(world.preview) as preview:
        assert preview.size == (64, 32)
    assert world.report["finite"] is True


def test_material_files(outputs, tmp_path):
    material = outputs.write_material(texture(128), tmp_path, "stone", METADATA)
    expected = {
        "albedo": "RGB",
        "normal": "RGB",
        "roughness": "L",
        "height": "I;16",
        "ao": "L",
        "preview": "RGB",
    }
    for name, mode in expected.items():
        path = getattr(material, name)
        assert path.name == f"stone-{name}.png"
        with Image.open(path) as image:
            assert image.mode == mode and image.size == (128, 128), name
            assert image.info["prompt"] == METADATA["prompt"], name
    with open(material.normal, "rb") as file:
        assert file.read(26)[24] == 16  # IHDR bit depth: the normal map keeps 16 bits
    report = material.report
    assert report["seam_ratio_worst"] <= 1.2 and report["albedo_low_frequency"] <= 0.05
    assert report["normal_mean_z"] >= 0.8 and report["albedo_in_range"] >= 0.99
    again = outputs.write_material(texture(128), tmp_path, "stone", METADATA)
    assert again.albedo.name == "stone-2-albedo.png"


def test_material_inputs(outputs, errors, tmp_path):
    small = outputs.write_material(np.full((8, 8), 128, dtype=np.uint8), tmp_path, "tiny", METADATA)
    with Image.open(small.albedo) as image:
        assert image.size == (8, 8)
    broken = texture(32)
    broken[0, 0] = np.nan
    made = outputs.write_material(broken, tmp_path, "broken", METADATA)
    broken[0, 0] = 0.0  # NaN reads as black
    same = outputs.write_material(broken, tmp_path, "black", METADATA)
    for name in ("albedo", "normal", "height"):
        with Image.open(getattr(made, name)) as a, Image.open(getattr(same, name)) as b:
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)
    with pytest.raises(errors.InvalidImage):
        outputs.write_material(np.zeros((4, 4, 3)), tmp_path, "small", METADATA)


@pytest.mark.slow
def test_huge_world(outputs, hdr, tmp_path):
    width, height = 16384, 8192
    image = np.empty((height, width, 3), dtype=np.float32)
    image[:] = np.linspace(0.8, 0.2, height, dtype=np.float32)[:, None, None] * np.array(
        [0.6, 0.75, 1.0], dtype=np.float32
    )
    image[height // 4 - 60 : height // 4 + 60, 9000:9120] = 1.0
    world = outputs.write_world(image, tmp_path, "huge", METADATA, hdr.HdrOptions(output_width=4096))
    pixels, _ = read_exr(world.exr)
    assert pixels.shape == (2048, 4096, 3)
    assert world.report["sun_added"] is True and 0.60 <= world.report["light_share"] <= 0.85


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_written_files_get_the_mode_the_umask_gives(outputs, hdr, sunny, tmp_path, umask, mode):
    """A render farm reads what the artist wrote: the temporary file's 0600 must not survive the rename."""
    old = os.umask(umask)
    try:
        world = outputs.write_world(sunny[:128, :256], tmp_path, "meadow", METADATA, hdr.HdrOptions())
    finally:
        os.umask(old)
    for path in (world.exr, world.hdr, world.preview):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path.name


def test_writing_a_world_holds_few_copies_of_it(outputs, hdr, sunny, tmp_path):
    """Peak numpy memory while writing a world, as a multiple of the float32 image (issue: 15.5x, 16.5x
    and 11x before; the bench measures 8192x4096). The EXR is written here in numpy, chunk by chunk, so
    tracemalloc sees all of it; a small constant covers the writers' chunks and the preview at this size."""
    image = sunny.nbytes
    slack = 0.8 * image

    def peak(write, *args, **kwargs):
        tracemalloc.start()
        try:
            write(*args, **kwargs)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    files = outputs.image_files
    assert peak(files.write_exr, tmp_path / "a.exr", sunny, {}, "zip", use_openexr=False) <= 0.6 * image
    assert peak(files.write_hdr, tmp_path / "a.hdr", sunny) <= 0.7 * image
    radiance = hdr.panorama_to_hdr(sunny) * 3.0
    assert peak(hdr.to_display, radiance) <= 1.0 * image + slack / 4
    assert peak(outputs.write_world, sunny, tmp_path, "w", METADATA) <= 4 * image + slack
    assert peak(outputs.write_world_hdr, radiance, tmp_path, "h", METADATA) <= 4 * image + slack


@pytest.mark.parametrize("compression", ["zip", "none"])
def test_the_numpy_exr_writer_matches_the_openexr_reader(outputs, sunny, tmp_path, compression):
    """Blender's own Python has no OpenEXR package: there the numpy writer writes every world."""
    radiance = np.exp(np.random.default_rng(2).uniform(-8, 11, size=(37, 74, 3))).astype(np.float32)
    path = outputs.image_files.write_exr(
        tmp_path / "n.exr", radiance, METADATA, compression, use_openexr=False
    )
    pixels, header = read_exr(path)
    np.testing.assert_array_equal(pixels, radiance)
    assert header["prompt"] == METADATA["prompt"]
    assert header["compression"] == (
        OpenEXR.ZIP_COMPRESSION if compression == "zip" else OpenEXR.NO_COMPRESSION
    )


@pytest.mark.parametrize("use_openexr", [None, False], ids=["openexr", "numpy"])
def test_auto_compression_zips_a_sky_and_stores_noise(outputs, hdr, tmp_path, use_openexr):
    """ZIP where it pays: a sky's radiance deflates to about 60% of raw float32; fine noise in every
    mantissa hardly shrinks, and ZIP would cost its full time for it, so it is stored. Both read back."""
    files = outputs.image_files
    clouds = np.clip(0.5 + 0.1 * periodic_noise(64, 128, seed=1), 0, 1)[..., None].repeat(3, axis=2)
    smooth = hdr.resize_panorama(clouds.astype(np.float32), 1024)  # smooth, as an upscaled sky is
    sky = hdr.panorama_to_hdr(smooth)
    noise = np.random.default_rng(5).random((64, 128, 3)).astype(np.float32) + 0.5
    for name, radiance, expected in (("sky", sky, "ZIP"), ("noise", noise, "NO")):
        path = files.write_exr(tmp_path / f"{name}.exr", radiance, {}, "auto", use_openexr=use_openexr)
        pixels, header = read_exr(path)
        np.testing.assert_array_equal(pixels, radiance)
        assert header["compression"] == getattr(OpenEXR, f"{expected}_COMPRESSION"), name
    assert (tmp_path / "sky.exr").stat().st_size <= 0.6 * sky.nbytes
    world = outputs.write_world(smooth, tmp_path, "w", METADATA)
    assert read_exr(world.exr)[1]["compression"] == OpenEXR.ZIP_COMPRESSION
