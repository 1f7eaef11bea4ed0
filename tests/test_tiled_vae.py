"""The tiled VAE equals the plain one, tile size aside, and wraps exactly: proven on the tiny VAE."""

import functools
import importlib

import pytest
import torch

# Small tiles on a small image: many tiles per layer, at every level of the VAE.
TILE = 32


@pytest.fixture(scope="module")
def tiled(addon):
    return importlib.import_module(addon.__name__ + ".generation.engine.tiled_vae")


@pytest.fixture(params=[False, True], ids=["stored", "lean"])
def tiling(request, tiled):
    """Tiling, lean (maps recomputed where read) or not."""
    return functools.partial(tiled.Tiling, lean=request.param)


@pytest.fixture(scope="module")
def seamless(addon):
    return importlib.import_module(addon.__name__ + ".generation.engine.seamless")


@pytest.fixture(scope="module")
def vae(tiny_sd):
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(tiny_sd / "vae").eval()


def latents(height=16, width=24, seed=0):
    return torch.randn((1, 4, height, width), generator=torch.Generator().manual_seed(seed))


def relative(a, b, spread):
    return float((a - b).abs().max() / spread.std())


class _VaeOnly:
    """What seamless() patches: a pipeline's UNet and VAE, here only the VAE."""

    unet = None

    def __init__(self, vae):
        self.vae = vae


def test_tiled_decode_equals_plain_decode(tiled, tiling, vae):
    z = latents()
    with torch.no_grad():
        plain = vae.decode(z).sample
    result = tiled.decode(vae, z, tiling(tile=TILE))
    assert result.shape == plain.shape == (1, 3, 128, 192)
    assert relative(result, plain, plain) < 1e-3


def test_wrapped_tiled_decode_equals_seamless_plain_decode(tiled, tiling, seamless, vae):
    z = latents()
    with seamless.seamless(_VaeOnly(vae), wrap_x=True, wrap_y=True), torch.no_grad():
        plain = vae.decode(z).sample
    assert relative(tiled.decode(vae, z, tiling(TILE, wrap_x=True, wrap_y=True)), plain, plain) < 1e-3


@pytest.mark.parametrize(("wrap_y", "shift"), [(False, (0, 5)), (True, (3, 5))], ids=["world", "texture"])
def test_decode_is_roll_equivariant(tiled, tiling, vae, wrap_y, shift):
    z, tiling = latents(), tiling(TILE, wrap_x=True, wrap_y=wrap_y)
    first = tiled.decode(vae, z, tiling)
    rolled = tiled.decode(vae, torch.roll(z, shift, dims=(2, 3)), tiling)
    assert relative(torch.roll(first, (8 * shift[0], 8 * shift[1]), dims=(2, 3)), rolled, first) < 1e-3


def test_without_wrap_a_roll_changes_the_decode(tiled, tiling, vae):
    z, tiling = latents(), tiling(TILE)
    first = tiled.decode(vae, z, tiling)
    rolled = tiled.decode(vae, torch.roll(z, 5, dims=3), tiling)
    assert relative(torch.roll(first, 40, dims=3), rolled, first) > 1e-2


def test_world_decode_does_not_wrap_vertically(tiled, tiling, vae):
    z, tiling = latents(), tiling(TILE, wrap_x=True)
    first = tiled.decode(vae, z, tiling)
    rolled = tiled.decode(vae, torch.roll(z, 3, dims=2), tiling)
    assert relative(torch.roll(first, 24, dims=2), rolled, first) > 1e-2


def image(height=128, width=192, seed=1):
    return torch.rand((1, 3, height, width), generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_tiled_encode_equals_plain_encode(tiled, tiling, vae):
    x = image()
    with torch.no_grad():
        plain = vae.encode(x).latent_dist
    result = tiled.encode(vae, x, tiling(tile=TILE))
    assert result.mean.shape == plain.mean.shape == (1, 4, 16, 24)
    assert relative(result.mean, plain.mean, plain.mean) < 1e-3
    assert relative(result.logvar, plain.logvar, plain.logvar) < 1e-3


@pytest.mark.parametrize(("wrap_y", "shift"), [(False, (0, 5)), (True, (3, 5))], ids=["world", "texture"])
def test_encode_is_roll_equivariant(tiled, tiling, vae, wrap_y, shift):
    x, tiling = image(), tiling(TILE, wrap_x=True, wrap_y=wrap_y)
    first = tiled.encode(vae, x, tiling).mean
    rolled = tiled.encode(vae, torch.roll(x, (8 * shift[0], 8 * shift[1]), dims=(2, 3)), tiling).mean
    assert relative(torch.roll(first, shift, dims=(2, 3)), rolled, first) < 1e-3
