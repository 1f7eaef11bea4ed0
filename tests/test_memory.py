"""Memory plans in the worker on the tiny pipelines: the plan that ran, tiles, fallback, a replacement VAE."""

import importlib

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def gen(addon):
    def load(name):
        return importlib.import_module(f"{addon.__name__}.generation.{name}")

    class Modules:
        worker, request, errors, seamless, models, decoding, devices = map(
            load,
            (
                "engine.worker",
                "engine.request",
                "errors",
                "engine.seamless",
                "engine.models",
                "engine.decoding",
                "engine.devices",
            ),
        )

    return Modules


@pytest.fixture()
def make(gen, tiny_sd):
    def make_request(**fields):
        fields = {"prompt": "a red sky", "seed": 3, "steps": 2, "width": 256, "height": 128, **fields}
        return gen.request.GenerationRequest(model=fields.pop("model", str(tiny_sd)), **fields)

    return make_request


def run(worker, request):
    job = worker.submit(request)
    assert job.wait(120), f"job did not finish: {job!r}"
    assert job.state == "done", job.message
    return job


def spread_error(a, b):
    return float(np.abs(a - b).max() / a.std())


@pytest.mark.parametrize("mode", ["world", "texture"])
def test_low_memory_decodes_in_tiles_and_matches_full(worker, make, mode):
    size = {"width": 256, "height": 128} if mode == "world" else {"width": 128, "height": 128}
    full = run(worker, make(mode=mode, memory="full", **size))
    low = run(worker, make(mode=mode, memory="low", **size))
    assert full.plan.name == "full" and full.plan.tile is None
    assert low.plan.name == "tiled" and low.plan.tile <= 1024
    assert low.metadata["memory_plan"].startswith("tiled (") and low.metadata["memory"] == "low"
    assert full.metadata["memory_plan"].startswith("full")
    assert spread_error(full.image, low.image) < 1e-3
    assert low.timings["decode"] > 0 and low.timings["denoise"] > 0


def test_low_memory_forces_small_tiles_on_a_small_image(worker, make, monkeypatch, gen):
    """Tiles of 1024 px cover a 256 px image whole; a 64 px tile runs the real multi-tile path."""
    real_plan = gen.worker._plan

    def small_tiles(*args):
        plan = real_plan(*args)
        return type(plan)(**{**plan.__dict__, "tile": 64})

    monkeypatch.setattr(gen.worker, "_plan", small_tiles)
    low = run(worker, make(memory="low"))
    monkeypatch.undo()
    full = run(worker, make(memory="full"))
    assert low.plan.tile == 64
    assert spread_error(full.image, low.image) < 1e-3


def test_auto_on_a_roomy_cpu_keeps_todays_plain_path(worker, make, gen, tiny_sd):
    job = run(worker, make(poles="off"))  # the repaired caps are not the plain pipeline's
    assert job.plan.name == "full"
    pipe = gen.models.load_pipeline(gen.models.resolve_source(str(tiny_sd)), "fp32")
    with gen.seamless.seamless(pipe, wrap_x=True, wrap_y=False):
        plain = pipe(
            prompt="a red sky",
            num_inference_steps=2,
            guidance_scale=7.0,
            width=256,
            height=128,
            generator=torch.Generator().manual_seed(3),
            output_type="np",
        ).images[0]
    assert np.array_equal(job.image, plain)


def test_out_of_memory_in_the_decode_falls_back_once(worker, make, gen, monkeypatch):
    real_decode, calls = gen.decoding.decode_latents, []

    def decode_once_out_of_memory(pipe, latents, plan, wrap_x, wrap_y):
        calls.append(plan)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        return real_decode(pipe, latents, plan, wrap_x, wrap_y)

    monkeypatch.setattr(gen.decoding, "decode_latents", decode_once_out_of_memory)
    job = run(worker, make(poles="off"))  # only the world's own decode
    assert [plan.name for plan in calls] == ["full", "tiled"] and calls[1].tile
    assert job.plan is calls[1] and "fell back after out of memory" in job.metadata["memory_plan"]
    assert "ran out of memory" in job.message.lower() and "tiled" in job.message
    monkeypatch.undo()
    assert np.abs(job.image - run(worker, make(poles="off")).image).max() / job.image.std() < 1e-3


def test_out_of_memory_twice_fails_in_words(worker, make, gen, monkeypatch):
    def always_out_of_memory(*args):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(gen.decoding, "decode_latents", always_out_of_memory)
    job = worker.submit(make())
    assert job.wait(120) and job.state == "failed"
    assert "out of GPU memory" in job.message


