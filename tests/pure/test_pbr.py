"""Texture -> PBR maps: every map tiles, the albedo is de-lit, the normal map is valid OpenGL."""

import numpy as np
import pytest
from synthetic import texture

SIZE = 256
MAP_NAMES = ("albedo", "normal", "roughness", "height", "ao")


@pytest.fixture(scope="module")
def stone():
    return texture(SIZE)


@pytest.fixture(scope="module")
def maps(pbr, stone):
    return pbr.texture_to_pbr(stone)


def test_maps_have_the_promised_shapes_types_and_ranges(maps):
    for name in MAP_NAMES:
        image = getattr(maps, name)
        assert image.dtype == np.float32, name
        assert image.shape[:2] == (SIZE, SIZE), name
        assert image.ndim == (3 if name in ("albedo", "normal") else 2), name
        assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0, name


def test_every_map_tiles_in_both_axes(quality, maps):
    for name in MAP_NAMES:
        for axis in (0, 1):
            seam = quality.seam_ratio(getattr(maps, name), axis=axis)
            assert seam.ratio <= 1.2 and seam.row_p99 <= 2.0, (name, axis, seam)


def test_filters_wrap_rolling_the_input_rolls_every_map(pbr, stone, maps):
    rolled = pbr.texture_to_pbr(np.roll(stone, (40, 75), axis=(0, 1)))
    for name in MAP_NAMES:
        expected = np.roll(getattr(maps, name), (40, 75), axis=(0, 1))
        np.testing.assert_allclose(getattr(rolled, name), expected, atol=2e-3, err_msg=name)


def test_albedo_is_de_lit_and_in_the_plausible_range(quality, stone, maps):
    before = quality.albedo_stats(stone)
    assert before.low_frequency > 0.2 and before.in_range < 0.99
    after = quality.albedo_stats(maps.albedo)
    assert after.low_frequency <= 0.05, after
    assert after.in_range >= 0.99, after


def test_normal_map_is_valid(quality, maps):
    stats = quality.normal_stats(maps.normal)
    assert stats.length_error <= 0.01, stats
    assert abs(stats.mean_x) < 0.02 and abs(stats.mean_y) < 0.02, stats
    assert stats.mean_z >= 0.8, stats


def test_normal_map_follows_the_opengl_convention(pbr):
    # A bright bump in the middle is high: right of it the surface faces +x, above it +y (green up).
    y, x = np.mgrid[0:64, 0:64]
    bump = np.exp(-((x - 32) ** 2 + (y - 32) ** 2) / 40.0)
    image = np.repeat((0.3 + 0.5 * bump)[..., None], 3, axis=2).astype(np.float32)
    normal = pbr.texture_to_pbr(image).normal * 2 - 1
    assert normal[32, 37, 0] > 0.1 and normal[32, 27, 0] < -0.1
    assert normal[27, 32, 1] > 0.1 and normal[37, 32, 1] < -0.1
    height = pbr.texture_to_pbr(image).height
    assert height[32, 32] > 0.9 and height[0, 0] < 0.5


def test_normal_strength(pbr, quality, stone, maps):
    strong = quality.normal_stats(pbr.texture_to_pbr(stone, normal_strength=3.0).normal)
    assert strong.mean_z < quality.normal_stats(maps.normal).mean_z - 0.05
    flat = pbr.texture_to_pbr(stone, normal_strength=0.0).normal
    np.testing.assert_allclose(flat, np.broadcast_to([0.5, 0.5, 1.0], flat.shape), atol=1e-6)


def test_height_is_percentile_normalised(maps):
    low, high = np.percentile(maps.height, [1, 99])
    assert low == pytest.approx(0.0, abs=0.01) and high == pytest.approx(1.0, abs=0.01)


def test_roughness_and_ao_follow_the_relief(maps):
    # Hollows (low height) are rougher and more occluded than peaks.
    low = maps.height < np.percentile(maps.height, 10)
    high = maps.height > np.percentile(maps.height, 90)
    assert maps.roughness[low].mean() > maps.roughness[high].mean()
    assert maps.ao[low].mean() < maps.ao[high].mean()
    assert maps.ao.min() >= 0.6 and maps.ao.max() <= 1.0


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_flat_and_tiny_textures_give_defined_maps(pbr, value):
    for size in (8, 64):
        maps = pbr.texture_to_pbr(np.full((size, size, 3), value, dtype=np.float32))
        for name in MAP_NAMES:
            assert np.isfinite(getattr(maps, name)).all(), (name, size)
        np.testing.assert_allclose(
            maps.normal, np.broadcast_to([0.5, 0.5, 1.0], maps.normal.shape), atol=1e-6
        )
        assert np.allclose(maps.height, maps.height.flat[0])


def test_non_square_texture(pbr, quality):
    maps = pbr.texture_to_pbr(texture(128)[:, :96].repeat(1, axis=0))
    assert maps.albedo.shape == (128, 96, 3) and maps.height.shape == (128, 96)
    assert np.isfinite(maps.normal).all()
