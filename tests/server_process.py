"""A Promptscape server for the tests: `python -m server` from .venv-server, in its own process group.

Ray starts a real single-machine cluster inside it (there is no local mode), on 127.0.0.1, with one CPU
per replica. Startup and shutdown are bounded; stopping kills the whole group and waits for the port.
"""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv-server" / "bin" / "python"
STARTUP_SECONDS = 120  # 10-20 s on 2 idle cores; the rest is headroom for a loaded machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class ServerProcess:
    def __init__(self, models: Path, scratch: Path, token: str, *extra: str, port: int | None = None):
        if not PYTHON.exists():
            raise RuntimeError(
                f"{PYTHON} is missing: `make test` builds it (or `make .venv-server/.installed`)"
            )
        self.port, self.token = port or free_port(), token
        self.url = f"http://127.0.0.1:{self.port}"
        scratch.mkdir(parents=True, exist_ok=True)
        self.log = scratch / f"server-{self.port}.log"
        env = {
            **os.environ,
            "HOME": str(scratch),  # Ray writes ~/.ray/auth_token
            "HF_HUB_OFFLINE": "1",
            "HF_HOME": str(scratch / "hf-home"),
            "TMPDIR": "/tmp",  # Ray's socket paths must stay short
            "PROMPTSCAPE_SERVER_TOKEN": token,  # as the README says: never on the command line
        }
        env.pop("PYTHONPATH", None)
        args = ["--port", str(self.port), "--models", str(models), "--cpus", "2", *extra]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [str(PYTHON), "-m", "server", *args],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_in = self._wait_ready()

    def _wait_ready(self) -> float:
        started = time.monotonic()
        while time.monotonic() - started < STARTUP_SECONDS:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/v1/health", timeout=2) as response:
                    if json.loads(response.read())["status"] == "ok":
                        return time.monotonic() - started
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the server did not answer within {STARTUP_SECONDS} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def kill(self):
        """As if the machine lost power: SIGKILL to the driver's group, nothing shut down in order."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 40.0):
        """SIGTERM (Serve and Ray shut down), SIGKILL if that takes too long; then wait for the port."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        deadline = time.monotonic() + 20  # Ray's proxy, in its own group, lets go of the port last
        while port_in_use(self.port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not port_in_use(self.port), f"port {self.port} is still held after the server stopped"

    def call(self, method: str, path: str, body=None, token: str | None = None, raw: bytes | None = None,
             headers: dict | None = None):  # fmt: skip
        """(status, JSON answer) of one call, with this server's token unless another is given; a body
        goes as application/json unless `headers` say otherwise."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.url + path, data=data, method=method)
        given = self.token if token is None else token
        if given:
            request.add_header("Authorization", f"Bearer {given}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")
