"""Model sources, loading errors with their messages, the pipeline cache and per-call options."""

import importlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module")
def models(addon):
    return importlib.import_module(addon.__name__ + ".generation.models")


def test_resolve_kinds(models, tiny_sd, tmp_path):
    assert models.resolve_source(str(tiny_sd)).kind == "folder"
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"")
    assert models.resolve_source(str(checkpoint)).kind == "file"


def test_unknown_model_id(models, errors):
    with pytest.raises(errors.ModelNotFound) as caught:
        models.resolve_source("nobody/no-such-model")
    message = str(caught.value)
    assert "nobody/no-such-model" in message and "local Hugging Face cache" in message
    assert "allow downloads" in message and "Preferences > Add-ons > Promptscape" in message


def test_not_an_id_nor_a_path(models, errors):
    with pytest.raises(errors.ModelNotFound, match=r"not a diffusers folder, a \.safetensors file"):
        models.resolve_source("just words")


def test_pickle_checkpoint_refused(models, errors, tmp_path):
    checkpoint = tmp_path / "old.ckpt"
    checkpoint.write_bytes(b"not really a pickle")
    with pytest.raises(errors.ModelLoadError) as caught:
        models.resolve_source(str(checkpoint))
    assert "old.ckpt" in str(caught.value) and "can run code" in str(caught.value)
    assert "allow pickle" in str(caught.value)
    assert models.resolve_source(str(checkpoint), allow_pickle=True).kind == "file"


def test_folder_without_model_index(models, errors, tmp_path):
    from diffusers import AutoencoderKL

    AutoencoderKL(block_out_channels=(8,), norm_num_groups=2).save_pretrained(tmp_path / "vae-only")
    with pytest.raises(errors.ModelLoadError) as caught:
        models.resolve_source(str(tmp_path / "vae-only"))
    assert "vae-only" in str(caught.value) and "no model_index.json" in str(caught.value)


def test_folder_of_another_model_kind(models, errors, tmp_path):
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    unet = UNet2DModel(
        sample_size=8,
        block_out_channels=(8, 8),
        norm_num_groups=2,
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    )
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler()).save_pretrained(tmp_path / "ddpm")
    source = models.resolve_source(str(tmp_path / "ddpm"))
    with pytest.raises(errors.ModelLoadError) as caught:
        models.load_pipeline(source, "fp32")
    assert "DDPMPipeline" in str(caught.value) and "SDXL" in str(caught.value)


def test_truncated_weights_in_a_folder(models, errors, tiny_sd, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_sd, broken)
    weights = broken / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(errors.ModelLoadError) as caught:
        models.load_pipeline(models.resolve_source(str(broken)), "fp32")
    assert str(weights) in str(caught.value) and "truncated" in str(caught.value)
    assert "download the model again" in str(caught.value)


def test_missing_component_files(models, errors, tiny_sd, tmp_path):
    broken = tmp_path / "incomplete"
    shutil.copytree(tiny_sd, broken)
    shutil.rmtree(broken / "vae")
    with pytest.raises(errors.ModelLoadError) as caught:
        models.load_pipeline(models.resolve_source(str(broken)), "fp32")
    assert str(broken) in str(caught.value) and "could not be loaded" in str(caught.value)


