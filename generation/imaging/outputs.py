"""From an image to files on disk: a world (EXR + HDR + preview) or a material (PBR PNGs + preview).

The glue the Blender side calls. Input images are checked and made usable here (a clear InvalidImage when
they cannot be); files are written before anything touches the scene, under names that never overwrite an
earlier result, each carrying the request that made it.
"""

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import InvalidImage
from . import image_files
from .hdr import HdrOptions, convert_panorama, resize_panorama, resize_wrap, to_display
from .pbr import texture_to_pbr
from .quality import material_report, world_report

__all__ = [
    "HdrOptions",
    "MaterialOutputs",
    "WorldOutputs",
    "write_material",
    "write_world",
    "write_world_hdr",
]

log = logging.getLogger(__name__)

PREVIEW_WIDTH = 512
MIN_WORLD_WIDTH = 16
MIN_TEXTURE_SIZE = 8


@dataclass(frozen=True)
class WorldOutputs:
    """The files of a world: float32 EXR and Radiance HDR (the same radiance), an 8-bit PNG thumbnail of
    the LDR panorama, and the quality report. With a reconstructed sun also the radiance without it
    (`sunless_exr`, for a Sun lamp to carry the sun instead) and the sun found, as metadata strings."""

    exr: Path
    hdr: Path
    preview: Path
    report: dict
    sunless_exr: Path | None = None
    light: dict = field(default_factory=dict)
    stage_seconds: dict = field(default_factory=dict)  # {"hdr": the conversion, "files": the writing}


def sun_metadata(sun) -> dict[str, str]:
    """The sun found (an hdr.Sun), in a few metadata keys: what the History panel shows and a Sun lamp
    is made from. Direction and azimuth are in the panorama's frame, before any rotation of the world."""
    if sun is None:
        return {"sun": "none"}
    return {
        "sun": "found",
        "sun_direction": ",".join(f"{v:.5f}" for v in sun.direction),
        "sun_elevation_deg": f"{sun.elevation:.2f}",
        "sun_azimuth_deg": f"{sun.azimuth:.2f}",
        "sun_share": f"{sun.irradiance_share:.3f}",
        "sun_turbidity": f"{sun.turbidity:.2f}",
        "sun_temperature_k": f"{sun.temperature:.0f}",
        "sun_strength": f"{sun.strength:.6g}",
        "sun_colour": ",".join(f"{v:.5f}" for v in sun.colour),
        "sun_angle_deg": f"{sun.angular_diameter:.3f}",
        "sun_confidence": f"{sun.confidence:.2f}",
    }


@dataclass(frozen=True)
class MaterialOutputs:
    """The files of a material: albedo (8-bit sRGB), normal (16-bit RGB, OpenGL), roughness (8-bit grey),
    height (16-bit grey), AO (8-bit grey), a preview PNG, and the quality report."""

    albedo: Path
    normal: Path
    roughness: Path
    height: Path
    ao: Path
    preview: Path
    report: dict
    stage_seconds: dict = field(default_factory=dict)  # {"pbr": deriving the maps, "files": the writing}


def _rgb(image, what: str) -> np.ndarray:
    """HxWx3 float32 from grey, grey+alpha, RGB or RGBA input (alpha is dropped: worlds and textures are
    opaque)."""
    data = np.asarray(image)
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3 or data.shape[2] not in (1, 2, 3, 4):
        raise InvalidImage(
            f"{what}: expected an HxW, HxWx3 or HxWx4 image, got an array of shape {data.shape}"
        )
    if data.shape[2] in (1, 2):
        data = np.repeat(data[..., :1], 3, axis=2)
    return data[..., :3]


