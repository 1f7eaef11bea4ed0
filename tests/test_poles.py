"""Pole repair in a real generation: the loaded model redraws the caps through diffusers' inpainting."""

import importlib
import time
from pathlib import Path

import bpy
import numpy as np
import pytest
from PIL import Image
from scene_helpers import new_scene, wait_until

WORLD = {"steps": 3, "width": 256, "height": 128, "seed": 4, "device": "cpu"}


def preview_pixels(world) -> np.ndarray:
    """The 8-bit panorama the world was made from (its preview is the LDR panorama at this size)."""
    exr = Path(bpy.path.abspath(world.node_tree.nodes["Promptscape Environment"].image.filepath))
    with Image.open(exr.with_name(exr.stem + "-preview.png")) as image:
        return np.asarray(image.convert("RGB"))


@pytest.mark.parametrize("kind", ["sd", "sdxl"])
def test_the_model_redraws_the_caps_and_nothing_else(api, addon, kind, request):
    model = str(request.getfixturevalue(f"tiny_{kind}"))
    poles = importlib.import_module(addon.__name__ + ".generation.imaging.poles")
    off = api.generate_world("a canyon", scene=new_scene(), model=model, poles="off", **WORLD)
    repaired = api.generate_world("a canyon", scene=new_scene(), model=model, **WORLD)
    assert repaired["promptscape"]["poles"] == "repair" and off["promptscape"]["poles"] == "off"
    before, after = preview_pixels(off), preview_pixels(repaired)
    latitude = 90.0 - (np.arange(128) + 0.5) / 128 * 180.0
    untouched = np.abs(latitude) < poles.CAP_LATITUDE - poles.FEATHER_DEG
    assert (after[untouched] == before[untouched]).all()  # bit for bit outside the caps
    caps = np.abs(latitude) >= 75.0
    assert np.abs(after[caps].astype(int) - before[caps]).mean() > 1.0  # the model redrew them
    # The poles are single directions again: each pole row is one colour.
    for row in (after[0], after[-1]):
        assert np.ptp(row.astype(int), axis=0).max() <= 1


def test_cancel_while_repairing_poles_leaves_the_scene_as_it_was(api, errors, addon, tiny_sd):
    scene = new_scene()
    world_before, worlds = scene.world, len(bpy.data.worlds)
    generation = api.generate_world(
        "a cave", scene=scene, model=str(tiny_sd), wait=False, **{**WORLD, "steps": 60}
    )
    job = generation._task.job
    wait_until(lambda: job.stage == "repairing poles" or job.done, timeout=600, what="the pole repair")
    assert job.stage == "repairing poles" and not job.done
    started = time.monotonic()
    generation.cancel()
    with pytest.raises(errors.Cancelled):
        generation.result(timeout=60)
    assert time.monotonic() - started < 30  # stopped within one inpainting step, not after the repair
    assert scene.world == world_before and len(bpy.data.worlds) == worlds


def test_world_from_image_blends_poles_and_refuses_a_repair(api, errors, tmp_path):
    from scene_helpers import write_png

    path = write_png(tmp_path / "pano.png", np.full((32, 64, 3), 0.4, np.float32))
    world = api.world_from_image(str(path), scene=new_scene())
    assert world["promptscape"]["poles"] == "blend"
    with pytest.raises(errors.InvalidRequest, match="for generated worlds"):
        api.world_from_image(str(path), scene=new_scene(), poles="repair")
