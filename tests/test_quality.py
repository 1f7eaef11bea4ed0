"""The QUALITY.md measures on inputs whose answer is known; the synthetic skies and textures used by the
post-processing tests (test_hdr, test_pbr, test_outputs import them from here)."""

import importlib

import numpy as np
import pytest


@pytest.fixture(scope="module")
def quality(addon):
    return importlib.import_module(addon.__name__ + ".generation.quality")


# Synthetic inputs ------------------------------------------------------------------------------------


def periodic_noise(height, width, seed, beta=1.0):
    """'Natural-looking' noise: amplitude ~ 1/f^beta (beta 1 is the statistics of photographs), periodic in
    both axes because it is made by an inverse FFT. Zero mean, unit std."""
    rng = np.random.default_rng(seed)
    frequency = np.hypot(np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :])
    frequency[0, 0] = 1.0
    amplitude = frequency**-beta
    amplitude[0, 0] = 0.0
    spectrum = amplitude * (rng.normal(size=frequency.shape) + 1j * rng.normal(size=frequency.shape))
    out = np.fft.irfft2(spectrum, s=(height, width))
    return (out - out.mean()) / out.std()


def photo_crop(height, width, seed=7):
    """A non-periodic crop of the same kind of noise: the middle of a field 1.37x larger."""
    big = periodic_noise(int(height * 1.37), int(width * 1.37), seed)
    y0, x0 = int(height * 0.21), int(width * 0.17)
    return big[y0 : y0 + height, x0 : x0 + width]


def _directions(width):
    height = width // 2
    el = (0.5 - (np.arange(height) + 0.5) / height) * np.pi
    az = (np.arange(width) + 0.5) / width * 2 * np.pi
    el, az = np.meshgrid(el, az, indexing="ij")
    return el, az, np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)


def _unit(elevation_deg, azimuth_deg):
    el, az = np.radians(elevation_deg), np.radians(azimuth_deg)
    return np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])


def sunny_sky(width, sun_elevation=45.0, sun_azimuth=120.0, seed=1):
    """A clipped sunny sky: blue gradient, light clouds, a white glare blob around the sun, brown ground."""
    el, _, direction = _directions(width)
    t = np.clip(el / (np.pi / 2), 0, 1)[..., None]
    sky = np.array([0.72, 0.8, 0.9]) * (1 - t) + np.array([0.28, 0.48, 0.85]) * t
    sky = sky + np.clip(periodic_noise(*el.shape, seed), 0, None)[..., None] * 0.06
    gamma = np.degrees(np.arccos(np.clip(direction @ _unit(sun_elevation, sun_azimuth), -1, 1)))[..., None]
    glow = np.exp(-np.maximum(gamma - 3.0, 0) / 6.0)
    sky = sky * (1 - glow) + 1.05 * glow
    ground = np.array([0.36, 0.31, 0.22]) * (1 + 0.25 * periodic_noise(*el.shape, seed + 1)[..., None])
    return np.clip(np.where(el[..., None] > 0, sky, ground), 0, 1).astype(np.float32)


def overcast_sky(width, seed=2):
    """Grey clouds, nothing clipped, dark ground."""
    el, _, _ = _directions(width)
    noise = periodic_noise(*el.shape, seed)[..., None]
    sky = np.array([0.72, 0.74, 0.76]) + 0.06 * noise
    ground = np.array([0.27, 0.27, 0.24]) + 0.05 * noise
    return np.clip(np.where(el[..., None] > 0, sky, ground), 0, 0.9).astype(np.float32)


def night_sky(width, seed=3):
    """Dark blue sky with single-pixel stars and a small clipped moon, darker ground."""
    el, _, direction = _directions(width)
    noise = periodic_noise(*el.shape, seed)[..., None]
    image = np.where(el[..., None] > 0, np.array([0.05, 0.07, 0.13]) + 0.015 * noise, 0.035 + 0.005 * noise)
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(0, el.shape[0] // 2 - 2, 60), rng.integers(0, width, 60)
    image[rows, cols] = 0.55
    moon = np.degrees(np.arccos(np.clip(direction @ _unit(35.0, 115.0), -1, 1))) < 1.5
    image[moon] = 1.0
    return np.clip(image, 0, 1).astype(np.float32)


def texture(size, seed=5, lighting=0.35):
    """A periodic stone-like texture with baked low-frequency lighting (one bright and one dark band)."""
    fine = periodic_noise(size, size, seed)
    coarse = periodic_noise(size, size, seed + 1, beta=2.0)
    y = np.arange(size)[:, None] / size * 2 * np.pi
    light = (1 + lighting * np.cos(y + 0.3)) * np.ones((1, size))
    base = (
        np.array([0.55, 0.42, 0.3])
        + 0.12 * fine[..., None]
        + 0.05 * coarse[..., None] * np.array([1, 0.5, -0.5])
    )
    return np.clip(base * light[..., None], 0, 1).astype(np.float32)


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
