"""The server takes names, never paths, for every option that names a model or file, and reports only
the client's names for them (server/wire.py against the marks in generation/options.py). No Ray here."""

import re
import sys

import pytest
from conftest import ROOT, source_module

source_module("options")  # `generation` from this checkout, as the server imports it
sys.path.insert(0, str(ROOT))
from server import wire  # noqa: E402
from server.models import AllowedModels  # noqa: E402

KINDS = ("world", "material", "depth", "mesh")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A models folder as a server is given: a model, a VAE, an upscaler file and a depth model."""
    folder = tmp_path_factory.mktemp("served")
    (folder / "tiny-sd").mkdir()
    (folder / "tiny-sd" / "model_index.json").write_text("{}")
    (folder / "vaes" / "tiny-vae").mkdir(parents=True)
    (folder / "vaes" / "tiny-vae" / "config.json").write_text("{}")
    (folder / "upscalers").mkdir()
    (folder / "upscalers" / "tiny-esrgan.safetensors").write_bytes(b"")
    (folder / "depth" / "tiny-depth").mkdir(parents=True)
    (folder / "depth" / "tiny-depth" / "config.json").write_text("{}")
    return folder


def parse(kind: str, models, **values):
    body = {"kind": kind, **values}
    if kind in wire.DEPTH_KINDS:
        return wire.parse_depth_job(body, models)
    return wire.parse_job(body, models)


def marked_cases():
    options = source_module("options")
    for name in options.NAMES_A_FILE:
        for kind in KINDS:
            if kind in options.BY_NAME[name].kinds:
                yield name, kind


@pytest.mark.parametrize(("name", "kind"), list(marked_cases()))
def test_every_option_that_names_a_file_refuses_a_path(served, name, kind):
    options = source_module("options")
    errors = source_module("errors")
    path = "/srv/models/tiny-sd"  # a path, even to something the server has, is never taken
    value = [path] if options.BY_NAME[name].type == "loras" else path
    extra = {"prompt": "x", "steps": 2} if kind in ("world", "material") else {}
    with pytest.raises(errors.InvalidRequest) as refused:
        parse(kind, AllowedModels(served), **extra, **{name: value})
    assert str(refused.value).startswith(name), str(refused.value)
    assert str(served) not in str(refused.value)  # the client's value may be echoed, the server's never


def test_the_marks_cover_every_option_that_names_a_file():
    options = source_module("options")
    assert set(options.NAMES_A_FILE) >= {"model", "vae", "upscaler", "depth_model", "loras", "depth"}
    for option in options.OPTIONS:  # a new option whose help speaks of files, folders or ids is marked
        if re.search(r"\b(file|folder|id)\b", option.help) and option.type in (str, "loras"):
            assert option.names_a_file, option.name
    for name in options.MARK_WHEN_DECLARED:
        assert name not in options.BY_NAME or options.BY_NAME[name].names_a_file, name


def test_what_a_client_sees_carries_its_names_never_the_servers_paths(served):
    models = AllowedModels(served)
    spec = parse("world", models, prompt="x", steps=2, width=128, height=64, model="tiny-sd", vae="tiny-vae",
                 upscale=2, upscaler="tiny-esrgan")  # fmt: skip
    assert str(served) in spec.request.model and str(served) in spec.request.vae  # where it loads from
    written = {**spec.request.to_metadata(), **spec.upscale.metadata()}  # what the worker records
    seen = wire.client_metadata(written, spec.names)
    assert str(served) not in str(seen)
    assert (seen["model"], seen["vae"], seen["upscaler"], seen["loras"]) == (
        "tiny-sd",
        "tiny-vae",
        "tiny-esrgan",
        "",
    )
    message = f"could not load {spec.request.vae}/diffusion_pytorch_model.safetensors"
    assert (
        wire.scrub(message, spec.locations) == "could not load tiny-vae/diffusion_pytorch_model.safetensors"
    )
    depth = parse("mesh", models, depth_model="tiny-depth")
    assert str(served) in depth.source and depth.names["depth_model"] == "tiny-depth"
    seen = wire.client_metadata({"depth_model": depth.source, "mode": "mesh"}, depth.names)
    assert seen == {"depth_model": "tiny-depth", "mode": "mesh"}


@pytest.mark.parametrize("device", ["cpu", "cuda", "mps"])
def test_the_server_decides_the_device(served, device):
    errors = source_module("errors")
    with pytest.raises(errors.InvalidRequest, match="this server decides where its jobs run"):
        parse("world", AllowedModels(served), prompt="x", model="tiny-sd", device=device)
    assert parse("world", AllowedModels(served), prompt="x", model="tiny-sd", device="auto").request
