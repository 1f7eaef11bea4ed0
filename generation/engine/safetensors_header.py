"""A .safetensors file's header, read and checked without loading a weight: for sizes, families and
truncated downloads."""

import json
import struct
from pathlib import Path

from ..errors import ModelLoadError


def check_safetensors(path: Path) -> dict:
    """Read a .safetensors header and check the file holds every byte it declares; return the header.

    A download cut short leaves a file whose tensors end past its end: say so instead of a Rust panic.
    """
    size = path.stat().st_size
    with path.open("rb") as file:
        raw_length = file.read(8)
        length = struct.unpack("<Q", raw_length)[0] if len(raw_length) == 8 else -1
        if length <= 0 or 8 + length > size:
            header = None
        else:
            try:
                header = json.loads(file.read(length))
            except ValueError:
                header = None
    if header is not None:
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        if 8 + length + end <= size:
            return header
    raise ModelLoadError(
        f'"{path}" is truncated or corrupt ({size} bytes): the download was probably cut short; '
        "delete it and download the model again"
    )
