"""The latents' scaling: `scaled` and `unscaled` invert each other for both kinds of VAE config."""

import pytest
from conftest import source_module

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")


def tiny_vae(**config):
    return diffusers.AutoencoderKL(
        block_out_channels=(8,), norm_num_groups=8, latent_channels=4, sample_size=16, **config
    )


@pytest.mark.parametrize(
    "config",
    [
        {"scaling_factor": 0.18215},  # SD 1.x and 2.x
        {"scaling_factor": 0.5, "latents_mean": [0.1, -0.2, 0.3, 0.0], "latents_std": [2.0, 0.5, 1.0, 4.0]},
    ],
)
def test_scaled_inverts_unscaled(config):
    decoding, vae = source_module("engine.decoding"), tiny_vae(**config)
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(decoding.scaled(vae, decoding.unscaled(vae, latents)), latents, atol=1e-6)
    expected = latents / config["scaling_factor"]
    if "latents_mean" in config:  # each channel: its std times the unscaled value, plus its mean
        mean = torch.tensor(config["latents_mean"]).view(1, -1, 1, 1)
        expected = expected * torch.tensor(config["latents_std"]).view(1, -1, 1, 1) + mean
    assert torch.allclose(decoding.unscaled(vae, latents), expected, atol=1e-6)
