"""LDR panorama -> HDR radiance against the QUALITY.md numbers, on synthetic skies."""

import numpy as np
import pytest
from synthetic import night_sky, overcast_sky, periodic_noise, photo_crop, sunny_sky

WIDTH = 1024


@pytest.fixture(scope="module")
def sunny():
    return sunny_sky(WIDTH)


def check_radiance(radiance, shape):
    assert radiance.dtype == np.float32 and radiance.shape == shape
    assert np.isfinite(radiance).all() and radiance.min() > 0


def test_srgb_to_linear_is_the_exact_inverse(hdr):
    x = np.array([0.0, 0.04045, 0.0405, 0.5, 1.0], dtype=np.float32)
    expected = np.array([0.0, 0.04045 / 12.92, ((0.0405 + 0.055) / 1.055) ** 2.4, 0.2140411, 1.0])
    np.testing.assert_allclose(hdr.srgb_to_linear(x), expected, rtol=1e-5, atol=1e-7)
    ramp = np.linspace(0, 1, 4097, dtype=np.float32)
    linear = hdr.srgb_to_linear(ramp)
    assert linear.dtype == np.float32 and (np.diff(linear) > 0).all()
    np.testing.assert_allclose(hdr.linear_to_srgb(linear), ramp, atol=2e-6)


def test_options_are_checked(hdr, errors):
    assert hdr.HdrOptions() == hdr.HdrOptions(exposure=0.0, sun="auto", sun_strength=1.0, output_width=None)
    for bad in (
        {"sun": "yes"},
        {"sun_strength": 0},
        {"exposure": 99},
        {"output_width": 1001},
        {"output_width": 8},
    ):
        with pytest.raises(errors.InvalidRequest):
            hdr.HdrOptions(**bad)


def test_sunny_sky_gets_a_sun_that_carries_three_quarters_of_the_light(hdr, quality, sunny):
    result = hdr.convert_panorama(sunny, hdr.HdrOptions())
    check_radiance(result.radiance, sunny.shape)
    stats = quality.hdr_stats(result.radiance)
    assert stats.peak_over_median >= 1e4, stats
    assert stats.stops >= 16, stats
    assert 0.60 <= stats.light_share <= 0.85, stats
    assert result.sun is not None
    assert result.sun.elevation == pytest.approx(45.0, abs=1.0)
    assert result.sun.azimuth == pytest.approx(120.0, abs=1.0)
    # Pixels below the highlight knee, away from the sun and the poles, keep their linear value: exposure
    # is anchored on them.
    plain = (sunny.max(axis=-1) < 0.85)[100:400] & (np.abs(np.arange(WIDTH) - WIDTH / 3) > WIDTH / 8)[None, :]
    assert plain.mean() > 0.3
    expected = hdr.srgb_to_linear(sunny[100:400])[plain]
    np.testing.assert_allclose(result.radiance[100:400][plain], expected, rtol=1e-3, atol=1e-6)


def test_sun_strength_and_exposure(hdr, quality, sunny):
    base = hdr.panorama_to_hdr(sunny)
    strong = quality.hdr_stats(hdr.panorama_to_hdr(sunny, hdr.HdrOptions(sun_strength=2.0)))
    assert strong.light_share > quality.hdr_stats(base).light_share + 0.05
    brighter = hdr.panorama_to_hdr(sunny, hdr.HdrOptions(exposure=1.0))
    np.testing.assert_allclose(brighter, base * 2.0, rtol=1e-6)


@pytest.mark.parametrize("make", [overcast_sky, night_sky], ids=["overcast", "night"])
def test_sky_without_a_light_source_gets_no_sun(hdr, quality, make):
    ldr = make(WIDTH)
    result = hdr.convert_panorama(ldr, hdr.HdrOptions())
    check_radiance(result.radiance, ldr.shape)
    assert result.sun is None
    stats = quality.hdr_stats(result.radiance)
    assert stats.peak <= 50 * stats.median_sky, stats
    assert stats.stops <= 8, stats
    assert stats.light_share == 0.0


def test_sun_off_and_on(hdr, quality, sunny):
    off = hdr.convert_panorama(sunny, hdr.HdrOptions(sun="off"))
    assert off.sun is None
    stats = quality.hdr_stats(off.radiance)
    assert stats.peak <= 50 * stats.median_sky and stats.stops <= 8
    forced = hdr.convert_panorama(overcast_sky(WIDTH), hdr.HdrOptions(sun="on"))
    assert forced.sun is not None and forced.sun.elevation > 0
    assert 0.60 <= quality.hdr_stats(forced.radiance).light_share <= 0.85


