"""Stage 1 of a request: the scene's settings and a caller's options become a checked request.

Options have one vocabulary for the sidebar, the Python API and the command line, declared once in
generation/options.py. Unset options come from the scene's Promptscape settings and the add-on
preferences; every value is checked before work starts.
"""

import dataclasses
import logging
import numbers
import os
import re
import time
from pathlib import Path

import bpy

from .. import preferences
from ..generation import options as declared
from ..generation.engine import memory_plan, model_size, server_trust
from ..generation.engine.detail import NEEDS_MODEL, NEEDS_UPSCALE
from ..generation.engine.request import GenerationRequest, LoraSpec
from ..generation.engine.upscaler import UpscalePlan, resolve_upscaler
from ..generation.errors import InvalidRequest, ModelNotFound, PromptscapeError
from ..generation.setup import model_catalog
from ..properties import sidebar_value, size_of
from . import remote

log = logging.getLogger(__name__)

# The declared options a GenerationRequest carries (the others shape the files and the scene).
REQUEST_OPTIONS = tuple(
    field.name for field in dataclasses.fields(GenerationRequest) if field.name in declared.BY_NAME
)
FROM_PREFERENCES = ("model", "device", "precision", "server")
SELECT_OBJECTS = "Select the objects to put the material on (or make one active), then try again"


def remote_server(url: str) -> remote.Server:
    """The server at `url` with the preferences' token (or PROMPTSCAPE_SERVER_TOKEN) and silence limit;
    one that is not this computer needs Blender's online access, and https unless the preferences (or
    PROMPTSCAPE_ALLOW_HTTP=1, headless) allow unencrypted connections."""
    prefs = preferences.get()
    token = prefs.server_token or os.environ.get("PROMPTSCAPE_SERVER_TOKEN", "")
    allow_http = prefs.allow_http or os.environ.get(server_trust.ALLOW_HTTP_ENV) == "1"
    return remote.Server(url, token, prefs.server_timeout, bpy.app.online_access, allow_http)


def default_options(scene, kind: str) -> dict:
    """The options the sidebar shows for `kind` (see generation/options.py for the kinds)."""
    props = scene.promptscape
    prefs = preferences.get()
    values = {}
    for option in declared.for_kind(kind):
        if option.sidebar:
            values[option.name] = sidebar_value(option, getattr(props, option.name))
        elif option.name in FROM_PREFERENCES:
            values[option.name] = getattr(prefs, option.name)
        else:
            values[option.name] = option.default_for(kind)
    if kind in declared.GENERATE:
        width, height = size_of(props.world_size if kind == "world" else props.texture_size)
        values.update(width=width, height=height, seed=None if props.random_seed else props.seed)
        if props.model_defaults:  # unset: the worker takes the model family's own
            values.update(steps=None, guidance=None)
    return values


def merge_options(scene, kind: str, overrides: dict) -> dict:
    """Defaults for `kind` with `overrides` on top, all checked: an unknown name or a bad value is an
    error, not silently ignored."""
    options = default_options(scene, kind)
    options.update(declared.check(overrides, kind))
    options = declared.check(options, kind)
    if "model" in options and not options["model"].strip():
        raise InvalidRequest("model: give a Hugging Face id, a diffusers folder or a .safetensors file")
    return options


def output_folder() -> Path:
    """Where results go: //promptscape/ beside a saved .blend, else the preferences' folder or user folder."""
    prefs = preferences.get()
    if bpy.data.filepath:
        folder = Path(bpy.path.abspath("//promptscape"))
    elif prefs.output_folder:
        folder = Path(bpy.path.abspath(prefs.output_folder))
    else:
        folder = Path(bpy.utils.extension_path_user(preferences.__package__, path="outputs", create=True))
    problem = cannot_write(folder)
    if problem:
        raise PromptscapeError(
            f"Cannot write to {folder} ({problem}): save the .blend in a writable folder or set "
            "an Output Folder in Preferences > Add-ons > Promptscape"
        )
    return folder  # made by the first file written into it: a refused job leaves no empty folder


def cannot_write(folder: Path) -> str:
    """Why files cannot be written into `folder`, or "" when they can; creates nothing. A folder not made
    yet is judged by the nearest one above it that exists."""
    existing = Path(folder)
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if existing != Path(folder):
        return "" if os.access(existing, os.W_OK | os.X_OK) else f"{existing} is read-only"
    try:
        probe = existing / f".promptscape-write-test-{time.monotonic_ns()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        return error.strerror or str(error)
    return ""


def slug(text: str, fallback: str) -> str:
    """`text` as a short file-name part: lower-case letters and digits joined by dashes, or `fallback`."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or fallback


def file_stem(kind: str, label: str, seed) -> str:
    """A readable, unique-enough file name stem: kind, a slug of the prompt, the seed and the time."""
    return f"{kind}-{slug(label, kind)}-{seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def blender_path(path) -> str:
    """A model or LoRA location with Blender's "//" (beside the .blend) made absolute; ids pass through."""
    path = str(path)
    return bpy.path.abspath(path) if path.startswith("//") else path


def lora_argument(text: str) -> tuple[str, float]:
    """PATH[:SCALE]; a Windows drive letter (C:\\...) is part of the path, not a scale."""
    path, _, scale = text.rpartition(":")
    try:
        return (path, float(scale)) if path else (text, 1.0)
    except ValueError:
        return (text, 1.0)


