"""The light of a world from an 8-bit panorama against physical truth: Blender's own sky, rendered.

Each sky is rendered once per session (physical_sky), photographed as a generator would output it (median
sky 0.18, clipped, 8-bit sRGB), converted, and compared: sun direction, sun share and lit/shadow on a
ground under an object (analytic irradiance over the two maps), the colour of the light, the seam.
"""

import numpy as np
import pytest
from physical_sky import HORIZON_GLOWS, OVERCAST, SKIES, figures, needs_multiple_scattering, truth
from pure.synthetic import photograph

pytestmark = needs_multiple_scattering


@pytest.fixture(scope="session")
def truths(quality):
    return lambda sky: truth(sky, quality)


def measured(sky, truths, hdr, quality) -> dict:
    found = truths(sky)
    # A Sun lamp's conversion keeps the radiance without the sun: the figures measure the sun from it.
    lamp = hdr.HdrOptions(sun_lamp=True)
    return figures(found, hdr.convert_panorama(photograph(found.radiance), lamp), quality)


ALL_SKIES = (*SKIES, *HORIZON_GLOWS)


@pytest.mark.parametrize("sky", ALL_SKIES, ids=[sky.name for sky in ALL_SKIES])
def test_light_matches_the_physical_sky(sky, truths, hdr, quality):
    """The horizon glows among them reach down into the bright horizon, so their clipped centre sits
    6-7 degrees low; the unclipped aureole around it puts the sun back where it is."""
    f = measured(sky, truths, hdr, quality)
    assert f["direction_error"] <= 3.0, f
    assert abs(f["share_ours"] - f["share"]) <= 0.15, f
    assert 0.5 <= f["lit_shadow_ours"] / f["lit_shadow"] <= 2.0, f
    assert np.hypot(*np.subtract(f["chromaticity_ours"], f["chromaticity"])) <= 0.05, f
    assert f["seam_ours"] <= max(f["seam"], 1.0) + 0.1, f


def test_no_sun_is_invented_under_an_overcast_stand_in(truths, hdr, quality):
    f = measured(OVERCAST, truths, hdr, quality)
    assert f["share_ours"] <= f["share"] + 0.15, f
    assert 0.5 <= f["lit_shadow_ours"] / f["lit_shadow"] <= 2.0, f


def test_the_truth_is_what_quality_md_says_blenders_sky_is(truths, quality):
    """The renders are the physical sky they claim to be: a clear sun carries most of the light, a
    hazy low one much less, and the sun sits where it was put."""
    clear = truths(SKIES[0])
    assert 0.80 <= quality.sun_share(clear.radiance, clear.sunless) <= 0.92
    hazy = truths(SKIES[3])
    assert 0.45 <= quality.sun_share(hazy.radiance, hazy.sunless) <= 0.70
    sun = clear.radiance - clear.sunless
    row, col = np.unravel_index(int(np.argmax(quality.luminance(sun))), sun.shape[:2])
    direction = quality.panorama_directions(*sun.shape[:2])[row, col]
    assert quality.angle_between(direction, SKIES[0].sun_direction) < 1.5
