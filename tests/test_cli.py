"""`blender -c promptscape ...`: the command line's code path, exit codes and messages."""

import importlib
import json
import os
import shutil
import signal
from pathlib import Path

import bpy


def test_world_command_saves_the_blend_with_the_new_world(
    cli, tiny_sd, tiny_esrgan, tmp_path, capfd, fresh_file
):
    out = tmp_path / "out.blend"
    argv = ["world", "misty pine forest", "--model", str(tiny_sd), "--steps", "3", "--seed", "11"]
    argv += ["--upscale", "2", "--upscaler", str(tiny_esrgan), "--json"]
    code = cli.main([*argv, "--width", "128", "--height", "64", "--device", "cpu", "--output", str(out)])
    captured = capfd.readouterr()
    err = captured.err
    assert code == 0, err
    (result,) = [json.loads(line) for line in captured.out.splitlines()]  # one result, nothing else
    assert (result["kind"], result["seed"], result["width"], result["blend"]) == ("world", 11, 256, str(out))
    assert Path(result["files"]["exr"]).is_absolute() and Path(result["files"]["exr"]).is_file()
    assert result["timings"]["load"] >= 0 and result["timings"]["upscale"] > 0 and "sun" in result
    lines = [line.removeprefix("promptscape: ") for line in err.splitlines()]
    steps = [line for line in lines if line.startswith("step ")]
    assert steps == ["step 1 of 3", "step 2 of 3", "step 3 of 3"]
    tiles = [line for line in lines if line.startswith("upscaling, tile ")]  # each tile, in the same words
    assert tiles and tiles == [f"upscaling, tile {n} of {len(tiles)}" for n in range(1, len(tiles) + 1)]
    assert "saved" in err
    assert (tmp_path / "promptscape").is_dir()  # files beside the output .blend
    bpy.ops.wm.open_mainfile(filepath=str(out))
    world = bpy.context.scene.world
    assert world["promptscape"]["prompt"] == "misty pine forest" and world["promptscape"]["seed"] == "11"
    image = world.node_tree.nodes["Promptscape Environment"].image
    assert image.filepath.startswith("//promptscape/")


def test_material_command_on_a_named_object(cli, tiny_sd, tmp_path, capfd, fresh_file):
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.mesh.primitive_cube_add()
    bpy.context.active_object.name = "Crate"
    source = tmp_path / "in.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(source))
    out = tmp_path / "out.blend"
    capfd.readouterr()  # Blender's "Saved" line above is the test's, not the command's
    argv = ["material", "old planks", "--object", "Crate", "--model", str(tiny_sd), "--steps", "2"]
    code = cli.main(
        [*argv, "--width", "64", "--height", "64", "--blend", str(source), "--output", str(out), "--json"]
    )
    assert code == 0
    (result,) = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert result["kind"] == "material" and Path(result["files"]["normal"]).is_file() and "sun" not in result
    bpy.ops.wm.open_mainfile(filepath=str(out))
    assert bpy.data.objects["Crate"].active_material["promptscape"]["prompt"] == "old planks"


def test_from_image_commands_print_their_results_as_json(cli, tmp_path, capfd, fresh_file):
    from scene_helpers import sky_panorama, write_png

    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.mesh.primitive_cube_add()
    bpy.context.active_object.name = "Wall"
    source = tmp_path / "in.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(source))
    pano = write_png(tmp_path / "sky.png", sky_panorama())
    out = tmp_path / "out.blend"
    capfd.readouterr()
    assert (
        cli.main(["world-from-image", str(pano), "--blend", str(source), "--output", str(out), "--json"]) == 0
    )
    (world,) = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert world["kind"] == "world" and (world["width"], world["height"]) == (256, 128)
    assert Path(world["files"]["exr"]).is_file() and world["blend"] == str(out)
    argv = ["material-from-image", str(pano), "--object", "Wall", "--blend", str(source), "--save", "--json"]
    assert cli.main(argv) == 0
    (material,) = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert material["kind"] == "material" and Path(material["files"]["albedo"]).is_file()


def test_help_and_usage_errors(cli, capsys):
    assert cli.main(["--help"]) == 0
    assert "world" in capsys.readouterr().out
    assert cli.main(["world"]) == 2  # no prompt: argparse's usage error
    assert "prompt" in capsys.readouterr().err


def test_failures_exit_non_zero_with_the_reason(cli, tmp_path, capfd, fresh_file):
    out = tmp_path / "out.blend"
    code = cli.main(["world", "sky", "--model", str(tmp_path / "no-such-model"), "--output", str(out)])
    assert code == 1
    err = capfd.readouterr().err
    assert "error" in err and "check --model" in err and "Preferences" not in err  # the flag, headless
    assert list(tmp_path.glob("*.blend*")) == []  # no output that looks like a success, no scratch file
    assert cli.main(["material", "bricks", "--object", "Nope", "--output", str(out)]) == 1


