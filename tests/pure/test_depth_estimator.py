"""The depth model's loader follows the pickle policy: weights from .safetensors only."""

import pytest
from conftest import source_module

pytest.importorskip("transformers")


def test_a_depth_model_with_only_pickle_weights_is_refused(tmp_path):
    import torch
    from transformers import AutoModelForDepthEstimation

    errors = source_module("errors")
    estimator = source_module("engine.depth_estimator")
    safe = source_module("setup.depth_models").build_depth_model(tmp_path / "safe")
    assert estimator.load(str(safe), "cpu")[0] is not None
    pickled = tmp_path / "pickled"  # the same model as an old-style pytorch_model.bin (transformers 5 writes
    pickled.mkdir()  # only .safetensors itself)
    state = AutoModelForDepthEstimation.from_pretrained(safe).state_dict()
    torch.save(state, pickled / "pytorch_model.bin")
    for name in ("config.json", "preprocessor_config.json"):
        (pickled / name).write_bytes((safe / name).read_bytes())
    assert list(pickled.glob("*.bin")) and not list(pickled.glob("*.safetensors"))
    with pytest.raises(errors.ModelLoadError, match=r"pickle file \(\.bin\)"):
        estimator.load(str(pickled), "cpu")
