"""The files of a projected texture: per object the albedo and PBR maps, per view its picture and depth.

The albedo is the baked texture itself (no de-lighting: what the views drew is what the camera sees); the
normal, roughness, height and AO maps are derived from it as for a material (pbr.py). Every view's picture
and its control depth (normalised inverse depth, near bright, 16-bit) are written too, named in the
metadata (`view_images`, comma-separated, in view order). numpy only; worker thread.
"""

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import image_files, raster
from .outputs import MaterialOutputs
from .pbr import texture_to_pbr


@dataclass(frozen=True)
class ProjectOutputs:
    """Each object's material files by object name, the views' pictures and depth maps, the coverage."""

    materials: dict
    view_images: tuple
    depth_images: tuple
    coverage: float
    stage_seconds: dict = field(default_factory=dict)

    def files(self) -> dict:
        """Every file by its role: "view1", "depth1", ..., and "<object> albedo", "<object> normal", ..."""
        found = {f"view{k}": path for k, path in enumerate(self.view_images, 1)}
        found.update({f"depth{k}": path for k, path in enumerate(self.depth_images, 1)})
        for name, maps in self.materials.items():
            for role in ("albedo", "normal", "roughness", "height", "ao", "preview"):
                found[f"{name} {role}"] = getattr(maps, role)
        return found


def object_part(name: str) -> str:
    """An object's name as a file-name part."""
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:40] or "object"


def write_projection(
    textures: dict, views: list, depths: list, coverage: float, folder, stem: str, metadata: dict
) -> ProjectOutputs:
    """Write `{stem}-view{k}.png`, `{stem}-depth{k}.png` and, per object, `{stem}-{object}-albedo.png`,
    `-normal.png`, `-roughness.png`, `-height.png`, `-ao.png` and `-preview.png`; every file carries
    `metadata` with view_images added."""
    start = time.perf_counter()
    folder = Path(folder)
    names = [f"-view{k + 1}.png" for k in range(len(views))] + [
        f"-depth{k + 1}.png" for k in range(len(views))
    ]
    roles = ("albedo", "normal", "roughness", "height", "ao", "preview")
    for name in textures:
        names += [f"-{object_part(name)}-{role}.png" for role in roles]
    stem, paths = image_files.unique_stem(folder, stem, names)
    count = len(views)
    view_paths, depth_paths = paths[:count], paths[count : 2 * count]
    text = {str(k): str(v) for k, v in (metadata or {}).items()}
    text["view_images"] = ",".join(path.name for path in view_paths)
    for path, image in zip(view_paths, views, strict=True):
        image_files.write_png(path, np.clip(image, 0.0, 1.0), 8, text)
    for path, depth in zip(depth_paths, depths, strict=True):
        image_files.write_png(path, raster.control_image(depth), 16, text)
    materials = {}
    derived = 0.0
    for index, (name, texture) in enumerate(textures.items()):
        files = paths[2 * count + index * len(roles) : 2 * count + (index + 1) * len(roles)]
        before = time.perf_counter()
        maps = texture_to_pbr(texture)
        derived += time.perf_counter() - before
        jobs = [(texture, 8), (maps.normal, 16), (maps.roughness, 8), (maps.height, 16), (maps.ao, 8)]
        preview = texture[:: max(1, texture.shape[0] // 512), :: max(1, texture.shape[1] // 512)]
        for path, (data, bits) in zip(files, [*jobs, (preview, 8)], strict=True):
            image_files.write_png(path, np.clip(data, 0.0, 1.0), bits, text)
        report = {"coverage": round(coverage, 4)}
        materials[name] = MaterialOutputs(*files, report=report)
    seconds = {"pbr": derived, "files": time.perf_counter() - start - derived}
    return ProjectOutputs(materials, tuple(view_paths), tuple(depth_paths), coverage, seconds)