def test_download_needs_online_access_and_says_how(cli, capfd):
    assert cli.main(["download", "stabilityai/sdxl-turbo"]) == 1  # the bpy module runs offline
    assert "blender --online-mode -c promptscape download" in capfd.readouterr().err  # the flag, headless


def test_a_blend_that_cannot_be_read_is_an_error_line(cli, tmp_path, capfd, fresh_file):
    broken = tmp_path / "broken.blend"
    broken.write_bytes(b"not a blend file")
    assert cli.main(["world", "sky", "--blend", str(broken), "--save"]) == 1
    err = capfd.readouterr().err
    assert "promptscape: error:" in err and "Traceback" not in err


def test_a_job_without_output_or_save_is_refused_before_generating(cli, addon, tiny_sd, capfd, fresh_file):
    runner = importlib.import_module(addon.__name__ + ".flow.runner")
    history = len(runner.history())
    code = cli.main(
        ["world", "sky", "--model", str(tiny_sd), "--steps", "2", "--width", "128", "--height", "64"]
    )
    assert code == 1
    assert "--output OUT.blend, or --save" in capfd.readouterr().err
    assert len(runner.history()) == history and runner.tasks() == []  # nothing was generated
    assert cli.main(["world", "sky", "--save"]) == 1
    assert "give --blend IN.blend" in capfd.readouterr().err


def test_save_writes_the_result_back_into_the_blend(cli, tiny_sd, tmp_path, fresh_file):
    bpy.ops.wm.read_homefile(use_empty=True)
    source = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(source))
    argv = ["world", "saved sky", "--model", str(tiny_sd), "--steps", "2", "--width", "128", "--height", "64"]
    assert cli.main([*argv, "--blend", str(source), "--save"]) == 0
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.wm.open_mainfile(filepath=str(source))
    assert bpy.context.scene.world["promptscape"]["prompt"] == "saved sky"


def test_every_declared_option_is_a_flag_an_operator_property_and_a_sidebar_setting(cli, addon):
    options = importlib.import_module(addon.__name__ + ".generation.options")
    subcommands = next(action for action in cli.build_parser()._actions if action.dest == "command").choices
    for command, (kind, _) in cli.JOB_COMMANDS.items():
        flags = {action.dest for action in subcommands[command]._actions}
        assert {option.name for option in options.for_kind(kind)} <= flags, command
    for kind, operator in (("world", "generate_world"), ("material", "generate_material")):
        properties = getattr(bpy.ops.promptscape, operator).get_rna_type().properties.keys()
        assert {option.name for option in options.for_kind(kind)} <= set(properties), operator
    sidebar = bpy.context.scene.promptscape.bl_rna.properties.keys()
    assert {option.name for option in options.OPTIONS if option.sidebar} <= set(sidebar)


def test_a_transformer_world_from_the_command_line_with_the_familys_own_steps(
    cli, tiny_transformers, tmp_path, capfd, fresh_file
):
    out = tmp_path / "out.blend"
    model = str(tiny_transformers["zimage"])
    argv = ["world", "a misty harbour at dawn", "--model", model, "--seed", "4", "--poles", "off"]
    code = cli.main([*argv, "--width", "128", "--height", "64", "--device", "cpu", "--output", str(out)])
    err = capfd.readouterr().err
    assert code == 0, err
    assert "step 8 of 8" in err  # no --steps: Z-Image Turbo's own 8
    bpy.ops.wm.open_mainfile(filepath=str(out))
    request = bpy.context.scene.world["promptscape"]
    assert (request["steps"], request["guidance"], request["model"]) == ("8", "0", model)


def test_what_later_stages_need_is_checked_before_generating(
    cli, addon, tiny_sd, tmp_path, capfd, fresh_file
):
    runner = importlib.import_module(addon.__name__ + ".flow.runner")
    history, out = len(runner.history()), tmp_path / "out.blend"
    argv = ["world", "a canyon", "--model", str(tiny_sd), "--steps", "2", "--width", "128", "--height", "64"]
    missing = str(tmp_path / "no-depth-model")
    assert (
        cli.main([*argv, "--mesh", "--depth-model", missing, "--output", str(tmp_path / "new" / "o.blend")])
        == 1
    )
    assert 'depth model "' in capfd.readouterr().err
    assert cli.main([*argv, "--export", str(tmp_path / "world.glb"), "--output", str(out)]) == 1
    assert "add --mesh" in capfd.readouterr().err
    assert cli.main([*argv, "--export", str(tmp_path / "world.gltf"), "--output", str(out)]) == 1
    assert ".glb file, a depth map" in capfd.readouterr().err
    assert len(runner.history()) == history and runner.tasks() == []  # nothing was generated
    assert sorted(path.name for path in tmp_path.iterdir()) == ["no-depth-model"] or not any(
        tmp_path.iterdir()
    )


