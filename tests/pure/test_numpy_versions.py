"""Same request, same files, whatever numpy Blender ships: the Blender 5.0 environment (numpy 1) writes
reference outputs; this environment reproduces them (under Blender 5.2's numpy 2 when run there)."""

import os
import subprocess
from pathlib import Path

import numpy as np
import OpenEXR
import pytest
from PIL import Image
from reference_outputs import generate, model_cache, model_folder, postprocess

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_PYTHON = ROOT / ".venv" / "bin" / "python"  # Blender 5.0's environment: numpy 1.26


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    if not REFERENCE_PYTHON.exists():
        pytest.fail("The reference outputs come from Blender 5.0's environment: run `make setup` first")
    out = tmp_path_factory.mktemp("reference")
    cache = model_cache(ROOT)
    done = subprocess.run(
        [str(REFERENCE_PYTHON), str(Path(__file__).with_name("reference_outputs.py")), str(out), str(cache)],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def exr_pixels(path: Path) -> np.ndarray:
    with OpenEXR.File(str(path)) as exr:
        return np.asarray(exr.channels()["RGB"].pixels, dtype=np.float64)


def png_pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        scale = 65535.0 if image.mode.startswith("I") else 255.0
        return np.asarray(image, dtype=np.float64) / scale


def test_generation_gives_the_reference_images(reference, tmp_path):
    generate(
        model_folder(Path(os.environ.get("PROMPTSCAPE_TEST_CACHE", ROOT / ".cache" / "tiny-models"))),
        tmp_path,
    )
    for mode in ("world", "texture"):
        ours, theirs = np.load(tmp_path / f"{mode}.npy"), np.load(reference / f"{mode}.npy")
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() <= 1 / 255, mode  # 8-bit images within one level


def test_postprocessing_writes_the_reference_files(reference, tmp_path):
    postprocess(reference, tmp_path)
    radiance, expected = exr_pixels(tmp_path / "world.exr"), exr_pixels(reference / "world.exr")
    # Relative to each value, except values a million times under the median (the darkest ground, where
    # the two numpys' last-bit differences are a large fraction of almost nothing).
    np.testing.assert_allclose(radiance, expected, rtol=1e-4, atol=1e-6 * float(np.median(expected)))
    maps = sorted(path.name for path in reference.glob("*.png"))
    assert len(maps) == 7  # world preview + six material files
    for name in maps:
        ours, theirs = png_pixels(tmp_path / name), png_pixels(reference / name)
        assert np.abs(ours - theirs).max() <= 1 / 255 + 1e-9, name
