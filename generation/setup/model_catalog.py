"""Which models to use: a short curated list, the models already in the Hugging Face cache, and downloads.

Downloads happen only when the caller says the network is allowed (Blender's online access) and the
user asked. huggingface_hub keeps partial files apart from finished ones and resumes them, so an
interrupted download is never used as a model.
"""

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..engine import memory_plan, model_size
from ..engine.controlnets import is_controlnet_folder
from ..engine.models import snapshot_complete
from ..errors import Cancelled, MissingDependency, PromptscapeError, missing_dependency
from . import prop_models

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogModel:
    repo_id: str
    name: str
    family: str  # a memory_plan.FAMILIES key: what its memory figures are estimated from
    licence: str
    note: str

    @property
    def size(self) -> memory_plan.ModelSize:
        return memory_plan.FAMILIES[self.family]

    @property
    def vram_gb(self) -> float:
        """GPU memory with everything resident (fp16, a square image at its native size), from the planner."""
        return _estimate(self.size, "full")

    @property
    def low_vram_gb(self) -> float:
        """GPU memory with the lowest plan (sequential offload, decoding in tiles)."""
        return _estimate(self.size, "lowest")

    @property
    def vram_estimated(self) -> bool:
        """True where the figures behind the estimate were not measured at this model's real size."""
        return not self.size.measured


def _estimate(size: memory_plan.ModelSize, which: str) -> float:
    whole, lowest = memory_plan.estimate_gb(size, size.native, size.native)
    return round(whole if which == "full" else lowest, 1)


@dataclass(frozen=True)
class CatalogVae:
    """A replacement VAE: give its id as the `vae` option."""

    repo_id: str
    name: str
    family: str
    licence: str
    note: str


CURATED = (
    CatalogModel(
        "stabilityai/stable-diffusion-xl-base-1.0",
        "SDXL 1.0",
        "sdxl",
        "CreativeML Open RAIL++-M",
        "Best quality; 1024 px native, worlds at 2048x1024",
    ),
    CatalogModel(
        "stabilityai/sdxl-turbo",
        "SDXL Turbo",
        "sdxl",
        "Stability AI Non-Commercial",
        "1-4 steps, guidance 0; non-commercial use only",
    ),
    CatalogModel(
        "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "Stable Diffusion 1.5",
        "sd",
        "CreativeML Open RAIL-M",
        "Runs on 4 GB cards; 512 px native",
    ),
    CatalogModel(
        "stabilityai/stable-diffusion-2-1-base",
        "Stable Diffusion 2.1",
        "sd2",
        "CreativeML Open RAIL++-M",
        "512 px native",
    ),
    # The transformers: a language model reads the prompt (long prompts are followed far better than by
    # CLIP). Steps and guidance are their own (generation/engine/families.py).
    CatalogModel(
        "Tongyi-MAI/Z-Image-Turbo",
        "Z-Image Turbo",
        "zimage",
        "Apache-2.0",
        "6B, Qwen3-4B text encoder; 8 steps, no guidance",
    ),
    CatalogModel(
        "black-forest-labs/FLUX.2-klein-4B",
        "FLUX.2 klein 4B",
        "flux2-klein",
        "Apache-2.0",
        "4B, Qwen3 text encoder; 4 steps (distilled)",
    ),
    CatalogModel(
        "Qwen/Qwen-Image",
        "Qwen-Image",
        "qwen-image",
        "Apache-2.0",
        "20B, Qwen2.5-VL-7B text encoder; 50 steps, true CFG 4; needs a large GPU",
    ),
)
CURATED_VAES = (
    CatalogVae(
        "madebyollin/sdxl-vae-fp16-fix",
        "SDXL VAE fp16 fix",
        "sdxl",
        "MIT",
        "SDXL's VAE rescaled to decode in fp16 without NaNs: no fp32 upcast, half the decode memory",
    ),
)


@dataclass(frozen=True)
class CatalogControlNet:
    """A depth ControlNet for projected textures: the `controlnet` option's default for its family."""

    repo_id: str
    name: str
    family: str
    licence: str
    note: str


# The same ids as engine/controlnets.py's CURATED (a test keeps the two in step); licences from the cards.
CURATED_CONTROLNETS = (
    CatalogControlNet(
        "lllyasviel/control_v11f1p_sd15_depth",
        "Depth ControlNet for SD 1.5 (v1.1)",
        "sd",
        "CreativeML OpenRAIL-M",
        "Projected textures with SD 1.5 models: the view's depth shapes the picture; 1.4 GB",
    ),
    CatalogControlNet(
        "diffusers/controlnet-depth-sdxl-1.0",
        "Depth ControlNet for SDXL",
        "sdxl",
        "CreativeML Open RAIL++-M",
        "Projected textures with SDXL models; 5 GB (fp32 weights)",
    ),
)


def controlnet_files(repo_files: list[str]) -> list[str]:
    """The files of a ControlNet repo that load: config.json and the plain top-level .safetensors weights
    (not the fp16 variants, pickles or single-file copies in subfolders), sorted."""
    weights = [name for name in repo_files if "/" not in name and name.endswith(".safetensors")]
    plain = [name for name in weights if name.count(".") == 1] or weights
    return sorted(["config.json", *plain])


