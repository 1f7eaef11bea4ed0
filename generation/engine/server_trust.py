"""What a client takes from a Promptscape server, checked before it touches the disk or the scene.

A server (or anyone in the middle of a plain-http connection) could answer with file names that climb out
of the output folder, a seed that is a path, or mesh arrays whose indices point past their vertices. The
checks here are plain Python and numpy, so the same rules hold in Blender and in the pure tests.
"""

import ipaddress
import math
import re
import urllib.parse
from pathlib import Path

import numpy as np

from ..errors import GenerationFailed, PromptscapeError
from ..imaging import image_files
from ..imaging.outputs import SUNLESS_SUFFIX
from ..imaging.world_mesh import MeshArrays
from ..options import BY_NAME, MAX_UPSCALED
from .request import MAX_SEED

ALLOW_HTTP_ENV = "PROMPTSCAPE_ALLOW_HTTP"
ONLINE_NEEDED = (
    "{where} is not this computer: generating there needs Blender's online access "
    "(Preferences > System > Network, or blender --online-mode)"
)
PLAIN_HTTP = (
    "The server {where} is another computer reached by plain http://, which would send the token and "
    "your prompts unencrypted: use https:// (a TLS proxy in front of the server), or tick Preferences > "
    "Promptscape > Allow Unencrypted Connections (headless: set {env}=1) on a network you trust"
)
# The files of each kind of result: role -> what follows the server's base name.
MATERIAL_MAPS = ("albedo", "normal", "roughness", "height", "ao", "preview")
RESULT_SUFFIXES = {
    "world": {"exr": ".exr", "hdr": ".hdr", "preview": "-preview.png", "sunless_exr": SUNLESS_SUFFIX},
    "material": {role: f"-{role}.png" for role in MATERIAL_MAPS},
    "depth": {"exr": "-depth.exr", "png": "-depth.png", "arrays": "-depth.npz"},
    "prop": {"image": ".png", "mask": "-mask.png", "mesh": "-mesh.npz", "texture": "-texture.png"},
}
OPTIONAL_ROLES = {"sunless_exr", "texture"}  # only with a Sun lamp; only with texture=True
_SERVER_NAME = re.compile(r"(world|material|prop)(-[a-z0-9]{1,16}){0,2}\.(exr|hdr|png|npz)")
_STEM = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")
MAX_TEXT = 2000  # characters of a metadata value, as the server's own bound
MAX_FIELDS = 64

