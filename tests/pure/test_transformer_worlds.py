"""Worlds and materials from the transformer families through the worker, on tiny random-weight models
saved as diffusers folders: their wrap by rolled latents, their previews, seeds and refusals."""

import numpy as np
import pytest
from conftest import ROOT, source_module

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

FAMILIES = source_module("setup.tiny_transformers").FAMILIES
CACHE = ROOT / ".cache" / "tiny-models"


@pytest.fixture(scope="module")
def worker():
    worker = source_module("engine.worker").Worker()
    yield worker
    worker.shutdown()


def request(family, **fields):
    folder = source_module("setup.tiny_transformers").ensure_tiny_pipeline(family, CACHE)
    fields = {"prompt": "a red sky", "seed": 3, "steps": 3, "width": 128, "height": 64, "model": str(folder),
              "device": "cpu", "poles": "off", "guidance": 0.0, **fields}  # fmt: skip
    return source_module("engine.request").GenerationRequest(**fields)


def run(worker, job_request):
    job = worker.submit(job_request, on_image=lambda image, resolved, job: image)
    assert job.wait(300), job
    return job


@pytest.mark.parametrize("family", FAMILIES)
def test_a_world_and_a_material_from_each_family(worker, family):
    world = run(worker, request(family))
    assert world.state == "done", world.message
    assert world.outputs.shape == (64, 128, 3) and np.isfinite(world.outputs).all()
    assert world.preview is not None and world.step == world.steps == 3
    assert {"encode", "denoise", "decode"} <= set(world.timings)
    again = run(worker, request(family))
    np.testing.assert_array_equal(again.outputs, world.outputs)  # the same seed, the same world
    material = run(worker, request(family, mode="texture", width=64, height=64))
    assert material.state == "done" and material.outputs.shape == (64, 64, 3)


@pytest.mark.parametrize("family", FAMILIES)
def test_what_a_family_cannot_run_is_refused_in_words(worker, family):
    job = run(worker, request(family, scheduler="euler"))
    assert job.state == "failed" and "scheduler to default" in job.message
    job = run(worker, request(family, mode="texture", width=72, height=72))
    assert job.state == "failed" and "multiples of 16" in job.message


def test_rolling_is_exact_bookkeeping():
    token_wrap = source_module("engine.token_wrap")
    schedule = token_wrap.roll_schedule(8, columns=16, rows=4, wrap_y=True)
    assert schedule[-1] == (0, 0) and len({offset for offset in schedule}) > 4
    for packed in (False, True):
        roll = token_wrap.TokenRoll.for_image(packed, 256, 64, 8, wrap_x=True, wrap_y=True)
        latents = torch.randn((1, 64 if packed else 16, 16) if packed else (1, 16, 8, 32))
        rolled = latents
        for index in range(8):
            rolled = roll.after_step(index, rolled)
        torch.testing.assert_close(rolled, latents, rtol=0, atol=0)  # back where it started


@pytest.mark.parametrize("family", FAMILIES)
def test_with_no_offsets_the_rolled_run_is_the_plain_pipeline(family, monkeypatch):
    from diffusers import DiffusionPipeline

    token_wrap = source_module("engine.token_wrap")
    monkeypatch.setattr(token_wrap, "roll_schedule", lambda steps, *_: [(0, 0)] * steps)
    worker = source_module("engine.worker").Worker()
    try:
        job = run(worker, request(family, guidance=1.0))
    finally:
        worker.shutdown()
    pipe = DiffusionPipeline.from_pretrained(request(family).model)
    seamless = source_module("engine.seamless")
    with seamless.seamless(pipe, True, False):  # the VAE's wrap alone
        plain = pipe(prompt="a red sky", num_inference_steps=3, width=128, height=64, output_type="np",
                     generator=torch.Generator().manual_seed(3), guidance_scale=1.0).images[0]  # fmt: skip
    np.testing.assert_array_equal(job.outputs, plain)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_low_memory_world_decodes_in_wrap_exact_tiles_as_the_plan_says(worker, family):
    full = run(worker, request(family, memory="full"))
    low = run(worker, request(family, memory="low"))
    assert full.plan.tile is None and low.plan.tile is not None, low.plan
    assert low.metadata["memory_plan"].startswith("tiled (")
    spread = float(np.abs(full.outputs - low.outputs).max() / full.outputs.std())
    assert spread < 1e-3, spread


