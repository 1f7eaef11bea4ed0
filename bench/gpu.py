"""The GPU pass at real model size: peak memory per size and plan, time against today's plain path, the
wrap of each decoder, and completion under emulated 6, 8 and 12 GB cards.

Runs on any CUDA machine without Blender (generation/ imports without bpy); bench/run.py calls it when
CUDA is available. Random full-size weights from the published configs, so nothing is downloaded.

    python bench/gpu.py                               # SDXL in fp16: 2048x1024 and 4096x2048 worlds
    python bench/gpu.py --kind sd --sizes 1024x512
    python bench/gpu.py --device cpu --tiny --sizes 256x128 --steps 2   # a smoke test of the pass itself
    python bench/gpu.py --family qwen-image           # one transformer family per call (bench/gpu_family.py)
    python bench/gpu.py --device cpu --tiny --family zimage --sizes 256x128 --steps 2
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import print_row
from vae_memory import ROOT, source_module

CAPS_GB = (12, 8, 6)
REPEATS = 3
GB = 2**30


class Pass:
    def __init__(self, device: str, steps: int, row=print_row):
        import torch

        self.torch, self.device, self.steps, self.row, self.rows = torch, device, steps, row, []
        self.worker = source_module("engine.worker")
        self.request = source_module("engine.request")
        self.decoding = source_module("engine.decoding")
        self.memory_plan = source_module("engine.memory_plan")
        self.seamless = source_module("engine.seamless")
        self.tiled_vae = source_module("engine.tiled_vae")
        self.precision = "fp16" if device == "cuda" else "fp32"

    def emit(self, name, value, unit, target="", ok=None):
        self.rows.append({"name": name, "value": float(value), "unit": unit, "target": target, "ok": ok})
        self.row(name, value, unit, target, ok)

    def peak_start(self):
        if self.device == "cuda":
            self.torch.cuda.synchronize()
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()

    def peak_gb(self) -> float | None:
        if self.device != "cuda":
            return None
        self.torch.cuda.synchronize()
        return self.torch.cuda.max_memory_allocated() / GB

    def timed(self, function):
        self.peak_start()
        start = time.perf_counter()
        result = function()
        if self.device == "cuda":
            self.torch.cuda.synchronize()
        return time.perf_counter() - start, self.peak_gb(), result

    def request_for(self, model: str, width: int, height: int, **fields):
        """A world request; pole repair off unless asked for, so each row times the stages it names."""
        fields = {"poles": "off", **fields}
        return self.request.GenerationRequest(prompt="a bench world", seed=3, steps=self.steps, width=width,
                                              height=height, model=model, device=self.device,
                                              precision=self.precision, **fields)  # fmt: skip

    def job(self, model, width, height, **fields):
        job = self.worker.get_worker().submit(self.request_for(model, width, height, **fields))
        job.wait()
        return job

    def today(self, pipe, width, height):
        """The path before memory plans: pipe() decodes itself, inside the seamless wrap."""
        generator = self.torch.Generator(device=self.device).manual_seed(3)
        with self.seamless.seamless(pipe, True, False):
            return pipe(prompt="a bench world", num_inference_steps=self.steps, width=width, height=height,
                        generator=generator, output_type="np").images[0]  # fmt: skip

    def size_pass(self, model: str, width: int, height: int):
        """Auto against today's path; every decoder's peak and time on the same latents; their wrap."""
        size = f"{width}x{height}"
        worker = self.worker.get_worker()
        source = source_module("engine.models").resolve_source(model)
        first = self.job(model, width, height, memory="full")
        if first.state != "done":
            self.emit(f"{size} full plan failed: {first.message[:60]}", 0, "")
        pipe, _, _ = worker.cache.get(source, self.device, self.precision)
        samples = {"today": [], "auto": []}
        for _ in range(REPEATS):  # interleaved, so drifts hit both alike
            seconds, peak, _ = self.timed(lambda: self.today(pipe, width, height))
            samples["today"].append((seconds, peak))
            seconds, peak, job = self.timed(lambda: self.job(model, width, height))
            samples["auto"].append((seconds, peak))
        today, auto = min(samples["today"]), min(samples["auto"])
        self.emit(f"{size} today's path (pipe decodes)", today[0], "s")
        for stage in ("encode", "denoise", "decode"):
            self.emit(f"{size} auto: {stage}", job.timings.get(stage, 0.0), "s")
        ratio = auto[0] / today[0]
        self.emit(f"{size} auto ({job.plan.name}) / today, time", ratio, "x", "<= 1.02", ratio <= 1.02)
        if today[1] is not None:
            self.emit(f"{size} today's path, peak", today[1], "GiB")
            self.emit(f"{size} auto ({job.plan.name}), peak", auto[1], "GiB")
        self.decoders(pipe, width, height)

    def decoders(self, pipe, width, height):
        size, plan_type = f"{width}x{height}", self.memory_plan.MemoryPlan
        generator = self.torch.Generator(device=self.device).manual_seed(3)
        latents = pipe(prompt="a bench world", num_inference_steps=2, width=width, height=height,
                       generator=generator, output_type="latent").images  # fmt: skip
        plans = {"plain": plan_type("full", 0, None), "tiled 512": plan_type("tiled", 0, None, tile=512),
                 "tiled 1024": plan_type("tiled", 0, None, tile=1024),
                 "lean 512": plan_type("tiled", 0, None, tile=512, lean=True)}  # fmt: skip
        seconds = {}
        upcast = pipe.vae.config.force_upcast
        for fp16_vae in (False, True) if upcast and self.device == "cuda" else (False,):
            pipe.vae.register_to_config(force_upcast=upcast and not fp16_vae)  # as with the fp16-fix VAE
            label = " fp16 VAE" if fp16_vae else ""
            for name, plan in plans.items():
                if name == "plain" and width * height >= 4096 * 2048 and self.device != "cuda":
                    continue  # about 46 GiB of RAM
                try:
                    with self.seamless.seamless(pipe, True, False) if plan.tile is None else nullcontext():
                        took, peak, image = self.timed(
                            lambda plan=plan: self.decoding.decode_latents(pipe, latents, plan, True, False)
                        )
                except self.torch.OutOfMemoryError:
                    self.emit(f"{size} decode {name}{label}: out of memory", 0, "")
                    continue
                seconds[name + label] = took
                if peak is not None:
                    self.emit(f"{size} decode {name}{label}, peak", peak, "GiB")
                self.emit(f"{size} decode {name}{label}, NaN-free", float(np.isfinite(image).all()), "")
                if name != "plain" and "plain" + label in seconds:
                    ratio = took / seconds["plain" + label]
                    target = "<= 1.3" if name.startswith("tiled") else "(lean)"
                    ok = ratio <= 1.3 if name.startswith("tiled") else None
                    self.emit(f"{size} decode {name}{label} / plain, time", ratio, "x", target, ok)
        pipe.vae.register_to_config(force_upcast=upcast)
        self.wrap(pipe, latents, size)

    def wrap(self, pipe, latents, size):
        """decode(roll(z, k)) against roll(decode(z), 8k), relative to the image's spread."""
        torch, vae, k = self.torch, pipe.vae, 5
        z = self.decoding.unscaled(vae, latents.to(vae.dtype))
        rolled = torch.roll(z, k, dims=3)
        tiling = self.tiled_vae.Tiling(512, wrap_x=True)

        def error(decode):
            first, second = decode(z).float(), decode(rolled).float()
            return float((torch.roll(first, 8 * k, dims=3) - second).abs().max() / first.std())

        with torch.no_grad():
            tiled = error(lambda x: self.tiled_vae.decode(vae, x, tiling))
            self.emit(f"{size} wrap error, tiled 512", tiled * 1e6, "1e-6", "<= 1000")
            with self.seamless.seamless(pipe, True, False):
                plain = error(lambda x: vae.decode(x).sample)
            self.emit(f"{size} wrap error, plain + seamless", plain * 1e6, "1e-6")
            with self.seamless.seamless(pipe, True, False):
                vae.enable_tiling()
                try:
                    diffusers_tiles = error(lambda x: vae.decode(x).sample)
                finally:
                    vae.disable_tiling()
            self.emit(f"{size} wrap error, diffusers' enable_tiling", diffusers_tiles * 1e6, "1e-6")

    def poles(self, model: str, width: int, height: int):
        """Pole repair on its own: its seconds against the rest of the same world's generation (target as
        bench/poles.py: repair adds at most a quarter)."""
        job = self.job(model, width, height, poles="repair")
        timings = job.timings
        if job.state != "done" or "poles" not in timings:
            self.emit(f"{width}x{height} pole repair failed: {job.message[:60]}", 0, "")
            return
        self.emit(f"{width}x{height} pole repair", timings["poles"], "s")
        ratio = timings["poles"] / sum(timings[stage] for stage in ("encode", "denoise", "decode"))
        self.emit(f"{width}x{height} pole repair / generation", ratio, "x", "<= 0.25", ratio <= 0.25)

    def caps(self, model: str, width: int, height: int):
        """Completion of a world under emulated smaller cards: memory fraction and the budget cap."""
        torch, total = self.torch, self.torch.cuda.get_device_properties(0).total_memory
        for cap in CAPS_GB:
            self.worker.get_worker().cache.unload()
            torch.cuda.set_per_process_memory_fraction(cap * GB / total)
            os.environ["PROMPTSCAPE_GPU_MEMORY_GB"] = str(cap)
            try:
                seconds, peak, job = self.timed(lambda: self.job(model, width, height))
            finally:
                torch.cuda.set_per_process_memory_fraction(1.0)
                del os.environ["PROMPTSCAPE_GPU_MEMORY_GB"]
            plan = job.metadata.get("memory_plan", "-")
            self.emit(f"{width}x{height} under {cap} GB: done ({plan[:28]})", job.state == "done", "", "1",
                      job.state == "done")  # fmt: skip
            if job.state == "done":
                self.emit(f"{width}x{height} under {cap} GB, peak", peak, "GiB", f"<= {cap}", peak <= cap)
                self.emit(f"{width}x{height} under {cap} GB, time", seconds, "s")
            else:
                print(f"  {job.message[:200]}", flush=True)
        self.worker.get_worker().cache.unload()


