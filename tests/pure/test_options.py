"""The one declaration of every option: what it accepts, and that its table is consistent."""

from pathlib import Path

import pytest


def test_every_kind_has_its_options(options):
    world = {option.name for option in options.for_kind("world")}
    assert {"prompt", "seed", "steps", "model", "exposure", "sun", "hdr_width", "strength", "pack"} <= world
    assert "tiling" not in world and "seamless" not in world
    from_image = {option.name for option in options.for_kind("world_from_image")}
    assert "exposure" in from_image and "model" not in from_image and "prompt" not in from_image
    assert "seamless" in {option.name for option in options.for_kind("material")}
    assert "seamless" not in {option.name for option in options.for_kind("material_from_image")}
    for kind in ("world", "world_from_image", "material", "material_from_image"):
        assert {"upscale", "upscaler"} <= {option.name for option in options.for_kind(kind)}
    assert not options.BY_NAME["hdr_width"].sidebar and "Deprecated" in options.BY_NAME["hdr_width"].help


def test_declarations_are_consistent(options):
    for option in options.OPTIONS:
        assert option.kinds and option.kinds <= options.KINDS, option.name
        assert option.help and not option.help.endswith("."), option.name
        if option.choices:
            assert option.default in option.choices, option.name
            assert not option.choice_labels or len(option.choice_labels) == len(option.choices)
        elif option.low is not None and option.default is not None:
            assert option.low <= option.default <= option.high, option.name
    assert len(options.BY_NAME) == len(options.OPTIONS)  # one declaration per name


def test_values_are_checked_and_normalised(options, errors):
    checked = options.check(
        {"steps": 30, "guidance": 5, "sun": "OFF", "model": Path("/models/sd"), "seed": None}, "world"
    )
    assert checked == {"steps": 30, "guidance": 5.0, "sun": "off", "model": "/models/sd", "seed": None}
    assert isinstance(checked["guidance"], float)
    assert options.check({"height_mode": "displacement"}, "material")["height_mode"] == "DISPLACEMENT"


@pytest.mark.parametrize(
    ("kind", "values", "words"),
    [
        ("world", {"tiling": 2.0}, "Unknown option tiling for a world"),
        ("world_from_image", {"model": "x"}, "Unknown option model for a world from image"),
        ("world", {"steps": 2.5}, "steps must be a whole number"),
        ("world", {"steps": True}, "steps must be a whole number"),
        ("world", {"steps": 0}, "steps must be a whole number from 1 to 150"),
        ("world", {"seed": -1}, "seed must be a whole number from 0 to 2147483647, not -1"),
        ("world", {"prompt": "sky " * 501}, "prompt is 2004 characters long; the most is 2000"),
        ("world", {"guidance": float("nan")}, "guidance must be a number from 0 to 100"),
        ("world", {"guidance": "high"}, "guidance must be a number"),
        ("world", {"sun": "bright"}, "sun must be one of auto, on, off"),
        ("world", {"hdr_width": 1000}, "hdr_width must be one of 0, 2048, 4096, 8192"),
        ("material", {"upscale": 3}, "upscale must be one of 1, 2, 4"),
        ("material", {"seamless": "yes"}, "seamless must be True or False"),
        ("material", {"tiling": 0}, "tiling must be a number from 0.001 to 10000"),
        ("world", {"loras": "style.safetensors"}, "loras: give a list of LoRAs"),
        ("world", {"prompt": 42}, "prompt must be text"),
    ],
)
def test_bad_values_are_refused_in_words(options, errors, kind, values, words):
    with pytest.raises(errors.InvalidRequest, match=words):
        options.check(values, kind)


def test_an_unknown_kind_is_refused(options, errors):
    with pytest.raises(errors.InvalidRequest, match="Unknown kind of job 'video'"):
        options.for_kind("video")
