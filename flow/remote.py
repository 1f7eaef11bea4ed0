"""Jobs on a Promptscape server (server/PROTOCOL.md): the same job vocabulary as the local worker.

A RemoteJob is made on the main thread without touching the network; its own thread submits the job,
polls it, sends the cancel, and downloads the result files into the local output folder before the job
reads "done", so the runner applies it like a local result. urllib only, and no bpy in the thread.
A depth or mesh job uploads its panorama as a PNG first and gets the mesh's arrays back with the files.
"""

import base64
import contextlib
import ipaddress
import json
import logging
import os
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..generation.engine import world_depth
from ..generation.errors import Cancelled, GenerationFailed, PromptscapeError
from ..generation.imaging import image_files, outputs

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.2
CALL_TIMEOUT = 10.0  # one HTTP call; a server that stays silent longer is retried until `silence`
REFUSED_GRACE = 3.0  # seconds of refused connections before the server counts as gone
MAX_JOB_SECONDS = 6 * 3600
CHUNK = 1 << 20
ONLINE_NEEDED = (
    "{where} is not this computer: generating there needs Blender's online access "
    "(Preferences > System > Network, or blender --online-mode)"
)


def is_loopback(host: str) -> bool:
    """Whether `host` is this computer, without a DNS look-up (which could block the main thread)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Server:
    """Where a Promptscape server is and how to talk to it: URL, token, and how long it may stay silent."""

    def __init__(self, url: str, token: str = "", silence: float = 120.0, online_access: bool = False):
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PromptscapeError(f"server: {url!r} is not a URL such as http://gpu-box:8765")
        self.base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        if not is_loopback(parts.hostname) and not online_access:
            raise PromptscapeError(ONLINE_NEEDED.format(where=f"The server {self.where}"))
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
                return urllib.request.urlopen(request, timeout=timeout)
            except urllib.error.HTTPError as error:
                raise Refused(error.code, _error_text(error)) from None

    def call(self, method: str, path: str, body: dict | None = None, upload: Path | None = None) -> dict:
        """One JSON call; raises Refused for an answer that is an error, OSError when none came."""
        timeout = min(CALL_TIMEOUT, self.silence) if upload is None else max(CALL_TIMEOUT, self.silence)
        with self._open(method, path, body, timeout, upload) as response:
            return json.loads(response.read(1 << 22).decode())

    def download(self, path: str, target: Path) -> None:
        """A result file, streamed to `target` under a temporary name and renamed when complete."""
        partial = target.with_name(target.name + ".part")
        try:
            timeout = max(CALL_TIMEOUT, self.silence)
            with self._open("GET", path, timeout=timeout) as response, open(partial, "wb") as file:
                while chunk := response.read(CHUNK):
                    file.write(chunk)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)


class Refused(PromptscapeError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _error_text(error: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(error.read(1 << 16).decode())["error"])
    except (ValueError, KeyError, TypeError, OSError):
        return f"HTTP {error.code} {error.reason}"


def decode_preview(preview: dict | None):
    """The server's small 8-bit preview as the float32 HxWx3 array the sidebar shows."""
    if not preview:
        return None
    width, height = int(preview["width"]), int(preview["height"])
    rgb = np.frombuffer(base64.b64decode(preview["rgb"]), dtype=np.uint8)
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
        self.state, self.step, self.steps, self.eta = "queued", 0, options.get("steps", 0), None
        self.stage = ""  # the server's words for a stage after denoising ("repairing poles", ...)
        self.preview = None
        self._preview_text = None
        self.outputs = None
        self.metadata: dict[str, str] = {}
        self.timings: dict[str, float] = {}
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
                return self.server.call(method, path, body, upload)
            except Refused:
                raise
            except (OSError, ValueError) as error:
                quiet = time.monotonic() - silent_since
                refused = isinstance(getattr(error, "reason", error), ConnectionRefusedError)
                if quiet >= (min(REFUSED_GRACE, self.server.silence) if refused else self.server.silence):
                    raise GenerationFailed(
                        f"The server {self.server.where} stopped answering ({_reason(error)}) "
                        f"{quiet:.0f} s ago; the job there is lost and the scene is unchanged"
                    ) from None
                self._cancel.wait(POLL_INTERVAL)

    def _submit(self) -> str:
        if self._upload is None:
            return self._ask("POST", "/v1/jobs", {"kind": self.kind, **self.options})["id"]
        self.stage = "sending the panorama"
        handle, name = tempfile.mkstemp(prefix=".promptscape-upload-", suffix=".png", dir=self.folder)
        os.close(handle)
        try:
            image_files.write_png(name, self._upload, 8)
            return self._ask("POST", "/v1/depth", {"kind": self.kind, **self.options}, Path(name))["id"]
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
            self.step, self.steps, self.eta = status["step"], status["steps"], status.get("eta")
            self.stage = str(status.get("stage") or "")[:200]
            preview = status.get("preview")
            if preview and preview.get("rgb") != self._preview_text:  # a new array only for a new preview
                self._preview_text, self.preview = preview.get("rgb"), decode_preview(preview)
            state = status["state"]
            if state == "done":
                self._download(status)
                return
            if state in ("failed", "cancelled"):
                self.metadata = status.get("metadata") or {}
                message = status.get("message") or state
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
        self.state = "postprocessing"  # the files are on their way here
        started = time.perf_counter()
        files = status["files"]
        base = "material" if self.kind == "material" else "world"
        roles = list(files)
        suffixes = [files[role][len(base) :] for role in roles]
        _, paths = image_files.unique_stem(self.folder, self._stem(status["metadata"]), suffixes)
        for role, path in zip(roles, paths, strict=True):
            self.server.download(f"/v1/jobs/{self.id}/files/{urllib.parse.quote(files[role])}", path)
        found = dict(zip(roles, paths, strict=True))
        if self._upload is not None:  # the arrays came only to build the mesh here: not kept
            self.outputs = world_depth.load_arrays(found["exr"], found["png"], found["arrays"])
            found["arrays"].unlink()
        else:
            made = outputs.WorldOutputs if self.kind == "world" else outputs.MaterialOutputs
            self.outputs = made(**found, report=status.get("report") or {})
        self.metadata = {**status["metadata"], **self._local_metadata}
        self.timings["download"] = time.perf_counter() - started
        self._finish("done")


def _reason(error: Exception) -> str:
    reason = getattr(error, "reason", error)
    return str(reason) or type(reason).__name__
