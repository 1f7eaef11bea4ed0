"""LDR panorama -> HDR radiance against the QUALITY.md numbers, on synthetic skies."""

import numpy as np
import pytest
from synthetic import (
    interior,
    low_red_sun,
    night,
    night_sky,
    overcast_sky,
    periodic_noise,
    photo_crop,
    photograph,
    studio,
    sunny_sky,
)

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


def test_sunny_sky_gets_a_sun_where_the_sky_shows_it(hdr, quality, sunny):
    result = hdr.convert_panorama(sunny, hdr.HdrOptions(sun_lamp=True))
    check_radiance(result.radiance, sunny.shape)
    stats = quality.hdr_stats(result.radiance)
    assert stats.peak_over_median >= 1e4, stats
    assert stats.stops >= 16, stats
    sun = result.sun
    assert sun is not None
    # The image's azimuth 120 degrees from its left edge is Blender's world azimuth 180 - 120.
    assert sun.elevation == pytest.approx(45.0, abs=1.0)
    assert sun.azimuth == pytest.approx(60.0, abs=1.0)
    expected = (np.cos(np.radians(45)) / 2, np.cos(np.radians(45)) * np.sqrt(3) / 2, np.sin(np.radians(45)))
    assert quality.angle_between(sun.direction, expected) < 1.0
    share = quality.sun_share(result.radiance, result.sunless)
    assert share == pytest.approx(sun.irradiance_share, abs=1e-6)
    assert 0.5 <= share <= 0.95, sun  # from the sky fit, not a fixed 3:1
    assert 2.0 <= sun.turbidity <= 10.0 and 3000 <= sun.temperature <= 7000, sun
    # Pixels that did not clip keep their linear value, the sun's added light aside: exposure is anchored
    # on them.
    plain = (sunny.max(axis=-1) < 0.99)[100:400] & (np.abs(np.arange(WIDTH) - WIDTH / 3) > WIDTH / 8)[None, :]
    assert plain.mean() > 0.3
    expected = hdr.srgb_to_linear(sunny[100:400])[plain]
    np.testing.assert_allclose(result.sunless[100:400][plain], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.radiance[100:400][plain], expected, rtol=1e-5, atol=1e-6)


def test_only_clipped_channels_are_expanded(hdr, sunny):
    result = hdr.convert_panorama(sunny, hdr.HdrOptions(sun_lamp=True))
    clipped = result.ldr >= 254 / 255  # what was clipped after the seam blend and the pole clean-up
    linear = hdr.srgb_to_linear(result.ldr)
    np.testing.assert_array_equal(
        result.sunless[~clipped], np.maximum(linear[~clipped], result.sunless.min())
    )
    assert (result.sunless[clipped] >= linear[clipped]).all()


def test_sun_strength_scales_the_fitted_sun_and_exposure_scales_everything(hdr, quality, sunny):
    base = hdr.convert_panorama(sunny, hdr.HdrOptions(sun_lamp=True))
    strong = hdr.convert_panorama(sunny, hdr.HdrOptions(sun_strength=2.0))
    assert strong.sun.strength == pytest.approx(2.0 * base.sun.strength, rel=1e-4)
    assert strong.sun.irradiance_share > base.sun.irradiance_share + 0.03
    brighter = hdr.convert_panorama(sunny, hdr.HdrOptions(exposure=1.0, sun_lamp=True))
    np.testing.assert_allclose(brighter.radiance, base.radiance * 2.0, rtol=1e-6)
    np.testing.assert_allclose(brighter.sunless, base.sunless * 2.0, rtol=1e-6)
    assert brighter.sun.strength == pytest.approx(2.0 * base.sun.strength, rel=1e-5)


def test_the_sunless_radiance_is_kept_only_for_a_sun_lamp(hdr, sunny):
    """Without a Sun lamp the sun is added in place (one image less at 8K); the radiance is the same."""
    before = sunny.copy()
    plain = hdr.convert_panorama(sunny)
    lamp = hdr.convert_panorama(sunny, hdr.HdrOptions(sun_lamp=True))
    assert plain.sun is not None and plain.sunless is None and lamp.sunless is not None
    np.testing.assert_array_equal(plain.radiance, lamp.radiance)
    assert plain.sun == lamp.sun
    assert (lamp.radiance >= lamp.sunless).all() and (lamp.radiance > lamp.sunless).any()
    np.testing.assert_array_equal(sunny, before)  # the input is never written to


def test_red_low_sun_where_only_red_and_green_clip_is_found(hdr):
    ldr = low_red_sun(WIDTH)
    assert (ldr[..., 2] < 254 / 255).all() and (ldr[..., 0] >= 254 / 255).any()
    sun = hdr.convert_panorama(ldr).sun
    assert sun is not None
    assert sun.elevation == pytest.approx(6.0, abs=3.0) and sun.azimuth == pytest.approx(
        180 - 250 + 360, abs=3
    )
    assert sun.temperature < 4500, sun  # a low sun is warm


