"""A remix wraps as a generation does: the roll test of the generation path (tests/test_seamless.py),
applied to img2img on a tiny random-weight SD pipeline. The pipeline draws its noise itself, so the test
hands it the same noise rolled with the image (the one thing a roll of the input cannot move)."""

from types import SimpleNamespace

import numpy as np
import pytest
from conftest import source_module

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")


def remixed(pipe, known, noise, monkeypatch, wrap_x, wrap_y):
    from diffusers.pipelines.stable_diffusion import pipeline_stable_diffusion_img2img as img2img

    edits, seamless = source_module("engine.edits"), source_module("engine.seamless")
    monkeypatch.setattr(img2img, "randn_tensor", lambda shape, **kwargs: noise.clone())
    request = SimpleNamespace(prompt="dunes", negative_prompt="", guidance=7.0, steps=4)
    generator = torch.Generator().manual_seed(0)
    with seamless.seamless(pipe, wrap_x, wrap_y), torch.no_grad():
        return edits.remix_latents(pipe, known, request, 0.5, generator)


# Shifts of whole UNet cells: its stride-2 convolutions are equivariant to even shifts only.
@pytest.mark.parametrize(("kind", "shift"), [("world", (0, 4)), ("texture", (2, 6))])
def test_a_remix_of_a_rolled_image_is_the_rolled_remix(kind, shift, monkeypatch):
    pipe = source_module("setup.tiny_models").build_tiny_pipeline("sd")
    generator = torch.Generator().manual_seed(1)
    known, noise = (torch.randn((1, 4, 8, 16), generator=generator) for _ in range(2))
    roll = lambda x: torch.roll(x, shift, dims=(2, 3))  # noqa: E731
    wrap = (True, kind == "texture")
    first = remixed(pipe, known, noise, monkeypatch, *wrap)
    second = remixed(pipe, roll(known), roll(noise), monkeypatch, *wrap)
    error = float((roll(first) - second).abs().max() / first.std())
    assert error < 1e-5, error
    unwrapped = remixed(pipe, roll(known), roll(noise), monkeypatch, False, False)
    assert (
        float((roll(remixed(pipe, known, noise, monkeypatch, False, False)) - unwrapped).abs().max()) > 1e-3
    )
    assert np.isfinite(second.numpy()).all()
