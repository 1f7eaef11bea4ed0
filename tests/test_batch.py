"""`blender -c promptscape batch`: JSON Lines in, one .blend per line out, reruns skip what is done."""

import json
from pathlib import Path

import bpy


def test_a_batch_runs_every_line_and_a_rerun_skips_the_done_ones(cli, tiny_sd, tmp_path, capfd, fresh_file):
    fast = {"model": str(tiny_sd), "steps": 2, "width": 128, "height": 64, "device": "cpu"}
    jobs = tmp_path / "jobs.jsonl"
    lines = [
        {"prompt": "harbour at dusk", "seed": 1, **fast},
        {"kind": "material", "prompt": "rusty metal", "seed": 2, **fast, "width": 64, "height": 64},
        {"prompt": "no steps", **fast, "steps": 0},
        "not json",
        {"prompt": "wrong key", "scene": "Scene", **fast},  # refused in words; the batch goes on
    ]
    jobs.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    out = tmp_path / "results"
    assert cli.main(["batch", str(jobs), "--output-dir", str(out), "--json"]) == 1  # three lines fail
    printed = [json.loads(line) for line in capfd.readouterr().out.splitlines()]  # a result per line
    summary = json.loads((out / "summary.json").read_text())
    assert printed == summary["lines"]
    assert (summary["total"], summary["done"], summary["failed"]) == (5, 2, 3)
    assert [entry["state"] for entry in summary["lines"]] == ["done", "done", "failed", "failed", "failed"]
    assert "steps" in summary["lines"][2]["error"] and "not JSON" in summary["lines"][3]["error"]
    assert "'scene' is not an option of a world line" in summary["lines"][4]["error"]
    first, second = summary["lines"][:2]
    assert (first["seed"], second["seed"]) == (1, 2)  # each line's seed and files, for a pipeline
    assert Path(first["files"]["exr"]).is_file() and Path(second["files"]["albedo"]).is_file()
    assert sorted(path.name for path in out.glob("*.blend")) == [
        "0001-harbour-at-dusk.blend",
        "0002-rusty-metal.blend",
    ]
    assert (out / "promptscape").is_dir()
    bpy.ops.wm.open_mainfile(filepath=str(out / "0001-harbour-at-dusk.blend"))
    assert bpy.context.scene.world["promptscape"]["prompt"] == "harbour at dusk"
    capfd.readouterr()
    assert cli.main(["batch", str(jobs), "--output-dir", str(out)]) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["done"], summary["skipped"], summary["failed"]) == (0, 2, 3)
    assert "2 skipped" in capfd.readouterr().out
