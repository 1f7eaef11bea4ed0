"""The tiny offline pipelines: built once, deterministic, complete on disk, loadable by AutoPipeline."""

import importlib
import json
import threading

import pytest
import torch


@pytest.fixture(scope="module")
def tiny_models(addon):
    return importlib.import_module(addon.__name__ + ".generation.setup.tiny_models")


@pytest.mark.parametrize("kind", ["sd", "sdxl"])
def test_folder_is_complete_and_small(kind, request, tiny_models):
    folder = request.getfixturevalue(f"tiny_{kind}")
    assert folder.name == f"{kind}-v{tiny_models.BUILDER_VERSION}"
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == (
        "StableDiffusionPipeline" if kind == "sd" else "StableDiffusionXLPipeline"
    )
    assert (folder / "tokenizer" / "vocab.json").is_file() and (folder / "tokenizer" / "merges.txt").is_file()
    assert list(folder.rglob("*.safetensors")) and not list(folder.rglob("*.bin"))
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    assert size < 1_500_000


def test_second_call_reuses_the_folder(tiny_sd, tiny_models):
    before = (tiny_sd / "model_index.json").stat().st_mtime_ns
    assert tiny_models.ensure_tiny_pipeline("sd", tiny_sd.parent) == tiny_sd
    assert (tiny_sd / "model_index.json").stat().st_mtime_ns == before


def test_weights_are_deterministic(tiny_models):
    first, second = tiny_models.build_tiny_pipeline("sd"), tiny_models.build_tiny_pipeline("sd")
    for (name, a), (_, b) in zip(
        first.unet.state_dict().items(), second.unet.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert torch.equal(first.vae.decoder.conv_out.weight, second.vae.decoder.conv_out.weight)
    assert first.vae_scale_factor == 8


def test_tokenizer_uses_the_merges(tiny_models):
    pipe = tiny_models.build_tiny_pipeline("sd")
    ids = pipe.tokenizer("the sky").input_ids
    vocab = pipe.tokenizer.get_vocab()
    assert ids == [vocab["<|startoftext|>"], vocab["the</w>"], vocab["sky</w>"], vocab["<|endoftext|>"]]
    assert pipe.text_encoder.config.vocab_size == len(vocab)


def test_unknown_kind(tiny_models):
    with pytest.raises(ValueError, match="sdxl"):
        tiny_models.build_tiny_pipeline("flux")


def test_concurrent_builds_give_one_complete_folder(tiny_models, tmp_path):
    results, failures = [], []

    def build():
        try:
            results.append(tiny_models.ensure_tiny_pipeline("sd", tmp_path))
        except Exception as error:
            failures.append(error)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert results[0] == results[1] == tmp_path / f"sd-v{tiny_models.BUILDER_VERSION}"
    assert [path.name for path in tmp_path.iterdir()] == [results[0].name]
    assert (results[0] / "unet" / "diffusion_pytorch_model.safetensors").is_file()
