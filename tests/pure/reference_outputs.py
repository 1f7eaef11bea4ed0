"""Write Promptscape's outputs for a fixed request, so two environments can be compared file by file.

    python tests/pure/reference_outputs.py OUT_DIR MODEL_CACHE

Run by the pure suite with the Blender 5.0 environment's Python (numpy 1) and compared in the running one
(numpy 2 under Blender 5.2): the generated images from the same tiny model folder and seed, and the files
that post-processing writes from the *reference* images, so a difference in HDR, PBR or file writing is
not hidden behind (or blamed on) a difference in torch's arithmetic.
"""

import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from conftest import source_module

REQUESTS = {  # mode -> size; a world and a tileable texture, 4 steps, seed 7
    "world": (128, 64),
    "texture": (64, 64),
}


def generate(model: Path, out: Path):
    """Generate both images with the worker, as the extension does; save them as float32 .npy files."""
    import torch

    torch.set_num_threads(1)  # one thread in both environments: the same order of float sums
    worker = source_module("engine.worker")
    request = source_module("engine.request")
    for mode, (width, height) in REQUESTS.items():
        fields = {"prompt": "a reference sky", "seed": 7, "steps": 4, "model": str(model), "mode": mode}
        sized = request.GenerationRequest(
            **fields, width=width, height=height, device="cpu", precision="fp32"
        )
        job = worker.get_worker().submit(sized)
        job.wait(300)
        assert job.state == "done", job.message
        np.save(out / f"{mode}.npy", job.image)
    worker.shutdown_worker()


def postprocess(images: Path, out: Path):
    """Write a world and a material from the images in `images` (the reference's)."""
    outputs = source_module("imaging.outputs")
    metadata = {"prompt": "a reference sky", "seed": "7"}
    outputs.write_world(np.load(images / "world.npy"), out, "world", metadata)
    outputs.write_material(np.load(images / "texture.npy"), out, "material", metadata)


def model_folder(cache: Path) -> Path:
    return source_module("setup.tiny_models").ensure_tiny_pipeline("sd", cache)


def model_cache(root: Path) -> Path:
    """Where the tests keep tiny models (the same folder the Blender suites use)."""
    return Path(os.environ.get("PROMPTSCAPE_TEST_CACHE", root / ".cache" / "tiny-models"))


if __name__ == "__main__":
    out, cache = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    generate(model_folder(cache), out)
    postprocess(out, out)
