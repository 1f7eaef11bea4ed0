"""Which models to use: a short curated list, the models already in the Hugging Face cache, and downloads.

Downloads happen only when the caller says the network is allowed (Blender's online access) and the
user asked. huggingface_hub keeps partial files apart from finished ones and resumes them, so an
interrupted download is never used as a model.
"""

import logging
import threading
import time
from dataclasses import dataclass

from .errors import Cancelled, MissingDependency, PromptscapeError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogModel:
    repo_id: str
    name: str
    vram_gb: float  # in fp16, at its native size
    licence: str
    note: str


CURATED = (
    CatalogModel(
        "stabilityai/stable-diffusion-xl-base-1.0",
        "SDXL 1.0",
        8.0,
        "CreativeML Open RAIL++-M",
        "Best quality; 1024 px native, worlds at 2048x1024",
    ),
    CatalogModel(
        "stabilityai/sdxl-turbo",
        "SDXL Turbo",
        8.0,
        "Stability AI Non-Commercial",
        "1-4 steps, guidance 0; non-commercial use only",
    ),
    CatalogModel(
        "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "Stable Diffusion 1.5",
        4.0,
        "CreativeML Open RAIL-M",
        "Runs on 4 GB cards; 512 px native",
    ),
    CatalogModel(
        "stabilityai/stable-diffusion-2-1-base",
        "Stable Diffusion 2.1",
        5.0,
        "CreativeML Open RAIL++-M",
        "512 px native",
    ),
)
_scan = [float("-inf"), []]  # (when, repo ids) of the last cache scan
# Only what a diffusers pipeline loads from its subfolders: no pickles, no root-level single-file copy.
DOWNLOAD_PATTERNS = ("model_index.json", "*/*.json", "*/*.txt", "*/*.model", "*/*.safetensors")


def _hub():
    try:
        import huggingface_hub
    except ImportError:
        raise MissingDependency(
            "huggingface_hub is not installed: Preferences > Add-ons > Promptscape > Dependencies > Install"
        ) from None
    return huggingface_hub


def cached_models(max_age: float = 5.0) -> list[str]:
    """Repo ids of diffusers models in the local Hugging Face cache (usable offline), sorted.

    Scanning stats every file in the cache, and the preferences redraw often: reuse a recent scan.
    """
    checked, found = _scan
    if time.monotonic() - checked < max_age:
        return found
    _scan[:] = [time.monotonic(), _scan_cache()]
    return _scan[1]


def _scan_cache() -> list[str]:
    try:
        hub = _hub()
    except MissingDependency:
        return []
    try:
        cache = hub.scan_cache_dir()
    except hub.errors.CacheNotFound:
        return []
    found = []
    for repo in cache.repos:
        if repo.repo_type == "model" and any(
            file.file_name == "model_index.json" for revision in repo.revisions for file in revision.files
        ):
            found.append(repo.repo_id)
    return sorted(found)


class Download:
    """A model download in a background thread, with bytes done/total and cancel()."""

    def __init__(self, repo_id: str, allow_network: bool, token: str | None = None):
        if not allow_network:
            raise PromptscapeError(
                "Downloading needs Blender's online access: Preferences > System > Network > "
                "Allow Online Access (or copy the model folder to this machine and pick it as the model)"
            )
        self.repo_id = repo_id.strip()
        self.token = token or None
        self.state = "running"  # running, done, failed, cancelled
        self.message = ""
        self.path = None
        self.done_bytes = 0
        self.total_bytes = 0
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="promptscape-download", daemon=True)

    @property
    def fraction(self) -> float:
        return self.done_bytes / self.total_bytes if self.total_bytes else 0.0

    def start(self) -> "Download":
        self._thread.start()
        return self

    def cancel(self):
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return self.state != "running"

    def _progress_class(self):
        """A tqdm stand-in that adds up bytes and aborts the download when cancelled."""
        download = self

        class Progress:
            def __init__(self, *args, total=None, **kwargs):
                self.total = total or 0
                download.total_bytes += self.total

            def update(self, n=1):
                if download._cancel.is_set():
                    raise Cancelled("Download cancelled; the finished parts are kept for a resume")
                download.done_bytes += n or 0

            def __getattr__(self, _name):  # close(), set_description(), refresh(), ...
                return lambda *args, **kwargs: None

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

        return Progress

    def _run(self):
        hub = None
        try:
            hub = _hub()
            self.path = hub.snapshot_download(
                self.repo_id,
                allow_patterns=list(DOWNLOAD_PATTERNS),
                token=self.token,
                tqdm_class=self._progress_class(),
            )
            self.state, self.message = "done", f"Downloaded {self.repo_id}"
        except Cancelled as error:
            self.state, self.message = "cancelled", str(error)
        except Exception as error:  # every hub failure becomes a message the user can act on
            self.state, self.message = "failed", describe_hub_error(hub, self.repo_id, error)
            log.info("Download of %s failed: %r", self.repo_id, error)


def describe_hub_error(hub, repo_id: str, error: Exception) -> str:
    """A hub exception in words: unknown id, gated model, no network."""
    errors = getattr(hub, "errors", None)
    if errors is not None and isinstance(error, errors.GatedRepoError):
        return (
            f"{repo_id} is gated: accept its licence on its Hugging Face page, then log in "
            "(huggingface-cli login) or set the HF_TOKEN environment variable, and retry"
        )
    if errors is not None and isinstance(error, errors.RepositoryNotFoundError):
        return f"No model called {repo_id} on Hugging Face: check the spelling (owner/name)"
    if isinstance(error, PromptscapeError):
        return str(error)
    return f"Downloading {repo_id} failed ({error}); the partial download resumes when you retry"
