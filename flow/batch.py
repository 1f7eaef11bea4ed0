"""`blender -c promptscape batch FILE --output-dir DIR`: many generations from a JSON Lines file.

Each line is one job: {"kind": "world" | "material", "prompt": "...", OPTION: VALUE, "objects": [...]}
with the options by their API names (kind defaults to world). Line N becomes DIR/NNNN-<prompt>.blend with
its files in DIR/promptscape/; a line whose .blend exists is done and is skipped on a rerun. A failing line
is reported and the batch goes on; the summary is printed and written to DIR/summary.json.
"""

import json
import os
import time
from pathlib import Path

import bpy

from ..generation.errors import InvalidRequest, PromptscapeError
from . import runner, start
from .settings import slug

MAX_LINE = 64 * 1024
SWATCH = "Promptscape Swatch"  # carries a material when the line names no objects


def line_name(number: int, prompt: str) -> str:
    return f"{number:04d}-{slug(prompt, 'job')}"


def parse_line(text: str) -> dict:
    if len(text) > MAX_LINE:
        raise InvalidRequest(f"the line is over {MAX_LINE // 1024} KiB")
    try:
        job = json.loads(text)
    except ValueError as error:
        raise InvalidRequest(f"the line is not JSON: {error}") from None
    if not isinstance(job, dict):
        raise InvalidRequest('a line must be a JSON object such as {"prompt": "a foggy harbour"}')
    if job.setdefault("kind", "world") not in ("world", "material"):
        raise InvalidRequest(f"kind must be world or material, not {job['kind']!r}")
    return job


def _targets(names):
    if not names:
        bpy.ops.mesh.primitive_plane_add()
        bpy.context.active_object.name = SWATCH
        return [bpy.context.active_object]
    return names  # names: checked where every surface's objects are (scene/material.py)


def run_line(job: dict, target: Path, blend: str | None) -> None:
    """Generate one line into `target`, written under a temporary name and renamed once complete."""
    job = dict(job)
    kind, objects = job.pop("kind"), job.pop("objects", None)
    if blend:
        bpy.ops.wm.open_mainfile(filepath=blend)
    else:
        bpy.ops.wm.read_homefile(use_empty=True)
    partial = target.with_name(f".{target.stem}.partial.blend")
    bpy.ops.wm.save_as_mainfile(filepath=str(partial))  # so the files land in DIR/promptscape/
    try:
        scene = bpy.context.scene
        if kind == "world":
            task = start.start_world(scene, **job)
        else:
            task = start.start_material(scene, _targets(objects), **job)
        runner.wait(task)
        if task.error:
            raise PromptscapeError(task.error)
        if not task.applied:
            raise PromptscapeError("cancelled")
        bpy.ops.wm.save_as_mainfile(filepath=str(partial))
        os.replace(partial, target)
    finally:
        for leftover in (partial, partial.with_suffix(".blend1")):
            leftover.unlink(missing_ok=True)


def run_batch(path: Path, output_dir: Path, server: str | None = None, blend: str | None = None) -> dict:
    """Every line of `path`, one after another; the summary (also written as output_dir/summary.json)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for number, text in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        started, entry = time.perf_counter(), {"line": number}
        try:
            job = parse_line(text)
            entry["prompt"] = str(job.get("prompt", ""))
            target = output_dir / f"{line_name(number, entry['prompt'])}.blend"
            entry["output"] = str(target)
            if server and "server" not in job:
                job["server"] = server
            if target.exists():
                entry["state"] = "skipped"
            else:
                run_line(job, target, blend)
                entry["state"] = "done"
        except (PromptscapeError, OSError, RuntimeError) as error:
            entry.update(state="failed", error=str(error).strip())
        entry["seconds"] = round(time.perf_counter() - started, 2)
        lines.append(entry)
    counts = {
        state: sum(entry["state"] == state for entry in lines) for state in ("done", "skipped", "failed")
    }
    summary = {"file": str(path), "total": len(lines), **counts, "lines": lines}
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