@pytest.mark.parametrize("make", [overcast_sky, night_sky], ids=["overcast", "night"])
def test_sky_without_a_light_source_gets_no_sun(hdr, quality, make):
    ldr = make(WIDTH)
    result = hdr.convert_panorama(ldr, hdr.HdrOptions())
    check_radiance(result.radiance, ldr.shape)
    assert result.sun is None and result.sunless is None
    # Nothing that did not clip changes.
    unclipped = result.ldr < 254 / 255
    linear = hdr.srgb_to_linear(result.ldr)
    np.testing.assert_allclose(
        result.radiance[unclipped], np.maximum(linear[unclipped], result.radiance.min())
    )


@pytest.mark.parametrize("make", [night, interior, studio], ids=["night", "interior", "studio"])
def test_photographed_scene_without_a_sun_keeps_its_light(hdr, quality, make):
    """Night with a light-polluted horizon, a room with a window and lamps, a studio with softboxes and a
    clipped floor: no sun is invented, the light sources stay light sources, a bright floor stays a floor."""
    truth = make(WIDTH)
    ldr = photograph(truth)
    assert (ldr >= 254 / 255).any(), "the scene should clip somewhere"
    result = hdr.convert_panorama(ldr)
    assert result.sun is None
    scale = 0.18 / np.median(quality.luminance(truth[: truth.shape[0] // 2]))
    above = quality.horizontal_irradiance(result.radiance) @ quality.LUMA
    truth_above = quality.horizontal_irradiance(truth * scale) @ quality.LUMA
    assert 0.5 <= above / truth_above <= 2.0, (above, truth_above)
    ratio, truth_ratio = quality.below_over_above(result.radiance), quality.below_over_above(truth)
    assert 0.5 <= ratio / truth_ratio <= 2.0, (ratio, truth_ratio)


def test_sun_off_and_on(hdr, quality, sunny):
    off = hdr.convert_panorama(sunny, hdr.HdrOptions(sun="off"))
    assert off.sun is None and off.sunless is None
    forced = hdr.convert_panorama(overcast_sky(WIDTH), hdr.HdrOptions(sun="on", sun_lamp=True))
    assert forced.sun is not None and forced.sun.elevation > 0
    assert 0.3 <= quality.sun_share(forced.radiance, forced.sunless) <= 0.95


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
    plain = ldr[middle].max(axis=-1) < 0.99
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
@pytest.mark.parametrize("sun", ["auto", "on"])
def test_flat_panoramas_give_a_defined_result(hdr, quality, value, sun):
    result = hdr.convert_panorama(np.full((64, 128, 3), value, dtype=np.float32), hdr.HdrOptions(sun=sun))
    radiance = result.radiance
    check_radiance(radiance, (64, 128, 3))
    if sun == "auto":  # asked for, a sun may light even a black sky
        assert result.sun is None
        # Black: every value is the floor. White: the clipped sky is a light source (SOURCE_GAIN times the
        # clip), the clipped ground below is lit, not a light, and stays at 1.
        upper, lower = (np.unique(half) for half in np.split(radiance, 2))
        expected = (np.float32(hdr.FLOOR * 1e-4), np.float32(hdr.FLOOR * 1e-4)) if value == 0 else (4.0, 1.0)
        np.testing.assert_allclose([upper.item(), lower.item()], expected, rtol=1e-6)


def test_non_finite_and_tiny_input(hdr):
    ldr = sunny_sky(64)
    ldr[3, 5] = np.nan
    ldr[4, 9] = np.inf
    radiance = hdr.panorama_to_hdr(ldr)
    check_radiance(radiance, (32, 64, 3))
    # NaN reads as black and +Inf as white: the same radiance as the image with those values.
    ldr[3, 5], ldr[4, 9] = 0.0, 1.0
    np.testing.assert_array_equal(radiance, hdr.panorama_to_hdr(ldr))
    tiny = sunny_sky(16)
    check_radiance(hdr.panorama_to_hdr(tiny), (8, 16, 3))


@pytest.mark.slow
def test_huge_panorama(hdr, quality):
    width, height = 16384, 8192
    rows = np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None, None]
    ldr = np.empty((height, width, 3), dtype=np.float32)
    ldr[:] = (0.3 + 0.5 * rows) * np.array([0.6, 0.75, 1.0], dtype=np.float32)
    ldr[height // 4 - 60 : height // 4 + 60, 5000:5120] = 1.0  # a clipped sun at 45 degrees
    result = hdr.convert_panorama(ldr, hdr.HdrOptions(output_width=4096, sun_lamp=True))
    check_radiance(result.radiance, (2048, 4096, 3))
    assert result.sun is not None and result.sun.elevation == pytest.approx(45.0, abs=1.0)
    assert 0.5 <= quality.sun_share(result.radiance, result.sunless) <= 0.95


def test_the_display_encoding_for_the_upscaler_round_trips_and_invents_no_light(hdr):
    sky = np.full((32, 64, 3), 0.4, np.float32)
    sky[:16] = np.linspace(0.2, 1.5, 64, dtype=np.float32)[None, :, None]
    sky[5, 7] = 60000.0  # a sun far above half-float's range
    display, encoding = hdr.to_display(sky)
    assert display.dtype == np.float32 and display.min() >= 0.0 and display.max() < 1.0
    np.testing.assert_allclose(hdr.from_display(display, encoding), sky, rtol=2e-3)
    ringing = np.clip(display * 1.1, 0, 1)  # an upscaler overshooting near the sun
    assert hdr.from_display(ringing, encoding).max() <= 60000.0 * 1.001
