"""Images in Blender: load generated files (not packed), tag them with their request, read pixels."""

import contextlib
from pathlib import Path

import bpy
import numpy as np

from ..generation.errors import InvalidImage
from ..generation.imaging.hdr import linear_to_srgb

METADATA_KEY = "promptscape"


def tag(idblock, metadata: dict[str, str]):
    """Store the request on an image, world or material, so it can be re-applied or re-generated."""
    idblock[METADATA_KEY] = dict(metadata)


def metadata_of(idblock) -> dict[str, str]:
    """The request stored on a datablock by `tag`, as plain strings (empty when there is none)."""
    group = idblock.get(METADATA_KEY)
    return {str(key): str(value) for key, value in group.items()} if group is not None else {}


def load(path: Path, colorspace: str | None, metadata: dict[str, str], pack: bool = False):
    """Load an image file as a new datablock, in the given colour space (None: the file's), tagged."""
    try:
        image = bpy.data.images.load(str(path), check_existing=False)
    except RuntimeError as error:
        raise InvalidImage(f"Blender cannot read {path}: {error}") from None
    # Path and colour space first: changing either after the pixels are decoded decodes them again.
    if bpy.data.filepath:
        # Relative to the .blend ("//promptscape/..."), so the project folder can move with its files.
        with contextlib.suppress(ValueError):  # another drive on Windows: keep it absolute
            image.filepath = bpy.path.relpath(str(path))
    if colorspace:
        image.colorspace_settings.name = colorspace
    if not image.has_data and image.size[0] == 0:  # reading the size decodes the file
        bpy.data.images.remove(image)
        raise InvalidImage(f"Blender cannot decode {path}: is it a complete image file?")
    tag(image, metadata)
    if pack:
        image.pack()
    return image


def load_all(paths: dict[str, tuple[Path, str]], metadata: dict[str, str], pack: bool = False) -> dict:
    """Load several images ({role: (path, colour space)}); if one fails, none is left behind."""
    loaded = {}
    try:
        for role, (path, colorspace) in paths.items():
            loaded[role] = load(path, colorspace, metadata, pack)
    except Exception:
        for image in loaded.values():
            bpy.data.images.remove(image)
        raise
    return loaded


HDR_FORMATS = {"OPEN_EXR", "OPEN_EXR_MULTILAYER", "HDR"}


def read_pixels(path: Path) -> tuple[np.ndarray, bool]:
    """An image file's pixels as float32 rows top first (H, W, 3), and whether they are HDR radiance.

    Blender reads every format it supports. EXR and HDR files come back as linear radiance; every other
    file comes back sRGB-encoded in [0, 1], 16-bit PNG and TIFF included (Blender decodes those to linear
    floats, so they are encoded again here).
    """
    if not Path(path).is_file():
        raise InvalidImage(f"No image file at {path}: check the path")
    image = load(Path(path), None, {})
    try:
        width, height = image.size
        flat = np.empty(width * height * image.channels, dtype=np.float32)
        image.pixels.foreach_get(flat)
        pixels = flat.reshape(height, width, image.channels)[::-1]
        if image.channels < 3:
            pixels = np.repeat(pixels[:, :, :1], 3, axis=2)
        pixels = np.ascontiguousarray(pixels[:, :, :3])
        is_hdr = image.file_format in HDR_FORMATS
        if image.is_float and not is_hdr and image.colorspace_settings.name != "Non-Color":
            pixels = linear_to_srgb(pixels)
        return pixels, is_hdr
    finally:
        bpy.data.images.remove(image)
