"""What one call changes on the cached pipeline, and puts back after it: the scheduler and the LoRAs.

Changing seed, size, prompt, mode, scheduler or LoRA scale never reloads the base model; a LoRA is
stacked for its call only, from a local file or folder or the local cache, under the pickle policy.
"""

import contextlib
from pathlib import Path

from ..errors import ModelLoadError, ModelNotFound, missing_dependency
from .models import HINT, pickle_refused
from .request import PICKLE_SUFFIXES, LoraSpec

SCHEDULERS = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "ddim": ("DDIMScheduler", {}),
}


def make_scheduler(name: str, config):
    """A new scheduler of the named kind built from the model's scheduler config."""
    import diffusers

    class_name, options = SCHEDULERS[name]
    return getattr(diffusers, class_name).from_config(config, **options)


@contextlib.contextmanager
def call_options(
    pipe,
    scheduler: str,
    loras: tuple[LoraSpec, ...],
    allow_download: bool = False,
    allow_pickle: bool = False,
):
    """Swap the scheduler and stack the LoRAs for one call; restore the pipeline on exit, even on errors.

    LoRAs follow the request's policies: a repo id is read from the local Hugging Face cache unless
    `allow_download`, and pickle LoRA files are refused unless `allow_pickle`.
    """
    original = pipe.scheduler
    adapters: list[str] = []
    try:
        if scheduler != "default":
            pipe.scheduler = make_scheduler(scheduler, original.config)
        if loras:
            adapters = _load_loras(pipe, loras, allow_download, allow_pickle)
        yield
    finally:
        if adapters:
            pipe.delete_adapters(adapters)
        pipe.scheduler = original


def check_loras(loras: tuple[LoraSpec, ...], allow_download: bool, allow_pickle: bool) -> list:
    """Where each LoRA loads from, checked without torch: a missing file, a refused pickle or a missing
    peft is an error when the job is submitted, not after the model has loaded."""
    import importlib.util

    for lora in loras:
        suffix = Path(lora.path_or_id).suffix.lower()
        if suffix in PICKLE_SUFFIXES and not allow_pickle:
            raise pickle_refused(f'LoRA "{lora.path_or_id}"', suffix)
    if loras and importlib.util.find_spec("peft") is None:
        raise missing_dependency("peft", "LoRAs")
    return [_lora_target(lora.path_or_id, allow_download) for lora in loras]


def _load_loras(pipe, loras: tuple[LoraSpec, ...], allow_download: bool, allow_pickle: bool) -> list[str]:
    targets = check_loras(loras, allow_download, allow_pickle)
    # With use_safetensors=None diffusers falls back to a pickle file in a folder or repo.
    options = {"local_files_only": not allow_download, "use_safetensors": None if allow_pickle else True}
    names = []
    try:
        for number, (location, weight_name) in enumerate(targets):
            name = f"promptscape_lora_{number}"
            pipe.load_lora_weights(location, weight_name=weight_name, adapter_name=name, **options)
            names.append(name)
        pipe.set_adapters(names, adapter_weights=[lora.scale for lora in loras])
    except Exception as error:
        if names:
            pipe.delete_adapters(names)
        hint = "" if allow_pickle else " (a LoRA with only .bin weights needs Allow .ckpt/.bin Models)"
        raise ModelLoadError(
            f"LoRA {loras[len(names)].path_or_id!r} could not be loaded: {error}{hint}"
        ) from error
    return names


def _lora_target(path_or_id: str, allow_download: bool) -> tuple[str, str | None]:
    """(location, weight file name or None) to load a LoRA from: a file, a folder or a repo id.

    Downloads off, a repo id becomes its snapshot folder in the local cache: diffusers cannot guess the
    weight file of a repo id offline, but it can in a folder.
    """
    path = Path(path_or_id).expanduser()
    if path.is_file():
        return str(path.parent), path.name
    if path.is_dir() or allow_download:
        return (str(path) if path.is_dir() else path_or_id), None
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import IncompleteSnapshotError, LocalEntryNotFoundError

    try:
        return snapshot_download(path_or_id, local_files_only=True), None
    except IncompleteSnapshotError as error:  # only some of its files were fetched: often all a LoRA needs
        return error.snapshot_path, None
    except (LocalEntryNotFoundError, ValueError) as error:  # ValueError: not a valid repo id
        raise ModelNotFound(
            f'LoRA "{path_or_id}" is not a file, a folder or a model in the local Hugging Face cache '
            f"({constants.HF_HUB_CACHE}) and downloads are off: download it first, allow downloads, "
            f"or {HINT}"
        ) from error
