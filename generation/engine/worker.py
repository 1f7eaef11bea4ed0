"""The one background thread that runs generations in order, with progress, previews and cancel.

The main thread submits a request and polls the Job it gets back; nothing here touches bpy. The cached
pipeline is left as it was found after every job: seamless padding undone, scheduler and LoRAs restored.
"""

import contextlib
import dataclasses
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable

import numpy as np

from ..errors import Cancelled, GenerationFailed, PromptscapeError, missing_dependency
from ..imaging.poles import repair_poles, window_size
from . import (
    decoding,
    devices,
    families,
    memory_plan,
    model_size,
    models,
    periodic_rope,
    previews,
    progress,
    quantize,
    token_wrap,
)
from .call_options import call_options, check_loras
from .pole_inpaint import model_inpaint
from .request import GenerationRequest
from .seamless import seamless

log = logging.getLogger(__name__)

STATES = ("queued", "loading", "running", "postprocessing", "done", "failed", "cancelled")
BUSY_STATES = ("loading", "running", "postprocessing")
FINAL_STATES = ("done", "failed", "cancelled")
# Previews are cheap but not free, and the panel redraws a few times a second at most.


class _CancelRequested(Exception):
    """Raised from the step callback: aborts the pipeline call, which leaves the pipeline reusable."""