def fp16_safe_vae(family: str) -> CatalogVae | None:
    """The curated fp16-safe VAE for a model family, if there is one."""
    return next((vae for vae in CURATED_VAES if vae.family == family), None)


# What follows the first dot of a file the pipeline loads: configs, tokenizer vocabularies, sentencepiece
# models, weights and the index of sharded weights. Variant copies have more before it ("model.fp16.").
# transformers 5 saves a tokenizer's chat template as chat_template.jinja (the language-model text encoders
# of the transformer families need it).
_LOADED_SUFFIXES = ("json", "txt", "model", "jinja", "safetensors", "safetensors.index.json")
# The snapshot_download bar counting bytes written to disk; its total grows as each file starts.
_BYTES_BAR = "huggingface_hub.snapshot_download"


def _hub():
    try:
        import huggingface_hub
    except ImportError:
        raise missing_dependency("huggingface_hub") from None
    return huggingface_hub


# Components Promptscape loads with None: the SD 1.x safety checker alone is 1.2 GB.
NEVER_LOADED = {"safety_checker"}


def choose_files(model_index: dict, repo_files: list[str]) -> list[str]:
    """The files of a diffusers repo that the pipeline loads, each weight once, sorted.

    model_index.json, and in each component folder named in it (unet/, vae/, text_encoder/, ...) the
    .json/.txt/.model files and the plain .safetensors weights (shards and their index included). Left out:
    variants (*.fp16.safetensors, *.non_ema.*, *.ema.* and their indexes), pickles, ONNX/Flax/OpenVINO
    exports, root-level single-file checkpoints and folders that are not components (vae_1_0/). SD repos
    hold several copies of every weight, so this is a third or less of the repo.
    """
    components = {
        name
        for name, value in model_index.items()
        if not name.startswith("_") and isinstance(value, list | tuple) and value and value[0] is not None
    } - NEVER_LOADED
    chosen = ["model_index.json"] if "model_index.json" in repo_files else []
    for name in repo_files:
        parts = PurePosixPath(name).parts
        if len(parts) == 2 and parts[0] in components and parts[1].partition(".")[2] in _LOADED_SUFFIXES:
            chosen.append(name)
    return sorted(chosen)


class _CacheScan:
    """The last scan of the local Hugging Face cache, as (diffusers models, LoRAs).

    A scan stats every file in the cache, seconds on a large one: code that draws (the sidebar, the
    preferences) takes the last result and has a stale one refreshed in a background thread, so a redraw
    never waits on the disk; a job that needs the answer waits for a fresh scan.
    """

    def __init__(self):
        self._when = float("-inf")
        self._found: tuple[list[str], list[str], list[str]] = ([], [], [])
        self._lock = threading.Lock()  # one scan at a time
        self._refreshing = False

    def get(self, max_age: float, wait: bool) -> tuple[list[str], list[str], list[str]]:
        if time.monotonic() - self._when < max_age:
            return self._found
        if wait:
            self._refresh()
        elif not self._refreshing:
            self._refreshing = True
            threading.Thread(target=self._refresh, name="promptscape-cache-scan", daemon=True).start()
        return self._found

    def forget(self) -> None:
        """Make the next request scan again (a download finished)."""
        self._when = float("-inf")

    def _refresh(self) -> None:
        with self._lock:
            try:
                started = time.monotonic()
                self._found = _scan_cache()
                self._when = started
            finally:
                self._refreshing = False


_cache_scan = _CacheScan()


def cached_models(max_age: float = 5.0, wait: bool = True) -> list[str]:
    """Repo ids of diffusers models in the local Hugging Face cache (usable offline), sorted.

    A scan younger than `max_age` seconds is reused; `wait=False` (for drawing) never scans in the
    calling thread: it returns the last result and refreshes it in the background.
    """
    return _cache_scan.get(max_age, wait)[0]


def cached_loras(max_age: float = 5.0, wait: bool = True) -> list[str]:
    """Repo ids in the local Hugging Face cache that hold LoRA weights (a .safetensors file at the top
    and no model_index.json), sorted; scanned like cached_models."""
    return _cache_scan.get(max_age, wait)[1]


def cached_controlnets(max_age: float = 5.0, wait: bool = True) -> list[str]:
    """Repo ids in the local Hugging Face cache that hold a ControlNet (config.json naming one, with its
    weights), sorted; scanned like cached_models. They are neither models nor LoRAs."""
    return _cache_scan.get(max_age, wait)[2]


def forget_cache_scan() -> None:
    """The cache changed (a download finished): the next question scans it again."""
    _cache_scan.forget()


