"""Where a model comes from, loading it safely, and keeping one loaded pipeline between requests.

Sources: a local diffusers folder (has model_index.json), a Hugging Face repo id served from the local
cache (downloads only when the request allows them), or a single-file .safetensors checkpoint.
Pickle files (.ckpt, .bin, .pt, .pth) can run code when loaded: models and LoRAs in them are refused unless
the request allows them.
"""

import contextlib
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidRequest, ModelLoadError, ModelNotFound, missing_dependency
from . import devices
from .families import TRANSFORMER_PIPELINES
from .quantize import pipeline_config
from .request import MODEL_FILE_SUFFIXES, PICKLE_SUFFIXES, looks_like_path
from .safetensors_header import check_safetensors

log = logging.getLogger(__name__)

HINT = "check the model in Preferences > Add-ons > Promptscape"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Pipelines AutoPipelineForText2Image turns into SD1.x/2.x or SDXL text-to-image (Turbo and LCM included),
# and the transformer families' own.
SUPPORTED_PIPELINES = frozenset(
    {
        "StableDiffusionPipeline",
        "StableDiffusionImg2ImgPipeline",
        "StableDiffusionInpaintPipeline",
        "StableDiffusionXLPipeline",
        "StableDiffusionXLImg2ImgPipeline",
        "StableDiffusionXLInpaintPipeline",
        "LatentConsistencyModelPipeline",
    }
    | TRANSFORMER_PIPELINES
)
SUPPORTED_WORDS = "a Stable Diffusion 1.x/2.x, SDXL (or Turbo), Z-Image, FLUX.2 klein or Qwen-Image model"


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: kind is "folder", "repo" (a Hugging Face id) or "file" (a single checkpoint)."""

    kind: str
    location: str
    allow_download: bool = False
    allow_pickle: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.location)


def resolve_source(model: str, allow_download: bool = False, allow_pickle: bool = False) -> ModelSource:
    """Decide what `model` is without loading it; raise ModelNotFound or ModelLoadError with what to do."""
    model = model.strip()
    if looks_like_path(model):
        path = Path(model).expanduser().resolve()
        if path.is_dir():
            if not (path / "model_index.json").is_file():
                raise ModelLoadError(
                    f'"{path}" is a folder but not a diffusers pipeline (it has no model_index.json): '
                    "point at the folder that holds model_index.json, or at a single .safetensors checkpoint"
                )
            return ModelSource("folder", str(path), allow_download, allow_pickle)
        if not path.is_file():
            raise ModelNotFound(f'model "{model}" does not exist: {HINT}')
        suffix = path.suffix.lower()
        if suffix in PICKLE_SUFFIXES and not allow_pickle:
            raise pickle_refused(f'"{path}"', suffix)
        if suffix not in MODEL_FILE_SUFFIXES:
            raise ModelNotFound(
                f'"{path}" is not a diffusers folder, a .safetensors file or a cached model id: {HINT}'
            )
        return ModelSource("file", str(path), allow_download, allow_pickle)
    if not _REPO_ID.match(model):
        raise ModelNotFound(
            f'model "{model}" is not a diffusers folder, a .safetensors file or a Hugging Face id '
            f'like "org/name": {HINT}'
        )
    if cached_model_index(model) is None and not allow_download:
        from huggingface_hub import constants

        raise ModelNotFound(
            f'model "{model}" is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) '
            f"and downloads are off: download it first, allow downloads, or {HINT}"
        )
    return ModelSource("repo", model, allow_download, allow_pickle)


def pickle_refused(what: str, suffix: str) -> ModelLoadError:
    return ModelLoadError(
        f"{what} is a pickle file ({suffix}), which can run code when loaded: use a .safetensors version, "
        "or allow pickle files with Preferences > Add-ons > Promptscape > Allow .ckpt/.bin Models "
        "if you trust its source"
    )


def cached_model_index(repo_id: str) -> Path | None:
    """model_index.json of a repo id in the local Hugging Face cache, or None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "model_index.json")
    return Path(found) if isinstance(found, str) and snapshot_complete(Path(found)) else None


