"""What edits cost against a plain generation of the same size: remix, a redrawn region, a photo grown into
a world, each a whole job (model stage, HDR, files) on the same warm worker and model.

A remix at strength s denoises about s of the steps; a region is redrawn on a view of the region's size,
not the world's; a photo world is a generation plus an encode of the canvas. Ratios, not seconds (the
machine is shared). Without bpy: the worker and the engine's stages, as the server runs them.

    .venv/bin/python bench/edits.py                                  # the tiny model, 256x128, 2 steps
    .venv/bin/python bench/edits.py --model .cache/full-size/sd --width 512 --steps 2   # SD 1.5 size
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from measure import print_row
from vae_memory import ROOT, source_module


def run_job(worker, request, write, edit=None, repeats: int = 3):
    """(seconds, image): the best of `repeats` whole jobs after one untimed run (a new pipeline or shape
    pays one-off set-up on its first call; the machine is shared, so the best run is the cost)."""
    best, image = float("inf"), None
    for attempt in range(repeats + 1):
        start = time.perf_counter()
        job = worker.submit(request, on_image=write, edit=edit)
        if not job.wait(3600) or job.state != "done":
            raise RuntimeError(f"the job did not finish: {job.state} {job.message}")
        if attempt:
            best = min(best, time.perf_counter() - start)
        image = job.image
    return best, image


def edit_costs(row, model: Path, width: int, steps: int, device: str) -> dict[str, float]:
    """Rows for a plain world and each edit of it at `width` x `width / 2`, and their ratios."""
    request_module, outputs = source_module("engine.request"), source_module("imaging.outputs")
    edits, region_edit = source_module("engine.edits"), source_module("imaging.region_edit")
    photo_world, hdr = source_module("imaging.photo_world"), source_module("imaging.hdr")
    worker = source_module("engine.worker").get_worker()
    height = width // 2
    base = {"prompt": "a harbour at dawn", "seed": 4, "steps": steps, "model": str(model), "device": device}
    world = request_module.GenerationRequest(**base, width=width, height=height, poles="off")
    ratios = {}
    with tempfile.TemporaryDirectory(prefix="bench-edits-") as name:
        folder = Path(name)

        def write_world(image, resolved, job):
            return outputs.write_world(image, folder, "world", resolved.to_metadata())

        plain, image = run_job(worker, world, write_world)
        row(f"plain world {width}x{height}, {steps} steps", plain, "s")
        remix, _ = run_job(worker, world, write_world, edits.remix_image(lambda: image, 0.5))
        ratios["remix"] = remix / plain
        row("  remix at 0.5 / plain world", ratios["remix"], "x")
        radiance = hdr.convert_panorama(image, hdr.HdrOptions()).radiance
        region = region_edit.find_region(height, width, 30.0, 10.0, 25.0)
        state = {}

        def prepare():
            state["edit"] = region_edit.prepare_region(radiance, region)
            return state["edit"]

        def write_region(redrawn, resolved, job):
            pasted = region_edit.paste_region(radiance, state["edit"], redrawn)
            return outputs.write_world_hdr(pasted, folder, "region", resolved.to_metadata())

        view = request_module.GenerationRequest(
            **base, width=region.view.width, height=region.view.height, mode="image"
        )
        inpaint, _ = run_job(worker, view, write_region, edits.redraw_region(prepare))
        ratios["inpaint"] = inpaint / plain
        row(f"  redraw a 25° region ({region.view.width} px view) / plain world", ratios["inpaint"], "x")
        photo = np.random.default_rng(0).random((height // 2, height * 3 // 4, 3)).astype(np.float32)
        placed = photo_world.place_photo(photo, height, width, 0.0, 0.0, 60.0)

        def write_photo(painted, resolved, job):
            result = hdr.convert_panorama(painted, hdr.HdrOptions())
            kept = photo_world.keep_photo(result.radiance, placed, 1.0)
            return outputs.write_world_hdr(kept, folder, "photo", resolved.to_metadata())

        grown, _ = run_job(
            worker, world, write_photo, edits.outpaint_world(lambda: (placed.canvas, placed.paint))
        )
        ratios["world_from_photo"] = grown / plain
        row("  world from a 60° photo / plain world", ratios["world_from_photo"], "x")
    worker.cache.unload()
    return ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a model folder (default: the tiny SD, built offline)")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    model = Path(args.model) if args.model else None
    if model is None:
        tiny = source_module("setup.tiny_models")
        model = tiny.ensure_tiny_pipeline("sd", ROOT / ".cache" / "tiny-models")
    edit_costs(print_row, model, args.width, args.steps, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
