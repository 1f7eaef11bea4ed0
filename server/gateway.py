"""The HTTP side: /v1/... routes, the bearer token, bounded bodies, and the table of jobs.

One gateway replica holds the jobs (ids, state, files) and hands each to the Engine deployment as a
streaming call that it follows in the background; status polls are answered from memory, so they stay
fast however busy the replicas are. Jobs wait for a free engine slot here, in one semaphore, rather than
in Serve's router, whose retries for each waiting call grow with the queue. Finished jobs' files are
deleted after `keep_seconds`; a job that runs past `job_timeout` fails.
"""

import asyncio
import contextlib
import hmac
import logging
import secrets
import shutil
import time
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from ray import serve

from generation.errors import PromptscapeError

from .engine import CancelBoard
from .models import AllowedModels
from .wire import (
    MAX_BODY,
    MAX_HEADER,
    MAX_UPLOAD,
    PROTOCOL,
    parse_body,
    parse_depth_job,
    parse_job,
    read_panorama,
    tokenless_refusal,
    wrong_type,
)

log = logging.getLogger(__name__)
FINAL = ("done", "failed", "cancelled")
STATUS_FIELDS = (
    "id",
    "kind",
    "model",
    "state",
    "step",
    "steps",
    "stage",
    "eta",
    "message",
    "metadata",
    "files",
    "report",
)

app = FastAPI(title="Promptscape server", docs_url=None, redoc_url=None, openapi_url=None)


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@app.exception_handler(Refused)
async def _refused(request, error: Refused):
    return JSONResponse({"error": str(error)}, status_code=error.status)


# Defined before the class: serve.ingress serialises the class's routes as soon as it is defined.
def _require_type(request: Request, expected: str) -> None:
    if problem := wrong_type(request.headers, expected):
        raise Refused(415, problem)


def _check_tokenless(headers) -> None:
    if refusal := tokenless_refusal(headers):
        raise Refused(*refusal)


