"""Model sources, loading errors with their messages, the pipeline cache and per-call options."""

import importlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from scene_helpers import cache_repo


@pytest.fixture(scope="module")
def models(addon):
    return importlib.import_module(addon.__name__ + ".generation.engine.models")


@pytest.fixture(scope="module")
def per_call(addon):
    return importlib.import_module(addon.__name__ + ".generation.engine.call_options")


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
    assert cache.loaded_key == (("folder", str(tiny_sdxl)), "cpu", "fp32", "device", None, "none", "")
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
def test_scheduler_swapped_and_restored(per_call, models, tiny_sd, name):
    pipe = models.load_pipeline(models.resolve_source(str(tiny_sd)), "fp32")
    original = pipe.scheduler
    expected = per_call.SCHEDULERS[name][0]
    with per_call.call_options(pipe, name, ()):
        assert type(pipe.scheduler).__name__ == expected
        image = pipe("x", num_inference_steps=2, width=64, height=64, output_type="np").images[0]
    assert pipe.scheduler is original
    assert image.shape == (64, 64, 3)


def test_scheduler_restored_after_an_error(per_call, models, tiny_sd):
    pipe = models.load_pipeline(models.resolve_source(str(tiny_sd)), "fp32")
    original = pipe.scheduler
    with pytest.raises(RuntimeError), per_call.call_options(pipe, "ddim", ()):
        raise RuntimeError("during the call")
    assert pipe.scheduler is original


def test_lora_without_peft_says_what_to_install(
    per_call, models, errors, tiny_sd, addon, tmp_path, monkeypatch
):
    request = importlib.import_module(addon.__name__ + ".generation.engine.request")
    pipe = models.load_pipeline(models.resolve_source(str(tiny_sd)), "fp32")
    # As on a Blender where peft is not installed (diffusers itself already looked when it was imported).
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *rest: None if name == "peft" else find_spec(name, *rest)
    )
    original = pipe.scheduler
    with (
        pytest.raises(errors.MissingDependency, match="peft"),
        per_call.call_options(pipe, "euler_a", (request.LoraSpec(str(tmp_path / "lora.safetensors")),)),
    ):
        pass
    assert pipe.scheduler is original


@pytest.fixture(scope="module")
def pickle_lora(addon, tiny_sd, tmp_path_factory):
    """A folder holding a tiny LoRA only as pytorch_lora_weights.bin, the old pickle format."""
    import safetensors.torch

    tiny_models = importlib.import_module(addon.__name__ + ".generation.setup.tiny_models")
    weights = tiny_models.write_tiny_lora(tiny_sd, tmp_path_factory.mktemp("safe-lora"))
    folder = tmp_path_factory.mktemp("pickle-lora")
    torch.save(safetensors.torch.load_file(weights), folder / "pytorch_lora_weights.bin")
    return folder


def test_pickle_suffixes_are_the_requests(models, addon):
    request = importlib.import_module(addon.__name__ + ".generation.engine.request")
    assert models.PICKLE_SUFFIXES is request.PICKLE_SUFFIXES
    assert {".ckpt", ".bin", ".pt", ".pth"} <= set(request.PICKLE_SUFFIXES)


@pytest.mark.parametrize("name", ["style.bin", "style.pt", "style.ckpt", "style.PTH"])
def test_pickle_lora_file_refused_unless_allowed(per_call, models, errors, tiny_sd, addon, tmp_path, name):
    request = importlib.import_module(addon.__name__ + ".generation.engine.request")
    pipe = models.load_pipeline(models.resolve_source(str(tiny_sd)), "fp32")
    lora = tmp_path / name
    lora.write_bytes(b"not a real pickle")
    with (
        pytest.raises(errors.ModelLoadError) as caught,
        per_call.call_options(pipe, "default", (request.LoraSpec(str(lora)),)),
    ):
        pass
    assert name in str(caught.value) and "can run code" in str(caught.value)
    assert "Preferences > Add-ons > Promptscape > Allow .ckpt/.bin Models" in str(caught.value)
    # Allowed, the file is read (and found broken): the policy, not the format, refused it above.
    with (
        pytest.raises(errors.ModelLoadError) as caught,
        per_call.call_options(pipe, "default", (request.LoraSpec(str(lora)),), allow_pickle=True),
    ):
        pass
    assert "could not be loaded" in str(caught.value) and "Allow .ckpt/.bin" not in str(caught.value)


