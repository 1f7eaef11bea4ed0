"""The full-size random architectures: published parameter counts, and the real VAE tiles exactly."""

import importlib

import pytest
import torch


@pytest.fixture(scope="module")
def full_size(addon):
    return importlib.import_module(addon.__name__ + ".generation.setup.full_size_models")


@pytest.fixture(scope="module")
def memory_plan(addon):
    return importlib.import_module(addon.__name__ + ".generation.engine.memory_plan")


def parameters(module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


@pytest.mark.parametrize("kind", ["sd", "sdxl"])
def test_the_architectures_have_the_published_sizes_the_planner_uses(full_size, memory_plan, kind):
    pipe = full_size.build_full_size_pipeline(kind, device="meta")  # shapes only: no memory, no time
    family = memory_plan.FAMILIES[kind]
    encoders = parameters(pipe.text_encoder) + (parameters(pipe.text_encoder_2) if kind == "sdxl" else 0)
    assert parameters(pipe.unet) == pytest.approx(family.unet, rel=1e-3)
    assert encoders == pytest.approx(family.text_encoders, rel=1e-3)
    assert parameters(pipe.vae) == pytest.approx(family.vae, rel=1e-3)
    assert pipe.vae.config.force_upcast is (kind == "sdxl")


@pytest.mark.slow
@pytest.mark.parametrize("lean", [False, True], ids=["stored", "lean"])
def test_the_real_size_vae_tiles_exactly_and_wraps(addon, full_size, lean):
    tiled = importlib.import_module(addon.__name__ + ".generation.engine.tiled_vae")
    vae = full_size.build_full_size_vae("sdxl")
    z = torch.randn((1, 4, 8, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = vae.decode(z).sample
    assert torch.isfinite(plain).all() and plain.std() > 0
    result = tiled.decode(vae, z, tiled.Tiling(32, lean=lean))
    assert float((result - plain).abs().max() / plain.std()) < 1e-3
    tiling = tiled.Tiling(32, wrap_x=True, lean=lean)
    first, rolled = tiled.decode(vae, z, tiling), tiled.decode(vae, torch.roll(z, 3, dims=3), tiling)
    assert float((torch.roll(first, 24, dims=3) - rolled).abs().max() / first.std()) < 1e-3