def test_export_takes_its_format_from_the_name_and_refuses_a_contradiction(
    cli, addon, tmp_path, capfd, fresh_file
):
    world3d = importlib.import_module(addon.__name__ + ".flow.world3d")
    assert [world3d.export_format(name) for name in ("w.GLB", "depth.exr", "d.png", "cube2")] == [
        "glb",
        "depth",
        "depth",
        "cubemap",
    ]
    bpy.ops.wm.read_homefile(use_empty=True)
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    assert cli.main(["export", str(tmp_path / "depth.exr"), "--format", "glb", "--blend", str(blend)]) == 1
    err = capfd.readouterr().err
    assert "names a depth export, but the format is glb" in err
    assert not list(tmp_path.glob("depth.*"))


def test_models_lists_what_this_machine_has(cli, tiny_sd, capfd):
    """A model in the local Hugging Face cache is listed as downloaded, among the curated ones."""
    hub = Path(os.environ["HF_HOME"]) / "hub" / "models--promptscape-tests--tiny-sd"
    snapshot = hub / "snapshots" / ("0" * 40)
    if not snapshot.is_dir():
        shutil.copytree(tiny_sd, snapshot)
        (hub / "refs").mkdir()
        (hub / "refs" / "main").write_text("0" * 40)
    assert cli.main(["models", "--json"]) == 0
    found = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    by_name = {entry["name"]: entry for entry in found}
    tiny = by_name["promptscape-tests/tiny-sd"]
    assert (tiny["kind"], tiny["downloaded"], tiny["licence"]) == ("model", True, "see its model card")
    kinds = {entry["kind"] for entry in found}
    assert {"model", "upscaler", "depth_model", "world_preset"} <= kinds
    assert by_name["stabilityai/sdxl-turbo"]["downloaded"] is False


def test_ctrl_c_cancels_the_job_and_exits_130_in_one_line(cli, addon, tiny_sd, tmp_path, capfd, monkeypatch):
    runner = importlib.import_module(addon.__name__ + ".flow.runner")

    def ctrl_c(self, task):  # a real SIGINT to this process, once the job runs
        if getattr(task.job, "step", 0) >= 1 and not sent:
            sent.append(os.kill(os.getpid(), signal.SIGINT))

    sent = []
    terminal = importlib.import_module(addon.__name__ + ".flow.terminal")
    monkeypatch.setattr(terminal.ProgressPrinter, "__call__", ctrl_c)
    argv = ["world", "long", "--model", str(tiny_sd), "--steps", "100", "--width", "128", "--height", "64"]
    # As in `blender -b`, whose own handler only sets a flag: the command must put in one that stops it.
    previous = signal.signal(signal.SIGINT, lambda number, frame: None)
    try:
        assert cli.main([*argv, "--output", str(tmp_path / "out.blend")]) == 130
    finally:
        signal.signal(signal.SIGINT, previous)
    err = capfd.readouterr().err
    assert "Traceback" not in err and err.count("interrupted") == 1
    assert not (tmp_path / "out.blend").exists()
    for task in runner.tasks():  # cancelled: it ends well before its 100 steps
        assert task.job.wait(60) and task.job.state == "cancelled"
    runner.tick()


def test_selftest_reports_json_with_its_wall_time(cli, capfd):
    assert cli.main(["selftest", "--device", "cpu", "--json"]) == 0
    (report,) = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert report["kind"] == "selftest" and report["ok"] is True and report["seconds"] > 0


def test_help_shows_ranges_defaults_and_exit_codes(cli, capsys):
    assert cli.main(["world", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "a whole number from 0 to 2147483647" in text and "default: repair" in text
    assert "unset: the model's own, 25 for SD and SDXL, 8 Z-Image" in text  # --steps
    assert "130 interrupted" in text and "--json" in text


def test_steps_finished_between_two_samples_are_all_printed(addon, capsys):
    """A fast model denoises between two samples of the CLI: the worker's stage log still names each step."""
    from types import SimpleNamespace

    terminal = importlib.import_module(addon.__name__ + ".flow.terminal")
    printer = terminal.ProgressPrinter()
    job = SimpleNamespace(state="loading", stage="", step=0, steps=3, stage_log=[])
    printer(SimpleNamespace(job=job))
    job.stage_log += ["generating", "step 3 of 3", "repairing poles", ""]  # all between two samples
    job.state, job.stage, job.step = "done", "", 3
    printer(SimpleNamespace(job=job))
    lines = [line.removeprefix("promptscape: ") for line in capsys.readouterr().err.splitlines()]
    assert lines == [
        "loading the model",
        "step 1 of 3",
        "step 2 of 3",
        "step 3 of 3",
        "repairing poles",
        "done",
    ]