def run_sections(bench: Pass, sections, deadline: float, budget: float, remove: str | None, label: str = ""):
    """Each (name, section, arguments) unless past the deadline (said, never silently skipped); then stop the
    worker and delete `remove`, the full-size model's folder (gigabytes of random weights: never kept)."""
    try:
        for name, section, arguments in sections:
            if time.monotonic() > deadline:
                print(f"{label}{name}: skipped, past the {budget:.0f} s budget", flush=True)
                continue
            section(*arguments)
    finally:
        bench.worker.shutdown_worker()
        if remove is not None:
            shutil.rmtree(remove, ignore_errors=True)


def build_model(kind: str, tiny: bool, device: str) -> str:
    """A folder of the full-size (or tiny) random pipeline: the worker loads models from folders."""
    if tiny:
        tiny_models = source_module("setup.tiny_models")
        return str(tiny_models.ensure_tiny_pipeline(kind, ROOT / ".cache" / "tiny-models"))
    import torch

    folder = Path(tempfile.mkdtemp(prefix=f"promptscape-full-{kind}-"))
    dtype = torch.float16 if device == "cuda" else torch.float32
    pipe = source_module("setup.full_size_models").build_full_size_pipeline(kind, device, dtype)
    pipe.save_pretrained(folder, safe_serialization=True)
    del pipe
    source_module("engine.devices").free_memory()
    return str(folder)


