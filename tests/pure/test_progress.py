"""One wording of a job's progress for every surface: steps, then each later stage's own units."""

from types import SimpleNamespace

import pytest


@pytest.fixture(scope="module")
def progress():
    from conftest import source_module

    return source_module("engine.progress")


def job(state, stage="", step=0, steps=0):
    return SimpleNamespace(state=state, stage=stage, step=step, steps=steps)


def test_denoising_counts_steps_then_a_later_stage_counts_its_own_units(progress):
    denoising = progress.of(job("running", "generating", 2, 4))
    assert (denoising.text, denoising.fraction, denoising.denoising) == ("step 2 of 4", 0.5, True)
    tiles = progress.of(job("postprocessing", "upscaling, tile 3 of 8", 3, 8))
    assert (tiles.text, tiles.fraction, tiles.denoising) == ("upscaling, tile 3 of 8", 0.375, False)
    assert tiles.counted() == ("upscaling, tile ", 3, 8)
    step, steps = tiles  # job.progress still unpacks as (step, steps)
    assert (step, steps, tiles[0]) == (3, 8, 3)


def test_a_state_without_a_stage_is_said_in_words(progress):
    assert progress.of(job("queued", steps=4)).text == "waiting"
    assert progress.of(job("loading", steps=4)).text == "loading the model"
    written = progress.of(job("postprocessing", "", 4, 4))  # the worker clears the denoising stage
    assert (written.text, written.fraction) == ("making HDR and maps", 1.0)
    assert progress.of(job("running", "repairing poles", 4, 4)).text == "repairing poles"
    assert progress.of(job("done", "", 4, 4)).counted() is None


def test_the_stage_log_keeps_every_stage_a_sampler_could_miss(progress):
    class Job:
        stage = progress.StageLog()

    job = Job()
    assert job.stage == ""
    for stage in ("generating", "upscaling, tile 1 of 2", "upscaling, tile 2 of 2", "upscaling, tile 2 of 2"):
        job.stage = stage
    assert job.stage == "upscaling, tile 2 of 2"
    assert job.stage_log == ["generating", "upscaling, tile 1 of 2", "upscaling, tile 2 of 2"]