def test_poles_become_one_direction(hdr, quality):
    ldr = overcast_sky(WIDTH)
    swirl = np.random.default_rng(1).random((40, WIDTH, 3)).astype(np.float32) * 0.6 + 0.2
    ldr[:40], ldr[-40:] = swirl, swirl[::-1] * 0.5
    assert quality.pole_gradient_ratio(ldr) > 2.0
    result = hdr.convert_panorama(ldr, hdr.HdrOptions())
    for image in (result.ldr, result.radiance, np.log(quality.luminance(result.radiance))):
        poles = quality.pole_uniformity(image)
        assert poles.top < 0.02 and poles.bottom < 0.02, poles
        assert quality.pole_gradient_ratio(image) <= 2.0


def test_slightly_non_periodic_panorama_is_blended_at_the_seam(hdr, quality):
    height = WIDTH // 2
    ldr = np.clip(0.5 + 0.12 * photo_crop(height, WIDTH, seed=9), 0, 1)[..., None] * np.array([1.0, 0.9, 0.8])
    ldr = ldr.astype(np.float32)
    assert quality.seam_ratio(ldr).ratio > 1.7
    radiance = hdr.panorama_to_hdr(ldr)
    for image in (hdr.linear_to_srgb(radiance), np.log(quality.luminance(radiance))):
        seam = quality.seam_ratio(image)
        assert seam.ratio <= 1.2 and seam.row_p99 <= 2.0, seam
    # Away from the seam nothing changes.
    middle = (slice(100, 400), slice(WIDTH // 4, 3 * WIDTH // 4))
    plain = ldr[middle].max(axis=-1) < 0.85
    expected = hdr.srgb_to_linear(ldr[middle])[plain]
    np.testing.assert_allclose(radiance[middle][plain], expected, rtol=1e-5, atol=radiance.max() / 200)


def test_periodic_panorama_is_left_alone_by_the_seam_blend(hdr):
    ldr = np.clip(0.5 + 0.1 * periodic_noise(128, 256, seed=3), 0, 1)[..., None].repeat(3, axis=2)
    assert hdr.blend_seam(ldr.astype(np.float32)) is not None
    np.testing.assert_array_equal(hdr.blend_seam(ldr.astype(np.float32)), ldr.astype(np.float32))


def test_resize_wraps_around(hdr, quality):
    ldr = sunny_sky(512)
    up = hdr.resize_panorama(ldr, 1024)
    assert up.shape == (512, 1024, 3) and up.dtype == np.float32
    assert up.min() >= ldr.min() and up.max() <= ldr.max()
    # Wrap-aware: resizing a rolled panorama gives the resized panorama rolled.
    rolled = hdr.resize_panorama(np.roll(ldr, 37, axis=1), 1024)
    np.testing.assert_allclose(rolled, np.roll(up, 74, axis=1), atol=1e-5)
    down = hdr.resize_panorama(ldr, 128)
    assert down.shape == (64, 128, 3)
    assert quality.seam_ratio(down).ratio <= 1.2


def test_output_width_resizes_before_the_hdr_step(hdr, quality):
    result = hdr.convert_panorama(sunny_sky(512), hdr.HdrOptions(output_width=1024))
    assert result.radiance.shape == (512, 1024, 3) and result.ldr.shape == (512, 1024, 3)
    assert quality.hdr_stats(result.radiance).peak_over_median >= 1e4


@pytest.mark.parametrize("value", [0.0, 1.0], ids=["black", "white"])
def test_flat_panoramas_give_a_defined_result(hdr, quality, value):
    radiance = hdr.panorama_to_hdr(np.full((64, 128, 3), value, dtype=np.float32))
    check_radiance(radiance, (64, 128, 3))
    assert quality.hdr_stats(radiance).stops <= 8


def test_non_finite_and_tiny_input(hdr):
    ldr = sunny_sky(64)
    ldr[3, 5] = np.nan
    check_radiance(hdr.panorama_to_hdr(ldr), (32, 64, 3))
    check_radiance(hdr.panorama_to_hdr(sunny_sky(16)), (8, 16, 3))


@pytest.mark.slow
def test_huge_panorama(hdr, quality):
    width, height = 16384, 8192
    rows = np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None, None]
    ldr = np.empty((height, width, 3), dtype=np.float32)
    ldr[:] = (0.3 + 0.5 * rows) * np.array([0.6, 0.75, 1.0], dtype=np.float32)
    ldr[height // 4 - 60 : height // 4 + 60, 5000:5120] = 1.0  # a clipped sun at 45 degrees
    result = hdr.convert_panorama(ldr, hdr.HdrOptions(output_width=4096))
    check_radiance(result.radiance, (2048, 4096, 3))
    assert result.sun is not None and result.sun.elevation == pytest.approx(45.0, abs=1.0)
    assert 0.60 <= quality.hdr_stats(result.radiance).light_share <= 0.85
