"""`blender -c promptscape batch FILE --output-dir DIR`: many generations from a JSON Lines file.

Each line is one job: {"kind": "world" | "material" | "project", "prompt": "...", OPTION: VALUE,
"objects": [...]} with the options by their API names (kind defaults to world). Line N becomes
DIR/NNNN-<prompt>.blend with its files in DIR/promptscape/; a line whose .blend exists is done and is
skipped on a rerun. A failing line is reported and the batch goes on; the summary is printed and written to
DIR/summary.json.
"""

import json
import os
import time
from pathlib import Path

import bpy

from ..generation import options as declared
from ..generation.errors import InvalidRequest, PromptscapeError
from . import project, prop, records, runner, start, wording
from .settings import slug

MAX_LINE = 64 * 1024
LINE_KEYS = {"kind", "objects"}  # a line's keys besides the options of its kind
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
    if job.setdefault("kind", "world") not in ("world", "material", "prop", "project"):
        raise InvalidRequest(f"kind must be world, material, prop or project, not {job['kind']!r}")
    known = {option.name for option in declared.for_kind(job["kind"])} | LINE_KEYS
    unknown = sorted(set(job) - known)
    if unknown:  # refused here in words, never a TypeError that stops the batch
        raise InvalidRequest(
            f"{', '.join(map(repr, unknown))} is not an option of a {job['kind']} line; "
            f"known: {', '.join(sorted(known))}"
        )
    return job


def _targets(names):
    if not names:
        bpy.ops.mesh.primitive_plane_add()
        bpy.context.active_object.name = SWATCH
        return [bpy.context.active_object]
    return names  # names: checked where every surface's objects are (scene/material.py)


def run_line(job: dict, target: Path, blend: str | None) -> dict:
    """Generate one line into `target`, written under a temporary name and renamed once complete; return
    its record (seed, files, timings: flow/records.py)."""
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
        elif kind == "prop":
            task = prop.start_prop(scene, **job)
        elif kind == "project":  # onto the named objects (default: the selection) of the --blend file
            task = project.start_project(scene, objects, **job)
        else:
            task = start.start_material(scene, _targets(objects), **job)
        runner.wait(task)
        if task.error:
            raise PromptscapeError(task.error)
        if not task.applied:
            raise PromptscapeError("cancelled")
        bpy.ops.wm.save_as_mainfile(filepath=str(partial))
        os.replace(partial, target)
        return records.record(task)
    finally:
        for leftover in (partial, partial.with_suffix(".blend1")):
            leftover.unlink(missing_ok=True)


def run_batch(path: Path, output_dir: Path, server: str | None = None, blend: str | None = None,
              on_line=None) -> dict:  # fmt: skip
    """Every line of `path`, one after another; the summary (also written as output_dir/summary.json).
    `on_line(entry)` is called as each line ends (the CLI's --json prints it)."""
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
                made = run_line(job, target, blend)
                entry.update(state="done", seed=made.get("seed"), files=made["files"])
        except (PromptscapeError, OSError, RuntimeError) as error:
            entry.update(state="failed", error=wording.headless(str(error).strip()))
        entry["seconds"] = round(time.perf_counter() - started, 2)
        lines.append(entry)
        if on_line is not None:
            on_line(entry)
    counts = {
        state: sum(entry["state"] == state for entry in lines) for state in ("done", "skipped", "failed")
    }
    summary = {"file": str(path), "total": len(lines), **counts, "lines": lines}
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