def test_lora_folder_with_only_pickle_weights(per_call, models, errors, tiny_sd, addon, pickle_lora):
    request = importlib.import_module(addon.__name__ + ".generation.engine.request")
    pipe = models.load_pipeline(models.resolve_source(str(tiny_sd)), "fp32")
    loras = (request.LoraSpec(str(pickle_lora)),)
    with pytest.raises(errors.ModelLoadError) as caught, per_call.call_options(pipe, "default", loras):
        pass
    assert "Allow .ckpt/.bin Models" in str(caught.value)
    assert not pipe.get_list_adapters()
    with per_call.call_options(pipe, "default", loras, allow_pickle=True):
        assert pipe.get_active_adapters() == ["promptscape_lora_0"]
    assert not pipe.get_list_adapters()


def test_lora_repo_id_without_downloads_stays_offline(
    per_call, models, errors, tiny_sd, addon, tmp_path, monkeypatch
):
    import socket

    import huggingface_hub.constants
    from diffusers.loaders import lora_base

    request = importlib.import_module(addon.__name__ + ".generation.engine.request")
    tiny_models = importlib.import_module(addon.__name__ + ".generation.setup.tiny_models")
    cache_repo("promptscape-test/tiny-lora", tiny_models.write_tiny_lora(tiny_sd, tmp_path).parent)
    pipe = models.load_pipeline(models.resolve_source(str(tiny_sd)), "fp32")
    # As on an artist's machine, where Hugging Face is not in offline mode: only the policy keeps it local.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(lora_base, "HF_HUB_OFFLINE", False)
    lookups = []

    def no_lookup(host, *args, **kwargs):
        lookups.append(host)
        raise OSError(f"test tried to look up {host}")

    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    missing = (request.LoraSpec("someone/no-such-lora"),)
    with pytest.raises(errors.ModelNotFound) as caught, per_call.call_options(pipe, "default", missing):
        pass
    assert "someone/no-such-lora" in str(caught.value) and "downloads are off" in str(caught.value)
    with per_call.call_options(pipe, "default", (request.LoraSpec("promptscape-test/tiny-lora"),)):
        assert pipe.get_active_adapters() == ["promptscape_lora_0"]
    assert lookups == [] and not pipe.get_list_adapters()


def test_repo_cached_without_unused_files_loads_offline(models, tiny_sd):
    # model_catalog.Download skips files diffusers does not load (SDXL's vae_1_0/, fp16 copies), but the
    # repo's file list, cached by snapshot_download, still names them.
    from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache

    hub = cache_repo("promptscape-test/tiny-sd-chosen-files", tiny_sd)
    commit = (hub / "refs" / "main").read_text()
    listed = [str(path.relative_to(tiny_sd)) for path in tiny_sd.rglob("*") if path.is_file()]
    listed += ["vae_1_0/config.json", "vae_1_0/diffusion_pytorch_model.safetensors"]
    listed += ["unet/diffusion_pytorch_model.fp16.safetensors"]
    write_tree_cache(str(hub), commit, {name: TreeCacheEntry(size=1, blob_id="0" * 40) for name in listed})
    pipe = models.load_pipeline(models.resolve_source("promptscape-test/tiny-sd-chosen-files"), "fp32")
    assert type(pipe).__name__ == "StableDiffusionPipeline"


def test_free_memory_never_imports_torch(addon):
    # Freeing memory before any generation (the UI's "Free Model Memory") must not import torch.
    package = Path(importlib.import_module(addon.__name__).__file__).parent
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from generation.engine import devices, models; "
        "devices.free_memory(); models.PipelineCache().try_unload(); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(package)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_try_unload_never_waits_for_a_load_or_a_generation(models, tiny_sd, monkeypatch):
    real_load, loading, release = models.load_pipeline, threading.Event(), threading.Event()

    def slow_load(source, precision, vae=None, **weights):
        loading.set()
        assert release.wait(60)
        return real_load(source, precision, vae, **weights)

    monkeypatch.setattr(models, "load_pipeline", slow_load)
    cache = models.PipelineCache()
    source = models.resolve_source(str(tiny_sd))
    loader = threading.Thread(target=cache.get, args=(source, "cpu", "fp32"))
    loader.start()
    assert loading.wait(60)
    start = time.perf_counter()
    assert cache.try_unload() is False
    assert time.perf_counter() - start < 0.5
    release.set()
    loader.join(120)
    assert cache.loaded_key is not None
    with cache.use(source, "cpu", "fp32") as (_, seconds, hit):
        assert hit and seconds == 0.0
        assert cache.try_unload() is False and cache.loaded_key is not None
    assert cache.try_unload() is True and cache.loaded_key is None
    assert cache.try_unload() is True  # nothing loaded: nothing to wait for
