"""Image writers in numpy + the standard library: OpenEXR float32, Radiance .hdr, PNG 8/16-bit.

Blender's bundled Python has numpy but neither Pillow nor OpenEXR, so these are written by hand (an EXR
goes through the OpenEXR package instead where it is installed: the same file, written faster). Writers
stream by chunks or bands of rows, so a large image is not copied whole. Every writer writes to a
temporary name in the target folder and renames it into place: a crash or a full disk never leaves a half
file under the final name. Each file carries the request that made it as metadata.
"""

import os
import struct
import tempfile
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import numpy as np

from ..errors import InvalidImage

_EXR_MAGIC = 20000630
_EXR_LONG_NAMES = 0x400
_EXR_ZIP_LINES = 16  # scanlines per chunk with ZIP compression
# "auto" compresses when a sample of the image deflates to this share of raw float32 or less: fine noise
# in every mantissa deflates to ~86% at the full cost of ZIP (2 s at 4K on 2 cores), a sky to ~60%.
ZIP_WORTH = 0.8
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


@contextmanager
def _atomic(path: str | os.PathLike):
    """A file open for writing at a temporary name beside `path`, renamed to `path` when the block ends
    without an error (and removed when it does not)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        # mkstemp makes the file 0600; a farm or a shared drive needs what any new file gets (umask).
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _write_atomic(path: str | os.PathLike, parts) -> Path:
    """Write the byte strings of `parts` (any iterable: a generator streams) atomically to `path`."""
    with _atomic(path) as file:
        for part in parts:
            file.write(part)
    return Path(path)


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


@cache
def _openexr():
    """The OpenEXR package when installed (tests, the server, a Blender with Promptscape's dependencies):
    its C++ codec deflates with libdeflate on every core, about 4x faster than zlib here. None without."""
    try:
        import OpenEXR
    except ImportError:
        return None
    return OpenEXR


def write_exr(
    path: str | os.PathLike,
    rgb: np.ndarray,
    metadata: dict | None = None,
    compression: str = "zip",
    use_openexr: bool | None = None,
) -> Path:
    """Write HxWx3 float32 radiance as an OpenEXR scanline file (float32 channels, so values far above the
    half-float limit of 65504 survive) with `metadata` as string attributes. compression: "zip", "none"
    or "auto" (ZIP where it pays, see ZIP_WORTH; all lossless; ZIP measured against PIZ and ZIPS in the
    README). Written by the OpenEXR package when it is installed (`use_openexr` None), else here in numpy,
    chunk by chunk: a few chunks in memory."""
    data = _as_rgb(rgb, "An EXR file")
    if data.dtype != np.float32 or not data.flags.c_contiguous:
        data = np.ascontiguousarray(data, dtype=np.float32)
    if compression not in ("zip", "none", "auto"):
        raise ValueError(f'compression must be "zip", "none" or "auto", not {compression!r}')
    if compression == "auto":
        compression = "zip" if zip_pays(data) else "none"
    text = _metadata_text(metadata)
    openexr = _openexr() if use_openexr in (None, True) else None
    if use_openexr and openexr is None:
        raise ImportError("the OpenEXR package is not installed")
    if openexr is not None:
        kind = openexr.ZIP_COMPRESSION if compression == "zip" else openexr.NO_COMPRESSION
        header = {**text, "compression": kind, "type": openexr.scanlineimage}
        exr = openexr.File(header, {"RGB": data}, num_threads=os.cpu_count() or 1)
        with _atomic(path) as file:
            exr.write(file)
        return Path(path)
    return _write_exr_numpy(path, data, text, compression)


def zip_pays(data: np.ndarray, samples: int = 6) -> bool:
    """Whether ZIP shrinks this image to ZIP_WORTH of raw or less, judged on a few 16-line chunks evenly
    spread over it (the one-colour pole rows left out), deflated as the file's would be (about 1% of the
    whole file's work)."""
    height = data.shape[0]
    centres = (np.arange(samples) + 0.5) * height / samples - _EXR_ZIP_LINES / 2
    starts = sorted({int(np.clip(y, 0, max(0, height - _EXR_ZIP_LINES))) for y in centres})
    raw = packed = 0
    for y in starts:
        chunk = np.ascontiguousarray(data[y : y + _EXR_ZIP_LINES, :, ::-1].transpose(0, 2, 1)).tobytes()
        raw += len(chunk)
        packed += len(_exr_zip(chunk))
    return packed <= ZIP_WORTH * raw


def _exr_head(width: int, height: int, text: dict[str, str], compression: str) -> bytes:
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
    return struct.pack("<ii", _EXR_MAGIC, 2 | flags) + b"".join(header) + b"\0"


def _write_exr_numpy(path, data: np.ndarray, text: dict[str, str], compression: str) -> Path:
    """The numpy writer: chunks made on a few threads (zlib and numpy release the GIL), written in order
    as they come, the offset table filled in last."""
    height, width = data.shape[:2]
    lines = _EXR_ZIP_LINES if compression == "zip" else 1
    starts = range(0, height, lines)

    def chunk(y: int) -> bytes:
        # Per scanline, each channel's row in turn: B, G, R.
        raw = np.ascontiguousarray(data[y : y + lines, :, ::-1].transpose(0, 2, 1)).tobytes()
        payload = _exr_zip(raw) if compression == "zip" else raw
        return struct.pack("<ii", y, len(payload)) + payload

    head = _exr_head(width, height, text, compression)
    offsets = np.zeros(len(starts), dtype="<u8")
    workers = max(1, os.cpu_count() or 1)
    with _atomic(path) as file, ThreadPoolExecutor(max_workers=workers) as pool:
        file.write(head + offsets.tobytes())
        pending: deque = deque()

        def write_next(index: int) -> None:
            offsets[index] = file.tell()
            file.write(pending.popleft().result())

        for index, y in enumerate(starts):
            pending.append(pool.submit(chunk, y))
            if len(pending) > 2 * workers:  # a few chunks in flight: memory stays a few chunks
                write_next(index - len(pending) + 1)
        while pending:
            write_next(len(starts) - len(pending))
        file.seek(len(head))
        file.write(offsets.tobytes())
    return Path(path)


# Radiance RGBE ----------------------------------------------------------------------------------------


_HDR_BLOCK_PIXELS = 2**16  # RGBE is made this many pixels' rows at a time: temporaries stay a sliver


def write_hdr(path: str | os.PathLike, rgb: np.ndarray, metadata: dict | None = None) -> Path:
    """Write HxWx3 radiance as a Radiance .hdr (RGBE, flat scanlines) with `metadata` as KEY=value header
    lines (newlines in values become spaces). Negative and non-finite values are written as 0."""
    data = _as_rgb(rgb, "An HDR file")
    height, width = data.shape[:2]
    lines = ["#?RADIANCE", "# Made by Promptscape", "FORMAT=32-bit_rle_rgbe"]
    for key, value in _metadata_text(metadata).items():
        clean_key = "".join(c if c.isalnum() or c in "_-." else "_" for c in key)
        lines.append(f"{clean_key}={' '.join(value.splitlines())}")
    head = ("\n".join(lines) + f"\n\n-Y {height} +X {width}\n").encode("utf-8")
    rows = max(1, _HDR_BLOCK_PIXELS // width)
    blocks = (_rgbe(data[y : y + rows]) for y in range(0, height, rows))
    return _write_atomic(path, _chain(head, blocks))


def _chain(first: bytes, rest):
    yield first
    yield from rest


def _rgbe(rows: np.ndarray) -> bytes:
    """RGBE bytes of a few rows: a shared exponent from the largest channel, 8-bit mantissas (truncated,
    as Radiance's own writer does). Radiance is finite and positive as made: then nothing is copied."""
    data = np.asarray(rows, dtype=np.float32)
    low, high = data.min(), data.max()
    if not (np.isfinite(low) and np.isfinite(high) and low >= 0):
        data = np.nan_to_num(data, nan=0.0, posinf=3e38, neginf=0.0)
        np.maximum(data, 0.0, out=data)
    peak = np.maximum(np.maximum(data[..., 0], data[..., 1]), data[..., 2])
    mantissa, exponent = np.frexp(peak)
    hidden = peak <= 1e-32
    scale = mantissa * np.float32(256.0)
    np.divide(scale, peak, out=scale, where=~hidden)
    scale[hidden] = 0.0
    rgbe = np.empty((*data.shape[:2], 4), dtype=np.uint8)
    rgbe[..., :3] = data * scale[..., None]  # below 256 by construction: mantissa < 1
    exponent += 128
    np.clip(exponent, 0, 255, out=exponent)
    exponent[hidden] = 0
    rgbe[..., 3] = exponent
    return rgbe.tobytes()


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
