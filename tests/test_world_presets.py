"""World presets: a model trained on 360° panoramas, its trigger words, size and LoRA, in world mode only."""

import importlib

import bpy
import pytest
from scene_helpers import cache_repo, new_scene

FAST = {"steps": 2, "seed": 3, "device": "cpu"}


@pytest.fixture
def preset(addon, tiny_sd, tmp_path, monkeypatch):
    """A tiny LoRA laid out like a preset: its repo and its base in the Hugging Face cache."""
    presets = importlib.import_module(addon.__name__ + ".generation.setup.world_presets")
    tiny_models = importlib.import_module(addon.__name__ + ".generation.setup.tiny_models")
    cache_repo("promptscape-test/tiny-base", tiny_sd)
    cache_repo("promptscape-test/tiny-360-lora", tiny_models.write_tiny_lora(tiny_sd, tmp_path).parent)
    # As a finished Download Model does: the next question scans the cache again (a scan younger than
    # 5 s, from an earlier test, would not see these repos yet).
    importlib.import_module(addon.__name__ + ".generation.setup.model_catalog").forget_cache_scan()
    tiny = presets.WorldPreset(
        "tiny-360", "Tiny 360", "promptscape-test/tiny-360-lora", "promptscape-test/tiny-base",
        "qxj 360 panorama", 256, 128, "test only",
    )  # fmt: skip
    monkeypatch.setattr(presets, "PRESETS", (tiny,))
    prefs = bpy.context.preferences.addons[addon.__name__].preferences
    assert prefs.world_model == "auto"
    yield tiny
    prefs.world_model = "auto"


def test_a_world_uses_the_preset_a_material_does_not(api, preset, tiny_sd):
    world = api.generate_world("a meadow", scene=new_scene(), **FAST)
    request = world["promptscape"]
    assert request["prompt"] == "qxj 360 panorama, a meadow"  # stored as sent
    assert (request["width"], request["height"]) == ("256", "128")
    assert request["model"] == preset.base and request["loras"] == f"{preset.repo_id}:1"
    bpy.ops.mesh.primitive_cube_add()
    material = api.generate_material("bricks", objects=[bpy.context.active_object], model=str(tiny_sd),
                                     width=64, height=64, **FAST)  # fmt: skip
    assert material["promptscape"]["prompt"] == "bricks" and material["promptscape"]["loras"] == ""


def test_an_explicit_model_or_size_wins(api, preset, tiny_sd):
    world = api.generate_world(
        "a meadow", scene=new_scene(), model=str(tiny_sd), width=128, height=64, **FAST
    )
    assert world["promptscape"]["prompt"] == "a meadow" and world["promptscape"]["loras"] == ""
    sized = api.generate_world("a dune", scene=new_scene(), width=128, height=64, **FAST)
    assert (sized["promptscape"]["width"], sized["promptscape"]["prompt"]) == (
        "128",
        "qxj 360 panorama, a dune",
    )


def test_the_plain_choice_and_the_panels_words(api, addon, preset, tiny_sd):
    from test_extension import draw

    prefs = bpy.context.preferences.addons[addon.__name__].preferences
    scene = new_scene()
    scene.promptscape.mode = "WORLD"
    assert "World model: Tiny 360" in draw(bpy.types.PROMPTSCAPE_PT_main, bpy.context)
    prefs.world_model = "plain"
    texts = draw(bpy.types.PROMPTSCAPE_PT_main, bpy.context)
    assert "Plain models draw wide pictures, not panoramas: download a 360 model" in texts
    prefs.model = str(tiny_sd)
    try:
        world = api.generate_world("a meadow", scene=scene, width=128, height=64, **FAST)
    finally:
        prefs.property_unset("model")
    assert world["promptscape"]["prompt"] == "a meadow"


def test_the_presets_name_base_trigger_size_and_licence(addon):
    presets = importlib.import_module(addon.__name__ + ".generation.setup.world_presets")
    for preset in presets.PRESETS:
        assert preset.trigger and preset.licence and preset.width == 2 * preset.height
        assert preset.base.count("/") == 1 and preset.repo_id.count("/") == 1
    listed = {preset.repo_id for preset in presets.PRESETS}
    assert "ProGamerGov/sdxl-360-diffusion" in listed and "artificialguybr/360Redmond" in listed
    assert "ProGamerGov/360-Diffusion-LoRA-sd-v1-5" in listed
    # Best first (Automatic takes the first downloaded): the transformers' LoRAs before SDXL's and SD's.
    assert [preset.key for preset in presets.PRESETS][:2] == ["qwen-360", "zimage-360"]
