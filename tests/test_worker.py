"""The worker thread on the tiny pipelines: results, progress, cancel, queue order, cache and failures."""

import importlib
import shutil
import threading
import time

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def gen(addon):
    def load(name):
        return importlib.import_module(f"{addon.__name__}.generation.{name}")

    class Modules:
        worker, request, errors, seamless, models = map(
            load, ("engine.worker", "engine.request", "errors", "engine.seamless", "engine.models")
        )

    return Modules


@pytest.fixture()
def make(gen, tiny_sd):
    def make_request(**fields):
        fields = {
            "prompt": "a red sky",
            "seed": 1,
            "steps": 2,
            "width": 128,
            "height": 64,
            "model": str(tiny_sd),
            **fields,
        }
        return gen.request.GenerationRequest(**fields)

    return make_request


def run(worker, request, on_image=None, timeout=120):
    job = worker.submit(request, on_image)
    assert job.wait(timeout), f"job did not finish: {job!r}"
    return job


def assert_pipeline_clean(worker, gen):
    pipe = worker.cache._pipe
    assert pipe is not None and not gen.seamless.is_patched(pipe)
    assert type(pipe.scheduler).__name__ == "EulerDiscreteScheduler"


@pytest.mark.parametrize("kind", ["sd", "sdxl"])
def test_same_seed_same_image_other_seed_differs(kind, request, worker, make, gen):
    model = str(request.getfixturevalue(f"tiny_{kind}"))
    first = run(worker, make(model=model, seed=5))
    second = run(worker, make(model=model, seed=5))
    other = run(worker, make(model=model, seed=6))
    assert first.state == second.state == other.state == "done", first.message
    assert first.image.dtype == np.float32 and first.image.shape == (64, 128, 3)
    assert first.image.min() >= 0.0 and first.image.max() <= 1.0
    assert np.array_equal(first.image, second.image)
    assert np.abs(first.image - other.image).max() > 1e-3
    assert second.cache_hit and second.timings["load"] == 0.0
    assert set(first.timings) == {"load", "encode", "denoise", "decode", "poles"}  # no post-processing asked
    assert_pipeline_clean(worker, gen)


def test_random_seed_is_resolved_and_reported(worker, make):
    job = run(worker, make(seed=None), on_image=lambda image, resolved, job: resolved.seed)
    assert job.state == "done" and job.request.seed is None
    assert isinstance(job.resolved.seed, int) and job.outputs == job.resolved.seed
    assert job.metadata["seed"] == str(job.resolved.seed) and job.metadata["generator"] == "Promptscape"
    # The reported seed reproduces the image exactly.
    first = run(worker, make(seed=None), on_image=lambda image, resolved, job: (resolved.seed, image))
    seed, image = first.outputs
    again = run(worker, make(seed=int(first.metadata["seed"])), on_image=lambda image, resolved, job: image)
    assert seed == int(first.metadata["seed"]) and np.array_equal(again.outputs, image)


def test_progress_reports_every_step(worker, make):
    seen = []

    def hook(job, step):
        seen.append((step, job.steps, job.state, job.eta, job.elapsed, job.preview))

    worker.step_hook = hook
    job = run(worker, make(steps=4))
    assert job.state == "done"
    assert [entry[0] for entry in seen] == [1, 2, 3, 4] and job.step == job.steps == 4
    assert all(entry[1] == 4 and entry[2] == "running" and entry[4] > 0 for entry in seen)
    assert seen[1][3] is not None and seen[1][3] >= 0 and seen[-1][3] == 0
    previews = [entry[5] for entry in seen]
    assert previews[0].shape == (8, 16, 3) and previews[0].dtype == np.float32
    assert previews[-1] is not previews[0] and previews[-1].min() >= 0 and previews[-1].max() <= 1
    assert job.eta is None and job.elapsed > 0