def gpu_pass(device="cuda", kind="sdxl", sizes=((2048, 1024), (4096, 2048)), steps=20, tiny=False,
             row=print_row, budget=480.0):  # fmt: skip
    """Every figure of the pass, printed as rows; returns the rows. No section starts after `budget`
    seconds (a lent GPU is held for minutes: the table comes back from one call), and each one skipped
    says so."""
    bench = Pass(device, steps, row)
    deadline = time.monotonic() + budget
    model = build_model(kind, tiny, device)
    sections = [(f"{w}x{h}", bench.size_pass, (model, w, h)) for w, h in sizes]
    sections.append(("pole repair", bench.poles, (model, *sizes[0])))
    if device == "cuda":
        sections.append(("smaller cards", bench.caps, (model, *sizes[0])))
    run_sections(bench, sections, deadline, budget, None if tiny else model)
    return bench.rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--kind", default="sdxl", choices=("sd", "sdxl"))
    parser.add_argument("--family", choices=("zimage", "flux2-klein", "qwen-image"),
                        help="a transformer family instead of --kind: its world (the first size) and its "
                        "material (the world's height squared), 3 timed steps unless --steps")  # fmt: skip
    parser.add_argument("--sizes", nargs="*", default=["2048x1024", "4096x2048"])
    parser.add_argument("--steps", type=int, default=None, help="20 for --kind, 3 for --family")
    parser.add_argument("--tiny", action="store_true", help="the tiny model: checks the pass, not the GPU")
    parser.add_argument("--budget", type=float, help="seconds after which no section starts (default 480; "
                        "per family with --family)")  # fmt: skip
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sizes = [tuple(map(int, size.split("x"))) for size in args.sizes]
    if args.family:
        from gpu_family import BUDGET, family_pass

        budget = args.budget or BUDGET[args.family]
        rows = family_pass(args.family, args.device, sizes[0], args.steps or 3, args.tiny, budget=budget)
    else:
        rows = gpu_pass(args.device, args.kind, sizes, args.steps or 20, args.tiny, budget=args.budget or 480)
    out = Path(os.environ.get("OUT") or ROOT / ".cache" / "bench")
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(rows, indent=2))
    print(f"written {out / 'gpu.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
