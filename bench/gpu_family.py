"""The GPU pass of one transformer family (Z-Image Turbo, FLUX.2 klein 4B or Qwen-Image) at real size:
Promptscape's time per step against the bare pipeline's, with and without the wrap, and the peak memory
of a whole world under the card the family targets. bench/gpu.py runs it with --family.

One family per device call: the full-size random pipeline is built on the GPU in bf16 from the published
configs (generation/setup/full_size_transformers.py), saved to a temporary folder the worker loads as a
user's download, and deleted at the end (Qwen-Image's is 58 GB).
"""

import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

from gpu import GB, Pass, run_sections
from measure import print_row
from vae_memory import ROOT, source_module

# The card each family must fit (PROMPTSCAPE_GPU_MEMORY_GB and the process's memory fraction), and the
# peak a whole generation may reach under it: (mode, width, height) -> GiB; None: measured, no target.
CAPS = {
    "zimage": (8, {("world", 2048, 1024): 7.5}),
    "flux2-klein": (8, {("world", 2048, 1024): None, ("texture", 1024, 1024): 7.5}),
    "qwen-image": (16, {("world", 2048, 1024): 15.0}),
}
STEP_TARGET, WRAP_TARGET = 1.03, 1.05
# Seconds from the start after which no section starts, so that one family's call ends within 9 minutes
# on an H100: the capped section reloads the model quantised (estimated 1 min for Z-Image and klein,
# 2-3 min for Qwen-Image's 58 GB).
BUDGET = {"zimage": 420.0, "flux2-klein": 420.0, "qwen-image": 330.0}


class FamilyPass(Pass):
    def __init__(self, family: str, device: str, steps: int, row):
        super().__init__(device, steps, row)
        self.family = family
        self.families = source_module("engine.families")
        if device == "cuda":
            self.precision = "bf16"  # what the families ship in and what a user's GPU runs them in

    def sync(self):
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def warm_up(self, model, width, height):
        """One step through the worker at this size (kernels chosen, memory pools grown); None, said in a
        row, when it failed."""
        steps, self.steps = self.steps, 1
        try:
            job = self.job(model, width, height, mode="image")
        finally:
            self.steps = steps
        if job.state == "done":
            return job
        self.emit(f"{self.family} {width}x{height} warm-up failed: {job.message[:60]}", 0, "")
        print(f"  {job.message[:300]}", flush=True)
        return None

    def bare_denoise(self, pipe, request) -> float:
        """The bare pipeline's denoising seconds, measured as the worker measures its own: from the first
        transformer call to the end of the last step (synchronised there, as the worker's last preview)."""
        torch, marks = self.torch, {}
        family = self.families.of_pipeline(pipe)

        def started(module, args):
            marks.setdefault("start", time.perf_counter())

        def step_end(pipeline, index, timestep, tensors):
            if index + 1 == request.steps:
                self.sync()
                marks["end"] = time.perf_counter()
            return tensors

        hook = pipe.transformer.register_forward_pre_hook(started)
        try:
            generator = torch.Generator(device=self.device).manual_seed(3)
            guidance = self.families.guidance_options(family, request)
            pipe(prompt=request.prompt, num_inference_steps=request.steps, width=request.width,
                 height=request.height, generator=generator, output_type="latent",
                 callback_on_step_end=step_end, **guidance)  # fmt: skip
        finally:
            hook.remove()
        return marks["end"] - marks["start"]

    def per_step(self, model, label: str, width: int, height: int, wrapped_mode: str):
        """Worker without and with the wrap against the bare pipeline on the worker's own loaded pipeline
        (so the same placement and quantisation), after one warm-up step."""
        size = f"{width}x{height}"
        warm = self.warm_up(model, width, height)
        if warm is None:
            return
        request = dataclasses.replace(warm.resolved, steps=self.steps)
        source = source_module("engine.models").resolve_source(model)
        pipe, _, hit = self.worker.get_worker().cache.get(
            source, self.device, self.precision, warm.plan.placement, quantize=request.quantize
        )
        assert hit, "the bare run must use the pipeline the worker placed"
        bare = self.bare_denoise(pipe, request) / self.steps
        seconds = {}
        for mode in ("image", wrapped_mode):
            self.peak_start()
            job = self.job(model, width, height, mode=mode)
            if job.state != "done":
                self.emit(f"{label} {size} {mode}: failed: {job.message[:60]}", 0, "")
                return
            seconds[mode] = job.timings["denoise"] / self.steps
            peak = self.peak_gb()
            if peak is not None:
                self.emit(f"{label} {size} {mode}, peak (uncapped)", peak, "GiB")
        plan = f"{warm.plan.placement}, quantize {request.quantize}"
        self.emit(f"{label} {size} bare pipeline, per step ({plan})", bare, "s")
        self.emit(f"{label} {size} Promptscape, per step", seconds["image"], "s")
        self.emit(f"{label} {size} Promptscape + wrap, per step", seconds[wrapped_mode], "s")
        ratio = seconds["image"] / bare
        self.emit(f"{label} {size} Promptscape / bare", ratio, "x", f"<= {STEP_TARGET}", ratio <= STEP_TARGET)
        ratio = seconds[wrapped_mode] / bare
        self.emit(f"{label} {size} Promptscape + wrap / bare", ratio, "x", f"<= {WRAP_TARGET}",
                  ratio <= WRAP_TARGET)  # fmt: skip

    def capped(self, model, cap: int, targets: dict):
        """Each whole generation (encode, denoise, decode; poles off) loaded and run under the family's
        card: the memory fraction and PROMPTSCAPE_GPU_MEMORY_GB both set to `cap` GiB."""
        torch, total = self.torch, self.torch.cuda.get_device_properties(0).total_memory
        for (mode, width, height), target in targets.items():
            self.worker.get_worker().cache.unload()
            torch.cuda.set_per_process_memory_fraction(cap * GB / total)
            os.environ["PROMPTSCAPE_GPU_MEMORY_GB"] = str(cap)
            try:
                run = lambda mode=mode, width=width, height=height: self.job(model, width, height, mode=mode)  # noqa: E731
                seconds, peak, job = self.timed(run)
            finally:
                torch.cuda.set_per_process_memory_fraction(1.0)
                del os.environ["PROMPTSCAPE_GPU_MEMORY_GB"]
            name = f"{self.family} {mode} {width}x{height} under {cap} GB"
            done = job.state == "done"
            self.emit(f"{name}: done", done, "", "1", done)
            if not done:
                print(f"  {job.message[:300]}", flush=True)
                continue
            plan = f"{job.metadata.get('memory_plan', '-')[:40]}, quantize {job.metadata.get('quantize')}"
            print(f"  {name}: {plan}", flush=True)
            ok = None if target is None else peak <= target
            self.emit(f"{name}, peak", peak, "GiB", "" if target is None else f"<= {target}", ok)
            self.emit(f"{name}, time ({self.steps} steps)", seconds, "s")
        self.worker.get_worker().cache.unload()


