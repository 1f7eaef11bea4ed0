"""The tiled, wrap-aware upscaler on random-weight ESRGANs read by spandrel (the real loading path)."""

import numpy as np
import pytest
from conftest import source_module

pytest.importorskip("spandrel")
torch = pytest.importorskip("torch")

TOLERANCE = 1e-4  # float32 convolutions over different window sizes sum in different orders


@pytest.fixture(scope="module")
def upscaler():
    return source_module("engine.upscaler")


@pytest.fixture(scope="module")
def tiny(upscaler, tmp_path_factory):
    """A 1-block, 8-feature x4 RRDBNet: its receptive field (about 19 input pixels) fits in the pad, so
    tiles with that much context give what one whole-image pass gives."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("esrgan")
    path = source_module("setup.upscalers").save_esrgan(folder / "tiny.safetensors")
    return upscaler.load_upscaler(path, "cpu")


def smooth_panorama(height=32, width=64, seed=0):
    """A periodic, smooth sky-like panorama: a few low harmonics in x, a gradient in y."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 2 * np.pi, width, endpoint=False)
    y = np.linspace(0, 1, height)[:, None, None]
    wave = sum(rng.uniform(0.02, 0.08) * np.cos(k * x + rng.uniform(0, 6))[None, :, None] for k in (1, 2, 3))
    return np.clip(0.35 + 0.4 * y + wave + np.zeros((1, 1, 3)), 0, 1).astype(np.float32)


def noise(height, width, seed=1):
    return np.random.default_rng(seed).uniform(0, 1, (height, width, 3)).astype(np.float32)


def test_output_size_is_exact(upscaler, tiny):
    image = noise(20, 40)
    for factor in (1, 2, 4):
        result = upscaler.upscale(image, tiny, factor, True, False, tile=16)
        assert result.shape == (20 * factor, 40 * factor, 3)
    assert upscaler.upscale(noise(12, 20), tiny, 4, True, True, tile=7).shape == (48, 80, 3)


def test_tiled_equals_one_pass_over_the_whole_image(upscaler, tiny):
    image = noise(40, 80)
    for wrap_y in (False, True):
        whole = upscaler.upscale_pass(image, tiny, True, wrap_y, tile=1000, pad=24)
        tiled = upscaler.upscale_pass(image, tiny, True, wrap_y, tile=16, pad=24)
        # Everywhere, overlaps included: with context beyond the receptive field the blend mixes equals.
        assert np.abs(tiled - whole).max() < TOLERANCE


def test_the_default_pad_is_close_away_from_the_overlaps(upscaler, tiny):
    image = noise(32, 64)
    whole = upscaler.upscale_pass(image, tiny, True, False, tile=1000, pad=24)
    tiled = upscaler.upscale_pass(image, tiny, True, False, tile=16)  # PAD = 16 < the receptive field
    inside = np.ones(64 * 4, bool)
    for boundary in range(0, 64 * 4, 64):  # tile boundaries and their blend bands (8 px = 32 out)
        inside[max(0, boundary - 40) : boundary + 40] = False
    assert np.abs(tiled[:, inside] - whole[:, inside]).max() < 1e-3


def test_the_wrap_is_exact_for_shifts_of_the_tile_stride(upscaler, tiny):
    image = noise(32, 64)
    result = upscaler.upscale(image, tiny, 4, True, False, tile=16)
    for shift in (16, 32, 48):
        rolled = upscaler.upscale(np.roll(image, shift, axis=1), tiny, 4, True, False, tile=16)
        assert np.array_equal(rolled, np.roll(result, 4 * shift, axis=1))
    texture = noise(32, 32)
    both = upscaler.upscale(texture, tiny, 4, True, True, tile=16)
    rolled = upscaler.upscale(np.roll(texture, (16, 16), axis=(0, 1)), tiny, 4, True, True, tile=16)
    assert np.array_equal(rolled, np.roll(both, (64, 64), axis=(0, 1)))


def test_the_wrap_holds_for_any_shift(upscaler, tiny):
    image = noise(32, 64)
    result = upscaler.upscale_pass(image, tiny, True, False, tile=16, pad=24)
    for shift in (1, 5, 23):
        rolled = upscaler.upscale_pass(np.roll(image, shift, axis=1), tiny, True, False, tile=16, pad=24)
        assert np.abs(rolled - np.roll(result, 4 * shift, axis=1)).max() < TOLERANCE


def test_a_smooth_panorama_stays_seamless(upscaler, tiny):
    quality = source_module("imaging.quality")
    for factor in (2, 4):
        result = upscaler.upscale(smooth_panorama(), tiny, factor, True, False, tile=16)
        assert quality.seam_ratio(result).ratio <= 1.2
    # Without the wrap the same model leaves a seam (the test can fail).
    plain = upscaler.upscale(smooth_panorama(), tiny, 4, False, False, tile=16)
    assert quality.seam_ratio(plain).ratio > 1.2


def test_cancel_between_tiles(upscaler, tiny):
    errors = source_module("errors")
    seen = []
    with pytest.raises(errors.Cancelled):
        upscaler.upscale(noise(32, 64), tiny, 4, True, False, tile=16,
                         on_tile=lambda done, total, partial: seen.append((done, total)),
                         cancelled=lambda: len(seen) >= 3)  # fmt: skip
    assert seen == [(1, 8), (2, 8), (3, 8)]


def test_a_pth_is_converted_once_and_a_pickle_is_refused(upscaler, tmp_path):
    errors = source_module("errors")
    state = source_module("setup.upscalers").esrgan_state_dict()
    weights = tmp_path / "weights.pth"
    torch.save({"params_ema": state}, weights)  # as Real-ESRGAN's releases nest them
    assert upscaler.resolve_upscaler(str(weights)) == weights  # nothing read yet: main-thread safe
    converted = upscaler.prepare_upscaler(weights)
    assert converted == weights.with_suffix(".safetensors") and converted.is_file()
    assert upscaler.resolve_upscaler(str(weights)) == converted
    assert upscaler.load_upscaler(converted).scale == 4

    class Payload:  # anything but tensors and plain containers needs a full unpickle
        def __reduce__(self):
            return (print, ("this ran",))

    unsafe = tmp_path / "unsafe.pth"
    torch.save({"params": state, "extra": Payload()}, unsafe)
    with pytest.raises(errors.ModelLoadError, match="pickle"):
        upscaler.prepare_upscaler(upscaler.resolve_upscaler(str(unsafe)))
    assert not unsafe.with_suffix(".safetensors").exists()
    assert upscaler.prepare_upscaler(unsafe, allow_pickle=True).is_file()


def test_unknown_sources_say_what_to_do(upscaler, tmp_path):
    errors = source_module("errors")
    with pytest.raises(errors.ModelNotFound, match=r"RealESRGAN_x4plus\.pth"):
        upscaler.resolve_upscaler("real-esrgan-x4plus", tmp_path)
    with pytest.raises(errors.ModelNotFound, match=r"no \.safetensors"):
        upscaler.resolve_upscaler(str(tmp_path))