def _scan_cache() -> tuple[list[str], list[str], list[str]]:
    """(diffusers models, LoRAs, ControlNets) in the local cache, each sorted: one pass over the cache."""
    try:
        hub = _hub()
    except MissingDependency:
        return [], [], []
    try:
        cache = hub.scan_cache_dir()
    except hub.errors.CacheNotFound:
        return [], [], []
    models, loras, controlnets = [], [], []
    for repo in cache.repos:
        if repo.repo_type != "model":
            continue
        snapshots = [Path(revision.snapshot_path) for revision in repo.revisions]
        if any(snapshot_complete(folder / "model_index.json") for folder in snapshots):
            models.append(repo.repo_id)
        elif any(is_controlnet_folder(folder) for folder in snapshots):
            controlnets.append(repo.repo_id)
        elif any(any(folder.glob("*.safetensors")) for folder in snapshots):
            loras.append(repo.repo_id)
    return sorted(models), sorted(loras), sorted(controlnets)


class Download:
    """A model download in a background thread, with bytes done/total and cancel().

    Only the files the pipeline loads are fetched (see choose_files): SD repos also hold fp16, non-EMA,
    pickle and single-file copies of the same weights.
    """

    def __init__(self, repo_id: str, allow_network: bool, token: str | None = None, lora: bool = False):
        if not allow_network:
            raise PromptscapeError(
                "Downloading needs Blender's online access: Preferences > System > Network > "
                "Allow Online Access (or copy the model folder to this machine and pick it as the model)"
            )
        self.repo_id = repo_id.strip()
        self.lora = lora
        self.token = token or None
        self.state = "running"  # running, done, failed, cancelled
        self.message = ""
        self.path = None
        self._bytes_bar = None  # snapshot_download's bytes-written bar, once it has made it
        self._count_lock = threading.Lock()  # files download in parallel threads, all counting into one bar
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="promptscape-download", daemon=True)

    @property
    def done_bytes(self) -> int:
        """Bytes written to disk so far (files already in the cache count as written)."""
        bar = self._bytes_bar
        return int(bar.n) if bar is not None else 0

    @property
    def total_bytes(self) -> int:
        """Bytes of the files started so far: it grows while the download runs."""
        bar = self._bytes_bar
        return int(bar.total or 0) if bar is not None else 0

    @property
    def fraction(self) -> float:
        total = self.total_bytes
        return min(self.done_bytes / total, 1.0) if total else 0.0

    def start(self) -> "Download":
        self._thread.start()
        return self

    def cancel(self):
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return self.state != "running"

    def progress_class(self) -> type:
        """The tqdm class snapshot_download gets: it draws nothing, counts bytes and aborts when cancelled.

        snapshot_download drives its bars as real tqdm objects (reads `n`, grows `total`, sets descriptions
        and postfixes), so this is huggingface_hub's tqdm, always disabled. A disabled tqdm does not count,
        so update() adds to `n` itself.
        """
        from huggingface_hub.utils import tqdm

        download = self

        class Progress(tqdm):
            def __init__(self, *args, **kwargs):
                name = kwargs.get("name")
                kwargs["disable"] = True  # Blender has no terminal to draw on; the preferences show fraction
                super().__init__(*args, **kwargs)
                if name == _BYTES_BAR:
                    download._bytes_bar = self

            def update(self, n=1):
                if download._cancel.is_set():
                    raise Cancelled("Download cancelled; the finished parts are kept for a resume")
                with download._count_lock:
                    self.n += n or 0

        return Progress

    def _files(self, hub) -> list[str]:
        if (prop := prop_models.named(self.repo_id)) is not None:  # an image-to-3D model: its own files
            return list(prop.files)
        if self.lora:  # a LoRA repo: its weights at the top, no pipeline index
            files = hub.list_repo_files(self.repo_id, token=self.token)
            return [name for name in files if "/" not in name and name.endswith((".safetensors", ".json"))]
        listing = hub.list_repo_files(self.repo_id, token=self.token)
        if "model_index.json" not in listing and "config.json" in listing:  # one model: a ControlNet
            return controlnet_files(listing)
        index_file = hub.hf_hub_download(self.repo_id, "model_index.json", token=self.token)
        try:
            with open(index_file, encoding="utf-8") as file:
                index = json.load(file)
        except ValueError as error:
            raise PromptscapeError(
                f"{self.repo_id} has a broken model_index.json ({error}): choose another model"
            ) from error
        return choose_files(index, listing)

    def _run(self):
        hub = None
        try:
            hub = _hub()
            files = self._files(hub)
            if self._cancel.is_set():
                raise Cancelled("Download cancelled before any weights were fetched")
            self.path = hub.snapshot_download(
                self.repo_id, allow_patterns=files, token=self.token, tqdm_class=self.progress_class()
            )
            self.state, self.message = "done", f"Downloaded {self.repo_id}"
            forget_cache_scan()
            model_size.estimate_for.cache_clear()  # a model named before its download has a size now
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
    if errors is not None and isinstance(error, errors.RemoteEntryNotFoundError):
        return (
            f"{repo_id} is not a diffusers model (it has no model_index.json): choose a Stable Diffusion "
            "1.x/2.x or SDXL repo in diffusers format"
        )
    if isinstance(error, PromptscapeError):
        return str(error)
    return f"Downloading {repo_id} failed ({error}); the partial download resumes when you retry"
