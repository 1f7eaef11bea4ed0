"""Every family's VAE wraps exactly under seamless(): decoding latents rolled by whole latent pixels gives
the image rolled by 8x as many (x for worlds, x and y for textures), and encoding likewise; stock VAEs
do not (the figure each test also checks, so the patch is what makes the difference)."""

from types import SimpleNamespace

import pytest
from conftest import source_module

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

EXACT = 1e-4  # of the output's spread: float arithmetic in another order
SHIFTS = {"world": (0, 3), "texture": (2, 3)}  # (rows, columns) of latent pixels


@pytest.fixture(scope="module", params=source_module("setup.tiny_transformers").FAMILIES)
def vae(request):
    return source_module("setup.tiny_transformers").build_tiny_vae(request.param)


def _frames(vae, x):
    """Qwen-Image's VAE works on video: a still image is one frame."""
    return x[:, :, None] if type(vae).__name__.endswith("QwenImage") else x


def _still(vae, x):
    return x[:, :, 0] if type(vae).__name__.endswith("QwenImage") else x


def roll_error(vae, kind, patched, encode=False):
    seamless = source_module("engine.seamless")
    rows, columns = SHIFTS[kind]
    generator = torch.Generator().manual_seed(0)
    channels = vae.config.get("latent_channels") or vae.config.z_dim
    if encode:
        x, scale = torch.rand((1, 3, 64, 96), generator=generator) * 2 - 1, 8
        run = lambda x: _still(vae, vae.encode(_frames(vae, x)).latent_dist.mean)  # noqa: E731
    else:
        x, scale = torch.randn((1, channels, 8, 12), generator=generator), 1
        run = lambda x: _still(vae, vae.decode(_frames(vae, x)).sample)  # noqa: E731
    shift_in = (rows * scale, columns * scale)
    shift_out = (rows * 8 // (8 if encode else 1), columns * 8 // (8 if encode else 1))
    wrap = seamless.seamless(SimpleNamespace(vae=vae), wrap_x=True, wrap_y=kind == "texture")
    with wrap if patched else seamless.seamless(SimpleNamespace(vae=vae), False, False), torch.no_grad():
        first, second = run(x), run(torch.roll(x, shift_in, dims=(2, 3)))
    return float((torch.roll(first, shift_out, dims=(2, 3)) - second).abs().max() / first.std())


@pytest.mark.parametrize("kind", ["world", "texture"])
def test_decode_wraps_exactly(vae, kind):
    assert roll_error(vae, kind, patched=True) < EXACT
    assert roll_error(vae, kind, patched=False) > 1e-2


@pytest.mark.parametrize("kind", ["world", "texture"])
def test_encode_wraps_exactly(vae, kind):
    assert roll_error(vae, kind, patched=True, encode=True) < EXACT
    assert roll_error(vae, kind, patched=False, encode=True) > 1e-2


def test_a_world_does_not_wrap_vertically_and_everything_is_undone(vae):
    seamless = source_module("engine.seamless")
    pipe = SimpleNamespace(vae=vae)
    with seamless.seamless(pipe, wrap_x=True, wrap_y=False) as count:
        assert count > 0 and seamless.is_patched(pipe)
    assert not seamless.is_patched(pipe)
    assert roll_error(vae, "texture", patched=False) > 1e-2


@pytest.mark.parametrize("kind", ["world", "texture"])
def test_the_tiled_decode_equals_the_plain_one_and_wraps(vae, kind):
    """Every family's VAE decodes in the wrap-exact tiles (Qwen-Image's causal 3D one by its own walk):
    equal to the seamless plain decode within EXACT, and roll-equivariant within 1e-3 of the spread."""
    seamless, decoding = source_module("engine.seamless"), source_module("engine.decoding")
    tiled_vae = source_module("engine.tiled_vae")
    rows, columns = SHIFTS[kind]
    channels = vae.config.get("latent_channels") or vae.config.z_dim
    x = torch.randn((1, channels, 8, 12), generator=torch.Generator().manual_seed(0))
    for lean in (False, True):
        tiling = tiled_vae.Tiling(24, wrap_x=True, wrap_y=kind == "texture", lean=lean)
        with torch.no_grad():
            tiled = decoding.tiled_decoder(vae)(vae, x, tiling).clamp(-1, 1)  # as the image processor will
            rolled = decoding.tiled_decoder(vae)(
                vae, torch.roll(x, (rows, columns), dims=(2, 3)), tiling
            ).clamp(-1, 1)
            with seamless.seamless(SimpleNamespace(vae=vae), True, kind == "texture"):
                plain = _still(vae, vae.decode(_frames(vae, x)).sample).clamp(-1, 1)
        spread = float(plain.std())
        assert float((tiled - plain).abs().max()) / spread < EXACT
        moved = torch.roll(tiled, (rows * 8, columns * 8), dims=(2, 3))
        assert float((moved - rolled).abs().max()) / spread < 1e-3
