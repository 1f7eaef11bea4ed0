"""Files written in numpy read back with independent readers: OpenEXR, Pillow, and Blender itself."""

import importlib
import os

import bpy
import numpy as np
import OpenEXR
import pytest
from PIL import Image

METADATA = {"prompt": "a sunny meadow, ünïcode ✓", "seed": "42", "negative_prompt": "", "steps": "20"}


@pytest.fixture(scope="module")
def files(addon):
    return importlib.import_module(addon.__name__ + ".generation.imaging.image_files")


def radiance(height=37, width=64, seed=0):
    """Values across the whole float range a world uses, including a sun far above half-float's 65504."""
    rng = np.random.default_rng(seed)
    data = np.exp(rng.uniform(-12, 10, size=(height, width, 3))).astype(np.float32)
    data[0, 0] = [1e6, 62000.0, 0.5]
    data[1, 1] = [1e-8, 100.0, 3.0e5]
    return data


def read_exr(path):
    with OpenEXR.File(str(path)) as exr:
        header = dict(exr.header())
        channels = exr.channels()
        pixels = (
            channels["RGB"].pixels if "RGB" in channels else np.stack([channels[c].pixels for c in "RGB"], -1)
        )
    return np.asarray(pixels), header


def load_in_blender(path):
    """Pixels as Blender reads them (rows top first, RGB), with no colour conversion."""
    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        image.colorspace_settings.name = "Non-Color"
        width, height = image.size
        pixels = np.empty(width * height * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
        return pixels.reshape(height, width, 4)[::-1, :, :3]
    finally:
        bpy.data.images.remove(image)


@pytest.mark.parametrize("compression", ["zip", "none"])
def test_exr_reads_back_exactly_with_openexr(files, tmp_path, compression):
    data = radiance()
    path = files.write_exr(tmp_path / "world.exr", data, METADATA, compression=compression)
    assert path == tmp_path / "world.exr"
    pixels, header = read_exr(path)
    assert pixels.dtype == np.float32
    np.testing.assert_array_equal(pixels, data)
    for key, value in METADATA.items():
        assert header[key] == value
    expected = OpenEXR.ZIP_COMPRESSION if compression == "zip" else OpenEXR.NO_COMPRESSION
    assert header["compression"] == expected


def test_exr_that_compresses_well_and_long_attribute_names(files, tmp_path):
    data = np.zeros((50, 40, 3), dtype=np.float32)
    data[:, :, 1] = np.linspace(0, 1e6, 40, dtype=np.float32)
    metadata = {"a_very_long_attribute_name_beyond_thirty_one_chars": "yes"}
    path = files.write_exr(tmp_path / "ramp.exr", data, metadata)
    assert os.path.getsize(path) < data.nbytes / 4
    pixels, header = read_exr(path)
    np.testing.assert_array_equal(pixels, data)
    assert header["a_very_long_attribute_name_beyond_thirty_one_chars"] == "yes"


def test_exr_loads_in_blender(files, tmp_path):
    data = radiance(16, 32)
    path = files.write_exr(tmp_path / "b.exr", data, METADATA)
    np.testing.assert_array_equal(load_in_blender(path), data)


def test_hdr_reads_back_in_blender_within_rgbe_precision(files, tmp_path):
    data = radiance(24, 48)
    path = files.write_hdr(tmp_path / "world.hdr", data, {"prompt": "two\nlines", "seed": "7"})
    head = path.read_bytes()[:200]
    assert head.startswith(b"#?RADIANCE\n") and b"prompt=two lines\n" in head and b"seed=7\n" in head
    back = load_in_blender(path)
    peak = data.max(axis=-1, keepdims=True)
    # RGBE keeps 8 bits of mantissa relative to the brightest channel of each pixel.
    assert (np.abs(back - data) <= peak / 128 + 1e-30).all()
    np.testing.assert_allclose(back.max(axis=-1), peak[..., 0], rtol=1 / 128)


@pytest.mark.parametrize("shape", [(20, 30, 3), (20, 30)], ids=["rgb", "grey"])
def test_png_8_bit_reads_back_with_pillow(files, tmp_path, shape):
    data = np.random.default_rng(1).random(shape).astype(np.float32)
    path = files.write_png(tmp_path / "a.png", data, 8, METADATA)
    with Image.open(path) as image:
        assert image.mode == ("RGB" if len(shape) == 3 else "L")
        assert image.info["prompt"] == METADATA["prompt"] and image.info["seed"] == "42"
        back = np.asarray(image)
    np.testing.assert_array_equal(back, np.rint(data * 255).astype(np.uint8))


def test_png_16_bit_grey_reads_back_exactly_with_pillow(files, tmp_path):
    data = np.random.default_rng(2).random((20, 30)).astype(np.float32)
    path = files.write_png(tmp_path / "height.png", data, 16, METADATA)
    with Image.open(path) as image:
        assert image.mode == "I;16"
        back = np.asarray(image)
    np.testing.assert_array_equal(back, np.rint(data * 65535).astype(np.uint16))


def test_png_16_bit_rgb_reads_back_with_pillow_and_blender(files, tmp_path):
    data = np.random.default_rng(3).random((20, 30, 3)).astype(np.float32)
    path = files.write_png(tmp_path / "normal.png", data, 16, METADATA)
    with Image.open(path) as image:
        assert image.info["prompt"] == METADATA["prompt"]
        eight_bit = np.asarray(image).astype(np.float32)  # Pillow reduces 16-bit RGB to 8 bits
    assert np.abs(eight_bit - data * 255).max() <= 1.0
    np.testing.assert_allclose(load_in_blender(path), data, atol=1.5 / 65535)


def test_png_rejects_what_is_not_an_image(files, errors, tmp_path):
    with pytest.raises(errors.InvalidImage):
        files.write_png(tmp_path / "x.png", np.zeros((4, 4, 2)), 8)
    with pytest.raises(ValueError):
        files.write_png(tmp_path / "x.png", np.zeros((4, 4)), 12)
    assert not (tmp_path / "x.png").exists()


def test_a_failed_write_leaves_the_old_file_and_no_temporary(files, tmp_path, monkeypatch):
    path = files.write_png(tmp_path / "a.png", np.zeros((4, 4)), 8)
    before = path.read_bytes()

    def disk_full(_fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        files.write_png(path, np.ones((4, 4)), 8)
    with pytest.raises(OSError):
        files.write_exr(tmp_path / "new.exr", radiance(4, 8))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_unique_stem_never_returns_an_existing_file(files, tmp_path):
    stem, (first,) = files.unique_stem(tmp_path, "sky", [".exr"])
    assert (stem, first) == ("sky", tmp_path / "sky.exr")
    first.write_bytes(b"x")
    stem, (second,) = files.unique_stem(tmp_path, "sky", [".exr"])
    assert (stem, second) == ("sky-2", tmp_path / "sky-2.exr")
    second.write_bytes(b"x")
    (tmp_path / "sky-3.hdr").write_bytes(b"x")  # one file of a set is enough to skip its stem
    stem, paths = files.unique_stem(tmp_path, "sky", [".exr", ".hdr"])
    assert stem == "sky-4" and not any(p.exists() for p in paths)
