"""TripoSR's architecture written here: the published model's parameter count, and strict checkpoint loading.

The count, 419,275,628, is the published stabilityai/TripoSR model.ckpt's (pooler included): with it and the
names below, the published checkpoint's names and shapes can match. A tiny random-weight model, saved as a
download lands (config.yaml and a pickled model.ckpt), goes through the same loader.
"""

import numpy as np
import pytest
from conftest import source_module

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")


@pytest.fixture(scope="module")
def checkpoint():
    return source_module("engine.triposr_checkpoint")


@pytest.fixture(scope="module")
def config():
    return source_module("engine.triposr_config")


@pytest.fixture
def tiny_folder(tmp_path):
    return source_module("setup.tiny_props").save_tiny_triposr(tmp_path / "TripoSR", "random", seed=1)


def test_the_full_size_architecture_has_the_published_count_and_names(config):
    model = source_module("engine.triposr_model").build(config.FULL, "meta")
    assert sum(p.numel() for p in model.parameters()) == config.FULL_PARAMETERS == 419_275_628
    shapes = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    assert shapes["image_tokenizer.model.pooler.dense.weight"] == (768, 768)
    assert shapes["image_tokenizer.model.embeddings.position_embeddings"] == (1, 197, 768)
    assert shapes["image_tokenizer.model.encoder.layer.11.attention.attention.query.weight"] == (768, 768)
    assert shapes["tokenizer.embeddings"] == (3, 1024, 32, 32)
    assert shapes["backbone.transformer_blocks.15.attn2.to_k.weight"] == (1024, 768)
    assert shapes["backbone.transformer_blocks.0.ff.net.0.proj.weight"] == (8192, 1024)
    assert shapes["post_processor.upsample.weight"] == (1024, 40, 2, 2)
    assert shapes["decoder.layers.0.weight"] == (64, 120) and shapes["decoder.layers.18.weight"] == (4, 64)
    assert len(shapes) == 549


def test_a_downloaded_ckpt_loads_strictly_and_is_kept_as_safetensors(checkpoint, config, tiny_folder):
    first = checkpoint.resolve_prop_model(str(tiny_folder))
    assert first.name == "model.ckpt"
    model = checkpoint.load_triposr(first)
    assert model.config == config.TINY
    assert checkpoint.resolve_prop_model(str(tiny_folder)).name == "model.safetensors"
    again = checkpoint.load_triposr(tiny_folder / "model.safetensors")
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        planes = model(image)
        assert planes.shape == (1, 3, 4, 8, 8)
        assert torch.equal(planes, again(image))
        density, colour = model.query(planes[0], torch.rand(50, 3) - 0.5)
    assert density.shape == (50,) and colour.shape == (50, 3)
    assert (density > 0).all() and ((colour > 0) & (colour < 1)).all()
    expected = torch.load(tiny_folder / "model.ckpt", weights_only=True)
    assert all(torch.equal(value, model.state_dict()[name]) for name, value in expected.items())


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda s: s.pop("image_tokenizer.model.pooler.dense.bias"), "1 parameters missing"),
        (lambda s: s.update(extra=torch.zeros(1)), "1 unexpected (extra)"),
        (lambda s: s.update({"decoder.layers.0.weight": torch.zeros(16, 13)}), "1 of another shape"),
    ],
)
def test_a_mismatched_state_dict_is_refused_in_words(checkpoint, tiny_folder, change, words):
    errors = source_module("errors")
    state = torch.load(tiny_folder / "model.ckpt", weights_only=True)
    change(state)
    torch.save(state, tiny_folder / "model.ckpt")
    with pytest.raises(errors.ModelLoadError, match="not a TripoSR checkpoint") as raised:
        checkpoint.load_triposr(tiny_folder / "model.ckpt")
    assert words in str(raised.value) and "download stabilityai/TripoSR again" in str(raised.value)


class NotATensor:
    pass


def test_a_ckpt_holding_more_than_tensors_is_never_unpickled(checkpoint, tmp_path):
    errors = source_module("errors")
    path = tmp_path / "model.ckpt"
    torch.save({"weights": torch.zeros(1), "object": NotATensor()}, path)
    with pytest.raises(errors.ModelLoadError, match="holds more than weights"):
        checkpoint.load_triposr(path)
    assert not (tmp_path / "model.safetensors").exists()


def test_a_missing_model_is_refused_with_the_id_to_download(checkpoint, tmp_path):
    errors = source_module("errors")
    with pytest.raises(errors.ModelNotFound, match="download stabilityai/TripoSR"):
        checkpoint.resolve_prop_model("someone/NotDownloaded")
    with pytest.raises(errors.ModelNotFound, match=r"holds no model\.ckpt"):
        checkpoint.resolve_prop_model(str(tmp_path))


def test_the_position_embeddings_follow_the_image_grid(config):
    """Trained on a 2x2 grid, the tiny encoder reads a 4x4 one: interpolated; exact at the trained size."""
    model = source_module("engine.triposr_model").build(config.TINY)
    embeddings = model.image_tokenizer.model.embeddings
    assert embeddings.positions(2, 2) is embeddings.position_embeddings
    grown = embeddings.positions(4, 4)
    assert grown.shape == (1, 17, config.TINY.encoder_width)
    assert torch.equal(grown[:, 0], embeddings.position_embeddings[:, 0])
    assert np.isfinite(grown.detach().numpy()).all()


def test_download_model_fetches_tripo_s_config_and_checkpoint_only():
    catalog = source_module("setup.model_catalog")
    download = catalog.Download("stabilityai/TripoSR", allow_network=True)
    assert download._files(hub=None) == ["config.yaml", "model.ckpt"]
    assert source_module("setup.prop_models").named("stabilityai/TripoSR").licence == "MIT"