# The largest world mesh a client asks for: mesh_resolution columns, half as many rows.
_COLUMNS = int(BY_NAME["mesh_resolution"].high)
MAX_VERTICES = 2 + _COLUMNS * (_COLUMNS // 2 - 1)
MAX_FACES = _COLUMNS * (_COLUMNS // 2)
MAX_CORNERS = 4 * MAX_FACES
MAX_DISTANCE_PIXELS = MAX_UPSCALED["world"][0] * MAX_UPSCALED["world"][1]
MAX_METRES = 1e7  # far beyond the sky distance: a larger position is not a world's


def is_loopback(host: str) -> bool:
    """Whether `host` is this computer, without a DNS look-up (which could block the main thread)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str, online_access: bool, allow_http: bool) -> tuple[str, str]:
    """(base URL, "host:port") of a server URL, or PromptscapeError saying why it is refused: not a URL;
    another computer while Blender's online access is off; plain http to another computer unless allowed."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PromptscapeError(f"server: {url!r} is not a URL such as https://gpu-box:8765")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise PromptscapeError(f"server: {url!r} has a port that is not a number from 1 to 65535") from None
    where = f"{parts.hostname}:{port}"
    if not is_loopback(parts.hostname):
        if not online_access:
            raise PromptscapeError(ONLINE_NEEDED.format(where=f"The server {where}"))
        if parts.scheme == "http" and not allow_http:
            raise PromptscapeError(PLAIN_HTTP.format(where=where, env=ALLOW_HTTP_ENV))
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}", where


def seed_of(metadata: dict) -> int:
    """The seed a server reports, as the whole number it must be (it goes into file names)."""
    seed = metadata.get("seed")
    text = str(seed) if isinstance(seed, str | int) and not isinstance(seed, bool) else ""
    if not re.fullmatch(r"[0-9]{1,10}", text) or int(text) > MAX_SEED:
        raise GenerationFailed(f"the server reported the seed {str(seed)[:40]!r}, not a whole number")
    return int(text)


def checked_metadata(metadata) -> dict[str, str]:
    """A server's metadata as a bounded dict of text (it is written onto datablocks and into files)."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or len(metadata) > MAX_FIELDS:
        raise GenerationFailed(f"the server's metadata is not an object of at most {MAX_FIELDS} fields")
    found = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or len(key) > 64 or not isinstance(value, str | int | float | bool):
            raise GenerationFailed(f"the server's metadata field {str(key)[:40]!r} is not text")
        found[key] = str(value)[:MAX_TEXT]
    return found


def result_paths(files, kind: str, folder: Path, stem: str) -> dict[str, tuple[str, Path]]:
    """role -> (the server's file name, the local path) for a result's `files`, each path in `folder`.

    Only the roles a `kind` of result has are accepted, each under the name the server gives its files
    ("world.exr", "world-depth.npz"), and the local stem must be a plain slug: a name with a separator, a
    dot-dot or anything unexpected fails the job before any file is written."""
    suffixes = RESULT_SUFFIXES["depth" if kind in ("depth", "mesh") else kind]
    base = kind if kind in ("material", "prop") else "world"
    if not isinstance(files, dict) or not files:
        raise GenerationFailed("the server listed no result files")
    unknown = sorted(str(role)[:20] for role in files if role not in suffixes)
    missing = set(suffixes) - OPTIONAL_ROLES - set(files)
    if unknown or missing:
        raise GenerationFailed(
            f"the server's result files are not a {kind}'s: unexpected {unknown or 'none'}, "
            f"missing {sorted(missing) or 'none'}"
        )
    if not _STEM.fullmatch(stem):
        raise GenerationFailed(f"the local file name {stem[:60]!r} is not a plain name")
    for role, name in files.items():
        expected = base + suffixes[role]
        if not isinstance(name, str) or name != expected or not _SERVER_NAME.fullmatch(name):
            raise GenerationFailed(f"the server named its {role} file {str(name)[:60]!r}, not {expected!r}")
    roles = list(files)
    _, paths = image_files.unique_stem(folder, stem, [suffixes[role] for role in roles])
    root = Path(folder).resolve()
    for path in paths:
        if path.resolve().parent != root:
            raise GenerationFailed(f"the file {path.name!r} would land outside {root}")
    return {role: (files[role], path) for role, path in zip(roles, paths, strict=True)}


def checked_mesh(positions, corners, sizes, uvs, split) -> MeshArrays:
    """Mesh arrays (from a server's .npz, or built here) checked before Blender sees them: shapes, types,
    counts, index ranges and finite values; GenerationFailed says which one is wrong."""

    def refuse(what: str):
        raise GenerationFailed(f"the world mesh is inconsistent: {what}; nothing was added to the scene")

    arrays = {"positions": positions, "corners": corners, "sizes": sizes, "uvs": uvs}
    for name, array in arrays.items():
        if not isinstance(array, np.ndarray):
            refuse(f"{name} is not an array")
    if positions.ndim != 2 or positions.shape[1] != 3 or positions.dtype.kind != "f":
        refuse(f"positions are {positions.dtype} {positions.shape}, not (vertices, 3) floats")
    if not 3 <= len(positions) <= MAX_VERTICES:
        refuse(f"{len(positions)} vertices, not 3 to {MAX_VERTICES}")
    if not np.isfinite(positions).all() or np.abs(positions).max() > MAX_METRES:
        refuse(f"positions must be finite and within {MAX_METRES:g} m")
    for name in ("corners", "sizes"):
        if arrays[name].ndim != 1 or arrays[name].dtype.kind not in "iu":
            refuse(f"{name} are {arrays[name].dtype} {arrays[name].shape}, not a row of whole numbers")
    if not 1 <= len(sizes) <= MAX_FACES or len(corners) > MAX_CORNERS:
        refuse(f"{len(sizes)} faces and {len(corners)} corners, at most {MAX_FACES} and {MAX_CORNERS}")
    if sizes.min() < 3 or sizes.max() > 4 or int(sizes.sum(dtype=np.int64)) != len(corners):
        refuse("face sizes must be 3 or 4 and add up to the corners")
    if corners.min() < 0 or corners.max() >= len(positions):
        refuse(f"a corner names a vertex outside 0..{len(positions) - 1}")
    if uvs.shape != (len(corners), 2) or uvs.dtype.kind != "f" or not np.isfinite(uvs).all():
        refuse(f"uvs are {uvs.dtype} {uvs.shape}, not finite ({len(corners)}, 2)")
    split = np.asarray(split)
    if split.shape != () or split.dtype.kind not in "iu" or not 0 <= int(split) <= MAX_FACES:
        refuse("the count of split faces is not a whole number")
    return MeshArrays(
        np.ascontiguousarray(positions, np.float32),
        np.ascontiguousarray(corners, np.int32),
        np.ascontiguousarray(sizes, np.int32),
        np.ascontiguousarray(uvs, np.float32),
        int(split),
    )


def checked_distance(distance) -> np.ndarray:
    """A depth job's distance map (H, 2H metres along each ray) from a server, checked and as float32."""
    if not isinstance(distance, np.ndarray) or distance.ndim != 2 or distance.dtype.kind != "f":
        raise GenerationFailed("the server's distance map is not a 2D array of numbers")
    height, width = distance.shape
    if width != 2 * height or not 0 < distance.size <= MAX_DISTANCE_PIXELS:
        raise GenerationFailed(f"the server's distance map is {width}x{height}, not a 2:1 world's")
    if not np.isfinite(distance).all() or distance.min() < 0 or distance.max() > MAX_METRES:
        raise GenerationFailed("the server's distance map holds values that are not distances")
    return np.ascontiguousarray(distance, np.float32)


def read_depth_arrays(path: Path) -> tuple[np.ndarray, MeshArrays | None]:
    """(distance, mesh or None) from a depth job's .npz, each array's header checked against the size
    limits before it is read (a compressed member could unpack to gigabytes), without pickles."""
    limits = {"distance": MAX_DISTANCE_PIXELS, "positions": 3 * MAX_VERTICES, "corners": MAX_CORNERS,
              "sizes": MAX_FACES, "uvs": 2 * MAX_CORNERS, "split": 1}  # fmt: skip
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = set(npz.files)
            if "distance" not in names or not names <= set(limits):
                raise GenerationFailed(f"the depth arrays hold {sorted(names)[:8]}, not a depth job's")
            for name in names:
                with npz.zip.open(name + ".npy") as member:
                    shape, dtype = _npy_header(member)
                if dtype.hasobject or dtype.itemsize > 8 or math.prod(shape) > limits[name]:
                    raise GenerationFailed(f"the depth arrays' {name} is {dtype} {shape}: too large")
            found = {name: npz[name] for name in names}
    except (OSError, ValueError, KeyError) as error:
        raise GenerationFailed(f"the depth arrays in {Path(path).name} are not readable: {error}") from None
    distance = checked_distance(found["distance"])
    if "positions" not in found:
        return distance, None
    fields = ("positions", "corners", "sizes", "uvs", "split")
    if not set(fields) <= set(found):
        raise GenerationFailed("the depth arrays hold part of a mesh")
    return distance, checked_mesh(*(found[name] for name in fields))


def _npy_header(member) -> tuple[tuple, np.dtype]:
    version = np.lib.format.read_magic(member)
    read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in read:
        raise ValueError(f"an .npy of version {version}")
    shape, _, dtype = read[version](member)
    return shape, dtype


def bounded_int(value, low: int, high: int, what: str) -> int:
    """A whole number from a reply, within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise GenerationFailed(f"the server's {what} {str(value)[:40]!r} is not a number")
    if not low <= value <= high:
        raise GenerationFailed(f"the server's {what} {value} is outside {low}..{high}")
    return int(value)
