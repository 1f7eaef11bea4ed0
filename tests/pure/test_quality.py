"""The QUALITY.md measures on inputs whose answer is known; the synthetic skies and textures used by the
post-processing tests (test_hdr, test_pbr, test_outputs import them from here)."""

import numpy as np
import pytest
from synthetic import periodic_noise, photo_crop, texture

# Seams -------------------------------------------------------------------------------------------------


def test_periodic_noise_reads_about_one_and_a_crop_reads_a_seam(quality):
    periodic = periodic_noise(256, 512, seed=11)
    crop = photo_crop(256, 512)
    for axis in (0, 1):
        good = quality.seam_ratio(periodic, axis=axis)
        assert 0.85 <= good.ratio <= 1.15, good
        assert good.row_p99 <= 2.0, good
        bad = quality.seam_ratio(crop, axis=axis)
        assert 1.7 <= bad.ratio <= 3.6, bad
        assert bad.ratio > 1.2 and bad.row_p99 > 2.0, bad


def test_seam_ratio_axes_and_channels(quality):
    crop = photo_crop(128, 256)
    assert quality.seam_ratio(crop, axis=0).ratio == pytest.approx(quality.seam_ratio(crop.T, axis=1).ratio)
    rgb = np.repeat(crop[..., None], 3, axis=2)
    assert quality.seam_ratio(rgb).ratio == pytest.approx(quality.seam_ratio(crop).ratio, rel=1e-5)
    with pytest.raises(ValueError):
        quality.seam_ratio(crop, axis=2)


def test_a_local_seam_shows_in_the_row_percentile(quality):
    image = periodic_noise(256, 512, seed=12)
    image[100:120, -1] += 2.0  # one stretch of the edge does not match
    seam = quality.seam_ratio(image)
    assert seam.row_p99 > 2.0


def test_flat_image_has_no_seam(quality):
    seam = quality.seam_ratio(np.full((16, 32, 3), 0.5, dtype=np.float32))
    assert seam.ratio == 0.0 and seam.row_p99 == 0.0


# Poles -------------------------------------------------------------------------------------------------


def test_pole_uniformity(quality):
    pano = np.full((64, 128, 3), 0.5, dtype=np.float32)
    assert quality.pole_uniformity(pano).top == 0.0
    pano[0, ::2] = 0.6
    poles = quality.pole_uniformity(pano)
    assert poles.top == pytest.approx(0.1 / 1.1, rel=1e-4) and poles.bottom == 0.0


def test_pole_gradient_ratio_finds_busy_poles(quality):
    noise = periodic_noise(128, 256, seed=4)
    assert quality.pole_gradient_ratio(noise) <= 2.0
    busy = noise.copy()
    busy[:4] = np.random.default_rng(0).random((4, 256)) * 6  # swirl at the zenith
    assert quality.pole_gradient_ratio(busy) > 2.0


# HDR statistics ----------------------------------------------------------------------------------------


