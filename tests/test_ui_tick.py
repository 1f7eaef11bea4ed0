"""The UI's side of a job, driven by pumping the main-thread tick as Blender's timer would."""

import importlib
import time

import bpy
import pytest
from scene_helpers import new_scene, wait_until

FAST = {"steps": 3, "width": 128, "height": 64, "device": "cpu"}


@pytest.fixture(scope="module")
def modules(addon):
    name = addon.__name__
    return importlib.import_module(name + ".flow.start"), importlib.import_module(name + ".flow.runner")


def pump(runner, tasks, timeout=120):
    """Call tick() every 10 ms like the UI timer until the tasks end; return the states seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while not all(task.finished for task in tasks):
        assert time.monotonic() < deadline, "tasks did not finish"
        runner.tick()
        job = tasks[0].job
        seen.append((job.state, job.step))
        time.sleep(0.01)
    return seen


def test_progress_advances_and_queued_jobs_apply_in_order(modules, tiny_sd):
    start, runner = modules
    scene = new_scene()
    first = start.start_world(scene, prompt="first sky", model=str(tiny_sd), seed=1, **FAST)
    second = start.start_world(scene, prompt="second sky", model=str(tiny_sd), seed=2, **FAST)
    assert second.job.state == "queued"
    order = []
    first.on_finish.append(lambda task: order.append("first"))
    second.on_finish.append(lambda task: order.append("second"))
    seen = pump(runner, [first, second])
    steps = [step for state, step in seen if state == "running"]
    # Sampled every 10 ms, so a step can be missed, but never seen going backwards; the job saw them all.
    assert steps and steps == sorted(steps) and first.job.step == first.job.steps == FAST["steps"]
    assert order == ["first", "second"] and first.applied and second.applied
    assert scene.world["promptscape"]["prompt"] == "second sky"
    assert runner.tasks() == []


def test_cancel_operator_stops_running_and_queued(modules, tiny_sd):
    start, runner = modules
    scene = new_scene()
    before = scene.world
    tasks = [
        start.start_world(scene, prompt=f"sky {i}", model=str(tiny_sd), **{**FAST, "steps": 100})
        for i in range(2)
    ]
    wait_until(lambda: tasks[0].job.state not in ("queued", "loading"), what="the first job starting")
    assert bpy.ops.promptscape.cancel() == {"FINISHED"}
    pump(runner, tasks, timeout=30)
    assert [task.job.state for task in tasks] == ["cancelled", "cancelled"]
    assert not any(task.applied for task in tasks) and scene.world == before


def test_tick_never_applies_a_task_of_another_file(modules, tiny_sd):
    # The key here is set as if another file were open; test_reliability opens a real one, which the
    # load_pre handler notices.
    start, runner = modules
    task = start.start_world(new_scene(), prompt="old file sky", model=str(tiny_sd), seed=3, **FAST)
    task.file_key = "load-another"
    pump(runner, [task])
    assert not task.applied and "history" in task.error


def test_the_sidebar_shows_progress_preview_and_queue_while_running(modules, tiny_sd, addon):
    from test_extension import draw

    start, runner = modules
    previews = importlib.import_module(addon.__name__ + ".panels.previews")
    scene = new_scene()
    tasks = [
        start.start_world(scene, prompt=f"sky {i}", model=str(tiny_sd), **{**FAST, "steps": 60})
        for i in range(2)
    ]
    wait_until(lambda: tasks[0].job.preview is not None or tasks[0].job.done, what="a preview")
    assert not tasks[0].job.done
    texts = draw(bpy.types.PROMPTSCAPE_PT_main, bpy.context)
    assert "World: sky 0" in texts and "World: sky 1" in texts and "promptscape.cancel" in texts
    assert any(text.startswith("Memory plan: full") for text in texts)  # the running job's plan
    assert any(text.startswith("Memory ") and "GB lowest" in text for text in texts)  # the estimate
    previews.live_icon(tasks[0].job)  # the preview becomes the icon's pixels (ids need a window)
    height, width = tasks[0].job.preview.shape[:2]
    assert tuple(previews._collection["live"].image_size) == (width, height)
    for task in tasks:
        task.cancel()
    pump(runner, tasks)


def test_the_history_lists_results_with_their_actions(modules, tiny_sd):
    from test_extension import draw

    start, runner = modules
    task = start.start_world(new_scene(), prompt="remembered sky", model=str(tiny_sd), seed=4, **FAST)
    pump(runner, [task])
    texts = draw(bpy.types.PROMPTSCAPE_PT_history, bpy.context)
    assert "remembered sky" in texts and "Seed 4" in texts
    assert "Re-apply" in texts and "Use Settings" in texts
    main = draw(bpy.types.PROMPTSCAPE_PT_main, bpy.context)
    assert "prop:default_value" in main  # the world's rotation, once a world of ours is there
    assert any(text.startswith("Last memory plan: full") for text in main)
    assert "prop:memory" in main  # the memory option in the sidebar's advanced settings


def test_a_failing_finish_step_still_ends_the_task(modules, tiny_sd):
    start, runner = modules
    task = start.start_world(new_scene(), prompt="sky", model=str(tiny_sd), **FAST)
    task.on_finish.append(lambda task: 1 / 0)  # a bug in a callback must not hang whoever waits
    assert runner.wait(task, timeout=60)
    assert task.finished and "division by zero" in task.error