async def _bounded_stream(request: Request, limit: int, too_big: str):
    """The body's chunks, refused with 413 as soon as the declared or the streamed size passes `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise Refused(413, too_big)
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise Refused(413, too_big)
        yield chunk


async def _bounded_body(request: Request) -> bytes:
    too_big = f"the request body is over {MAX_BODY // 1024} KiB"
    return b"".join([chunk async for chunk in _bounded_stream(request, MAX_BODY, too_big)])


async def _upload_to(request: Request, path: Path) -> None:
    """The request body streamed into `path`, refused past MAX_UPLOAD (it is never held in memory)."""
    with open(path, "wb") as file:
        async for chunk in _bounded_stream(
            request, MAX_UPLOAD, f"the panorama is over {MAX_UPLOAD // 2**20} MiB"
        ):
            file.write(chunk)


# One replica: it holds the job table. Async and light, it answers many polls at once.
@serve.deployment(
    name="Gateway",
    num_replicas=1,
    max_ongoing_requests=1000,
    ray_actor_options={"num_cpus": 0},
    logging_config={"enable_access_log": False},  # a line on disk for every poll otherwise
)
@serve.ingress(app)
class Gateway:
    def __init__(self, engine, settings: dict):
        self.engine = engine
        self.token = settings["token"].encode() if settings["token"] else b""
        self.models = AllowedModels(settings["models"])
        self.files_root = Path(settings["files_root"])
        self.keep_seconds = settings["keep_seconds"]
        self.max_jobs = settings["max_jobs"]
        self.job_timeout = settings["job_timeout"]
        self.engine_slots = settings["engine_slots"]
        self.jobs: dict[str, dict] = {}
        self.active = 0  # jobs accepted and not yet ended, counted before their first await
        self.board = CancelBoard.remote()
        self._sweeper = None
        self._slots = None

    def _authorise(self, request: Request):
        if self._sweeper is None:  # the event loop runs by now
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
            self._slots = asyncio.Semaphore(self.engine_slots)
        if not self.token:
            _check_tokenless(request.headers)
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise Refused(401, "this server needs a token: send Authorization: Bearer TOKEN")
        if not hmac.compare_digest(given.strip().encode(), self.token):
            raise Refused(401, "the token is wrong: check the server token in Preferences > Promptscape")

    def _job(self, job_id: str) -> dict:
        job = self.jobs.get(job_id)
        if job is None:
            raise Refused(404, f"no job {job_id[:40]!r} on this server (finished jobs expire)")
        return job

    @app.get("/v1/health")
    async def health(self, request: Request):
        if not self.token:
            _check_tokenless(request.headers)
        return {"status": "ok", "protocol": PROTOCOL}

    @app.get("/v1/models")
    async def list_models(self, request: Request):
        self._authorise(request)
        # Listing stats the models folder and scans the Hugging Face cache: off the loop that answers polls.
        return await asyncio.to_thread(
            lambda: {"models": self.models.names(), "depth_models": self.models.depth_names()}
        )

    @contextlib.contextmanager
    def _accepting(self):
        """Count a submission from the moment it is accepted, before its first await (its body or upload
        still to come), so concurrent submissions cannot pass max_jobs; uncounted again if it is refused."""
        if self.active >= self.max_jobs:
            raise Refused(429, f"the server's queue is full ({self.max_jobs} jobs): try again later")
        self.active += 1
        try:
            yield
        except BaseException:
            self.active -= 1
            raise

    @app.post("/v1/jobs", status_code=201)
    async def submit(self, request: Request):
        self._authorise(request)
        _require_type(request, "application/json")
        with self._accepting():
            body = await _bounded_body(request)
            try:
                spec = await asyncio.to_thread(parse_job, parse_body(body), self.models)  # as list_models
            except PromptscapeError as error:
                raise Refused(400, str(error)) from None
            return self._start(secrets.token_hex(12), spec, spec.request.steps or 0)  # 0: the model's own

    @app.post("/v1/depth", status_code=201)
    async def submit_depth(self, request: Request):
        """A depth or mesh job: the body is the panorama as a PNG, the options are the header's JSON."""
        self._authorise(request)
        _require_type(request, "image/png")
        header = request.headers.get("x-promptscape-job", "")
        if len(header) > MAX_HEADER:
            raise Refused(413, f"the X-Promptscape-Job header is over {MAX_HEADER} bytes")
        with self._accepting():
            try:
                spec = await asyncio.to_thread(parse_depth_job, parse_body(header.encode()), self.models)
            except PromptscapeError as error:
                raise Refused(400, f"X-Promptscape-Job: {error}") from None
            job_id = secrets.token_hex(12)
            folder = self.files_root / job_id
            folder.mkdir(parents=True)
            try:
                await _upload_to(request, folder / "upload.png")
                read_panorama(folder / "upload.png", decode=False)  # its header: refused now, in words
            except PromptscapeError as error:
                shutil.rmtree(folder, ignore_errors=True)
                raise Refused(400, str(error)) from None
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            return self._start(job_id, spec, 6)  # six cube views

    def _start(self, job_id: str, spec, steps: int) -> dict:
        job = {
            "id": job_id,
            "kind": spec.kind,
            "model": spec.model_name,
            "state": "queued",
            "step": 0,
            "steps": steps,
            "stage": "",
            "eta": None,
            "message": "",
            "metadata": {},
            "files": {},
            "report": {},
            "preview": None,
            "created": time.time(),
            "ended": None,
        }
        self.jobs[job_id] = job
        job["follow"] = asyncio.get_running_loop().create_task(self._follow(job, spec))
        return {"id": job_id}

    async def _follow(self, job: dict, spec):
        """Wait for an engine slot, run the job there and copy its updates into the table; the job ends
        here whatever happens, and only here is it uncounted."""
        try:
            async with asyncio.timeout(self.job_timeout), self._slots:
                job["call"] = self.engine.options(stream=True).run.remote(job["id"], spec, self.board)
                async for update in job["call"]:
                    job.update(update)
        except asyncio.CancelledError:
            if not job.get("cancel_requested") or "call" in job:
                raise  # the gateway itself is stopping
            job.update(state="cancelled", message="cancelled before it started")
        except TimeoutError:
            if job.get("call") is not None:
                job["call"].cancel()  # the replica stops the work at its next step
            job.update(
                state="failed",
                message=f"the job ran over this server's limit of {self.job_timeout:g} s (--job-timeout)",
            )
        except Exception as error:
            if job.get("cancel_requested"):
                job.update(state="cancelled", message="cancelled before it started")
            else:
                log.warning("job %s lost its replica: %s", job["id"], type(error).__name__)
                job.update(state="failed", message="the server's generation replica stopped during the job")
        finally:
            if job["state"] not in FINAL:
                job.update(state="failed", message="the generation replica ended without a result")
            job["ended"] = job.get("ended") or time.time()
            job.pop("call", None)
            self.active -= 1
            self.board.forget.remote(job["id"])

    @app.get("/v1/jobs/{job_id}")
    async def status(self, job_id: str, request: Request, preview: int = 1):
        self._authorise(request)
        job = self._job(job_id)
        found = {name: job[name] for name in STATUS_FIELDS}
        if preview:
            found["preview"] = job["preview"]
        for name in ("step_at_cancel", "replica_step_at_cancel"):
            if name in job:
                found[name] = job[name]
        return found

    @app.delete("/v1/jobs/{job_id}", status_code=202)
    async def cancel(self, job_id: str, request: Request):
        self._authorise(request)
        job = self._job(job_id)
        if job["state"] not in FINAL and not job.get("cancel_requested"):
            job["cancel_requested"] = True
            job["step_at_cancel"] = job["step"]
            if "call" not in job:  # still waiting here for an engine slot
                job["follow"].cancel()
            else:
                await self.board.cancel.remote(job_id)
                if job["state"] == "queued" and job.get("call") is not None:
                    job["call"].cancel()  # in a replica's queue: it never starts
        return {"id": job_id, "state": job["state"]}

    @app.get("/v1/jobs/{job_id}/files/{name}")
    async def file(self, job_id: str, name: str, request: Request):
        self._authorise(request)
        job = self._job(job_id)
        if name not in job["files"].values():
            names = ", ".join(sorted(job["files"].values())) or "none yet"
            raise Refused(404, f"job {job_id} has no file {name[:60]!r}; it has: {names}")
        return FileResponse(self.files_root / job_id / name, filename=name)

    async def _sweep(self):
        """Forget finished jobs and delete their files `keep_seconds` after they ended."""
        while True:
            await asyncio.sleep(max(1.0, min(30.0, self.keep_seconds / 4)))
            now = time.time()
            for job in list(self.jobs.values()):
                if job["state"] in FINAL and job["ended"] and now - job["ended"] > self.keep_seconds:
                    del self.jobs[job["id"]]
                    shutil.rmtree(self.files_root / job["id"], ignore_errors=True)
