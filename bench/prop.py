"""Bench rows for props: TripoSR's cost on this machine, each part in a fresh process for its own peak RSS.

    python bench/prop.py                 # CPU: tiny model; full-size forward; 256³ density; marching cubes
    python bench/prop.py --device cuda   # on a GPU: full-size forward and mesh extraction, peak GPU memory

Random weights of the published architecture (nothing is downloaded): a random model finds no surface, so
the density grid is timed with the full-size model and marching cubes on an analytic sphere at 256³.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import peak_rss_mb, print_row
from vae_memory import source_module

PARTS = ("tiny", "forward", "density", "marching_cubes")


def run_part(part: str, device: str) -> dict:
    """One part, timed in this process: {"seconds", "rss_mb", "gpu_gb", ...}."""
    import torch

    torch.manual_seed(0)
    config = source_module("engine.triposr_config")
    model_module = source_module("engine.triposr_model")
    shape = source_module("engine.prop_shape")
    mesh = source_module("imaging.prop_mesh")
    found = {}
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if part == "tiny":
        model = source_module("setup.tiny_props").tiny_triposr("blob").to(device)
        start = time.perf_counter()
        with torch.inference_mode():
            triplane = model(torch.rand(1, 3, 32, 32, device=device))[0]
        density = shape.density_grid(model, triplane, config.TINY.mesh_resolution)
        _, faces = mesh.extract_surface(density, config.TINY.density_threshold, -0.87, 0.87)
        found["triangles"] = len(faces)
    elif part in ("forward", "density"):
        model = model_module.build(config.FULL, device)
        image = torch.rand(1, 3, 512, 512, device=device)
        start = time.perf_counter()
        with torch.inference_mode():
            triplane = model(image)[0]
        if part == "density":
            if device == "cuda":
                torch.cuda.synchronize()
            found["forward_seconds"] = time.perf_counter() - start
            start = time.perf_counter()
            shape.density_grid(model, triplane, config.FULL.mesh_resolution)
    else:
        axis = np.linspace(-0.87, 0.87, config.FULL.mesh_resolution, dtype=np.float32)
        x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
        density = 50.0 * np.exp(-(x**2 + y**2 + z**2) / 0.2)  # a blob crossing the level 25
        start = time.perf_counter()
        _, faces = mesh.extract_surface(density, 25.0, -0.87, 0.87)
        found["triangles"] = len(faces)
    if device == "cuda":
        torch.cuda.synchronize()
        found["gpu_gb"] = torch.cuda.max_memory_allocated() / 2**30
    found.update(seconds=time.perf_counter() - start, rss_mb=peak_rss_mb())
    return found


LABELS = {
    "tiny": "tiny TripoSR: forward + 32³ density + mesh",
    "forward": "TripoSR full-size forward pass (512 px image)",
    "density": "TripoSR full-size density at 256³ (after the forward)",
    "marching_cubes": "marching cubes + closing + orienting at 256³",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--part", choices=PARTS, help="run one part here (the driver runs each apart)")
    args = parser.parse_args()
    if args.part:
        print(json.dumps(run_part(args.part, args.device)))
        return 0
    where = "CPU" if args.device == "cpu" else "GPU"
    for part in PARTS:
        if part == "forward" and args.device != "cpu":
            continue  # the density part times the forward pass too
        command = [sys.executable, __file__, "--part", part, "--device", args.device]
        found = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        print_row(f"{LABELS[part]} ({where})", found["seconds"], "s")
        print_row("  peak RSS", found["rss_mb"], "MB")
        if "forward_seconds" in found and args.device != "cpu":
            print_row(f"TripoSR full-size forward pass ({where})", found["forward_seconds"], "s")
        if "gpu_gb" in found:
            print_row("  peak GPU memory", found["gpu_gb"], "GiB", "<= 6", found["gpu_gb"] <= 6)
        if "triangles" in found:
            print_row("  triangles", found["triangles"], "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
