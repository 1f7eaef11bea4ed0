"""The detail pass on tiny random-weight pipelines built in memory: its windows, its wrap, its strength."""

from types import SimpleNamespace

import numpy as np
import pytest
from conftest import source_module

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

EQUIVARIANT = 1e-5  # the same windows summed in another order


@pytest.fixture(scope="module")
def detail():
    torch.set_num_threads(1)
    return source_module("engine.detail")


@pytest.fixture(scope="module", params=["sd", "sdxl"])
def pipe(request):
    return source_module("setup.tiny_models").build_tiny_pipeline(request.param)


def request_for(steps=10, seed=5):
    return SimpleNamespace(prompt="dunes", negative_prompt="", guidance=7.0, steps=steps, seed=seed)


def test_windows_cover_each_axis_and_overlap_across_the_wrap(detail):
    for size, window in ((64, 8), (36, 8), (12, 8), (8, 8), (5, 8), (130, 64)):
        for wrap in (False, True):
            starts = detail.window_starts(size, window, wrap)
            side = min(window, size)
            covered = np.zeros(size, int)
            for start in starts:
                covered[np.arange(start, start + side) % size] += 1
            assert covered.min() >= 1, (size, window, wrap)
            if wrap:
                # The seam (last column next to the first) lies inside a window, as every tile boundary does.
                assert any(start + side > size for start in starts), (size, window)
                assert len(starts) >= 2
            else:
                assert starts[0] == 0 and starts[-1] + side == size
            gaps = np.diff(starts + ([starts[0] + size] if wrap else []))
            if len(starts) > 1:
                assert gaps.max() <= side - side // detail.OVERLAP


def test_steps_follow_the_strength(detail):
    assert [detail.detail_steps(8, s) for s in (0.01, 0.3, 0.6, 1.0)] == [1, 3, 5, 8]
    assert detail.detail_steps(2, 0.3) == 1


def _noised(pipe, detail, shape, seed=0):
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    scheduler.set_timesteps(4)
    scheduler.set_begin_index(2)
    latents = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    condition = detail.conditioning(pipe, "dunes", "", 7.0, (64, 64))
    return scheduler, latents, scheduler.timesteps[2:], condition


def test_rolled_by_the_window_stride_the_pass_is_rolled(detail, pipe):
    # 36 latent columns in windows of 8 (the tiny UNet's native size): six windows, six columns apart.
    assert detail.window_starts(36, 8, True) == [0, 6, 12, 18, 24, 30]
    with torch.no_grad():
        scheduler, latents, timesteps, condition = _noised(pipe, detail, (1, 4, 12, 36))
        plain = detail.denoise(pipe, scheduler, latents, timesteps, condition, 8, True, False)
        for shift in (6, 18):
            scheduler, _, timesteps, _ = _noised(pipe, detail, (1, 4, 12, 36))
            rolled = detail.denoise(
                pipe, scheduler, latents.roll(shift, 3), timesteps, condition, 8, True, False
            )
            assert (rolled - plain.roll(shift, 3)).abs().max() < EQUIVARIANT
    assert not torch.allclose(plain, latents)  # the pass did move the latents


def test_low_strength_stays_near_the_image_and_the_pipeline_is_untouched(detail, pipe):
    tiled_vae, decoding = source_module("engine.tiled_vae"), source_module("engine.decoding")
    image = np.random.default_rng(0).uniform(0, 1, (64, 128, 3)).astype(np.float32)
    tiling = tiled_vae.Tiling(512, wrap_x=True)
    scheduler = pipe.scheduler
    state = (scheduler.num_inference_steps, scheduler.step_index, scheduler.begin_index)
    # A random-weight VAE does not give back its input, so "the image" is its round trip: what the pass
    # gives at strength 0. Measured (mean |difference| on [0, 1], 10 steps): strength 0.1 -> 0.076 (sd),
    # 0.056 (sdxl); 0.6 -> 0.154, 0.132; the round trip's own mean deviation from its mean: 0.112, 0.080.
    with torch.no_grad():
        round_trip = decoding.decode_tiled(pipe, decoding.encode_image(pipe, image, tiling), tiling)
    spread = float(np.abs(round_trip - round_trip.mean()).mean())
    differences = []
    for strength in (0.1, 0.6):
        result = detail.add_detail(image, pipe, request_for(), strength, tiling)
        assert result.shape == image.shape and result.dtype == np.float32 and np.isfinite(result).all()
        differences.append(float(np.abs(result - round_trip).mean()))
    assert 0.01 < differences[0] < spread and differences[0] < 0.6 * differences[1]
    again = detail.add_detail(image, pipe, request_for(), 0.1, tiling)
    assert float(np.abs(again - round_trip).mean()) == differences[0]  # same seed, same image
    assert pipe.scheduler is scheduler
    assert (scheduler.num_inference_steps, scheduler.step_index, scheduler.begin_index) == state