def _ldr(image, what: str) -> np.ndarray:
    """sRGB float32 in [0, 1] from 8/16-bit integers or floats; floats above 1 are read as 8- or 16-bit
    values stored as float; NaN becomes 0 and +Inf 1. One float32 copy, then everything in place."""
    data = _rgb(image, what)
    if not np.issubdtype(data.dtype, np.number):
        raise InvalidImage(f"{what}: pixel values must be numbers, not {data.dtype}")
    integer = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(data.dtype)
    data = data.astype(np.float32)
    if integer is not None:
        data /= np.float32(integer)
        return data
    if not _all_finite(data):
        bad = data.size - int(np.count_nonzero(np.isfinite(data)))
        log.warning("%s: %d NaN/Inf values replaced (NaN and -Inf by 0, +Inf by 1)", what, bad)
        np.nan_to_num(data, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    peak = float(data.max()) if data.size else 0.0
    if peak > 1.0 + 1e-3:
        scale = 255.0 if peak <= 255.0 + 1e-3 else 65535.0
        log.warning(
            "%s: values up to %g read as %d-bit values stored as float", what, peak, 8 if scale == 255 else 16
        )
        data /= np.float32(scale)
    return np.clip(data, 0.0, 1.0, out=data)


def _all_finite(data: np.ndarray) -> bool:
    """NaN and Inf show in the minimum or maximum: a check without a mask the size of the image."""
    return not data.size or bool(np.isfinite(data.min()) and np.isfinite(data.max()))


def _check_panorama(data: np.ndarray, what: str) -> None:
    height, width = data.shape[:2]
    if abs(width - 2 * height) > max(1, round(0.005 * width)):
        raise InvalidImage(
            f"{what} is {width}x{height}: a world needs an equirectangular panorama with a 2:1 aspect "
            "(width twice the height); crop or pad it to 2:1 first"
        )
    if width < MIN_WORLD_WIDTH:
        raise InvalidImage(
            f"{what} is {width}x{height}: a world needs at least {MIN_WORLD_WIDTH}x{MIN_WORLD_WIDTH // 2}"
        )


def _preview(ldr: np.ndarray) -> np.ndarray:
    height, width = ldr.shape[:2]
    if width <= PREVIEW_WIDTH:
        return ldr
    # A world wraps in x only: wrapping in y would mix the ground into the sky at the top and bottom rows.
    return resize_wrap(ldr, max(1, round(height * PREVIEW_WIDTH / width)), PREVIEW_WIDTH)


SUNLESS_SUFFIX = "-sunless.exr"  # beside `{stem}.exr`: the radiance without its sun, for a Sun lamp world


def with_its_sun(path: Path) -> Path:
    """The world file with its sun for `path`, which may be the sun-less one a Sun lamp world shows."""
    path = Path(path)
    if path.name.endswith(SUNLESS_SUFFIX):
        full = path.with_name(path.name.removesuffix(SUNLESS_SUFFIX) + ".exr")
        if full.is_file():
            return full
    return path


def hdr_options(options: dict) -> HdrOptions:
    """A world job's HDR settings from its options by their API names, in Blender and on a server."""
    return HdrOptions(
        exposure=options["exposure"],
        sun=options["sun"],
        sun_strength=options["sun_strength"],
        output_width=options.get("hdr_width") or None,
        poles="blend" if options["poles"] == "blend" else "off",  # a repair is the worker's, before this
        sun_lamp=bool(options.get("sun_lamp", False)),  # the sun-less EXR is written only for a Sun lamp
    )


def write_world(image, folder, stem: str, metadata: dict, hdr: HdrOptions | None = None) -> WorldOutputs:
    """Turn an sRGB equirectangular panorama (HxWx3 in [0, 1], rows top first) into `{stem}.exr`,
    `{stem}.hdr` and `{stem}-preview.png` in `folder` (and `{stem}-sunless.exr` for a Sun lamp with a sun
    found), each carrying `metadata`. Raises InvalidImage when the image is not 2:1 or cannot be read as
    an image. Peak memory is about 3 float32 copies of the world (4 with a Sun lamp): see bench."""
    hdr = hdr or HdrOptions()
    ldr = _ldr(image, "The panorama")
    _check_panorama(ldr, "The panorama")
    width = hdr.output_width or ldr.shape[1] + ldr.shape[1] % 2
    if ldr.shape[1] != width or ldr.shape[0] * 2 != width:
        ldr = resize_panorama(ldr, width)
    start = time.perf_counter()
    result = convert_panorama(ldr, hdr, overwrite=True)
    converted = time.perf_counter()
    del ldr  # result.ldr is it, or its prepared copy: the input goes now

    def report():
        found = world_report(result.ldr, result.radiance, sun_added=result.sun is not None)
        if result.sun is not None:
            sun = result.sun
            found["sun_elevation_deg"] = sun.elevation
            found["sun_azimuth_deg"] = sun.azimuth
            found["sun_share"] = sun.irradiance_share
            found["sun_turbidity"] = sun.turbidity
            found["sun_temperature_k"] = sun.temperature
            found["sun_confidence"] = sun.confidence
            # E(map) / E(map without the sun), from the share the sun was added with: no sun-less copy.
            found["lit_shadow_ratio"] = 1.0 / (1.0 - sun.irradiance_share)
        return found

    files = _write_world_files(result.radiance, result.ldr, folder, stem, metadata, report, result.sunless)
    seconds = {"hdr": converted - start, "files": time.perf_counter() - converted}
    return replace(files, light=sun_metadata(result.sun), stage_seconds=seconds)


def _write_world_files(radiance, ldr, folder, stem, metadata, report, sunless=None) -> WorldOutputs:
    suffixes = [".exr", ".hdr", "-preview.png", SUNLESS_SUFFIX]
    stem, (exr, hdr_path, preview, sunless_exr) = image_files.unique_stem(folder, stem, suffixes)
    text = {str(k): str(v) for k, v in (metadata or {}).items()}
    # numpy, zlib and file writes release the GIL: the files and the report are made side by side.
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        # ZIP where it pays: a sky deflates to about 60% of raw float32, fine noise hardly at all (README).
        writes = [
            pool.submit(image_files.write_exr, exr, radiance, text, compression="auto"),
            pool.submit(image_files.write_hdr, hdr_path, radiance, text),
            pool.submit(lambda: image_files.write_png(preview, _preview(ldr), 8, text)),
        ]
        if sunless is not None:
            writes.append(pool.submit(image_files.write_exr, sunless_exr, sunless, text, compression="none"))
        found = report()
        for write in writes:
            write.result()
    return WorldOutputs(
        exr=exr,
        hdr=hdr_path,
        preview=preview,
        report=found,
        sunless_exr=sunless_exr if sunless is not None else None,
    )


def display_srgb(radiance: np.ndarray) -> np.ndarray:
    """Radiance as a picture: the median sky at mid grey, highlights rolled off (Reinhard), then sRGB.
    The previews of HDR inputs, what a depth model sees of an HDR world and the cube faces' PNGs: the
    upscaler's display encoding (hdr.to_display), without what would invert it."""
    return to_display(radiance)[0]


def write_world_hdr(
    radiance, folder, stem: str, metadata: dict, exposure: float = 0.0, output_width: int | None = None
) -> WorldOutputs:
    """Write an image that is already HDR radiance (from an EXR or HDR file) as a world: scaled by
    2**exposure and resampled to `output_width` when given, otherwise as it is. NaN and negative values
    become a tiny positive floor, +Inf the largest finite value."""
    data = _rgb(radiance, "The HDR panorama").astype(np.float32)  # our copy, worked on in place from here
    _check_panorama(data, "The HDR panorama")
    if not _all_finite(data):
        valid = np.isfinite(data)
        top = float(data.max(where=valid, initial=-np.inf)) if valid.any() else 1.0
        log.warning("The HDR panorama: %d NaN/Inf values replaced", data.size - int(np.count_nonzero(valid)))
        del valid
        np.nan_to_num(data, copy=False, nan=0.0, posinf=max(top, 1.0), neginf=0.0)
    least = float(data.min(where=data > 0, initial=np.inf))
    floor = np.float32(max(least, 1e-9) if np.isfinite(least) else 1e-9)
    np.maximum(data, floor, out=data)
    if exposure:
        data *= np.float32(2.0**exposure)
    if output_width and output_width != data.shape[1]:
        data = resize_wrap(data, output_width // 2, output_width)
        np.maximum(data, floor, out=data)
    ldr = display_srgb(data)
    return _write_world_files(data, ldr, folder, stem, metadata, lambda: world_report(None, data))


def write_material(image, folder, stem: str, metadata: dict) -> MaterialOutputs:
    """Derive the PBR maps of a tileable sRGB texture and write `{stem}-albedo.png`, `-normal.png`,
    `-roughness.png`, `-height.png`, `-ao.png` and `-preview.png` in `folder`, each carrying `metadata`."""
    texture = _ldr(image, "The texture")
    if min(texture.shape[:2]) < MIN_TEXTURE_SIZE:
        raise InvalidImage(
            f"The texture is {texture.shape[1]}x{texture.shape[0]}: a material needs at least "
            f"{MIN_TEXTURE_SIZE}x{MIN_TEXTURE_SIZE} pixels"
        )
    start = time.perf_counter()
    maps = texture_to_pbr(texture)
    derived = time.perf_counter()
    names = ["albedo", "normal", "roughness", "height", "ao", "preview"]
    stem, paths = image_files.unique_stem(folder, stem, [f"-{name}.png" for name in names])
    files = dict(zip(names, paths, strict=True))
    text = {str(k): str(v) for k, v in (metadata or {}).items()}
    height, width = maps.albedo.shape[:2]
    scale = min(1.0, PREVIEW_WIDTH / max(height, width))
    preview = resize_wrap(
        maps.albedo, max(1, round(height * scale)), max(1, round(width * scale)), wrap_y=True
    )
    jobs = [
        (files["albedo"], maps.albedo, 8),
        (files["normal"], maps.normal, 16),
        (files["roughness"], maps.roughness, 8),
        (files["height"], maps.height, 16),
        (files["ao"], maps.ao, 8),
        (files["preview"], preview, 8),
    ]
    # zlib releases the GIL: the PNGs deflate in parallel.
    with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        list(pool.map(lambda job: image_files.write_png(*job, text), jobs))
    seconds = {"pbr": derived - start, "files": time.perf_counter() - derived}
    return MaterialOutputs(**files, report=material_report(maps), stage_seconds=seconds)
