"""Jobs on a Promptscape server (server/PROTOCOL.md): the same job vocabulary as the local worker.

A RemoteJob is made on the main thread without touching the network; its own thread submits the job,
polls it, sends the cancel, and downloads the result files into the local output folder before the job
reads "done", so the runner applies it like a local result. urllib only, and no bpy in the thread.
A depth or mesh job uploads its panorama as a PNG first and gets the mesh's arrays back with the files.
"""

import base64
import contextlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..generation.engine import server_trust as trust
from ..generation.engine import world_depth
from ..generation.engine.worker import STATES
from ..generation.errors import Cancelled, GenerationFailed, PromptscapeError
from ..generation.imaging import image_files, outputs, prop_files

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.2
CALL_TIMEOUT = 10.0  # one HTTP call; a server that stays silent longer is retried until `silence`
REFUSED_GRACE = 3.0  # seconds of refused connections before the server counts as gone
MAX_JOB_SECONDS = 6 * 3600
CHUNK = 1 << 20
MAX_REPLY = 1 << 22  # bytes of one JSON answer (a status with its small preview is a few KiB)
MAX_FILE = 1 << 30  # bytes of one result file: an 8192x4096 float EXR is about 400 MiB raw
MAX_COUNT = 1 << 20  # steps or tiles of a stage


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """The protocol never redirects; following one would carry the token to wherever it points
    (plain http included), so a redirect is an error the user reads."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise GenerationFailed(
            f"The server {req.host} answered with a redirect to {newurl[:120]}: Promptscape follows no "
            "redirects, as the token would go along; set the address it should use as the server"
        )


_OPENER = urllib.request.build_opener(_NoRedirects)


class Server:
    """Where a Promptscape server is and how to talk to it: URL, token, and how long it may stay silent.
    Plain http to another computer needs `allow_http` (the token would cross the network in clear)."""

    def __init__(self, url: str, token: str = "", silence: float = 120.0, online_access: bool = False,
                 allow_http: bool = False):  # fmt: skip
        self.base, self.where = trust.check_url(url, online_access, allow_http)
        self.token = token
        self.silence = float(silence)

    def _open(self, method: str, path: str, body: dict | None = None, timeout: float = CALL_TIMEOUT,
              upload: Path | None = None):  # fmt: skip
        """`body` goes as JSON; with `upload` the file is the body (a PNG, streamed) and `body` the
        X-Promptscape-Job header."""
        data = None if body is None else json.dumps(body).encode()
        with contextlib.ExitStack() as stack:
            if upload is not None:
                file = stack.enter_context(open(upload, "rb"))
                request = urllib.request.Request(self.base + path, data=file, method=method)
                request.add_header("Content-Type", "image/png")
                request.add_header("Content-Length", str(upload.stat().st_size))
                request.add_header("X-Promptscape-Job", data.decode())
            else:
                request = urllib.request.Request(self.base + path, data=data, method=method)
                if data is not None:
                    request.add_header("Content-Type", "application/json")
            if self.token:
                request.add_header("Authorization", f"Bearer {self.token}")
            try:
                return _OPENER.open(request, timeout=timeout)
            except urllib.error.HTTPError as error:
                raise Refused(error.code, _error_text(error)) from None

    def call(self, method: str, path: str, body: dict | None = None, upload: Path | None = None) -> dict:
        """One JSON call; raises Refused for an answer that is an error, OSError when none came."""
        timeout = min(CALL_TIMEOUT, self.silence) if upload is None else max(CALL_TIMEOUT, self.silence)
        with self._open(method, path, body, timeout, upload) as response:
            text = response.read(MAX_REPLY + 1)
        if len(text) > MAX_REPLY:
            raise Refused(200, f"its answer is over {MAX_REPLY >> 20} MiB")
        answer = json.loads(text.decode())
        if not isinstance(answer, dict):
            raise Refused(200, "its answer is not a JSON object")
        return answer

    def download(self, path: str, target: Path) -> None:
        """A result file, streamed to `target` under a temporary name and renamed when complete; one
        larger than MAX_FILE is refused (a server could otherwise fill the disk)."""
        partial = target.with_name(target.name + ".part")
        try:
            timeout = max(CALL_TIMEOUT, self.silence)
            with self._open("GET", path, timeout=timeout) as response, open(partial, "wb") as file:
                too_big = Refused(200, f"its file {target.name} is over {MAX_FILE >> 20} MiB")
                declared = response.headers.get("Content-Length") or "0"
                if not declared.isdigit() or int(declared) > MAX_FILE:
                    raise too_big
                while chunk := response.read(CHUNK):
                    file.write(chunk)
                    if file.tell() > MAX_FILE:
                        raise too_big
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)


class Refused(PromptscapeError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _error_text(error: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(error.read(1 << 16).decode())["error"])[: trust.MAX_TEXT]
    except (ValueError, KeyError, TypeError, OSError):
        return f"HTTP {error.code} {error.reason}"


def decode_preview(preview: dict | None):
    """The server's small 8-bit preview as the float32 HxWx3 array the sidebar shows (None for one that
    is not a small image)."""
    if not isinstance(preview, dict) or not isinstance(preview.get("rgb"), str):
        return None
    try:
        width, height = (trust.bounded_int(preview.get(side), 1, 1024, side) for side in ("width", "height"))
        rgb = np.frombuffer(base64.b64decode(preview["rgb"], validate=True), dtype=np.uint8)
    except (GenerationFailed, ValueError):
        return None
    if rgb.size != width * height * 3:
        return None
    return rgb.reshape(height, width, 3).astype(np.float32) / 255.0


class RemoteJob:
    """A job on a server, with the local Job's state, step, steps, eta, preview, outputs and cancel()."""

    def __init__(self, server: Server, kind: str, options: dict, folder: Path, stem: Callable[[dict], str],
                 upload: np.ndarray | None = None, metadata: dict | None = None):  # fmt: skip
        """`upload`: a depth or mesh job's panorama (sRGB in [0, 1]); `metadata`: what the result records
        beside the server's fields (the world's own, for a depth job)."""
        self.server, self.kind, self.options = server, kind, options
        self.folder, self._stem = Path(folder), stem
        self._upload, self._local_metadata = upload, dict(metadata or {})
        self.id = ""
        self.state, self.step, self.steps, self.eta = "queued", 0, options.get("steps") or 0, None
        self.stage = ""  # the server's words for a stage after denoising ("repairing poles", ...)
        self.preview = None
        self._preview_text = None
        self.outputs = None
        self.metadata: dict[str, str] = {}
        self.timings: dict[str, float] = {}
        self._answered = False  # whether the server has answered any call of this job
        self.error: BaseException | None = None
        self.message = ""
        self._started = time.perf_counter()
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name="promptscape-remote", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<RemoteJob {self.server.where} {self.state} step {self.step}/{self.steps}>"

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    def wait(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)

    def cancel(self) -> None:
        """Ask the server to stop the job; it ends "cancelled" within a step or so."""
        self._cancel.set()

    def _finish(self, state: str, error: BaseException | None = None) -> None:
        self.error, self.message = error, str(error) if error else ""
        self.timings["remote"] = self.elapsed
        self.state = state
        self._finished.set()

    def _run(self) -> None:
        try:
            self._follow()
        except Refused as error:
            self._finish(
                "failed", GenerationFailed(f"The server {self.server.where} refused the job: {error}")
            )
        except PromptscapeError as error:
            self._finish("failed", error)
        except Exception as error:  # the thread must end the job whatever happens, or a wait never ends
            log.exception("remote job on %s failed", self.server.where)
            self._finish("failed", GenerationFailed(f"The job on {self.server.where} failed: {error}"))

    def _ask(self, method: str, path: str, body: dict | None = None, upload: Path | None = None) -> dict:
        """A call retried until the server has been silent for `silence` seconds (refused: a few)."""
        silent_since = time.monotonic()
        while True:
            try:
                answer = self.server.call(method, path, body, upload)
                self._answered = True
                return answer
            except Refused:
                raise
            except (OSError, ValueError) as error:
                quiet = time.monotonic() - silent_since
                reason = getattr(error, "reason", error)
                refused = isinstance(reason, ConnectionRefusedError)
                if quiet < (min(REFUSED_GRACE, self.server.silence) if refused else self.server.silence):
                    self._cancel.wait(POLL_INTERVAL)
                    continue
                # Never reached: a server that is not up, or an address that leads nowhere.
                if not self._answered and (refused or isinstance(reason, socket.gaierror)):
                    raise GenerationFailed(
                        f"Could not connect to {self.server.where} ({_reason(error)}): check that the "
                        "Promptscape server runs there and that the address is right; the scene is unchanged"
                    ) from None
                raise GenerationFailed(
                    f"The server {self.server.where} stopped answering ({_reason(error)}) "
                    f"{quiet:.0f} s ago; the job there is lost and the scene is unchanged"
                ) from None

    def _submit(self) -> str:
        if self._upload is None:
            return _job_id(self._ask("POST", "/v1/jobs", {"kind": self.kind, **self.options}))
        self.stage = "sending the panorama"
        handle, name = tempfile.mkstemp(prefix=".promptscape-upload-", suffix=".png", dir=self.folder)
        os.close(handle)
        try:
            image_files.write_png(name, self._upload, 8)
            return _job_id(self._ask("POST", "/v1/depth", {"kind": self.kind, **self.options}, Path(name)))
        finally:
            Path(name).unlink(missing_ok=True)

    def _follow(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.id = self._submit()
        cancel_sent, deadline = False, time.monotonic() + MAX_JOB_SECONDS
        while time.monotonic() < deadline:
            if self._cancel.is_set() and not cancel_sent:
                self._ask("DELETE", f"/v1/jobs/{self.id}")
                cancel_sent = True
            status = self._ask("GET", f"/v1/jobs/{self.id}")
            state = status.get("state")
            if state not in STATES:
                where = self.server.where
                raise GenerationFailed(f"The server {where} reported the state {str(state)[:40]!r}")
            # Steps count denoising steps or a later stage's tiles: bounded, not compared (a stage's
            # step and steps change one after the other on the server).
            self.steps = trust.bounded_int(status.get("steps"), 0, MAX_COUNT, "step count")
            self.step = trust.bounded_int(status.get("step"), 0, MAX_COUNT, "step")
            eta = status.get("eta")
            self.eta = float(eta) if isinstance(eta, int | float) and 0 <= eta < MAX_JOB_SECONDS else None
            self.stage = str(status.get("stage") or "")[:200]
            preview = status.get("preview")
            if isinstance(preview, dict) and preview.get("rgb") != self._preview_text:  # new previews only
                self._preview_text, self.preview = preview.get("rgb"), decode_preview(preview)
            if state == "done":
                self._download(status)
                return
            if state in ("failed", "cancelled"):
                self.metadata = trust.checked_metadata(status.get("metadata"))
                message = str(status.get("message") or state)[: trust.MAX_TEXT]
                error = (
                    Cancelled(message)
                    if state == "cancelled"
                    else GenerationFailed(f"The job on {self.server.where} failed: {message}")
                )
                self._finish(state, error)
                return
            self.state = state
            self._cancel.wait(POLL_INTERVAL)
        raise GenerationFailed(f"The job on {self.server.where} ran over {MAX_JOB_SECONDS // 3600} hours")

    def _download(self, status: dict) -> None:
        """The result files into the output folder, under names made here: the server's names are only
        accepted as the ones it gives each role, and nothing lands outside the folder (server_trust)."""
        self.state = "postprocessing"  # the files are on their way here
        started = time.perf_counter()
        metadata = trust.checked_metadata(status.get("metadata"))
        try:
            found = trust.result_paths(status.get("files"), self.kind, self.folder, self._stem(metadata))
        except GenerationFailed as error:
            where = self.server.where
            raise GenerationFailed(f"The server {where} sent a result Promptscape refuses: {error}") from None
        for name, path in found.values():
            self.server.download(f"/v1/jobs/{self.id}/files/{urllib.parse.quote(name)}", path)
        paths = {role: path for role, (_, path) in found.items()}
        if self._upload is not None:  # the arrays came only to build the mesh here: not kept
            try:
                self.outputs = world_depth.load_arrays(paths["exr"], paths["png"], paths["arrays"])
            finally:
                paths["arrays"].unlink()
        elif self.kind == "prop":  # the mesh is read (and checked) when the object is made
            self.outputs = prop_files.PropOutputs(**paths)
        else:
            made = outputs.WorldOutputs if self.kind == "world" else outputs.MaterialOutputs
            report = status.get("report")
            self.outputs = made(**paths, report=report if isinstance(report, dict) else {})
        self.metadata = {**metadata, **self._local_metadata}
        self.timings["download"] = time.perf_counter() - started
        self._finish("done")


def _job_id(answer: dict) -> str:
    """The id a server gave a new job: it goes into URLs, so only letters and digits."""
    job_id = answer.get("id")
    if not isinstance(job_id, str) or not job_id.isalnum() or not job_id.isascii() or len(job_id) > 64:
        raise GenerationFailed(f"The server answered with the job id {str(job_id)[:40]!r}, not a plain id")
    return job_id


def _reason(error: Exception) -> str:
    reason = getattr(error, "reason", error)
    return str(reason) or type(reason).__name__