def _sky_with_sun(width, sun_elevation, sun_radiance):
    height = width // 2
    radiance = np.full((height, width, 3), 1.0, dtype=np.float32)
    radiance[height // 2 :] = 0.1
    row = round((90.0 - sun_elevation) / 180.0 * height - 0.5)
    radiance[row, width // 3] = sun_radiance
    return radiance, row


def test_light_share_uses_cosine_and_solid_angle(quality):
    width = 1024
    height = width // 2
    radiance, row = _sky_with_sun(width, 45.0, 1.0)
    elevation = (0.5 - (row + 0.5) / height) * np.pi
    pixel = (2 * np.pi / width) * (np.pi / height) * np.cos(elevation)
    sky = np.pi  # a uniform unit sky gives pi of horizontal irradiance
    sun = 3.0 * sky / (pixel * np.sin(elevation))
    radiance[row, width // 3] = sun
    stats = quality.hdr_stats(radiance)
    assert stats.light_share == pytest.approx(0.75, abs=0.01)
    assert stats.peak == pytest.approx(sun, rel=1e-5)
    assert stats.median_sky == pytest.approx(1.0)
    assert stats.peak_over_median == pytest.approx(sun, rel=1e-5)
    assert stats.stops == pytest.approx(np.log2(sun / 0.1), rel=1e-4)
    assert stats.finite and stats.minimum == pytest.approx(0.1)
    # The same radiance low in the sky lights a horizontal surface less: cos x sin of the elevation.
    low, low_row = _sky_with_sun(width, 10.0, sun)
    low_elevation = (0.5 - (low_row + 0.5) / height) * np.pi
    low_sun = sun * (2 * np.pi / width) * (np.pi / height) * np.cos(low_elevation) * np.sin(low_elevation)
    assert quality.hdr_stats(low).light_share == pytest.approx(low_sun / (low_sun + sky), abs=0.01)
    assert quality.hdr_stats(low).light_share < 0.6


def test_hdr_stats_without_a_source_and_with_non_finite_values(quality):
    flat = np.full((32, 64, 3), 2.0, dtype=np.float32)
    stats = quality.hdr_stats(flat)
    assert stats.light_share == 0.0 and stats.stops == pytest.approx(0.0) and stats.peak_over_median == 1.0
    flat[3, 3] = np.nan
    assert not quality.hdr_stats(flat).finite


# Maps --------------------------------------------------------------------------------------------------


def test_normal_stats(quality):
    flat = np.zeros((8, 8, 3), dtype=np.float32) + np.array([0.5, 0.5, 1.0], dtype=np.float32)
    stats = quality.normal_stats(flat)
    assert stats.length_error == pytest.approx(0.0, abs=1e-6) and stats.mean_z == pytest.approx(1.0)
    tilted = np.array([0.6, 0.0, 0.8]) * 0.5 + 0.5 + np.zeros((8, 8, 3))
    stats = quality.normal_stats(tilted)
    assert stats.mean_x == pytest.approx(0.6) and stats.mean_z == pytest.approx(0.8)
    assert quality.normal_stats(tilted * 0.9).length_error > 0.01


def test_albedo_stats(quality):
    lit = texture(128, lighting=0.35)
    assert quality.albedo_stats(lit).low_frequency > 0.2
    even = np.full((64, 64, 3), 0.5, dtype=np.float32)
    stats = quality.albedo_stats(even)
    assert stats.low_frequency == pytest.approx(0.0, abs=1e-5) and stats.in_range == 1.0
    even[:8] = 0.0
    assert quality.albedo_stats(even).in_range == pytest.approx(56 / 64)


def test_reports_are_plain_numbers(quality):
    radiance, _ = _sky_with_sun(128, 45.0, 5e4)
    report = quality.world_report(np.clip(radiance, 0, 1), radiance, sun_added=True)
    assert report["sun_added"] is True
    assert all(type(value) in (float, bool) for value in report.values()), report
    assert {"light_share", "stops", "peak_over_median", "seam_ratio_srgb", "pole_top"} <= set(report)


# Light ------------------------------------------------------------------------------------------------


def test_panorama_directions_follow_blenders_mapping(quality):
    d = quality.panorama_directions(64, 128)
    assert d[0, 0, 2] > 0.99 and d[-1, 0, 2] < -0.99  # top row up, bottom row down
    np.testing.assert_allclose(d[32, 64], [1, 0, 0], atol=0.05)  # the centre looks along +X
    np.testing.assert_allclose(d[32, 0], [-1, 0, 0], atol=0.05)  # the edges along -X
    np.testing.assert_allclose(d[32, 32], [0, 1, 0], atol=0.05)  # u = 0.25 is +Y: 0.5 - atan2(y, x) / 2pi
    elevation, azimuth = quality.direction_angles(d[32, 32])
    assert abs(elevation) < 2 and azimuth == pytest.approx(90.0, abs=2)


def test_irradiance_share_lit_shadow_and_colour_of_the_light(quality):
    width, height = 512, 256
    sky = np.ones((height, width, 3), dtype=np.float32)
    np.testing.assert_allclose(quality.horizontal_irradiance(sky), np.pi, rtol=1e-3)  # a uniform unit sky
    np.testing.assert_allclose(quality.horizontal_irradiance(sky, from_below=True), np.pi, rtol=1e-3)
    row = height // 4  # 45 degrees up
    elevation = quality.elevations(height)[row]
    pixel = quality.pixel_solid_angles(height, width)[row]
    lit = sky.copy()
    lit[row, 100] += np.float32(3 * np.pi / (pixel * np.sin(elevation))) * np.array(
        [1.0, 0.5, 0.25], np.float32
    )
    sun_luminance = 3 * np.pi * (0.2126 + 0.7152 * 0.5 + 0.0722 * 0.25)
    assert quality.sun_share(lit, sky) == pytest.approx(sun_luminance / (sun_luminance + np.pi), rel=1e-3)
    assert quality.lit_shadow_ratio(lit, sky) == pytest.approx(1 + sun_luminance / np.pi, rel=1e-3)
    assert quality.light_chromaticity(sky) == pytest.approx((1 / 3, 1 / 3), abs=1e-6)
    r, g = quality.light_chromaticity(lit)
    assert r == pytest.approx((1 + 3) / (3 + 3 * 1.75), rel=1e-3) and g == pytest.approx(2.5 / 8.25, rel=1e-3)
    assert quality.below_over_above(
        np.where(quality.elevations(height)[:, None, None] > 0, 1.0, 0.25) * np.ones((1, width, 3))
    ) == (pytest.approx(0.25, rel=1e-3))
    assert quality.angle_between([1, 0, 0], [0, 1, 0]) == pytest.approx(90.0)