def test_truncated_single_file(models, errors, tiny_sd, tmp_path):
    single = tmp_path / "model.safetensors"
    data = (tiny_sd / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    single.write_bytes(data[:4000])
    with pytest.raises(errors.ModelLoadError, match="truncated or corrupt"):
        models.load_pipeline(models.resolve_source(str(single)), "fp32")


def test_single_file_without_config(models, errors, tiny_sd, tmp_path):
    single = tmp_path / "lonely.safetensors"
    shutil.copy(tiny_sd / "unet" / "diffusion_pytorch_model.safetensors", single)
    with pytest.raises(errors.ModelLoadError) as caught:
        models.load_pipeline(models.resolve_source(str(single)), "fp32")
    assert "lonely.safetensors" in str(caught.value) and "single-file checkpoint" in str(caught.value)


def test_repo_id_from_the_local_hf_cache(models, tiny_sd):
    hub = Path(os.environ["HF_HOME"]) / "hub" / "models--promptscape-test--tiny-sd"
    snapshot = hub / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    if not snapshot.exists():
        shutil.copytree(tiny_sd, snapshot)
        (hub / "refs").mkdir(parents=True, exist_ok=True)
        (hub / "refs" / "main").write_text(snapshot.name)
    source = models.resolve_source("promptscape-test/tiny-sd")
    assert source.kind == "repo" and source.allow_download is False
    pipe = models.load_pipeline(source, "fp32")
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert pipe.safety_checker is None


def test_cache_hit_and_unload(models, tiny_sdxl):
    import gc
    import weakref

    cache = models.PipelineCache()
    source = models.resolve_source(str(tiny_sdxl))
    pipe, seconds, hit = cache.get(source, "cpu", "fp32")
    assert not hit and seconds > 0
    again, seconds_again, hit_again = cache.get(source, "cpu", "fp32")
    assert again is pipe and hit_again and seconds_again == 0.0
    assert cache.loaded_key == (("folder", str(tiny_sdxl)), "cpu", "fp32")
    reference = weakref.ref(pipe.unet)
    del pipe, again
    cache.unload()
    gc.collect()
    assert cache.loaded_key is None and reference() is None


def test_another_precision_is_another_entry(models, tiny_sd):
    cache = models.PipelineCache()
    source = models.resolve_source(str(tiny_sd))
    cache.get(source, "cpu", "fp32")
    pipe, _, hit = cache.get(source, "cpu", "bf16")
    assert not hit and pipe.unet.dtype == torch.bfloat16
    cache.unload()


def test_failed_load_leaves_the_cache_empty(models, errors, tiny_sd, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_sd, broken)
    index = json.loads((broken / "model_index.json").read_text())
    index["_class_name"] = "FluxPipeline"
    (broken / "model_index.json").write_text(json.dumps(index))
    cache = models.PipelineCache()
    cache.get(models.resolve_source(str(tiny_sd)), "cpu", "fp32")
    with pytest.raises(errors.ModelLoadError, match="FluxPipeline"):
        cache.get(models.resolve_source(str(broken)), "cpu", "fp32")
    assert cache.loaded_key is None


@pytest.mark.parametrize("name", ["euler", "euler_a", "dpm++", "ddim"])
def test_scheduler_swapped_and_restored(models, tiny_sd, name):
    pipe = models.load_pipeline(models.resolve_source(str(tiny_sd)), "fp32")
    original = pipe.scheduler
    expected = models.SCHEDULERS[name][0]
    with models.call_options(pipe, name, ()):
        assert type(pipe.scheduler).__name__ == expected
        image = pipe("x", num_inference_steps=2, width=64, height=64, output_type="np").images[0]
    assert pipe.scheduler is original
    assert image.shape == (64, 64, 3)


def test_scheduler_restored_after_an_error(models, tiny_sd):
    pipe = models.load_pipeline(models.resolve_source(str(tiny_sd)), "fp32")
    original = pipe.scheduler
    with pytest.raises(RuntimeError), models.call_options(pipe, "ddim", ()):
        raise RuntimeError("during the call")
    assert pipe.scheduler is original


def test_lora_without_peft_says_what_to_install(models, errors, tiny_sd, addon, tmp_path, monkeypatch):
    request = importlib.import_module(addon.__name__ + ".generation.request")
    pipe = models.load_pipeline(models.resolve_source(str(tiny_sd)), "fp32")
    # As on a Blender where peft is not installed (diffusers itself already looked when it was imported).
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *rest: None if name == "peft" else find_spec(name, *rest)
    )
    original = pipe.scheduler
    with (
        pytest.raises(errors.MissingDependency, match="peft"),
        models.call_options(pipe, "euler_a", (request.LoraSpec(str(tmp_path / "lora.safetensors")),)),
    ):
        pass
    assert pipe.scheduler is original
