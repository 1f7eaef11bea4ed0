"""Image writers in numpy + the standard library: OpenEXR float32, Radiance .hdr, PNG 8/16-bit.

Blender's bundled Python has numpy but neither Pillow nor OpenEXR, so these are written by hand. Every
writer writes to a temporary name in the target folder and renames it into place: a crash or a full disk
never leaves a half file under the final name. Each file carries the request that made it as metadata.
"""

import os
import struct
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import InvalidImage

_EXR_MAGIC = 20000630
_EXR_LONG_NAMES = 0x400
_EXR_ZIP_LINES = 16  # scanlines per chunk with ZIP compression
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def unique_stem(folder: str | os.PathLike, stem: str, suffixes: list[str]) -> tuple[str, list[Path]]:
    """A stem for which none of `folder/stem+suffix` exists, and those paths, so a set of files made
    together (a world's EXR, HDR and preview) shares one name and never overwrites an earlier set."""
    folder = Path(folder)
    candidate, number = stem, 1
    while True:
        paths = [folder / f"{candidate}{suffix}" for suffix in suffixes]
        if not any(path.exists() for path in paths):
            return candidate, paths
        number += 1
        candidate = f"{stem}-{number}"


def _umask() -> int:
    """The process's umask, read without changing it where the system allows (os.umask sets it, which a
    thread writing at the same moment could see)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_atomic(path: str | os.PathLike, parts) -> Path:
    """Write the byte strings of `parts` to a temporary file beside `path`, then rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            for part in parts:
                file.write(part)
            file.flush()
            os.fsync(file.fileno())
        # mkstemp makes the file 0600; a farm or a shared drive needs what any new file gets (umask).
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _as_rgb(image: np.ndarray, what: str) -> np.ndarray:
    data = np.asarray(image)
    if data.ndim != 3 or data.shape[2] != 3 or data.shape[0] < 1 or data.shape[1] < 1:
        raise InvalidImage(f"{what} needs an HxWx3 RGB image, not an array of shape {data.shape}")
    return data


def _metadata_text(metadata: dict | None) -> dict[str, str]:
    return {str(key): str(value) for key, value in (metadata or {}).items() if str(key)}


# OpenEXR ----------------------------------------------------------------------------------------------


