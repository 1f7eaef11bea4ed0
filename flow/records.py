"""A finished task as plain data, for a pipeline: what `--json` prints and a batch's summary.json lists.

{"kind", "files": {role: absolute path}, "seed", "model", "width", "height", "timings", "memory_plan",
"sun"}; keys that do not apply to a kind are left out. No bpy: the task's files and metadata are enough.
"""

import dataclasses
from pathlib import Path

NUMBERS = ("seed", "width", "height")


def files_of(outputs) -> dict[str, str]:
    """Every file of a result by its role (a world's "exr", "hdr", "preview"; a material's "albedo", ...;
    an export's file names), as absolute paths."""
    if isinstance(outputs, str | Path):
        path = Path(outputs)
        return {path.suffix.lstrip(".").lower() or "folder": str(path.resolve())}
    if hasattr(outputs, "files"):  # a result of several sets of files names each itself
        return {role: str(Path(path).resolve()) for role, path in outputs.files().items()}
    if isinstance(outputs, list | tuple):
        return {Path(path).name: str(Path(path).resolve()) for path in outputs}
    if dataclasses.is_dataclass(outputs):
        return {
            field.name: str(Path(value).resolve())
            for field in dataclasses.fields(outputs)
            if isinstance(value := getattr(outputs, field.name), Path)
        }
    return {}


def sun_of(metadata: dict) -> dict | None:
    """The sun a world's light was made with ({"found": True, "elevation_deg": 35.2, ...}), or None."""
    if "sun" not in metadata and not any(key.startswith("sun_") for key in metadata):
        return None
    sun = {"found": metadata.get("sun") == "found"}
    for key, value in metadata.items():
        if key.startswith("sun_") and key != "sun_lamp":
            name = key.removeprefix("sun_")
            try:
                sun[name] = float(value)
            except (TypeError, ValueError):
                sun[name] = value  # a direction or colour: "x,y,z" as recorded
    return sun


def record(task) -> dict:
    """The result of a finished task: kind, files, request figures, timings, memory plan and sun."""
    job = task.job
    metadata = {**getattr(job, "metadata", {}), **(task.metadata or {})}
    found = {"kind": task.kind, "files": files_of(getattr(job, "outputs", None))}
    for name in NUMBERS:
        if str(metadata.get(name, "")).isdigit():
            found[name] = int(metadata[name])
    factor = str(metadata.get("upscale", "1"))
    for name in ("width", "height"):  # the files' size: the request's, upscaled
        if name in found and factor.isdigit():
            found[name] *= int(factor)
    if metadata.get("model"):
        found["model"] = metadata["model"]
    timings = {**getattr(job, "timings", {}), "apply": task.apply_seconds}
    found["timings"] = {name: round(seconds, 3) for name, seconds in timings.items()}
    if metadata.get("memory_plan"):
        found["memory_plan"] = metadata["memory_plan"]
    if task.kind == "world" and (sun := sun_of(metadata)) is not None:
        found["sun"] = sun
    return found
