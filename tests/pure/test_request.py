"""GenerationRequest: validation messages, cleaning, seeds and metadata."""

import dataclasses
import logging

import pytest


@pytest.fixture()
def make(request_module, tmp_path):
    model = tmp_path / "model"
    model.mkdir()

    def make_request(**fields):
        fields = {"prompt": "a sunny meadow", "width": 128, "height": 64, "model": str(model), **fields}
        return request_module.GenerationRequest(**fields)

    return make_request


def test_defaults_and_frozen(request_module):
    request = request_module.GenerationRequest(prompt="sky")
    assert (request.seed, request.steps, request.guidance) == (None, None, None)  # the model's own
    assert (request.width, request.height, request.mode, request.scheduler) == (1024, 512, "world", "default")
    assert (request.device, request.precision, request.loras) == ("auto", "auto", ())
    assert request.allow_download is False and request.allow_pickle is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.prompt = "other"


def test_valid_request_is_cleaned(make):
    cleaned = make(prompt="  a sunny\n\tmeadow\x00 at dawn ", negative_prompt="blur\r\n").validate()
    assert cleaned.prompt == "a sunny meadow at dawn"
    assert cleaned.negative_prompt == "blur"


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"prompt": "  \n\t "}, ["prompt", "empty"]),
        ({"width": 100, "height": 50}, ["width", "multiple of 8", "64", "4096"]),
        ({"width": 8192, "height": 4096}, ["width", "4096"]),
        ({"width": 0, "height": 64, "mode": "image"}, ["width"]),
        ({"width": 128, "height": 128}, ["2:1", "width must be twice the height"]),
        ({"width": 64, "height": 32, "mode": "image"}, ["height is 32", "64"]),
        ({"steps": 0}, ["steps", "1 to 150"]),
        ({"steps": 151}, ["steps", "1 to 150"]),
        ({"steps": 2.5}, ["steps"]),
        ({"guidance": -1.0}, ["guidance", ">= 0"]),
        ({"guidance": float("nan")}, ["guidance", "finite"]),
        ({"guidance": float("inf")}, ["guidance", "finite"]),
        ({"scheduler": "plms"}, ["scheduler", "euler_a", "dpm++", "ddim"]),
        ({"mode": "cube"}, ["mode", "world, texture, image"]),
        ({"device": "tpu"}, ["device", "auto, cuda, mps, cpu"]),
        ({"precision": "int8"}, ["precision", "fp16, bf16, fp32"]),
        ({"seed": -5}, ["seed", "2147483647"]),
        ({"model": "  "}, ["model is empty", "Preferences > Add-ons > Promptscape"]),
    ],
)
def test_bad_fields_name_the_field_and_allowed_values(make, errors, fields, words):
    with pytest.raises(errors.InvalidRequest) as caught:
        make(**fields).validate()
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize(
    "model", ["/no/such/model", "./missing-folder", "missing.safetensors", "a/b/c", "missing.pt", "old.pth"]
)
def test_missing_model_path(make, errors, model):
    with pytest.raises(errors.ModelNotFound) as caught:
        make(model=model).validate()
    assert model in str(caught.value)
    assert "Preferences > Add-ons > Promptscape" in str(caught.value)


def test_repo_id_is_not_a_path(request_module, make):
    assert not request_module.looks_like_path("stabilityai/sdxl-turbo")
    assert request_module.looks_like_path("/abs/folder")
    assert request_module.looks_like_path("model.ckpt")
    assert make(model="stabilityai/sdxl-turbo").validate().model == "stabilityai/sdxl-turbo"


def test_a_relative_pickle_file_gets_the_pickle_message(
    request_module, make, models, errors, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"pickle")
    assert all(request_module.looks_like_path(f"model{suffix}") for suffix in request_module.PICKLE_SUFFIXES)
    request = make(model="model.pt").validate()
    with pytest.raises(errors.ModelLoadError) as caught:
        models.resolve_source(request.model, allow_pickle=request.allow_pickle)
    assert "model.pt" in str(caught.value) and "can run code" in str(caught.value)
    assert "Allow .ckpt/.bin Models" in str(caught.value)


def test_texture_and_image_sizes(make):
    assert make(mode="texture", width=64, height=64).validate().width == 64
    assert make(mode="image", width=4096, height=64).validate().height == 64


def test_long_prompt_is_allowed_and_logged(make, caplog):
    with caplog.at_level(logging.INFO):
        make(prompt=" ".join(["cloud"] * 200)).validate()
    assert any("75 tokens" in record.getMessage() for record in caplog.records)


def test_loras_validated(make, request_module, errors, tmp_path):
    lora = tmp_path / "lora.safetensors"
    lora.write_bytes(b"x")
    ok = make(loras=(request_module.LoraSpec(str(lora), 0.7),)).validate()
    assert ok.loras[0].scale == 0.7
    with pytest.raises(errors.ModelNotFound, match=r"missing\.safetensors"):
        make(loras=(request_module.LoraSpec(str(tmp_path / "missing.safetensors")),)).validate()
    with pytest.raises(errors.InvalidRequest, match="finite"):
        make(loras=(request_module.LoraSpec(str(lora), float("nan")),)).validate()


def test_resolved_seed(make, request_module):
    request = make()
    seeds = {request.resolved().seed for _ in range(5)}
    assert all(0 <= seed <= 2**31 - 1 for seed in seeds) and len(seeds) > 1
    fixed = make(seed=42, steps=3, guidance=2.0)
    assert fixed.resolved() == fixed
    unset = make(seed=42, steps=None, guidance=None).resolved(steps=8, guidance=0.0)  # a family's own
    assert (unset.seed, unset.steps, unset.guidance) == (42, 8, 0.0)


def test_metadata(make, request_module):
    lora = request_module.LoraSpec("org/lora", 0.5)
    request = make(seed=7, steps=3, guidance=7.0, loras=(lora,)).validate()
    meta = request.to_metadata()
    assert meta["generator"] == "Promptscape"
    assert meta["seed"] == "7" and meta["steps"] == "3" and meta["guidance"] == "7"
    assert meta["width"] == "128" and meta["mode"] == "world" and meta["loras"] == "org/lora:0.5"
    assert set(meta) == {
        "generator",
        "prompt",
        "negative_prompt",
        "seed",
        "steps",
        "guidance",
        "width",
        "height",
        "model",
        "scheduler",
        "mode",
        "device",
        "precision",
        "loras",
        "poles",  # worlds record which pole treatment ran
        "memory",
        "vae",
        "quantize",  # the value used, once the worker has resolved it
        "transformer",
        "wrap_mode",  # roll or periodic: how a transformer's image wrapped
    }
    assert all(isinstance(value, str) for value in meta.values())
    assert "poles" not in make(mode="texture", width=64, height=64).validate().to_metadata()