def test_cancel_mid_run_stops_within_one_step(worker, make, gen):
    steps = []

    def hook(job, step):
        steps.append(step)
        if step == 2:
            job.cancel()

    worker.step_hook = hook
    job = run(worker, make(steps=10, scheduler="ddim", mode="texture", width=64, height=64))
    assert job.state == "cancelled" and isinstance(job.error, gen.errors.Cancelled)
    assert steps == [1, 2] and job.step == 2
    assert "step 2 of 10" in job.message
    assert_pipeline_clean(worker, gen)
    worker.step_hook = None
    assert run(worker, make()).state == "done"


def test_queue_order_and_cancel_while_queued(worker, make):
    release, started, order = threading.Event(), threading.Event(), []

    def hook(job, step):
        started.set()
        assert release.wait(60)

    worker.step_hook = hook
    first = worker.submit(make(prompt="first"), lambda image, r, job: order.append(r.prompt))
    assert started.wait(60)
    queued = [
        worker.submit(make(prompt=name), lambda image, r, job: order.append(r.prompt))
        for name in ("second", "third", "fourth")
    ]
    assert [job.state for job in queued] == ["queued"] * 3
    queued[1].cancel()
    assert queued[1].state == "cancelled" and queued[1].wait(0) and queued[1].message
    assert first.state == "running"
    release.set()
    for job in (first, *queued):
        assert job.wait(60)
    assert order == ["first", "second", "fourth"]
    assert queued[1].resolved is None and queued[1].image is None


def test_out_of_memory_is_a_clear_failure(worker, make, gen):
    def hook(job, step):
        if step == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    worker.step_hook = hook
    job = run(worker, make(steps=3))
    assert job.state == "failed" and isinstance(job.error, gen.errors.GenerationFailed)
    for words in ("out of GPU memory", "smaller size", "fp16", "offload", "close other GPU apps"):
        assert words in job.message
    assert_pipeline_clean(worker, gen)
    worker.step_hook = None
    assert run(worker, make()).state == "done"


def test_unexpected_error_fails_the_job_and_the_worker_goes_on(worker, make, gen):
    def hook(job, step):
        raise KeyError("surprise")

    worker.step_hook = hook
    job = run(worker, make())
    assert job.state == "failed" and "KeyError" in job.message and "surprise" in job.message
    assert_pipeline_clean(worker, gen)


def test_nan_output_fails(worker, make, gen, tiny_sd, tmp_path):
    pipe = gen.models.load_pipeline(gen.models.resolve_source(str(tiny_sd)), "fp32")
    with torch.no_grad():
        pipe.vae.decoder.conv_out.bias.fill_(float("nan"))
    pipe.save_pretrained(tmp_path / "nan-model", safe_serialization=True)
    job = run(worker, make(model=str(tmp_path / "nan-model")))
    assert job.state == "failed" and isinstance(job.error, gen.errors.GenerationFailed)
    assert "NaN" in job.message and "fp32" in job.message
    assert not gen.seamless.is_patched(worker.cache._pipe)


def test_corrupt_model_fails_in_the_job(worker, make, gen, tiny_sd, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_sd, broken)
    weights = broken / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    job = run(worker, make(model=str(broken)))
    assert job.state == "failed" and isinstance(job.error, gen.errors.ModelLoadError)
    assert "truncated" in job.message and str(weights) in job.message
    assert run(worker, make()).state == "done"


def test_bad_requests_are_refused_before_queueing(worker, make, gen, tmp_path):
    with pytest.raises(gen.errors.InvalidRequest, match="steps"):
        worker.submit(make(steps=0))
    with pytest.raises(gen.errors.ModelNotFound, match="no-such"):
        worker.submit(make(model="someone/no-such-model"))
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"pickle")
    with pytest.raises(gen.errors.ModelLoadError, match="allow pickle"):
        worker.submit(make(model=str(checkpoint)))


