"""Seamless padding proven by equivariance on both tiny pipelines, and always undone."""

import importlib

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def seamless_module(addon):
    return importlib.import_module(addon.__name__ + ".generation.engine.seamless")


@pytest.fixture(scope="module", params=["sd", "sdxl"])
def pipe(request, addon):
    models = importlib.import_module(addon.__name__ + ".generation.engine.models")
    folder = request.getfixturevalue(f"tiny_{request.param}")
    return models.load_pipeline(models.resolve_source(str(folder)), "fp32")


def generate(pipe, latents, width, height):
    return pipe(
        "a seamless world",
        num_inference_steps=2,
        width=width,
        height=height,
        latents=latents,
        output_type="np",
    ).images[0]


def start_latents(width, height, seed=0):
    return torch.randn((1, 4, height // 8, width // 8), generator=torch.Generator().manual_seed(seed))


def roll_error(pipe, seamless_module, wrap_x, wrap_y, width=64, height=32, dx=2, dy=0):
    latents = start_latents(width, height)
    rolled = torch.roll(latents, shifts=(dy, dx), dims=(2, 3))
    with seamless_module.seamless(pipe, wrap_x=wrap_x, wrap_y=wrap_y):
        first, second = generate(pipe, latents, width, height), generate(pipe, rolled, width, height)
    return float(np.abs(np.roll(first, (8 * dy, 8 * dx), axis=(0, 1)) - second).max())


def test_x_wrap_is_roll_equivariant(pipe, seamless_module):
    assert roll_error(pipe, seamless_module, wrap_x=True, wrap_y=False) < 1e-5
    assert not seamless_module.is_patched(pipe)


def test_without_wrap_a_roll_changes_the_image(pipe, seamless_module):
    assert roll_error(pipe, seamless_module, wrap_x=False, wrap_y=False) > 1e-2


def test_world_wrap_does_not_wrap_vertically(pipe, seamless_module):
    assert (
        roll_error(pipe, seamless_module, wrap_x=True, wrap_y=False, width=64, height=64, dx=0, dy=2) > 1e-2
    )


def test_texture_wraps_both_axes(pipe, seamless_module):
    assert roll_error(pipe, seamless_module, wrap_x=True, wrap_y=True, width=64, height=64, dx=2, dy=4) < 1e-5


def test_patch_is_applied_and_undone_exactly(pipe, seamless_module):
    modules = [*pipe.unet.modules(), *pipe.vae.modules()]
    convs = [m for m in modules if isinstance(m, torch.nn.Conv2d)]
    # The VAE encoder's downsamplers pad one zero row and column in their own forward.
    downsamplers = [m for m in pipe.vae.modules() if type(m).__name__ == "Downsample2D" and m.padding == 0]
    before = [dict(module.__dict__) for module in modules]
    with seamless_module.seamless(pipe, wrap_x=True, wrap_y=False) as count:
        assert seamless_module.is_patched(pipe)
        assert count == sum(1 for conv in convs if any(conv.padding)) + len(downsamplers)
        assert count > 20 and downsamplers
    assert not seamless_module.is_patched(pipe)
    assert [dict(module.__dict__) for module in modules] == before


def test_undone_after_an_exception(pipe, seamless_module):
    latents = start_latents(64, 32)
    before = generate(pipe, latents, 64, 32)
    with pytest.raises(RuntimeError, match="boom"), seamless_module.seamless(pipe, True, True):
        assert seamless_module.is_patched(pipe)
        wrapped = generate(pipe, latents, 64, 32)
        raise RuntimeError("boom")
    assert not seamless_module.is_patched(pipe)
    # The pipeline behaves as before the patch, not as inside it: the same latents give the first image.
    assert np.abs(wrapped - before).max() > 1e-3
    np.testing.assert_array_equal(generate(pipe, latents, 64, 32), before)


def test_no_wrap_touches_nothing(pipe, seamless_module):
    with seamless_module.seamless(pipe, wrap_x=False, wrap_y=False) as count:
        assert count == 0 and not seamless_module.is_patched(pipe)


def test_nested_patch_is_refused(pipe, seamless_module):
    with seamless_module.seamless(pipe, True, False):
        with (
            pytest.raises(RuntimeError, match="already patched"),
            seamless_module.seamless(pipe, True, False),
        ):
            pass
        assert seamless_module.is_patched(pipe)
    assert not seamless_module.is_patched(pipe)
