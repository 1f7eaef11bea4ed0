"""Peak RAM of decoding with the full-size random VAE on the CPU: plain against wrap-exact tiles.

Each case runs in its own process (peak RSS is per process, so cases cannot contaminate each other) and
reports VmHWM minus the RSS before the decode: what the decode itself added. Only the VAE is built.

    .venv/bin/python bench/vae_memory.py                      # the default cases, as make bench runs them
    .venv/bin/python bench/vae_memory.py --case lean 4096 2048 # one case, printed as JSON
"""

import argparse
import importlib
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

from measure import print_row  # bench/, beside this file

ROOT = Path(__file__).resolve().parents[1]
TILE = 512
# (decoder, width, height): plain at 4096x2048 needs about 46 GiB, so it is never run.
CASES = (
    ("plain", 1024, 512),
    ("tiled", 1024, 512),
    ("lean", 1024, 512),
    ("plain", 2048, 1024),
    ("tiled", 2048, 1024),
    ("lean", 2048, 1024),
)
# The 8K-world-sized lean decode on the CPU: 7.6 GB of RAM and about 12 minutes on 2 cores, over half of
# `make bench`; bench/run.py --vae-4k adds it.
CASE_4K = ("lean", 4096, 2048)


def source_module(name: str):
    """generation.<name> from this checkout, without Blender (generation/ never imports bpy)."""
    if "generation" not in sys.modules:
        package = ROOT / "generation"
        spec = importlib.util.spec_from_file_location(
            "generation", package / "__init__.py", submodule_search_locations=[str(package)]
        )
        sys.modules["generation"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["generation"])
    return importlib.import_module(f"generation.{name}")


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def run_case(decoder: str, width: int, height: int) -> dict:
    """In this process: build the VAE, decode random latents, report the decode's own peak RSS."""
    import torch

    full_size = source_module("setup.full_size_models")
    tiled_vae = source_module("engine.tiled_vae")
    vae = full_size.build_full_size_vae("sdxl")
    latents = torch.randn((1, 4, height // 8, width // 8), generator=torch.Generator().manual_seed(0))
    before = _status_kb("VmRSS")
    start = time.perf_counter()
    with torch.no_grad():
        if decoder == "plain":
            image = vae.decode(latents).sample
        else:
            tiling = tiled_vae.Tiling(TILE, wrap_x=True, lean=decoder == "lean")
            image = tiled_vae.decode(vae, latents, tiling)
    seconds = time.perf_counter() - start
    peak = _status_kb("VmHWM")
    return {"decoder": decoder, "width": width, "height": height, "seconds": seconds,
            "decode_peak_mb": (peak - before) / 1024, "peak_mb": peak / 1024,
            "finite": bool(torch.isfinite(image).all())}  # fmt: skip


def measure(decoder: str, width: int, height: int) -> dict:
    """One case in a fresh Python."""
    command = [sys.executable, __file__, "--case", decoder, str(width), str(height)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"decoder": decoder, "width": width, "height": height, "error": done.stderr.strip()[-400:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_pass(row, cases=CASES) -> list[dict]:
    """Every case, each printed as a row through `row(name, value, unit, target, ok)`; ratios against the
    plain decode at the same size where it ran."""
    results, plain = [], {}
    for decoder, width, height in cases:
        result = measure(decoder, width, height)
        results.append(result)
        size = f"{width}x{height}"
        if "error" in result:
            print(f"VAE decode {decoder} {size} failed: {result['error']}", flush=True)
            continue
        name = f"CPU VAE decode {decoder}{'' if decoder == 'plain' else f' {TILE} px'} {size}"
        row(f"{name}, peak RSS added", result["decode_peak_mb"], "MB")
        row(f"{name}, time", result["seconds"], "s")
        if decoder == "plain":
            plain[size] = result
        elif size in plain:
            base = plain[size]
            row(f"{name} / plain, RSS", result["decode_peak_mb"] / base["decode_peak_mb"], "x")
            ratio = result["seconds"] / base["seconds"]
            target = "<= 1.3" if decoder == "tiled" else "(lean)"
            row(f"{name} / plain, time", ratio, "x", target, ratio <= 1.3 if decoder == "tiled" else None)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", nargs=3, metavar=("DECODER", "WIDTH", "HEIGHT"))
    parser.add_argument("--sizes", nargs="*", help="WxH sizes to run every decoder at (default: the cases)")
    args = parser.parse_args()
    if args.case:
        decoder, width, height = args.case
        print(json.dumps(run_case(decoder, int(width), int(height))))
        return 0
    cases = CASES
    if args.sizes:
        sizes = [tuple(map(int, size.split("x"))) for size in args.sizes]
        cases = [(decoder, w, h) for w, h in sizes for decoder in ("plain", "tiled", "lean")]
    cpu_pass(print_row, cases)
    return 0


if __name__ == "__main__":
    sys.exit(main())