class Job:
    """One submitted request: its state, progress, preview and result, updated by the worker thread."""

    stage = progress.StageLog()  # also kept as `stage_log`, so a sampling log misses no stage

    def __init__(self, request: GenerationRequest | None, on_image: Callable | None = None):
        self.request = request  # None for a conversion, which needs no model
        self.resolved: GenerationRequest | None = None
        self.metadata: dict[str, str] = {}
        self.state = "queued"
        self.stage = ""  # what a running job is doing, in words: "generating", "repairing poles"
        self.step = 0
        self.steps = (request.steps or 0) if request is not None else 0
        self.preview: np.ndarray | None = None
        self.image: np.ndarray | None = None
        self.outputs = None
        self.timings: dict[str, float] = {}
        self.cache_hit = False
        self.plan: memory_plan.MemoryPlan | None = None  # the memory plan that ran (after any fallback)
        self.pipe = None  # the loaded pipeline, while a generated job's on_image runs (the detail pass)
        self.model_size: memory_plan.ModelSize | None = None  # the model's size, for later stages' plans
        self.notes: list[str] = []  # what the artist should know about a job that succeeded
        self.release_model = False  # a stage moved the model off its device: the cache forgets it after
        self.error: BaseException | None = None
        self.message = ""
        self._on_image = on_image
        self._prepare: Callable | None = None
        self._edit: Callable | None = None  # an edit's model stage in place of text-to-image (edits.py)
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._started: float | None = None
        self._ended: float | None = None
        self._denoise_started: float | None = None

    def __repr__(self) -> str:
        return f"<Job {self.state} step {self.step}/{self.steps} {self.label[:40]!r}>"

    @property
    def label(self) -> str:
        """The prompt, for logs (a conversion's metadata names its image)."""
        return self.request.prompt if self.request is not None else self.metadata.get("prompt", "")

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @property
    def elapsed(self) -> float:
        """Seconds since the worker started this job (0 while queued)."""
        if self._started is None:
            return 0.0
        return (self._ended or time.perf_counter()) - self._started

    @property
    def eta(self) -> float | None:
        """Seconds of denoising left, from the pace of the steps so far; None when unknown."""
        if self.state != "running" or self.step == 0 or self._denoise_started is None:
            return None
        per_step = (time.perf_counter() - self._denoise_started) / self.step
        return per_step * max(self.steps - self.step, 0)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job is done, failed or cancelled; False when the timeout passed first."""
        return self._finished.wait(timeout)

    def cancel(self) -> None:
        """Stop the job: at once while queued, within one denoising step while running.

        Cancelled during post-processing, the job still ends "cancelled" and the files written stay on disk.
        """
        with self._lock:
            self._cancel.set()
            if self.state == "queued":
                self._finish("cancelled", Cancelled("cancelled before it started"))

    def _begin(self) -> bool:
        with self._lock:
            if self._cancel.is_set() or self.done:
                return False
            self._started = time.perf_counter()
            self.state = "loading"
            return True

    def _finish(self, state: str, error: BaseException | None = None, message: str | None = None) -> None:
        self.error = error
        self.message = message if message is not None else (str(error) if error else "; ".join(self.notes))
        self._ended = time.perf_counter() if self._started is not None else None
        self.state = state
        self._finished.set()


class Worker:
    """A daemon thread serving submitted jobs one at a time, first in first out."""

    # Test seam: called as step_hook(job, step) after each denoising step (1-based), before the cancel check.
    step_hook: Callable[[Job, int], None] | None = None

    def __init__(self):
        self.cache = models.PipelineCache()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._jobs: list[Job] = []
        self._jobs_lock = threading.Lock()
        self._stopping = False
        self._current: Job | None = None
        self._thread = threading.Thread(target=self._serve, name="promptscape-worker", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    @property
    def busy(self) -> bool:
        """Whether a job is loading its model, generating or post-processing right now."""
        job = self._current
        return job is not None and job.state in BUSY_STATES

    def submit(
        self,
        request: GenerationRequest,
        on_image: Callable | None = None,
        prepare: Callable | None = None,
        edit: Callable | None = None,
    ) -> Job:
        """Check the request and queue it; raises InvalidRequest / ModelNotFound / ModelLoadError at once.

        `prepare(job)` runs in the worker thread before the model loads (`job.model_size` known): checks and
        work a later stage needs that are too slow for the main thread (converting a .pth upscaler), so they
        fail before any GPU time is spent.

        `on_image(image, resolved_request, job)` runs in the worker thread with the float32 HxWx3 image in
        [0, 1] (it may set the job's stage, step, steps and preview, and raise Cancelled when
        `job.cancel_requested`); what it returns becomes `job.outputs`. While it runs, `job.pipe` is the
        loaded pipeline (the model cache keeps it), for a pass that needs the model again.

        `edit(worker, job, pipe, request, device)` (an edit of an existing image: remix, a redrawn region)
        runs in place of text-to-image and returns the image `on_image` gets (a world's poles are then
        repaired as a generation's, when its request says so).
        """
        request = request.validate()
        models.resolve_source(request.model, request.allow_download, request.allow_pickle)
        models.resolve_vae(request.vae, request.allow_download)
        check_loras(request.loras, request.allow_download, request.allow_pickle)
        if self._stopping:
            raise RuntimeError("the Promptscape worker is shut down; use get_worker() for a new one")
        job = Job(request, on_image)
        job._prepare = prepare
        job._edit = edit
        self._enqueue(job)
        return job

    def submit_conversion(self, convert: Callable[[Job], object], metadata: dict[str, str]) -> Job:
        """Queue work that is not a generation, such as turning an existing image into files or estimating
        depth: it runs in turn in this thread, off Blender's main thread. `convert(job)` may set the job's
        stage, step and steps and should stop when `job.cancel_requested` (raising Cancelled); what it
        returns becomes `job.outputs`."""
        if self._stopping:
            raise RuntimeError("the Promptscape worker is shut down; use get_worker() for a new one")
        job = Job(None, convert)
        job.metadata = dict(metadata)
        self._enqueue(job)
        return job

    def _enqueue(self, job: Job) -> None:
        with self._jobs_lock:
            self._jobs = [queued for queued in self._jobs if not queued.done]
            self._jobs.append(job)
        self._queue.put(job)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel every queued and running job, stop the thread and unload the pipeline."""
        self._stopping = True
        with self._jobs_lock:
            jobs, self._jobs = self._jobs, []
        for job in jobs:
            job.cancel()
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():  # it unloads its pipeline when its job ends (see _serve)
            log.warning("the Promptscape worker did not stop within %.1f s", timeout)

    def _serve(self) -> None:
        try:
            self._serve_jobs()
        finally:
            # The thread unloads its own pipeline, also when shutdown() stopped waiting for it: otherwise
            # a late thread would hold a model while the next worker loads a second copy on the GPU.
            self.cache.unload()

    def _serve_jobs(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if not job._begin():
                continue
            self._current = job
            try:
                if job.request is None:
                    self._convert(job)
                else:
                    self._run(job)
            except BaseException as error:  # the thread must outlive any job, or later jobs wait forever
                log.exception("the Promptscape worker failed on %r", job.label)
                job._finish("failed", error, f"internal error: {type(error).__name__}: {error}")
            finally:
                self._current = None

    def _run(self, job: Job) -> None:
        request = job.request.resolved()
        job.resolved, job.metadata = request, request.to_metadata()
        try:
            _require_torch()
            device = devices.resolve_device(request.device)
            precision = devices.resolve_precision(device, request.precision)
            source = models.resolve_source(request.model, request.allow_download, request.allow_pickle)
            vae = models.resolve_vae(request.vae, request.allow_download)
            job.model_size = size = model_size.size_of(source, vae)
            family = families.named(size.family) or families.FAMILIES[0]
            families.check_request(
                family, request.scheduler, request.width, request.height, request.wrap_mode
            )
            request = _with_family_defaults(job, request, family)
            used = quantize.resolve(
                request.quantize, device, family, size.unet, devices.memory_budget(device)
            )
            request = dataclasses.replace(request, quantize=used)
            job.resolved, job.metadata["quantize"] = request, used
            if job._prepare is not None:
                job._prepare(job)
            # Later stages (poles, detail) plan with the weights as loaded: quantised where they are.
            job.model_size = quantize.planned_size(size, used, memory_plan.precision_bytes(precision))
            job.plan = _plan(request, job.model_size, device, precision)
            job.metadata["memory_plan"] = job.plan.describe()
            weights = {"quantize": used, "transformer": request.transformer}
            with self.cache.use(source, device, precision, job.plan.placement, vae, **weights) as loaded:
                pipe, job.timings["load"], job.cache_hit = loaded
                if job.cancel_requested:
                    raise _CancelRequested
                job.state, job.stage = "running", "generating"
                if job._edit is not None:
                    job.image = job._edit(self, job, pipe, request, device)
                else:
                    job.image = self._generate(job, pipe, request, device)
                if request.mode == "world" and request.poles == "repair":
                    job.stage = "repairing poles"
                    job.image = self._repair_poles(job, pipe, request, device, size, precision)
                job.state, job.stage = "postprocessing", ""  # a stage it runs names itself
                if job._on_image is not None:
                    # Still in use: the post-processing's detail pass runs the same model (job.pipe).
                    job.pipe = pipe
                    try:
                        job.outputs = _postprocess(job, lambda: job._on_image(job.image, request, job))
                    finally:
                        job.pipe = None
                        if job.release_model:  # moved off its device (a prop's shape stage), even if
                            self.cache.unload()  # it then failed: the next job loads it again
            if job.cancel_requested:
                job._finish("cancelled", Cancelled("cancelled during post-processing; the files were kept"))
            else:
                job._finish("done")
        except _CancelRequested:
            job._finish("cancelled", Cancelled(f"cancelled at step {job.step} of {job.steps}"))
        except Cancelled as error:  # from the post-processing, e.g. between tiles of the upscale
            job._finish("cancelled", error)
        except PromptscapeError as error:
            job._finish("failed", error)
        except Exception as error:
            if _is_out_of_memory(error):
                devices.free_memory()
                job._finish("failed", GenerationFailed(_OUT_OF_MEMORY.format(request=request)))
            else:
                log.exception("generation failed for %r", request.prompt)
                job._finish("failed", error, f"generation failed: {type(error).__name__}: {error}")
        log.info("job %s in %.2f s %s", job.state, job.elapsed, job.timings)

    def _convert(self, job: Job) -> None:
        job.state = "postprocessing"
        try:
            job.outputs = _postprocess(job, lambda: job._on_image(job))
            if job.cancel_requested:
                job._finish("cancelled", Cancelled("cancelled during the conversion; the files were kept"))
            else:
                job._finish("done")
        except Cancelled as error:
            job._finish("cancelled", error)
        except PromptscapeError as error:
            job._finish("failed", error)
        except Exception as error:
            log.exception("converting %r failed", job.label)
            job._finish("failed", error, f"converting failed: {type(error).__name__}: {error}")

    def _repair_poles(self, job: Job, pipe, request: GenerationRequest, device: str, size, precision: str):
        """Redraw the caps on the cube with the same model, scheduler and LoRAs (imaging/poles.py), each
        face window decoded as the planner says for its size."""
        import torch

        start = time.perf_counter()
        window = window_size(job.image.shape[0])
        try:
            plan = memory_plan.plan_stage(
                size, window, window, device, precision, devices.memory_budget(device), request.memory,
                job.plan.placement, f"repairing the poles ({window}x{window} windows)",
                ram_bytes=memory_plan.available_ram_bytes(),
            )  # fmt: skip
        except memory_plan.DoesNotFit as error:
            raise GenerationFailed(f"Not enough memory on {device}: {error}") from None
        job.metadata["poles_memory_plan"] = plan.describe()

        def on_step_end(pipeline, index, timestep, tensors):
            if job.cancel_requested:
                raise _CancelRequested
            return tensors

        def repair(plan):  # both caps from the start, with the same seed, whichever plan runs
            generator = torch.Generator(device=device).manual_seed(request.seed + 1)
            inpaint = model_inpaint(pipe, request, generator, on_step_end, plan)
            return repair_poles(job.image, inpaint).pano

        with call_options(
            pipe, request.scheduler, request.loras, request.allow_download, request.allow_pickle
        ):
            repaired = _falling_back(job, plan, repair, "repairing the poles", "poles_memory_plan")
        job.timings["poles"] = time.perf_counter() - start
        return repaired

    def _generate(self, job: Job, pipe, request: GenerationRequest, device: str) -> np.ndarray:
        import torch

        family = families.of_pipeline(pipe)
        generator = torch.Generator(device=device).manual_seed(request.seed)
        # A transformer's wrap: its latents rolled between steps, or not at all when its rotary positions
        # are periodic (the text's positions stay put: rolling would move the image against them). Its
        # VAE wraps by padding, as a UNet's.
        roll, periodic = None, family.transformer and request.wrap_mode == "periodic"
        if family.transformer:
            roll = token_wrap.TokenRoll.for_image(
                family.packed, request.width, request.height, request.steps, request.wrap_x and not periodic,
                request.wrap_y,
            )  # fmt: skip
        positions = (
            periodic_rope.periodic_rope(
                pipe.transformer, family.rope, roll.rows, roll.columns, request.wrap_x, request.wrap_y
            )
            if periodic
            else contextlib.nullcontext()
        )
        last = {"preview": 0.0}

        def on_step_end(pipeline, index, timestep, tensors):
            now = time.perf_counter()
            job.step, job.steps = index + 1, getattr(pipeline, "num_timesteps", job.steps)
            latents = tensors["latents"]
            if now - last["preview"] >= previews.PREVIEW_INTERVAL or job.step == job.steps:
                job.preview = previews.latents_to_rgb(
                    latents if roll is None else roll.grid(latents), family.name
                )
                last["preview"] = now
            hook = self.step_hook
            if hook is not None:
                hook(job, job.step)
            if job.cancel_requested:
                raise _CancelRequested
            if roll is not None:
                tensors["latents"] = roll.after_step(index, latents)
            return tensors

        start = time.perf_counter()
        common = {"prompt": request.prompt, "num_inference_steps": request.steps, "width": request.width,
                  "height": request.height, "generator": generator, "callback_on_step_end": on_step_end,
                  **families.guidance_options(family, request)}  # fmt: skip
        # Under numpy 2 the Euler and DPM++ schedulers' np.array(tensor) warns (DeprecationWarning, hidden
        # outside tests) that torch's __array__ takes no copy= keyword; numpy retries and the array is right.
        # The pipeline encodes the prompt before its first denoiser call: that call splits the two stages.
        with (
            call_options(
                pipe, request.scheduler, request.loras, request.allow_download, request.allow_pickle
            ),
            seamless(pipe, request.wrap_x, request.wrap_y),
            positions,
            _noting_first_step(job, _denoiser(pipe)),
        ):
            # Every family's latents decode as the memory plan says: whole, or in the wrap-exact tiles.
            latents = pipe(output_type="latent", **common).images
            latents = decoding.vae_latents(pipe, latents, request.width, request.height)
            denoised = time.perf_counter()
            image = self._decode(job, pipe, latents, request)
        end = time.perf_counter()
        job.stage = progress.steps_done(job.steps)
        encoded = job._denoise_started or denoised
        job.timings.update(encode=encoded - start, denoise=denoised - encoded, decode=end - denoised)
        image = np.asarray(image, dtype=np.float32)
        if not np.isfinite(image).all():
            raise GenerationFailed(
                "the model produced NaN/infinite pixels: use fp32 precision (or a fixed fp16 VAE for SDXL) "
                "or fewer steps, and check the model file"
            )
        return image

    def _decode(self, job: Job, pipe, latents, request: GenerationRequest) -> np.ndarray:
        """Decode with the job's plan; out of memory falls back once to the next plan's decode."""

        def decode(plan):
            job.plan = plan
            return decoding.decode_latents(pipe, latents, plan, request.wrap_x, request.wrap_y)

        return _falling_back(job, job.plan, decode, "decoding", "memory_plan")


def _with_family_defaults(job: Job, request: GenerationRequest, family: families.Family) -> GenerationRequest:
    """The request with the family's own steps and guidance where the caller left them unset, recorded as
    the values used (Use Settings and the file's metadata repeat them exactly)."""
    asked = job.request
    steps = family.steps if asked.steps is None else asked.steps
    guidance = family.guidance if asked.guidance is None else asked.guidance
    request = dataclasses.replace(request, steps=steps, guidance=guidance)
    job.resolved, job.steps = request, steps
    job.metadata.update(steps=str(steps), guidance=f"{guidance:g}")
    return request


def _denoiser(pipe):
    """The model a pipeline calls once per step: a UNet, or a transformer in the newer families."""
    return getattr(pipe, "unet", None) or pipe.transformer


@contextlib.contextmanager
def _noting_first_step(job: Job, denoiser):
    """Within the block, the first call of `denoiser` is noted as the job's denoising start."""

    def started(module, args):
        if job._denoise_started is None:
            job._denoise_started = time.perf_counter()

    hook = denoiser.register_forward_pre_hook(started)
    try:
        yield
    finally:
        hook.remove()


def _postprocess(job: Job, write: Callable[[], object]):
    """The caller's post-processing, timed: its own stages (upscale, detail, and the outputs' HDR or PBR
    and files) are timed apart, and "postprocess" is what they leave, so the timings add up to the job's
    time without counting anything twice."""
    before = sum(job.timings.get(stage, 0.0) for stage in _POSTPROCESS_STAGES)
    start = time.perf_counter()
    outputs = None
    try:
        outputs = _write_results(write)
        return outputs
    finally:
        job.timings.update(getattr(outputs, "stage_seconds", None) or {})
        inner = sum(job.timings.get(stage, 0.0) for stage in _POSTPROCESS_STAGES) - before
        job.timings["postprocess"] = time.perf_counter() - start - inner


_POSTPROCESS_STAGES = (
    "load_upscaler",
    "upscale",
    "detail",
    "load_depth_model",
    "depth",
    "hdr",
    "pbr",
    "files",
)


def _falling_back(job: Job, plan: memory_plan.MemoryPlan, work: Callable, what: str, key: str):
    """`work(plan)`; when that runs out of memory, once more with the plan's fallback (the next plan's
    decode for the loaded pipeline), noting it on the job and in `job.metadata[key]`."""
    try:
        return work(plan)
    except Exception as error:
        fallback = plan.fallback() if _is_out_of_memory(error) else None
        if fallback is None:
            raise
    devices.free_memory()
    note = f"ran out of memory {what} with the {plan.name} plan; ran it again with {fallback.describe()}"
    log.warning("%s", note)
    job.notes.append(note[0].upper() + note[1:])
    job.metadata[key] = f"{fallback.describe()} (fell back after out of memory)"
    return work(fallback)


def _plan(request: GenerationRequest, size, device: str, precision: str) -> memory_plan.MemoryPlan:
    """The memory plan for a request, before anything loads; too big for any plan is an error in words."""
    try:
        return memory_plan.plan_generation(
            size,
            request.width,
            request.height,
            device,
            precision,
            devices.memory_budget(device),
            request.memory,
            devices.can_offload(),
            memory_plan.available_ram_bytes(),  # every plan fits the computer's RAM too, or is refused
        )
    except memory_plan.DoesNotFit as error:
        raise GenerationFailed(f"Not enough memory on {device}: {error}") from None


_OUT_OF_MEMORY = (
    "out of GPU memory at {request.width}x{request.height}: try a smaller size, fp16 precision, a GPU with "
    "model CPU offload (install accelerate), or close other GPU apps; memory was freed"
)


def _write_results(write: Callable[[], object]):
    """Run the caller's post-processing; a full disk or a read-only folder becomes a message saying why."""
    try:
        return write()
    except OSError as error:
        reason = error.strerror or str(error)
        if error.filename:
            reason += f": {error.filename}"
        raise GenerationFailed(
            f"writing the result files failed ({reason}): free some disk space or choose another "
            "Output Folder in Preferences > Add-ons > Promptscape"
        ) from error


def _require_torch() -> None:
    try:
        import diffusers  # noqa: F401
        import torch  # noqa: F401
    except ImportError as error:
        raise missing_dependency(error.name or str(error)) from error


def _is_out_of_memory(error: Exception) -> bool:
    torch = sys.modules.get("torch")  # not imported here: a failed torch import is what may have raised
    out_of_memory = getattr(torch, "OutOfMemoryError", ())
    return isinstance(error, out_of_memory) or "out of memory" in str(error).lower()


_worker: Worker | None = None
_worker_lock = threading.Lock()


def get_worker() -> Worker:
    """The module's worker, started on first use (and again after shutdown_worker)."""
    global _worker
    with _worker_lock:
        if _worker is None or not _worker.alive:
            _worker = Worker()
        return _worker


def current_worker() -> Worker | None:
    """The running worker, or None; never starts one, so the UI can ask without starting a thread."""
    worker = _worker  # one read of the global: no lock, so a UI redraw never waits for get_worker()
    return worker if worker is not None and worker.alive else None


def shutdown_worker(timeout: float = 5.0) -> None:
    """Cancel everything queued or running and join the worker thread; safe when none was started."""
    global _worker
    with _worker_lock:
        worker, _worker = _worker, None
    if worker is not None:
        worker.shutdown(timeout)
