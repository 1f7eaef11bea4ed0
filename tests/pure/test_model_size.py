"""The size the panel shows before Generate: from the model's own files, never from its name."""

import json

from conftest import source_module


def test_a_model_not_on_this_computer_has_no_size_whatever_its_name(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model_size = source_module("engine.model_size")
    model_size.estimate_for.cache_clear()
    assert model_size.estimate_for("someone/mega-sdxl-xl-turbo") is None
    assert model_size.estimate_for(str(tmp_path / "my-xl-model.safetensors")) is None


def test_a_download_is_seen_after_the_cache_is_cleared(tmp_path):
    model_size = source_module("engine.model_size")
    folder = tmp_path / "later"
    assert model_size.estimate_for(str(folder)) is None
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    assert model_size.estimate_for(str(folder)) is None  # remembered, as the panel's redraws need
    model_size.estimate_for.cache_clear()  # what a finished Download Model does
    assert model_size.estimate_for(str(folder)).family == "sdxl"