def test_on_image_gets_the_float_image_during_postprocessing(worker, make, tmp_path):
    seen = {}

    def on_image(image, resolved, job):
        seen.update(state=job_box[0].state, dtype=image.dtype, shape=image.shape, seed=resolved.seed)
        path = tmp_path / "out.npy"
        np.save(path, image)
        return [path]

    job_box = []
    worker.step_hook = lambda job, step: job_box.append(job) if not job_box else None
    job = run(worker, make(seed=9), on_image)
    assert job.state == "done" and seen["state"] == "postprocessing"
    assert seen["dtype"] == np.float32 and seen["shape"] == (64, 128, 3) and seen["seed"] == 9
    assert np.array_equal(np.load(job.outputs[0]), job.image)


def test_on_image_user_error_becomes_the_message(worker, make, gen):
    def on_image(image, resolved, job):
        raise gen.errors.InvalidImage("the output folder is read-only: choose another in Preferences")

    job = run(worker, make(), on_image)
    assert (
        job.state == "failed"
        and job.message == "the output folder is read-only: choose another in Preferences"
    )


def test_cancel_during_postprocessing_keeps_the_files(worker, make, tmp_path):
    def on_image(image, resolved, job):
        job_box[0].cancel()
        path = tmp_path / "kept.npy"
        np.save(path, image)
        return [path]

    job_box = []
    worker.step_hook = lambda job, step: job_box.append(job)
    job = run(worker, make(), on_image)
    assert job.state == "cancelled" and job.outputs[0].exists()
    assert "post-processing" in job.message


def test_shutdown_cancels_and_a_new_worker_starts(gen, make):
    worker = gen.worker.get_worker()
    started = threading.Event()

    def hook(job, step):
        started.set()
        deadline = time.monotonic() + 10
        while not job.cancel_requested and time.monotonic() < deadline:
            time.sleep(0.01)

    worker.step_hook = hook
    running = worker.submit(make(steps=4))
    waiting = worker.submit(make())
    assert started.wait(60)
    gen.worker.shutdown_worker(timeout=10)
    assert running.wait(0) and running.state == "cancelled" and running.step == 1
    assert waiting.state == "cancelled"
    assert not worker._thread.is_alive() and worker.cache.loaded_key is None
    assert not any(t.name == "promptscape-worker" and t.is_alive() for t in threading.enumerate())
    gen.worker.shutdown_worker()
    fresh = gen.worker.get_worker()
    assert fresh is not worker and run(fresh, make()).state == "done"
    gen.worker.shutdown_worker()


def test_a_worker_that_outlives_its_shutdown_gives_its_model_back(gen, make):
    worker = gen.worker.get_worker()
    started, release = threading.Event(), threading.Event()

    def hook(job, step):  # a step that takes longer than shutdown waits (a slow GPU step)
        started.set()
        release.wait(30)

    worker.step_hook = hook
    job = worker.submit(make(steps=3))
    assert started.wait(60) and worker.cache.loaded_key is not None
    gen.worker.shutdown_worker(timeout=0.05)
    assert worker._thread.is_alive()  # shutdown stopped waiting
    release.set()
    worker._thread.join(60)
    assert job.state == "cancelled" and worker.cache.loaded_key is None


def test_the_worker_survives_an_error_outside_the_pipeline(worker, make, tiny_sd, monkeypatch, gen):
    # A failure in the worker's own code (here: resolving the device) fails that job, not the thread.
    devices = importlib.import_module(gen.worker.__name__.rsplit(".", 1)[0] + ".devices")

    def broken(name):
        raise KeyboardInterrupt("simulated")

    monkeypatch.setattr(devices, "resolve_device", broken)
    job = worker.submit(make(model=str(tiny_sd)))
    assert job.wait(30) and job.state == "failed" and "internal error" in job.message
    monkeypatch.undo()
    assert run(worker, make(model=str(tiny_sd))).state == "done"