def test_too_little_memory_is_refused_before_loading(worker, make, gen, monkeypatch):
    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(gen.devices, "memory_budget", lambda device: 2**20)
    monkeypatch.setattr(gen.models, "load_pipeline", no_load)
    worker.cache.unload()
    job = worker.submit(make(width=512, height=256))
    assert job.wait(120) and job.state == "failed", job.message
    assert isinstance(job.error, gen.errors.GenerationFailed)
    assert "Not enough memory on cpu" in job.message and "0.0 GB is available" in job.message
    assert "needs about" in job.message


@pytest.fixture(scope="module")
def fp16_safe_vae(tiny_sdxl, tmp_path_factory):
    """The tiny SDXL VAE saved as its own folder with force_upcast off, like madebyollin's fp16 fix."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(tiny_sdxl / "vae")
    vae.register_to_config(force_upcast=False)
    folder = tmp_path_factory.mktemp("fp16-vae")
    vae.save_pretrained(folder, safe_serialization=True)
    return folder


def test_a_replacement_vae_loads_and_skips_the_upcast(gen, tiny_sdxl, fp16_safe_vae):
    source = gen.models.resolve_source(str(tiny_sdxl))
    own = gen.models.load_pipeline(source, "fp16")
    replaced = gen.models.load_pipeline(source, "fp16", gen.models.resolve_vae(str(fp16_safe_vae)))
    assert own.vae.config.force_upcast is True
    assert replaced.vae.config.force_upcast is False and replaced.vae.dtype == torch.float16

    seen = []
    replaced.vae.post_quant_conv.register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
    own.vae.post_quant_conv.register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
    plan = gen.worker.memory_plan.MemoryPlan("full", 0, None)
    latents = torch.randn((1, 4, 8, 8), dtype=torch.float16)
    for pipe in (replaced, own):
        image = gen.decoding.decode_latents(pipe, latents, plan, False, False)
        assert image.shape == (64, 64, 3) and pipe.vae.dtype == torch.float16
    assert seen == [torch.float16, torch.float32]  # the replacement decodes in fp16, SDXL's own in fp32


def test_a_job_with_a_replacement_vae_records_it(worker, make, tiny_sdxl, fp16_safe_vae):
    job = run(worker, make(model=str(tiny_sdxl), vae=str(fp16_safe_vae)))
    assert job.metadata["vae"] == str(fp16_safe_vae)
    assert worker.cache.loaded_key[4] == ("folder", str(fp16_safe_vae))


def test_a_missing_vae_is_refused_at_submit(worker, make, gen, tmp_path):
    with pytest.raises(gen.errors.ModelNotFound, match="VAE"):
        worker.submit(make(vae=str(tmp_path / "no-such-vae")))


def test_pole_repair_decodes_its_windows_as_the_planner_says(worker, make):
    """The caps' inpainting is a later stage of the same job: it asks the planner for its window size,
    and a tiled decode of the windows gives the plain decode's world."""
    full = run(worker, make(mode="world", memory="full"))
    low = run(worker, make(mode="world", memory="low"))
    assert full.metadata["poles_memory_plan"].startswith("full")
    assert low.metadata["poles_memory_plan"].startswith("tiled (")
    assert full.timings["poles"] > 0 and low.timings["poles"] > 0
    assert spread_error(full.image, low.image) < 1e-3


def test_out_of_memory_in_the_pole_repair_falls_back_once(worker, make, gen, monkeypatch):
    """The world is decoded already when a cap's window runs out: the repair runs again, tiled, instead of
    losing the world."""
    real_decode, calls = gen.decoding.decode_latents, []

    def second_decode_out_of_memory(pipe, latents, plan, wrap_x, wrap_y):
        calls.append(plan.name)
        if len(calls) == 2:  # the world's own decode is the first; then the first cap window's
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.00 GiB")
        return real_decode(pipe, latents, plan, wrap_x, wrap_y)

    monkeypatch.setattr(gen.decoding, "decode_latents", second_decode_out_of_memory)
    job = run(worker, make(mode="world", memory="full"))
    assert job.state == "done" and calls[:3] == ["full", "full", "tiled"] and set(calls[2:]) == {"tiled"}
    assert job.metadata["memory_plan"].startswith("full")  # the world's decode did not need it
    assert "fell back after out of memory" in job.metadata["poles_memory_plan"]
    assert "repairing the poles" in job.message and "tiled" in job.message
    monkeypatch.undo()
    assert spread_error(job.image, run(worker, make(mode="world", memory="full")).image) < 1e-3
