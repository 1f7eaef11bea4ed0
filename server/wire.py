"""A job as JSON on the wire -> a checked GenerationRequest, with every value bounded.

The body is parsed with json only (nothing is unpickled or run); options are the API's names, checked by
generation/options.check and GenerationRequest.validate, so the server and Blender refuse the same values.
A depth job's panorama is a PNG, read by Pillow within a pixel bound.
"""

import json
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generation import options as declared
from generation.engine import prop_image
from generation.engine.detail import NEEDS_UPSCALE
from generation.engine.prop_job import PropSettings
from generation.engine.request import GenerationRequest
from generation.engine.server_trust import is_loopback
from generation.engine.upscaler import UpscalePlan, resolve_upscaler
from generation.engine.world_depth import MeshSettings
from generation.errors import InvalidRequest, ModelNotFound
from generation.imaging import outputs

from .models import AllowedModels

PROTOCOL = 1
MAX_BODY = 64 * 1024  # bytes of a job's JSON
MAX_UPLOAD = 128 * 1024 * 1024  # bytes of a depth job's PNG: an 8192x4096 panorama fits
MAX_HEADER = 4096  # bytes of a depth job's options (the X-Promptscape-Job header)
MAX_TEXT = 2000  # characters of a prompt or any other text value
KINDS = ("world", "material", "prop")
DEPTH_KINDS = ("depth", "mesh")  # POST /v1/depth
DEFAULT_SIZE = {"world": (1024, 512), "material": (512, 512), "prop": (512, 512)}


# The options that name a model or file (generation/options.py marks them) this server looks up by name;
# any other marked option is refused, so a new one is never passed through as a path.
SERVED_NAMES = ("model", "vae", "upscaler", "depth_model", "prop_model")


@dataclass(frozen=True)
class JobSpec:
    kind: str
    request: GenerationRequest  # its model is the server's location of the named model
    model_name: str  # as the client named it: what metadata carries
    hdr: outputs.HdrOptions | None  # for worlds
    upscale: UpscalePlan  # run on the server before the HDR and the maps, as a local job does
    names: dict  # every marked option -> the client's name for it ("" when not given)
    locations: dict  # the server's locations of those -> the client's names, for messages
    prop: PropSettings | None = None  # a prop's stages after its image (the shape model's file here)


@dataclass(frozen=True)
class DepthSpec:
    kind: str  # "depth", or "mesh" for the mesh's arrays too
    model_name: str  # the depth model as the client named it
    source: str  # its location here
    camera_height: float
    mesh: MeshSettings | None  # on the replica's own device ("auto")
    names: dict  # as JobSpec's
    locations: dict


def wrong_type(headers, expected: str) -> str:
    """What is wrong with a body's Content-Type, or '': a web page can send text/plain across sites
    without asking the server first, so only the exact type is taken."""
    given = headers.get("content-type", "").partition(";")[0].strip().lower()
    return (
        ""
        if given == expected
        else f"send the body as Content-Type: {expected}, not {given[:60] or 'none'!r}"
    )


def tokenless_refusal(headers) -> tuple[int, str] | None:
    """(status, words) when a server without a token must refuse a request, else None: it answers only
    this computer's own programs, so the Host must name this computer (a DNS-rebound page's does not)
    and no web page may call it (browsers send Origin with cross-site and scripted calls)."""
    host = headers.get("host", "")
    try:
        name = urllib.parse.urlsplit("//" + host).hostname or ""
    except ValueError:
        name = ""
    if not is_loopback(name):
        return 421, (
            f"this server has no token, so it answers only requests for 127.0.0.1 or localhost, not "
            f"{host[:60]!r}: start it with a token to serve other computers"
        )
    if "origin" in headers:
        return 403, "this server has no token and refuses calls from web pages (they send an Origin header)"
    return None