def snapshot_complete(model_index: Path) -> bool:
    """Whether a downloaded diffusers folder has every component it names, weights included.

    A cancelled or failed download leaves model_index.json and some configs; such a folder is not a model.
    A folder with a config.json is a model part (unet, vae, text encoder) and needs its weights too.
    """
    try:
        index = json.loads(model_index.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or not value or value[0] is None:
            continue
        if name == "safety_checker":  # never loaded, so never downloaded
            continue
        folder = model_index.parent / name
        if not folder.is_dir() or not any(folder.iterdir()):
            return False
        weights = [*folder.glob("*.safetensors"), *folder.glob("*.bin")]
        if (folder / "config.json").is_file() and not weights:
            return False
    return True


def _model_index(source: ModelSource) -> tuple[Path | None, dict]:
    folder_index = (
        Path(source.location) / "model_index.json"
        if source.kind == "folder"
        else cached_model_index(source.location)
    )
    if folder_index is None:
        return None, {}
    try:
        return folder_index.parent, json.loads(folder_index.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelLoadError(
            f'"{folder_index}" cannot be read ({error}): download the model again'
        ) from error


def resolve_vae(vae: str, allow_download: bool = False) -> ModelSource | None:
    """Where a replacement VAE comes from: a folder with config.json, a .safetensors file or a repo id."""
    vae = (vae or "").strip()
    if not vae:
        return None
    if looks_like_path(vae):
        path = Path(vae).expanduser().resolve()
        if path.is_dir() and (path / "config.json").is_file():
            return ModelSource("folder", str(path), allow_download)
        if path.is_file() and path.suffix.lower() == ".safetensors":
            return ModelSource("file", str(path), allow_download)
        raise ModelNotFound(f'VAE "{vae}" is not a folder with config.json or a .safetensors file: {HINT}')
    if not _REPO_ID.match(vae):
        raise ModelNotFound(f'VAE "{vae}" is not a folder, a .safetensors file or a Hugging Face id: {HINT}')
    if _cached_vae_folder(vae) is None and not allow_download:
        raise ModelNotFound(f'VAE "{vae}" is not in the Hugging Face cache and downloads are off: {HINT}')
    return ModelSource("repo", vae, allow_download)


def _cached_vae_folder(repo_id: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json")
    return Path(found).parent if isinstance(found, str) else None


def load_vae(source: ModelSource, dtype):
    """A replacement AutoencoderKL (such as SDXL's fp16 fix) in `dtype`."""
    from diffusers import AutoencoderKL

    try:
        if source.kind == "file":
            check_safetensors(Path(source.location))
            return AutoencoderKL.from_single_file(
                source.location, dtype=dtype, local_files_only=not source.allow_download
            )
        folder = Path(source.location) if source.kind == "folder" else _cached_vae_folder(source.location)
        if folder is not None:
            return AutoencoderKL.from_pretrained(str(folder), dtype=dtype, use_safetensors=True)
        return AutoencoderKL.from_pretrained(source.location, dtype=dtype, use_safetensors=True)
    except Exception as error:
        raise ModelLoadError(f'VAE "{source.location}" could not be loaded: {error}. {HINT}') from error


def load_pipeline(
    source: ModelSource, dtype_name: str, vae: ModelSource | None = None, quantize="none", transformer=""
):
    """Load the text-to-image pipeline of a source on the CPU in the given precision.

    Safety checker and SDXL watermarker off, progress bars off, never remote code. SDXL's own VAE is
    upcast to fp32 for decoding in fp16, where it overflows to NaN; a replacement `vae` decodes as its
    config says (the fp16 fix has force_upcast false, so it decodes in fp16, in half the memory).
    """
    try:
        import diffusers
        import transformers
    except ImportError as error:
        raise missing_dependency(error.name or str(error)) from error
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    dtype = devices.torch_dtype(dtype_name)
    extra = {} if vae is None else {"vae": load_vae(vae, dtype)}
    if quantize != "none":  # checked before: a transformer family on CUDA (quantize.resolve)
        extra["quantization_config"] = pipeline_config(quantize)
    if transformer:  # a transformer file in place of the model's own (transformer_file.py)
        extra["transformer"] = _transformer_from_file(source, transformer, dtype)
    if source.kind == "file":
        pipe = _load_single_file(Path(source.location), source, dtype, extra)
    else:
        pipe = _load_pretrained(source, dtype, extra)
    pipe.set_progress_bar_config(disable=True)
    if dtype_name == "fp16" and "XL" in type(pipe).__name__ and vae is None:
        pipe.vae.register_to_config(force_upcast=True)
    return pipe


def _transformer_from_file(source: ModelSource, transformer: str, dtype):
    from . import families, transformer_file

    folder, index = _model_index(source) if source.kind != "file" else (None, {})
    family = families.of_class(str(index.get("_class_name", "")))
    if folder is None or family is None or not family.transformer:
        raise InvalidRequest(
            "transformer replaces the transformer of a Z-Image, FLUX.2 klein or Qwen-Image model: give that "
            "model's folder or downloaded id as model (it brings the text encoder and the VAE)"
        )
    return transformer_file.load(transformer_file.check_path(transformer), family, folder, dtype)


def _load_pretrained(source: ModelSource, dtype, extra: dict):
    from diffusers import AutoPipelineForText2Image

    folder, index = _model_index(source)
    class_name = index.get("_class_name", "")
    if not isinstance(class_name, str):  # [module, class]: a pipeline whose code ships with the model
        raise ModelLoadError(
            f'"{source.location}" brings its own pipeline code, which Promptscape never runs: '
            f"choose a standard {SUPPORTED_WORDS}"
        )
    if index and class_name not in SUPPORTED_PIPELINES:
        raise ModelLoadError(
            f'"{source.location}" is a {class_name or "unknown"} model, which Promptscape cannot use: '
            f"choose {SUPPORTED_WORDS}"
        )
    if folder is not None:
        for weights in folder.glob("*/*.safetensors"):
            check_safetensors(weights)
    kwargs = {"dtype": dtype, "use_safetensors": None if source.allow_pickle else True, **extra}
    if "safety_checker" in index:
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    if "XL" in class_name:
        kwargs["add_watermarker"] = False
    location = source.location
    if folder is not None:
        # A cached repo loads as the folder it is: huggingface_hub refuses a snapshot that misses any file
        # diffusers might want (SDXL's unused vae_1_0/, which model_catalog.Download skips).
        location = str(folder)
    elif source.kind == "repo":
        kwargs["local_files_only"] = not source.allow_download
    # The transformer families load by their own class: diffusers' auto pipelines map klein to other
    # pipelines than the ones Promptscape runs.
    import diffusers

    loader = (
        getattr(diffusers, class_name) if class_name in TRANSFORMER_PIPELINES else AutoPipelineForText2Image
    )
    try:
        return loader.from_pretrained(location, **kwargs)
    except Exception as error:
        raise ModelLoadError(
            f'"{source.location}" could not be loaded: {error}. Files may be missing or the model may have '
            f"no .safetensors weights; download it again or {HINT}"
        ) from error


def _local_config(path: Path) -> Path | None:
    """The diffusers folder describing a single-file checkpoint: a namesake beside it, or its own folder."""
    for candidate in (path.with_suffix(""), path.parent / f"{path.stem}_config", path.parent):
        if (candidate / "model_index.json").is_file():
            return candidate
    return None


def is_xl_checkpoint(path: Path) -> bool:
    """Whether a single-file checkpoint is SDXL, read from its .safetensors header (no torch): SDXL has a
    second text encoder. Other files count as SD 1.x."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        return False
    return any(key.startswith("conditioner.embedders.1") for key in check_safetensors(path))


def _load_single_file(path: Path, source: ModelSource, dtype, extra: dict):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    is_xl = is_xl_checkpoint(path)
    pipeline_class = StableDiffusionXLPipeline if is_xl else StableDiffusionPipeline
    config = _local_config(path)
    kwargs = {"dtype": dtype, "local_files_only": not source.allow_download, **extra}
    if config is not None:
        kwargs["config"] = str(config)
    if is_xl:
        kwargs["add_watermarker"] = False
    else:
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    try:
        return pipeline_class.from_single_file(str(path), **kwargs)
    except Exception as error:
        where = f"with the config in {config}" if config else "without a local config"
        raise ModelLoadError(
            f'"{path}" could not be loaded as a single-file checkpoint {where}: {error}. Put its diffusers '
            f'config folder beside it as "{path.with_suffix("").name}/" (with model_index.json), or allow '
            "downloads so the config can be fetched"
        ) from error


class PipelineCache:
    """Keeps the last loaded pipeline, keyed by source, device and precision.

    One pipeline at a time: a GPU rarely holds two, so loading another model unloads the previous one.
    A load holds the lock for its whole length (seconds to minutes), so the UI thread must use
    try_unload(), which never waits; unload() is for the worker's own thread.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._key = None
        self._pipe = None
        self._users = 0  # generations running on the cached pipeline

    @property
    def loaded_key(self):
        """(source key, device, precision, placement, VAE key, quantize) of the loaded pipeline, or None."""
        return self._key

    def get(self, source: ModelSource, device: str, precision: str, placement="device", vae=None, **weights):
        """(pipe, load_seconds, cache_hit): the cached pipeline, or a new one loaded onto `device` and
        placed there as the memory plan says ("device", "offload", "group", "sequential"), with `vae`
        replaced and `weights` as load_pipeline takes them (quantize, transformer)."""
        with self._lock:
            return self._get_locked(source, device, precision, placement, vae, weights)

    @contextlib.contextmanager
    def use(self, source: ModelSource, device: str, precision: str, placement="device", vae=None, **weights):
        """get() for the length of a with block: try_unload() leaves the pipeline alone until it ends."""
        with self._lock:
            loaded = self._get_locked(source, device, precision, placement, vae, weights)
            self._users += 1
        try:
            yield loaded
        finally:
            with self._lock:
                self._users -= 1

    def _get_locked(self, source: ModelSource, device: str, precision: str, placement: str, vae, weights):
        weights = {"quantize": "none", "transformer": "", **weights}
        key = (source.key, device, precision, placement, vae.key if vae is not None else None)
        key += (weights["quantize"], weights["transformer"])
        if self._key == key:
            return self._pipe, 0.0, True
        self._unload_locked()
        start = time.perf_counter()
        pipe = load_pipeline(source, precision, vae, **weights)
        placement = devices.place_pipeline(pipe, device, placement)
        seconds = time.perf_counter() - start
        log.info("loaded %s on %s in %s in %.2f s", source.location, placement, precision, seconds)
        self._key, self._pipe = key, pipe
        return pipe, seconds, False

    def unload(self) -> None:
        """Drop the cached pipeline and give its memory back; waits for a load in progress to end."""
        with self._lock:
            self._unload_locked()

    def try_unload(self) -> bool:
        """Drop the cached pipeline and give its memory back, without ever waiting.

        For the UI thread ("Free Model Memory"): returns False, freeing nothing, while a model is loading
        or a generation runs on the pipeline; True when the cache is empty afterwards.
        """
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._users:
                return False
            self._unload_locked()
            return True
        finally:
            self._lock.release()

    def _unload_locked(self) -> None:
        if self._pipe is not None:
            self._key = self._pipe = None
            devices.free_memory()
