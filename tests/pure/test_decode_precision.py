"""Half-precision decodes: an fp16 VAE that must upcast (SDXL's) decodes in fp32 and is put back in fp16,
through the plain path and the wrap-exact tiles alike; one that need not decodes in fp16."""

import numpy as np
import pytest
from conftest import source_module

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

TILE = 32


@pytest.fixture(scope="module", params=[True, False], ids=["force_upcast", "fp16-safe"])
def pipes(request):
    """(fp32 pipeline, fp16 pipeline) with the same fp16-rounded VAE weights, forced to upcast or not."""
    tiny_models = source_module("setup.tiny_models")
    half = tiny_models.build_tiny_pipeline("sdxl").to(dtype=torch.float16)
    full = tiny_models.build_tiny_pipeline("sdxl")
    full.vae.load_state_dict({key: value.float() for key, value in half.vae.state_dict().items()})
    for pipe in (full, half):
        pipe.vae.register_to_config(force_upcast=request.param)
    return full, half


def test_half_precision_decodes_plain_and_tiled(pipes):
    decoding, tiled_vae = source_module("engine.decoding"), source_module("engine.tiled_vae")
    full, half = pipes
    whole = source_module("engine.memory_plan").MemoryPlan("full", 0, None)  # the VAE's own decode
    latents = torch.randn((1, 4, 16, 24), generator=torch.Generator().manual_seed(0)).half()
    with torch.no_grad():
        vae = full.vae
        truth = decoding._as_array(full, vae.decode(decoding.unscaled(vae, latents.float())).sample)
    tiles = tiled_vae.Tiling(TILE, wrap_x=False, wrap_y=False)
    for image in (
        decoding.decode_latents(half, latents, whole, False, False),
        decoding.decode_tiled(half, latents, tiles),
    ):
        assert image.dtype == np.float32 and image.shape == (128, 192, 3)
        error = np.abs(image - truth).max()
        if half.vae.config.force_upcast:
            assert error < 1e-4  # fp32 arithmetic, as the fp32 decode of the same weights
        else:
            assert 1e-4 < error < 2e-2  # fp16 arithmetic: close, not equal
        assert half.vae.dtype == torch.float16  # put back after an upcast
