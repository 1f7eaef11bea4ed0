"""A redrawn region and a photo on the canvas, in numpy: what is pasted, what is kept bit for bit."""

import numpy as np
import pytest


def test_a_region_pastes_only_inside_its_feather(region_edit, views):
    d = views.equirect_directions(64, 128)
    radiance = np.exp(2 * d + 1).astype(np.float32)  # smooth light from 0.4 to 20
    region = region_edit.find_region(64, 128, 175, -20, 20)
    edit = region_edit.prepare_region(radiance, region)
    assert edit.image.shape == (region.view.height, region.view.width, 3) and region.view.width % 64 == 0
    assert 0 < edit.mask.mean() < 1 and edit.image.min() >= 0 and edit.image.max() <= 1
    out = region_edit.paste_region(radiance, edit, np.zeros_like(edit.image))
    untouched = edit.weight == 0
    assert np.array_equal(out[untouched].view(np.uint32), radiance[untouched].view(np.uint32))
    assert (out[edit.weight == 1] < radiance[edit.weight == 1]).all()  # black redraw: darker
    # Redrawing with what the model saw gives the input back (up to the display round trip).
    same = region_edit.paste_region(radiance, edit, edit.image)
    assert np.abs(same / radiance - 1).max() < 0.05


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [({"angle": 0}, "no size"), ({"angle": 60}, "at most 63"), ({"mask": np.zeros((64, 128))}, "black")],
)
def test_regions_that_cannot_be_redrawn_are_refused_in_words(region_edit, errors, kwargs, words):
    with pytest.raises(errors.InvalidRequest, match=words):
        region_edit.find_region(64, 128, **kwargs)


def test_a_mask_of_another_size_is_resampled_and_a_wrong_shape_refused(region_edit, errors):
    mask = np.zeros((32, 64, 3))
    mask[10:20, 5:15] = 1
    weight = region_edit.mask_weight(mask, 64, 128)
    assert weight.shape == (64, 128) and weight.max() == 1 and weight[:, 64:].max() == 0
    with pytest.raises(errors.InvalidRequest, match="2:1"):
        region_edit.mask_weight(np.ones((50, 50)), 64, 128)


def test_a_photo_is_kept_exactly_inside_its_footprint(photo_world, hdr, errors):
    photo = np.random.default_rng(2).random((64, 96, 3)).astype(np.float32)
    placed = photo_world.place_photo(photo, 128, 256, -40, 15, 50)
    assert placed.paint[placed.weight == 1].max() == 0 and placed.paint[placed.weight == 0].min() == 1
    painted = np.full((128, 256, 3), 3.0, np.float32)
    kept = photo_world.keep_photo(painted, placed, 2.0)
    inside = placed.weight == 1
    assert inside.sum() > 100
    np.testing.assert_allclose(kept[inside], hdr.srgb_to_linear(placed.placed[inside]) * 2.0, rtol=1e-6)
    assert np.array_equal(kept[placed.weight == 0], painted[placed.weight == 0])
    with pytest.raises(errors.InvalidImage, match="at least 64 pixels"):
        photo_world.check_photo(np.zeros((63, 200, 3)), "small.png")


def test_the_field_of_view_from_a_jpegs_exif(photo_world, tmp_path):
    from PIL import Image

    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 26  # FocalLengthIn35mmFilm: a phone's main camera
    path = tmp_path / "phone.jpg"
    Image.new("RGB", (400, 300)).save(path, exif=exif)
    fov = photo_world.exif_fov(path.read_bytes(), 400, 300)
    # 43.27 mm diagonal, 4:3: 34.61 mm across; 2 atan(17.31 / 26) = 67.3°
    assert fov == pytest.approx(67.3, abs=0.05)
    Image.new("RGB", (400, 300)).save(tmp_path / "plain.jpg")
    assert photo_world.exif_fov((tmp_path / "plain.jpg").read_bytes(), 400, 300) is None
    assert photo_world.exif_fov(b"not a jpeg", 400, 300) is None
