"""Test harness: real Blender (the bpy module) with Promptscape installed the way a user installs it.

Before bpy is imported, Blender's user folders are pointed at a temp folder (nothing touches ~), and
Hugging Face is put offline: a test that reaches for the network fails.
"""

import atexit
import importlib
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_session_dir = Path(tempfile.mkdtemp(prefix="promptscape-tests-"))
# Removed at exit, after Blender's own exit handlers (registered later, so run first): about 0.5 GB a run.
atexit.register(shutil.rmtree, _session_dir, ignore_errors=True)
os.environ["BLENDER_USER_RESOURCES"] = str(_session_dir / "blender-user")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = str(_session_dir / "hf-home")
os.environ["TRANSFORMERS_OFFLINE"] = "1"


import blender_tools  # noqa: E402  (after the environment above is set)

# Tiny models are rebuilt only when their builder's version changes, so keep them between runs.
TINY_MODEL_CACHE = Path(os.environ.get("PROMPTSCAPE_TEST_CACHE", ROOT / ".cache" / "tiny-models"))


@pytest.fixture(scope="session", autouse=True)
def no_network():
    """Refuse every connection that leaves the machine."""
    real_connect = socket.socket.connect

    def guarded_connect(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"test tried to reach the network: {address!r}")
        return real_connect(sock, address)

    socket.socket.connect = guarded_connect
    yield
    socket.socket.connect = real_connect


@pytest.fixture(scope="session")
def extension_zip(tmp_path_factory) -> Path:
    """The extension built with Blender's own builder, as it would be published."""
    return blender_tools.build_zip(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def addon(extension_zip):
    """The installed, enabled extension module: `bl_ext.user_default.promptscape`."""
    yield blender_tools.install_extension(extension_zip)
    # Stop any worker thread before Blender's module is torn down with the process.
    worker = sys.modules.get(blender_tools.MODULE + ".generation.engine.worker")
    if worker is not None and hasattr(worker, "shutdown_worker"):
        worker.shutdown_worker()


def _our_module(name: str):
    """A fixture giving one of our modules as installed: tests reach the code the way Blender loads it."""

    @pytest.fixture(scope="session")
    def module(addon):
        return importlib.import_module(f"{addon.__name__}.{name}")

    return module


api = _our_module("api")
cli = _our_module("cli")
errors = _our_module("generation.errors")
hdr = _our_module("generation.imaging.hdr")
outputs = _our_module("generation.imaging.outputs")
pbr = _our_module("generation.imaging.pbr")
quality = _our_module("generation.imaging.quality")


@pytest.fixture()
def fresh_file():
    """After the test, an empty file again: for tests that load or save .blend files."""
    yield
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)


@pytest.fixture()
def worker(gen):
    """The extension's worker thread, with no step hook left behind; `gen` is the test module's modules."""
    worker = gen.worker.get_worker()
    yield worker
    worker.step_hook = None


@pytest.fixture(scope="session")
def tiny_sd(addon) -> Path:
    """A tiny random-weight SD1.x-style diffusers folder, built offline."""
    tiny_models = importlib.import_module(addon.__name__ + ".generation.setup.tiny_models")
    return tiny_models.ensure_tiny_pipeline("sd", TINY_MODEL_CACHE)


@pytest.fixture(scope="session")
def tiny_sdxl(addon) -> Path:
    """A tiny random-weight SDXL-style diffusers folder, built offline."""
    tiny_models = importlib.import_module(addon.__name__ + ".generation.setup.tiny_models")
    return tiny_models.ensure_tiny_pipeline("sdxl", TINY_MODEL_CACHE)


@pytest.fixture(scope="session")
def tiny_transformers(addon) -> dict[str, Path]:
    """Tiny random-weight Z-Image, FLUX.2 klein and Qwen-Image diffusers folders, by family, built offline."""
    tiny = importlib.import_module(addon.__name__ + ".generation.setup.tiny_transformers")
    return {family: tiny.ensure_tiny_pipeline(family, TINY_MODEL_CACHE) for family in tiny.FAMILIES}


@pytest.fixture(scope="session")
def tiny_depth(addon) -> Path:
    """A tiny random-weight Depth Anything V2 model folder (transformers), built offline."""
    depth_models = importlib.import_module(addon.__name__ + ".generation.setup.depth_models")
    return depth_models.ensure_depth_model("tiny", TINY_MODEL_CACHE)


@pytest.fixture(scope="session")
def tiny_esrgan(addon, tmp_path_factory) -> Path:
    """A tiny random-weight x4 ESRGAN (1 RRDB block, 8 features) as .safetensors, built offline."""
    upscalers = importlib.import_module(addon.__name__ + ".generation.setup.upscalers")
    return upscalers.save_esrgan(tmp_path_factory.mktemp("upscalers") / "tiny-esrgan.safetensors")


@pytest.fixture(scope="session")
def tiny_triposr(addon, tmp_path_factory) -> Path:
    """A tiny TripoSR folder as a download lands (config.yaml, model.ckpt) that always finds an object."""
    tiny_props = importlib.import_module(addon.__name__ + ".generation.setup.tiny_props")
    return tiny_props.save_tiny_triposr(tmp_path_factory.mktemp("props") / "TripoSR", "blob")
