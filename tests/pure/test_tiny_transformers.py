"""The tiny transformer-family pipelines load offline from their folders, as a user's download does, and
draw the same image as the pipeline they were saved from."""

import numpy as np
import pytest
from conftest import source_module

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")


@pytest.mark.parametrize("family", source_module("setup.tiny_transformers").FAMILIES)
def test_a_saved_tiny_pipeline_loads_offline_and_draws_the_same(family, tmp_path, monkeypatch):
    from diffusers import DiffusionPipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tiny = source_module("setup.tiny_transformers")
    folder = tiny.ensure_tiny_pipeline(family, tmp_path)
    loaded = DiffusionPipeline.from_pretrained(folder)
    built = tiny.build_tiny_pipeline(family)
    assert type(loaded) is type(built) and loaded.tokenizer.chat_template

    def draw(pipe):
        pipe.set_progress_bar_config(disable=True)
        generator = torch.Generator().manual_seed(7)
        return pipe(prompt="a red sky", num_inference_steps=2, width=128, height=64, generator=generator,
                    output_type="np").images[0]  # fmt: skip

    image = draw(loaded)
    assert image.shape == (64, 128, 3) and np.isfinite(image).all()
    np.testing.assert_array_equal(image, draw(built))