@pytest.mark.parametrize("family", FAMILIES)
def test_pole_repair_runs_through_the_familys_inpainting(worker, family):
    plain = run(worker, request(family))
    repaired = run(worker, request(family, poles="repair"))
    assert repaired.state == "done", repaired.message
    assert repaired.timings["poles"] > 0
    changed = np.abs(repaired.outputs - plain.outputs).max(axis=2) > 1e-4
    assert changed[0].all() and changed[-1].all()  # both caps redrawn
    assert not changed[repaired.outputs.shape[0] // 2].any()  # the horizon kept


@pytest.mark.parametrize("family", FAMILIES)
def test_the_detail_pass_redraws_in_windows_across_the_seam(worker, family, tmp_path):
    upscaler = source_module("engine.upscaler")
    esrgan = source_module("setup.upscalers").save_esrgan(tmp_path / "tiny.safetensors")
    plain, detail = (upscaler.UpscalePlan(2, esrgan, "cpu", detail=strength) for strength in (0.0, 0.5))

    def upscaled(plan):
        return lambda image, resolved, job: upscaler.upscale_in_job(image, job, plan)

    jobs = [
        worker.submit(request(family), on_image=upscaled(plan), prepare=plan.prepare)
        for plan in (plain, detail)
    ]
    assert all(job.wait(300) for job in jobs) and [job.state for job in jobs] == ["done"] * 2, jobs[1].message
    upscaled, redrawn = jobs[0].outputs, jobs[1].outputs
    assert redrawn.shape == upscaled.shape == (128, 256, 3) and np.isfinite(redrawn).all()
    assert jobs[1].timings["detail"] > 0 and jobs[1].stage_log  # windows ran, each step counted
    change = np.abs(redrawn - upscaled).mean(axis=(0, 2))
    assert (change > 1e-3).all()  # every column redrawn, those at the seam included


def test_detail_windows_cover_every_pixel_and_wrap():
    window_detail = source_module("engine.window_detail")
    parts = window_detail.windows(128, 512, native=128, wrap_x=True, wrap_y=False)
    covered = np.zeros((128, 512), int)
    for rows, cols in parts:
        covered[np.ix_(rows, cols)] += 1
    assert covered.min() >= 1 and any(cols[0] > cols[-1] for _, cols in parts)  # one window crosses the seam
    weights = window_detail.feather(128)
    assert weights.min() > 0 and weights.max() == 1 and np.allclose(weights, weights[::-1])


@pytest.mark.parametrize(("family", "steps", "guidance"), [("zimage", 8, 0.0), ("flux2-klein", 4, 1.0)])
def test_unset_steps_and_guidance_are_the_familys_own_and_recorded(worker, family, steps, guidance):
    job = run(worker, request(family, steps=None, guidance=None))
    assert job.state == "done" and job.steps == job.step == steps
    assert (job.resolved.steps, job.resolved.guidance) == (steps, guidance)
    assert (job.metadata["steps"], job.metadata["guidance"]) == (str(steps), f"{guidance:g}")


def test_quantize_is_resolved_per_device_and_family_and_refused_in_words():
    quantize, families, errors = (
        source_module(name) for name in ("engine.quantize", "engine.families", "errors")
    )
    zimage, sdxl = families.named("zimage"), families.named("sdxl")
    gib = 2**30
    assert quantize.resolve("auto", "cpu", zimage, 6.15e9, None) == "none"  # bitsandbytes needs CUDA
    assert quantize.resolve("auto", "cuda", sdxl, 2.6e9, 8 * gib) == "none"  # UNets fit by their plan
    assert quantize.resolve("auto", "cuda", zimage, 6.15e9, 24 * gib) == "none"
    assert quantize.resolve("auto", "cuda", zimage, 6.15e9, 12 * gib) == "8bit"
    assert quantize.resolve("auto", "cuda", zimage, 6.15e9, 8 * gib) == "4bit"
    for device in ("cpu", "mps"):
        with pytest.raises(errors.InvalidRequest, match="needs an NVIDIA GPU"):
            quantize.resolve("4bit", device, zimage, 6.15e9, None)
    with pytest.raises(errors.InvalidRequest, match="transformer families"):
        quantize.resolve("8bit", "cuda", sdxl, 2.6e9, 8 * gib)


def test_a_quantised_job_on_the_cpu_fails_before_loading_and_auto_records_none(worker):
    refused = run(worker, request("zimage", quantize="4bit"))
    assert refused.state == "failed" and "needs an NVIDIA GPU" in refused.message
    assert "load" not in refused.timings
    done = run(worker, request("zimage"))
    assert done.metadata["quantize"] == "none" and worker.cache.loaded_key[-2] == "none"


def _transformer_file(family, folder):
    """The family's tiny transformer as one .safetensors file in diffusers' layout (a fine-tune as shared)."""
    from safetensors.torch import save_file

    pipe = source_module("setup.tiny_transformers").build_tiny_pipeline(family)
    path = folder / f"{family}-finetune.safetensors"
    save_file(
        {name: tensor.contiguous() for name, tensor in pipe.transformer.state_dict().items()}, str(path)
    )
    return path


@pytest.mark.parametrize("family", FAMILIES)
def test_a_transformer_file_is_known_by_its_tensor_names(family, tmp_path):
    transformer_file = source_module("engine.transformer_file")
    assert transformer_file.family_of(_transformer_file(family, tmp_path)) == family


def test_a_transformer_file_replaces_the_models_own_and_a_wrong_one_is_refused(worker, tmp_path):
    from safetensors.torch import save_file

    path = _transformer_file("zimage", tmp_path)
    plain, replaced = run(worker, request("zimage")), run(worker, request("zimage", transformer=str(path)))
    assert replaced.state == "done" and replaced.metadata["transformer"] == str(path)
    np.testing.assert_array_equal(replaced.outputs, plain.outputs)  # the same weights, from the file
    wrong = run(worker, request("zimage", transformer=str(_transformer_file("qwen-image", tmp_path))))
    assert wrong.state == "failed" and "is a qwen-image transformer but the model is zimage" in wrong.message
    unet = tmp_path / "unet.safetensors"
    save_file({"down_blocks.0.resnets.0.conv1.weight": torch.zeros(4, 4, 3, 3)}, str(unet))
    refused = run(worker, request("zimage", transformer=str(unet)))
    assert (
        refused.state == "failed"
        and "holds no Z-Image, FLUX.2 klein or Qwen-Image transformer" in refused.message
    )


def test_a_jobs_timings_split_every_stage_and_add_up(worker, tmp_path):
    """Load, text encoding, denoise, decode, HDR and files apart; "postprocess" is what they leave."""
    outputs, hdr = source_module("imaging.outputs"), source_module("imaging.hdr")

    def write(image, resolved, job):
        return outputs.write_world(image, tmp_path, "timed", job.metadata, hdr.HdrOptions())

    job = worker.submit(request("zimage"), on_image=write)
    assert job.wait(300) and job.state == "done", job.message
    stages = {"load", "encode", "denoise", "decode", "hdr", "files", "postprocess"}
    assert set(job.timings) == stages and min(job.timings.values()) >= 0
    assert job.timings["hdr"] > 0 and job.timings["files"] > 0
    assert "step 3 of 3" in job.stage_log  # a log sampling none of the steps still names each of them
    assert sum(job.timings.values()) <= job.elapsed + 1e-3  # disjoint: nothing counted twice


def test_a_gguf_transformer_is_known_by_its_tensor_names(tmp_path):
    """A GGUF file (as quantisations are shared) is read by its tensor names, never its file name."""
    gguf = pytest.importorskip("gguf")
    transformer_file = source_module("engine.transformer_file")
    pipe = source_module("setup.tiny_transformers").build_tiny_pipeline("qwen-image")
    path = tmp_path / "zimage-q4.gguf"  # named for another family on purpose
    writer = gguf.GGUFWriter(str(path), "qwen_image")
    for name, tensor in pipe.transformer.state_dict().items():
        writer.add_tensor(name, tensor.float().numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert transformer_file.family_of(path) == "qwen-image"


def test_four_and_eight_bit_configs_quantise_the_transformer_and_text_encoder():
    pytest.importorskip("bitsandbytes")
    quantize = source_module("engine.quantize")
    assert quantize.pipeline_config("none") is None
    for mode, backend in (("8bit", "bitsandbytes_8bit"), ("4bit", "bitsandbytes_4bit")):
        config = quantize.pipeline_config(mode)
        assert config.quant_backend == backend
        assert set(config.components_to_quantize) == {"transformer", "text_encoder"}


@pytest.mark.parametrize("family", FAMILIES)
def test_group_offloading_moves_blocks_and_changes_no_pixel(family):
    """The "group" plan's placement, on the CPU (onload and offload both there): the hooks are on the
    transformer and text encoder, not the VAE, and the image is the resident pipeline's, bit for bit."""
    from diffusers import DiffusionPipeline
    from diffusers.hooks.group_offloading import _get_group_onload_device

    devices, images = source_module("engine.devices"), []
    for placement in ("device", "group"):
        pipe = DiffusionPipeline.from_pretrained(request(family).model)
        assert devices.place_pipeline(pipe, "cpu", placement) == (
            "group offload" if placement == "group" else "cpu"
        )
        options = {"prompt": "a red sky", "num_inference_steps": 2, "width": 64, "height": 64}
        images.append(pipe(**options, output_type="np", generator=torch.Generator().manual_seed(1)).images[0])
    assert _get_group_onload_device(pipe.transformer) == torch.device("cpu")
    with pytest.raises(ValueError):
        _get_group_onload_device(pipe.vae)  # the VAE stays put: the tiled decode runs its layers itself
    np.testing.assert_array_equal(images[0], images[1])


def test_a_stage_that_moves_the_model_off_has_the_cache_forget_it_even_on_failure():
    """A prop's shape stage may move the image model off the GPU (job.release_model): the cache must not
    hand that pipeline to the next job, whether the post-processing then finished or failed."""
    worker = source_module("engine.worker").Worker()
    errors = source_module("errors")

    def moved_off(fail):
        def on_image(image, resolved, job):
            job.release_model = True
            if fail:
                raise errors.GenerationFailed("the shape model found no object in the image")
            return image

        return on_image

    try:
        for fail in (False, True):
            job = worker.submit(request("zimage"), on_image=moved_off(fail))
            assert job.wait(300) and job.state == ("failed" if fail else "done"), job.message
            assert worker.cache.loaded_key is None
    finally:
        worker.shutdown()
