"""Bench rows for upscaling: the full-size Real-ESRGAN x4plus architecture (23 RRDB blocks, 64 features,
random weights) tiled on the CPU from 512x256 to 2048x1024, and an 8K world (HDR + ZIP EXR + apply) from
an upscaled image against Blender's own load of that EXR. Called by bench/run.py."""

from importlib import import_module
from pathlib import Path

import numpy as np
from measure import apply_against_load, peak_rss_mb, timed


def smooth_sky(height: int, width: int) -> np.ndarray:
    """A smooth daylight sky in sRGB: a vertical gradient, a few soft waves around the horizon, a ground."""
    elevation = (0.5 - (np.arange(height, dtype=np.float32) + 0.5) / height)[:, None, None]
    azimuth = np.linspace(0, 2 * np.pi, width, endpoint=False, dtype=np.float32)[None, :, None]
    sky = 0.55 + 0.3 * elevation + 0.02 * np.cos(azimuth) + 0.01 * np.sin(3 * azimuth)
    ground = 0.3 + 0.02 * np.cos(2 * azimuth) + 0 * elevation
    image = np.where(elevation > 0, sky, ground) * np.array([0.6, 0.8, 1.0], np.float32)
    return np.clip(image, 0, 1).astype(np.float32)


def upscale_rows(bench, addon_name: str, out: Path):
    upscaler = import_module(f"{addon_name}.generation.engine.upscaler")
    upscalers = import_module(f"{addon_name}.generation.setup.upscalers")
    outputs = import_module(f"{addon_name}.generation.imaging.outputs")
    world = import_module(f"{addon_name}.scene.world")

    weights = upscalers.save_esrgan(out / "x4plus-random.safetensors", "x4plus")
    model = upscaler.load_upscaler(weights, "cpu")
    source = smooth_sky(256, 512)
    before = peak_rss_mb()
    tiles = []
    seconds, result = timed(upscaler.upscale, source, model, 4, True, False,
                             on_tile=lambda done, total, partial: tiles.append(done))  # fmt: skip
    assert result.shape == (1024, 2048, 3)
    bench.row(f"Real-ESRGAN x4plus arch, 512x256 -> 2048x1024, {len(tiles)} tiles (CPU)", seconds, "s")
    bench.row(f"  peak RSS after it (grew {peak_rss_mb() - before:.0f} MB)", peak_rss_mb(), "MB")
    bench.row("  per tile (128x128 input, 16 px context)", seconds / len(tiles), "s")

    # 8K: a smooth sky upscaled x4 (a cheap wrap-aware resample stands in for the model's 4x4 = 32 passes
    # of the row above), then what write_world does at 8192x4096, then the world applied in Blender.
    resize_wrap = import_module(f"{addon_name}.generation.imaging.hdr").resize_wrap
    big = resize_wrap(smooth_sky(1024, 2048), 4096, 8192)
    meta = {"prompt": "bench 8K", "generator": "Promptscape"}
    written_seconds, files = timed(outputs.write_world, big, out, "bench-8k", meta)
    raw = 8192 * 4096 * 3 * 4
    share = files.exr.stat().st_size / raw
    bench.row("8192x4096 write_world: HDR, ZIP EXR, .hdr, preview, report", written_seconds, "s")
    bench.row("8K EXR size / raw float32", share, "x", "<= 0.6", share <= 0.6)

    applied, baseline = apply_against_load(world.apply_world, files.exr, meta, 3)
    bench.row("8K world build (apply_world + pixels)", applied, "s")
    bench.row("8K bpy.data.images.load + pixels (baseline)", baseline, "s")
    bench.row("8K apply / Blender's own load", applied / baseline, "x", "<= 1.5", applied / baseline <= 1.5)