def parse_loras(text: str) -> list[tuple[str, float]]:
    """LoRAs written as text (an operator property): PATH[:SCALE] entries separated by ";"."""
    return [lora_argument(entry.strip()) for entry in text.split(";") if entry.strip()]


def lora_specs(loras) -> tuple[LoraSpec, ...]:
    """LoRAs as given by a script: paths or ids, (path, scale) pairs, or LoraSpec objects."""
    specs = []
    for lora in loras or ():
        if isinstance(lora, LoraSpec):
            specs.append(LoraSpec(blender_path(lora.path_or_id), lora.scale))
        elif isinstance(lora, str | Path):
            specs.append(LoraSpec(blender_path(lora)))
        elif isinstance(lora, tuple | list) and len(lora) == 2 and isinstance(lora[1], numbers.Real):
            specs.append(LoraSpec(blender_path(lora[0]), float(lora[1])))
        else:
            raise InvalidRequest(f"loras: {lora!r} is not a path, an id, or a (path, scale) pair")
    return tuple(specs)


def build_request(options: dict, mode: str) -> GenerationRequest:
    """The request for `options`, checked: a bad value raises before any work starts."""
    fields = {name: options[name] for name in REQUEST_OPTIONS if name in options}
    fields["loras"] = lora_specs(fields["loras"])
    fields["model"] = blender_path(fields["model"])
    fields["transformer"] = blender_path(fields.get("transformer", ""))  # a file beside the .blend too
    prefs = preferences.get()
    # Never a download as a side effect of Generate: models come from Download Model, with its progress.
    request = GenerationRequest(**fields, mode=mode, allow_download=False, allow_pickle=prefs.allow_pickle)
    return request.validate()


def memory_estimate(scene) -> str:
    """What the sidebar's settings need in GPU memory, whole and with the lowest plan; from the model's
    files or its family, never from torch (the panel asks on every redraw; sizes are remembered)."""
    props = scene.promptscape
    world = props.mode == "WORLD"
    width, height = size_of(props.world_size if world else props.texture_size)
    model = blender_path(preferences.get().model or "")
    size = model_size.estimate_for(model) if model.strip() else memory_plan.FAMILIES["sd"]
    if size is None:  # not on this computer: a curated model's family is the catalog's to say
        size = next((entry.size for entry in model_catalog.CURATED if entry.repo_id == model), None)
    if size is None:
        return "GPU memory: known once the model is on this computer (Download Model)"
    precision = "fp32" if preferences.get().precision == "fp32" else "fp16"
    return memory_plan.estimate_text(size, width, height, precision)


def upscaler_folder() -> Path:
    """Where the curated upscaler's file is looked for (Preferences' user folder of the extension)."""
    return Path(bpy.utils.extension_path_user(preferences.__package__, path="upscalers", create=True))


def without_detail(overrides: dict) -> dict:
    """The options of a job on an existing image, which has no model loaded: detail is refused in words
    before any work (0, which changes nothing, is dropped)."""
    if overrides.get("detail"):
        raise InvalidRequest(NEEDS_MODEL)
    return {name: value for name, value in overrides.items() if name != "detail"}


def upscale_plan(options: dict, kind: str, width: int, height: int) -> UpscalePlan:
    """How much to upscale an image of width x height for a world or material, checked before work starts:
    the size limit, and the upscaler's file (a .pth is converted in the worker: UpscalePlan.prepare).

    `hdr_width` (deprecated) picks the smallest factor that reaches it; the HDR is then resampled to it
    exactly. Without an upscaler it falls back to resampling only, as before. `detail` (a generation's
    only: it runs the generation's model) needs a factor above 1."""
    factor, hdr_width = options["upscale"], options.get("hdr_width") or 0
    target = "world" if kind in declared.WORLD else "material"
    detail = options.get("detail", 0.0) if kind in declared.GENERATE else 0.0  # needs the generation's model
    if hdr_width:
        if factor > 1:
            raise InvalidRequest("give upscale or hdr_width, not both: hdr_width is deprecated, use upscale")
        factor = next((f for f in declared.UPSCALE_FACTORS if width * f >= hdr_width), 4)
        log.warning("hdr_width is deprecated and goes in the next release: use upscale=%d instead", factor)
    if factor == 1:
        if detail:
            raise InvalidRequest(NEEDS_UPSCALE)
        return UpscalePlan()
    declared.check_upscaled_size(factor, width, height, target)
    prefs = preferences.get()
    # Only generations go to a server, which names and finds its own upscalers: nothing to resolve here.
    if kind in declared.GENERATE and options.get("server"):
        return UpscalePlan(factor, None, prefs.device, detail=detail)
    try:
        path = resolve_upscaler(blender_path(options["upscaler"]), upscaler_folder())
    except ModelNotFound:
        if not hdr_width or detail:
            raise
        log.warning("hdr_width=%d: no upscaler found, the HDR is resampled only", hdr_width)
        return UpscalePlan()
    wrap = target == "world" or options.get("seamless", True)  # a material from an image is a tile
    return UpscalePlan(
        factor, path, prefs.device, wrap, wrap and target == "material", detail, prefs.allow_pickle
    )