def _exr_attribute(name: str, kind: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value


def _exr_zip(raw: bytes) -> bytes:
    """OpenEXR's ZIP coding of one chunk: bytes split into even/odd halves, delta-coded, then deflated."""
    data = np.frombuffer(raw, dtype=np.uint8)
    reordered = np.concatenate([data[0::2], data[1::2]])
    delta = reordered.copy()
    np.subtract(reordered[1:], reordered[:-1], out=delta[1:])  # uint8: wraps modulo 256, as the format does
    delta[1:] += np.uint8(128)
    packed = zlib.compress(delta.tobytes(), 1)
    # A chunk that does not shrink is stored raw; readers tell by its size.
    return packed if len(packed) < len(raw) else raw


def write_exr(
    path: str | os.PathLike, rgb: np.ndarray, metadata: dict | None = None, compression: str = "zip"
) -> Path:
    """Write HxWx3 float32 radiance as an OpenEXR scanline file (float32 channels, so values far above the
    half-float limit of 65504 survive) with `metadata` as string attributes. compression: "zip" or "none"."""
    data = np.ascontiguousarray(_as_rgb(rgb, "An EXR file"), dtype="<f4")
    if compression not in ("zip", "none"):
        raise ValueError(f'compression must be "zip" or "none", not {compression!r}')
    height, width = data.shape[:2]
    text = _metadata_text(metadata)
    names = ["B", "G", "R"]  # EXR stores channels in alphabetical order
    channels = b"".join(name.encode() + b"\0" + struct.pack("<iB3xii", 2, 0, 1, 1) for name in names) + b"\0"
    window = struct.pack("<iiii", 0, 0, width - 1, height - 1)
    header = [
        _exr_attribute("channels", "chlist", channels),
        _exr_attribute("compression", "compression", bytes([3 if compression == "zip" else 0])),
        _exr_attribute("dataWindow", "box2i", window),
        _exr_attribute("displayWindow", "box2i", window),
        _exr_attribute("lineOrder", "lineOrder", b"\0"),
        _exr_attribute("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
        _exr_attribute("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0)),
        _exr_attribute("screenWindowWidth", "float", struct.pack("<f", 1.0)),
    ]
    header += [_exr_attribute(key, "string", value.encode("utf-8")) for key, value in sorted(text.items())]
    flags = _EXR_LONG_NAMES if any(len(key.encode()) > 31 for key in text) else 0
    head = struct.pack("<ii", _EXR_MAGIC, 2 | flags) + b"".join(header) + b"\0"

    lines = _EXR_ZIP_LINES if compression == "zip" else 1
    # Per scanline, each channel's row in turn: B, G, R.
    planar = np.ascontiguousarray(data[:, :, ::-1].transpose(0, 2, 1))
    starts = list(range(0, height, lines))
    raws = [planar[y : y + lines].tobytes() for y in starts]
    if compression == "zip":
        # zlib releases the GIL, so chunks compress in parallel on every core.
        with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            payloads = list(pool.map(_exr_zip, raws))
    else:
        payloads = raws
    chunks = [
        struct.pack("<ii", y, len(payload)) + payload for y, payload in zip(starts, payloads, strict=True)
    ]
    offsets = np.cumsum([0] + [len(chunk) for chunk in chunks[:-1]], dtype=np.uint64)
    offsets += np.uint64(len(head) + 8 * len(chunks))
    return _write_atomic(path, [head, offsets.astype("<u8").tobytes(), *chunks])


# Radiance RGBE ----------------------------------------------------------------------------------------


def write_hdr(path: str | os.PathLike, rgb: np.ndarray, metadata: dict | None = None) -> Path:
    """Write HxWx3 radiance as a Radiance .hdr (RGBE, flat scanlines) with `metadata` as KEY=value header
    lines (newlines in values become spaces). Negative and non-finite values are written as 0."""
    data = np.nan_to_num(np.asarray(_as_rgb(rgb, "An HDR file"), dtype=np.float32), nan=0.0, posinf=3e38)
    data = np.maximum(data, 0.0)
    height, width = data.shape[:2]
    peak = np.maximum(np.maximum(data[..., 0], data[..., 1]), data[..., 2])
    mantissa, exponent = np.frexp(peak)
    visible = peak > 1e-32
    scale = np.where(visible, mantissa * 256.0 / np.where(visible, peak, 1.0), 0.0)
    rgbe = np.empty((height, width, 4), dtype=np.uint8)
    rgbe[..., :3] = np.clip(data * scale[..., None], 0, 255).astype(np.uint8)
    rgbe[..., 3] = np.where(visible, np.clip(exponent + 128, 0, 255), 0).astype(np.uint8)
    lines = ["#?RADIANCE", "# Made by Promptscape", "FORMAT=32-bit_rle_rgbe"]
    for key, value in _metadata_text(metadata).items():
        clean_key = "".join(c if c.isalnum() or c in "_-." else "_" for c in key)
        lines.append(f"{clean_key}={' '.join(value.splitlines())}")
    head = ("\n".join(lines) + f"\n\n-Y {height} +X {width}\n").encode("utf-8")
    return _write_atomic(path, [head, rgbe.tobytes()])


# PNG --------------------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )


def _png_text(key: str, value: str) -> bytes:
    keyword = key.encode("latin-1", "replace")[:79] or b"key"
    try:
        return _png_chunk(b"tEXt", keyword + b"\0" + value.encode("latin-1"))
    except UnicodeEncodeError:
        return _png_chunk(b"iTXt", keyword + b"\0\0\0\0\0" + value.encode("utf-8"))


def write_png(
    path: str | os.PathLike, array: np.ndarray, bits: int = 8, metadata: dict | None = None
) -> Path:
    """Write an HxW (grey) or HxWx3 (RGB) image with values in [0, 1] as an 8- or 16-bit PNG, with
    `metadata` as tEXt chunks (iTXt where a value is not Latin-1). Values are clipped and rounded."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, not {bits}")
    data = np.asarray(array, dtype=np.float32)
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[..., 0]
    if (
        not (data.ndim == 2 or (data.ndim == 3 and data.shape[2] == 3))
        or data.shape[0] < 1
        or data.shape[1] < 1
    ):
        raise InvalidImage(f"A PNG needs an HxW or HxWx3 image, not an array of shape {data.shape}")
    height, width = data.shape[:2]
    top = 255 if bits == 8 else 65535
    values = np.rint(np.clip(np.nan_to_num(data, nan=0.0), 0.0, 1.0) * top).astype(
        ">u1" if bits == 8 else ">u2"
    )
    rows = values.reshape(height, -1).view(np.uint8)
    # Deflate level 1: maps full of fine detail shrink only ~1% more at level 6, which takes twice as long.
    # Filter "Up" (type 2): each row minus the row above, which deflates images far better than raw rows.
    filtered = rows.copy()
    filtered[1:] -= rows[:-1]
    scanlines = np.concatenate([np.full((height, 1), 2, dtype=np.uint8), filtered], axis=1)
    colour_type = 2 if data.ndim == 3 else 0
    ihdr = struct.pack(">IIBBBBB", width, height, bits, colour_type, 0, 0, 0)
    parts = [_PNG_SIGNATURE, _png_chunk(b"IHDR", ihdr)]
    parts += [_png_text(key, value) for key, value in _metadata_text(metadata).items()]
    parts += [_png_chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 1)), _png_chunk(b"IEND", b"")]
    return _write_atomic(path, parts)