def parse_body(body: bytes) -> dict:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidRequest(f"the body is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise InvalidRequest('the body must be a JSON object such as {"kind": "world", "prompt": "..."}')
    return data


def parse_job(data: dict, models: AllowedModels) -> JobSpec:
    """Check a job's JSON object; raise InvalidRequest naming what is wrong."""
    values = dict(data)
    kind = values.pop("kind", None)
    if kind not in KINDS:
        raise InvalidRequest(f"kind must be one of {', '.join(KINDS)}, not {str(kind)[:40]!r}")
    for name, value in values.items():
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise InvalidRequest(f"{name[:40]} is {len(value)} characters long: at most {MAX_TEXT}")
    if values.get("server"):
        raise InvalidRequest("server: this server runs jobs itself and forwards none; leave it out")
    checked = declared.check(values, kind)
    _check_device(checked)
    options = {option.name: option.default for option in declared.for_kind(kind)} | checked
    names = _named_options(options, kind, models)
    width, height = DEFAULT_SIZE[kind]
    offered = [] if options["model"] else models.names()
    model_name = options["model"] or (offered[0]["name"] if offered else "")
    if not model_name:
        raise InvalidRequest("model: this server offers no models yet")
    names["model"] = model_name
    model, vae = models.resolve(model_name), models.vae(options["vae"])
    if kind == "prop":
        return prop_spec(options, names, model, vae, models)
    mode = "world" if kind == "world" else ("texture" if options["seamless"] else "image")
    request = GenerationRequest(
        prompt=options["prompt"],
        negative_prompt=options["negative_prompt"],
        seed=options["seed"],
        steps=options["steps"],
        guidance=options["guidance"],
        width=options["width"] or width,
        height=options["height"] or height,
        model=model,
        scheduler=options["scheduler"],
        mode=mode,
        device=options["device"],
        precision=options["precision"],
        poles=options.get("poles", "repair"),
        memory=options["memory"],
        vae=vae,
        quantize=options["quantize"],
        wrap_mode=options["wrap_mode"],
    ).validate()
    hdr = outputs.hdr_options(options) if kind == "world" else None
    upscale = _upscale(options, kind, request, models)
    locations = {model: model_name, vae: options["vae"], str(upscale.path or ""): options["upscaler"]}
    return JobSpec(kind, request, model_name, hdr, upscale, names, {k: v for k, v in locations.items() if k})


def prop_spec(options: dict, names: dict, model: str, vae: str, models: AllowedModels) -> JobSpec:
    """A prop's job: its image drawn from the wrapped prompt, then its stages with the shape model named."""
    path = models.prop_model(options["prop_model"])
    names["prop_model"] = options["prop_model"]
    width, height = DEFAULT_SIZE["prop"]
    request = GenerationRequest(
        prompt=prop_image.wrap_prompt(options["prompt"]),
        negative_prompt=prop_image.wrap_negative(options["negative_prompt"]),
        seed=options["seed"],
        steps=options["steps"],
        guidance=options["guidance"],
        width=options["width"] or width,
        height=options["height"] or height,
        model=model,
        scheduler=options["scheduler"],
        mode="image",
        device=options["device"],
        precision=options["precision"],
        memory=options["memory"],
        vae=vae,
        quantize=options["quantize"],
    ).validate()
    location = tuple(options["location"] or (0.0, 0.0, 0.0))
    settings = PropSettings(Path(path), options["size"], location, "auto", options["texture"])
    locations = {model: names["model"], vae: options["vae"], path: options["prop_model"]}
    known = {key: value for key, value in locations.items() if key}
    return JobSpec("prop", request, names["model"], None, UpscalePlan(), names, known, settings)


def _upscale(options: dict, kind: str, request: GenerationRequest, models: AllowedModels) -> UpscalePlan:
    """The upscaling the job asks for, checked against the size limit and the upscalers offered here."""
    factor, detail = options["upscale"], options.get("detail", 0.0)
    if factor == 1:
        if detail:
            raise InvalidRequest(NEEDS_UPSCALE)
        return UpscalePlan()
    declared.check_upscaled_size(factor, request.width, request.height, kind)
    source, folder = models.upscaler(options["upscaler"])
    try:
        path = resolve_upscaler(source, folder)  # a curated id not downloaded here: said in words
    except ModelNotFound as error:
        raise InvalidRequest(f"upscaler: {error}") from None
    wrap = kind == "world" or options.get("seamless", True)
    return UpscalePlan(factor, path, options["device"], wrap, wrap and kind == "material", detail)


def parse_depth_job(data: dict, models: AllowedModels) -> DepthSpec:
    """Check a depth job's options (the API's names for world_depth and world_mesh)."""
    values = dict(data)
    kind = values.pop("kind", None)
    if kind not in DEPTH_KINDS:
        raise InvalidRequest(f"kind must be one of {', '.join(DEPTH_KINDS)}, not {str(kind)[:40]!r}")
    if values.get("depth") or values.get("server"):
        raise InvalidRequest("depth and server: this server estimates the depth itself; leave them out")
    values.pop("depth", None)
    values.pop("server", None)
    checked = declared.check(values, kind)
    options = {option.name: option.default for option in declared.for_kind(kind)} | checked
    names = _named_options(options, kind, models)
    name = options["depth_model"]
    mesh = MeshSettings(options["mesh_resolution"], options["split_angle"]) if kind == "mesh" else None
    source = models.depth_model(name)
    return DepthSpec(kind, name, source, options["camera_height"], mesh, names, {source: name})


def _check_device(options: dict) -> None:
    if options.get("device", "auto") != "auto":
        raise InvalidRequest(
            f'device: this server decides where its jobs run; send "auto" or leave it out, '
            f"not {options['device']!r}"
        )


def _named_options(options: dict, kind: str, models: AllowedModels) -> dict[str, str]:
    """option -> the client's name for every option of `kind` that names a model or file, each checked
    as a name (never a path); one this server does not look up by name is refused unless empty."""
    names = {}
    for name in declared.NAMES_A_FILE:
        if name not in options:
            continue
        value = options[name]
        if name not in SERVED_NAMES:
            if value:
                raise InvalidRequest(f"{name}: this server offers no {name}; leave it out")
            names[name] = ""
            continue
        if value:
            models.check_name(name, value)
        names[name] = value
    return names


def client_metadata(metadata: dict, names: dict) -> dict[str, str]:
    """A result's metadata as a client may see it: every option that names a model or file carries the
    client's name for it (the server's own locations stay here)."""
    found = dict(metadata)
    for name in declared.NAMES_A_FILE:
        if name in found:
            found[name] = names.get(name, "")
    return found


def read_panorama(path: Path, decode: bool = True) -> np.ndarray | None:
    """The uploaded PNG as float32 sRGB rows in [0, 1] (without `decode`, only its header is checked);
    InvalidRequest for anything but a 2:1 PNG within the world's size limit."""
    from PIL import Image

    most_width, most_height = declared.MAX_UPSCALED["world"]
    try:
        with Image.open(path, formats=["PNG"]) as image:
            width, height = image.size
            if width > most_width or height > most_height or width != 2 * height:
                raise InvalidRequest(
                    f"the panorama is {width}x{height}: send a 2:1 PNG of at most {most_width}x{most_height}"
                )
            return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0 if decode else None
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise InvalidRequest(f"the body is not a PNG panorama: {type(error).__name__}") from None


_PATH = re.compile(r"(?<![\w:])(/[\w.@+-]+)+/?")


def scrub(message: str, known: dict[str, str]) -> str:
    """A message fit for a client: known server paths become their names, any other path '<server path>'."""
    for path, name in sorted(known.items(), key=lambda item: -len(item[0])):
        message = message.replace(path, name)
    return _PATH.sub("<server path>", message)[:MAX_TEXT]
