"""The replicas: each runs generation/'s own worker thread, its model loaded once and kept.

A job runs as a streaming call: the replica yields the job's state as it changes (step, ETA, a small
preview) and, at the end, the names of the files it wrote into the job's folder under the files root
(one machine, or a folder every node shares). Cancel reaches it through the CancelBoard actor, which
it reads between steps, so the job stops at the next step and still reports how it ended.
"""

import asyncio
import base64
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray
from ray import serve

from generation.engine import prop_job, world_depth
from generation.engine.upscaler import upscale_in_job
from generation.engine.worker import Worker
from generation.errors import PromptscapeError
from generation.imaging import outputs

from .wire import DepthSpec, JobSpec, client_metadata, read_panorama, scrub

log = logging.getLogger(__name__)
POLL = 0.05  # seconds between looks at the job: well under one step of a real model
PREVIEW_WIDTH = 128
ONGOING_PER_REPLICA = 2  # calls a replica takes at once; the gateway hands out no more (its slots)


@dataclass(frozen=True)
class DepthFiles:
    """What a depth job returns: the files a client downloads (the .npz holds numpy arrays only)."""

    exr: Path
    png: Path
    arrays: Path


@ray.remote(num_cpus=0)
class CancelBoard:
    """Which jobs clients cancelled; the gateway writes it, the replicas read it."""

    def __init__(self):
        self._cancelled: set[str] = set()

    def cancel(self, job_id: str):
        self._cancelled.add(job_id)

    def forget(self, job_id: str):
        self._cancelled.discard(job_id)

    def is_cancelled(self, job_id: str) -> bool:
        return job_id in self._cancelled


def small_preview(preview) -> dict | None:
    """The job's preview as at most PREVIEW_WIDTH columns of 8-bit RGB, base64: small enough to poll."""
    if preview is None:
        return None
    stride = max(1, -(-preview.shape[1] // PREVIEW_WIDTH))
    rgb = (np.clip(preview[::stride, ::stride], 0, 1) * 255 + 0.5).astype(np.uint8)
    return {"width": rgb.shape[1], "height": rgb.shape[0], "rgb": base64.b64encode(rgb.tobytes()).decode()}


def plain(value):
    """A quality report as JSON values (numpy scalars become floats)."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return float(value) if np.ndim(value) == 0 else None


class Engine:
    """One replica: the engine's worker thread and the model it keeps loaded."""

    def __init__(self, files_root: str, threads: int):
        import torch

        torch.set_num_threads(max(1, threads))
        self.files_root = Path(files_root)
        self.worker = Worker()

    async def run(self, job_id: str, spec: JobSpec | DepthSpec, board):
        folder = self.files_root / job_id
        folder.mkdir(parents=True, exist_ok=True)
        known = {**spec.locations, str(folder): "<job folder>"}

        def write(image, resolved, job):  # in the worker thread; the files carry the client's names
            if spec.kind == "prop":
                job.metadata.update(prop_job.recorded(resolved.prompt, spec.names["prop_model"], spec.prop))
                job.metadata.update(client_metadata(job.metadata, spec.names))
                return prop_job.run_stages(image, spec.prop, folder, "prop", job)
            image = upscale_in_job(image, job, spec.upscale)  # records the upscale in job.metadata
            metadata = client_metadata(job.metadata, spec.names)
            if spec.kind == "world":
                return outputs.write_world(image, folder, "world", metadata, spec.hdr)
            return outputs.write_material(image, folder, "material", metadata)

        try:
            if isinstance(spec, DepthSpec):
                job = self._submit_depth(spec, folder)
            else:
                job = self.worker.submit(spec.request, on_image=write, prepare=spec.upscale.prepare)
        except PromptscapeError as error:
            shutil.rmtree(folder, ignore_errors=True)
            yield {"state": "failed", "message": scrub(str(error), known)}
            return
        seen = None
        try:
            while not job.done:
                await asyncio.sleep(POLL)
                if not job.cancel_requested and await board.is_cancelled.remote(job_id):
                    job.cancel()
                    yield {"replica_step_at_cancel": job.step}  # the step the work was at when it heard
                if (job.state, job.step, id(job.preview)) != seen:
                    seen = (job.state, job.step, id(job.preview))
                    yield self._progress(job)
        except asyncio.CancelledError:  # the gateway dropped the call: stop the job with it
            job.cancel()
            raise
        yield self._final(job, folder, spec, known)

    def _submit_depth(self, spec: DepthSpec, folder: Path):
        """The depth job of world_depth in this replica's worker thread, on the uploaded panorama; its
        distance and mesh arrays go back as an .npz beside the depth files."""
        metadata = {
            "mode": spec.kind,
            "camera_height": f"{spec.camera_height:g}",
            "depth_model": spec.model_name,
        }

        def work(job):
            display = read_panorama(folder / "upload.png")
            found = world_depth.estimate(display, spec.source, "auto", spec.camera_height, job)
            made = world_depth.write(found, job, folder, "world", metadata, spec.mesh)
            arrays = world_depth.save_arrays(made, folder / "world-depth.npz")
            (folder / "upload.png").unlink()
            return DepthFiles(made.exr, made.png, arrays)

        return self.worker.submit_conversion(work, metadata)

    def _progress(self, job) -> dict:
        eta = job.eta
        # A job that has just ended still reads as post-processing until its final update, with the files.
        return {
            "state": "postprocessing" if job.done else job.state,
            "step": job.step,
            "steps": job.steps,
            "eta": None if eta is None else round(eta, 2),
            "stage": getattr(job, "stage", ""),
            "preview": small_preview(job.preview),
        }

    def _final(self, job, folder: Path, spec: JobSpec, known: dict) -> dict:
        final = {"state": job.state, "step": job.step, "steps": job.steps, "ended": time.time()}
        final["message"] = scrub(job.message, known)
        if job.metadata:
            final["metadata"] = client_metadata(job.metadata, spec.names)
        if job.state == "done" and job.outputs is not None:
            files = {
                role: Path(path).name
                for role, path in vars(job.outputs).items()
                if role != "report" and isinstance(path, Path)
            }
            final.update(files=files, report=plain(getattr(job.outputs, "report", {})))
        return final


def engine_deployment(replicas: tuple[int, int], cpus: float, gpus: float):
    """The Engine as a deployment: min..max replicas by queue length, each with its share of a GPU."""
    low, high = replicas
    scaling = (
        {"num_replicas": low}
        if low == high
        else {
            "autoscaling_config": {
                "min_replicas": low,
                "max_replicas": high,
                "target_ongoing_requests": 1,
                "upscale_delay_s": 2,
            }
        }
    )
    return serve.deployment(
        Engine,
        name="Engine",
        # One job runs and one waits in the worker's queue, so a replica never idles between jobs;
        # the rest wait in Serve's queue, where any replica (or a new one) can take them.
        max_ongoing_requests=ONGOING_PER_REPLICA,
        max_queued_requests=-1,
        ray_actor_options={"num_cpus": cpus, "num_gpus": gpus},
        health_check_period_s=5,
        graceful_shutdown_timeout_s=5,
        **scaling,
    )