def test_a_lora_changes_the_image_for_one_call_without_reloading(worker, make, gen, tiny_sd, tmp_path):
    tiny_models = importlib.import_module(gen.worker.__name__.rsplit(".", 2)[0] + ".setup.tiny_models")
    lora = gen.request.LoraSpec(str(tiny_models.write_tiny_lora(tiny_sd, tmp_path)), scale=1.0)
    plain = run(worker, make(mode="image"))
    styled = run(worker, make(mode="image", loras=(lora,)))
    half = run(worker, make(mode="image", loras=(gen.request.LoraSpec(lora.path_or_id, scale=0.5),)))
    again = run(worker, make(mode="image"))
    assert [job.state for job in (plain, styled, half, again)] == ["done"] * 4, styled.message
    assert styled.cache_hit and half.cache_hit and again.cache_hit  # the base model is never reloaded
    assert np.abs(styled.image - plain.image).max() > 1e-3
    assert not np.allclose(half.image, plain.image) and not np.allclose(half.image, styled.image)  # scale
    assert np.array_equal(again.image, plain.image)  # the LoRA is gone after its call
    assert_pipeline_clean(worker, gen)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (OSError(28, "No space left on device"), "No space left on device"),
        (OSError(30, "Read-only file system", "/renders/sky.exr"), "Read-only file system: /renders/sky.exr"),
    ],
)
def test_a_failed_write_says_how_to_fix_it(worker, make, gen, error, reason):
    def on_image(image, resolved, job):
        raise error

    job = run(worker, make(), on_image)
    assert job.state == "failed" and isinstance(job.error, gen.errors.GenerationFailed)
    assert job.message == (
        f"writing the result files failed ({reason}): free some disk space or choose another "
        "Output Folder in Preferences > Add-ons > Promptscape"
    )
    assert run(worker, make()).state == "done"


def test_current_worker_never_starts_one_and_busy_follows_the_job(gen, make):
    gen.worker.shutdown_worker()
    assert gen.worker.current_worker() is None
    assert not any(t.name == "promptscape-worker" and t.is_alive() for t in threading.enumerate())
    worker = gen.worker.get_worker()
    assert gen.worker.current_worker() is worker and not worker.busy
    seen = []
    # While a job holds the pipeline, freeing it from the UI must refuse at once instead of waiting.
    worker.step_hook = lambda job, step: seen.append((worker.busy, worker.cache.try_unload()))
    try:
        job = run(worker, make(), on_image=lambda image, resolved, job: seen.append((worker.busy, None)))
    finally:
        worker.step_hook = None
    assert job.state == "done" and seen == [(True, False), (True, False), (True, None)]
    assert not worker.busy
    assert worker.cache.try_unload() is True and worker.cache.loaded_key is None
    gen.worker.shutdown_worker()
    assert gen.worker.current_worker() is None


@pytest.fixture(scope="module")
def pickle_lora(gen, tiny_sd, tmp_path_factory):
    """A folder holding a tiny LoRA only as pytorch_lora_weights.bin, the old pickle format."""
    import safetensors.torch

    tiny_models = importlib.import_module(gen.worker.__name__.rsplit(".", 2)[0] + ".setup.tiny_models")
    weights = tiny_models.write_tiny_lora(tiny_sd, tmp_path_factory.mktemp("safe-lora"))
    folder = tmp_path_factory.mktemp("pickle-lora")
    torch.save(safetensors.torch.load_file(weights), folder / "pytorch_lora_weights.bin")
    return folder


def test_the_pickle_policy_reaches_the_loras(worker, make, gen, pickle_lora):
    loras = (gen.request.LoraSpec(str(pickle_lora)),)
    refused = run(worker, make(mode="image", loras=loras))
    assert refused.state == "failed" and isinstance(refused.error, gen.errors.ModelLoadError)
    assert "Allow .ckpt/.bin Models" in refused.message
    plain = run(worker, make(mode="image"))
    allowed = run(worker, make(mode="image", loras=loras, allow_pickle=True))
    assert allowed.state == "done", allowed.message
    assert np.abs(allowed.image - plain.image).max() > 1e-3
    assert_pipeline_clean(worker, gen)
