"""Test helpers for the Blender side: files made with independent writers, renders read back."""

import os
import shutil
import time
from pathlib import Path

import bpy
import numpy as np
import OpenEXR
from PIL import Image


def cache_repo(repo_id: str, folder: Path) -> Path:
    """Put a folder in the session's Hugging Face cache (HF_HOME) as the main revision of `repo_id`."""
    hub = Path(os.environ["HF_HOME"]) / "hub" / ("models--" + repo_id.replace("/", "--"))
    snapshot = hub / "snapshots" / "89abcdef0123456789abcdef0123456789abcdef"
    if not snapshot.exists():
        shutil.copytree(folder, snapshot)
        (hub / "refs").mkdir(parents=True, exist_ok=True)
        (hub / "refs" / "main").write_text(snapshot.name)
    return hub


def wait_until(condition, timeout: float = 60.0, what: str = "the condition"):
    """Poll `condition()` until it is true; fail (never hang) when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g} s"
        time.sleep(0.002)


def write_exr(path: Path, rgb: np.ndarray) -> Path:
    """A float32 RGB EXR written by the OpenEXR package (not by Promptscape), rows top first."""
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, {"RGB": np.ascontiguousarray(rgb, dtype=np.float32)}).write(str(path))
    return path


def read_exr(path: Path) -> np.ndarray:
    channels = OpenEXR.File(str(path)).channels()
    for group in ("RGB", "RGBA"):
        if group in channels:
            return channels[group].pixels[..., :3]
    return np.stack([channels[name].pixels for name in "RGB"], axis=-1)


def write_png(path: Path, rgb: np.ndarray, bits: int = 8) -> Path:
    """An 8-bit RGB or 16-bit grey PNG written by Pillow from floats in [0, 1]."""
    if bits == 8:
        Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)
    else:
        Image.fromarray((np.clip(rgb, 0, 1) * 65535 + 0.5).astype(np.uint16)).save(path)
    return path


def sky_panorama(width: int = 256, height: int = 128) -> np.ndarray:
    """A smooth, periodic LDR sky: blue above, brown ground below, a clipped sun at 45° elevation."""
    y = (np.arange(height) + 0.5) / height
    x = (np.arange(width) + 0.5) / width
    sky = np.where(y[:, None, None] < 0.5, [0.35, 0.55, 0.9], [0.35, 0.28, 0.2]) * np.ones((1, width, 1))
    sky = sky + 0.05 * np.sin(2 * np.pi * x)[None, :, None]
    yy, xx = np.meshgrid(y, x, indexing="ij")
    sun = ((xx - 0.5) * 2) ** 2 + ((yy - 0.25) * 1) ** 2 < 0.0004
    sky[sun] = 1.0
    return sky.astype(np.float32)


def new_scene(name: str = "Test"):
    """A fresh empty scene made current, so tests do not see each other's worlds and objects."""
    scene = bpy.data.scenes.new(name)
    bpy.context.window.scene = scene
    return scene


def render(scene, path: Path, size: int = 32, samples: int = 4) -> np.ndarray:
    """A small Cycles CPU render of `scene`, read back as linear float RGB with rows top first."""
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = "Standard"
    scene.render.image_settings.file_format = "OPEN_EXR"
    scene.render.image_settings.color_depth = "32"
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True, scene=scene.name)
    return read_exr(path)