def build_family_model(family: str, tiny: bool, device: str, row) -> str:
    """A folder of the family's full-size (or tiny) random pipeline; the worker loads models from folders."""
    if tiny:
        tiny_transformers = source_module("setup.tiny_transformers")
        return str(tiny_transformers.ensure_tiny_pipeline(family, ROOT / ".cache" / "tiny-models"))
    import torch

    builder = source_module("setup.full_size_transformers")
    start = time.perf_counter()
    pipe = builder.build_full_size_pipeline(family, device, torch.bfloat16)
    parts = (pipe.transformer, pipe.text_encoder, pipe.vae)
    size = sum(p.numel() * p.element_size() for part in parts for p in part.parameters())
    row(f"{family} built on {device} in bf16 ({size / GB:.1f} GiB)", time.perf_counter() - start, "s")
    folder = Path(tempfile.mkdtemp(prefix=f"promptscape-full-{family}-"))
    free = shutil.disk_usage(folder).free
    if free < 1.05 * size:
        shutil.rmtree(folder, ignore_errors=True)
        raise SystemExit(
            f"{family}: saving its {size / GB:.1f} GiB needs that much free under {folder.parent} "
            f"({free / GB:.1f} GiB free): point TMPDIR at a larger disk"
        )
    start = time.perf_counter()
    try:
        pipe.save_pretrained(folder, safe_serialization=True)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    row(f"{family} saved", time.perf_counter() - start, "s")
    del pipe, parts
    source_module("engine.devices").free_memory()
    return str(folder)


def family_pass(family: str, device="cuda", world=(2048, 1024), steps=3, tiny=False, row=print_row,
                budget=480.0):  # fmt: skip
    """Every figure of one family's pass, printed as rows; returns the rows. No section starts after
    `budget` seconds from the start (the build and save count), and each one skipped says so."""
    bench = FamilyPass(family, device, steps, row)
    deadline = time.monotonic() + budget
    width, height = world
    model = build_family_model(family, tiny, device, bench.row)
    sections = [("world", bench.per_step, (model, family, width, height, "world")),
                ("material", bench.per_step, (model, family, height, height, "texture"))]  # fmt: skip
    if device == "cuda":
        cap, targets = CAPS[family]
        sections.append((f"under {cap} GB", bench.capped, (model, cap, targets)))
    run_sections(bench, sections, deadline, budget, None if tiny else model, f"{family} ")
    return bench.rows
