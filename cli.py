"""`blender -c promptscape ...`: worlds and materials from the command line.

    blender -c promptscape world "misty pine forest at dawn" --blend in.blend --output out.blend --seed 7
    blender -c promptscape material "weathered red bricks" --object Cube --output out.blend
    blender -c promptscape world-from-image pano.jpg --output out.blend
    blender -c promptscape inpaint-world WORLD "a castle" --yaw 30 --angle 15 --blend in.blend --save
    blender -c promptscape world "a canyon" --mesh --export canyon.glb --output out.blend
    blender -c promptscape prop "a wooden barrel" --size 1.2 --output out.blend --export barrel.glb
    blender -c promptscape export cube/ --blend scene.blend
    blender -c promptscape batch jobs.jsonl --output-dir results [--server URL] [--blend IN]
    blender -c promptscape models --json
    blender -c promptscape selftest
    blender --online-mode -c promptscape download stabilityai/stable-diffusion-xl-base-1.0

Flags have the API's names (--negative_prompt or --negative-prompt, --seed, --steps, ...). Progress and
messages go to stderr; with --json every command prints one JSON object per result on stdout and nothing
else there.
"""

import argparse
import contextlib
import math
import sys
from pathlib import Path

import bpy

from . import api
from .flow import batch, edits, project, prop, records, runner, settings, start, terminal, wording, world3d
from .flow.settings import lora_argument
from .generation import options as declared
from .generation.errors import PromptscapeError

# Each job command and the kind of job its options are declared for (generation/options.py).
JOB_COMMANDS = {
    "world": ("world", "generate a world HDRI"),
    "material": ("material", "generate a seamless PBR material"),
    "world-from-image": ("world_from_image", "a world from a panorama file"),
    "material-from-image": ("material_from_image", "a material from a texture file"),
    "prop": ("prop", "a 3D object from a prompt (TripoSR), standing at the 3D cursor or --location"),
    "remix-world": ("remix_world", "redraw a world (a panorama file, or WORLD: the --blend's) at a strength"),
    "remix-material": ("remix_material", "redraw a texture file (or a material of --blend) at a strength"),
    "inpaint-world": ("inpaint_world", "redraw one region of a world (a panorama file, or WORLD)"),
    "world-from-photo": ("world_from_photo", "grow a photo into a 360° world"),
    "project": ("project", "a texture drawn from the camera's view, baked onto the objects' UV maps"),
}
SCENE_WORLD = "WORLD"  # an edit's path that means the world of the open .blend
NOT_FLAGS = {"prompt"}  # positional


EXIT_CODES = """exit codes:
  0    done
  1    a job failed or was refused (the reason is on stderr)
  2    usage: a flag or value the command line does not take
  130  interrupted (Ctrl-C): the job is cancelled; files already written stay on disk"""
JSON_HELP = "print one JSON object per result on stdout (files, seed, timings, ...); all else on stderr"


def help_for(option: declared.Option, kind: str) -> str:
    """An option's help with its range and its default, as --help shows them."""
    parts = []
    if option.type in (int, float) and not option.choices and option.high is not None:
        parts.append(declared.range_text(option))
    if "default:" not in option.help:  # else the option says where its default comes from
        parts += [f"default: {text}"] if (text := default_text(option, kind)) else []
    text = f"{option.help} ({'; '.join(parts)})" if parts else option.help
    return text.replace("%", "%%")  # argparse formats help with %


def default_text(option: declared.Option, kind: str) -> str:
    default = option.default_for(kind)
    if option.name in settings.FROM_PREFERENCES:
        return "from the preferences"
    if option.type is bool:
        return "on" if default else "off"
    if isinstance(default, int | float):
        return declared.number_text(default)
    return str(default or "")


def add_option(parser: argparse.ArgumentParser, option: declared.Option, kind: str):
    """The flag of a declared option: --snake-case, also accepted as --snake_case, same help and range."""
    names = dict.fromkeys([option.flag, "--" + option.name])  # one name when they are the same
    common = {"dest": option.name, "help": help_for(option, kind)}
    if option.type == "location":
        parser.add_argument(*names, nargs=3, type=float, metavar=("X", "Y", "Z"), **common)
    elif option.type == "loras":
        parser.add_argument(
            "--lora", action="append", type=lora_argument, metavar="PATH[:SCALE]", **common
        )  # --lora, repeated, as artists write one LoRA at a time
    elif option.type is bool:
        parser.add_argument(*names, action=argparse.BooleanOptionalAction, **common)
    else:
        parser.add_argument(*names, type=option.type, choices=option.choices or None, **common)


def build_parser() -> argparse.ArgumentParser:
    shown = {"formatter_class": argparse.RawDescriptionHelpFormatter, "epilog": EXIT_CODES}
    parser = argparse.ArgumentParser(
        prog="blender -c promptscape", description=__doc__.split("\n\n")[0], **shown
    )
    every = argparse.ArgumentParser(add_help=False)
    every.add_argument("--json", action="store_true", help=JSON_HELP)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text, parents=[every], **shown)

    for name, (kind, help_text) in JOB_COMMANDS.items():
        sub = command(name, help_text)
        if kind in declared.GENERATE | declared.PROP | declared.PROJECT:
            sub.add_argument("prompt")
        else:
            sub.add_argument("path", help="the image file")
        if kind in declared.EDITS:  # an edit takes what to start from, then the prompt
            sub.add_argument("prompt")
        for option in declared.for_kind(kind):
            if option.name not in NOT_FLAGS:
                add_option(sub, option, kind)
        if kind in declared.MATERIAL | declared.PROJECT or kind == "remix_material":
            sub.add_argument("--object", action="append", dest="objects", help="object name (repeatable)")
        if kind in declared.WORLD:  # then a world you can stand in
            sub.add_argument("--mesh", action="store_true", help="also put the world mesh (its depth) in")
            sub.add_argument("--export", metavar="PATH", help="also export: .glb, a folder (cube map), .exr")
            own = {option.name for option in declared.for_kind(kind)}
            for option in declared.for_kind("mesh"):
                if option.name not in own:  # --server: the same server for both
                    add_option(sub, option, "mesh")
        if kind in declared.PROP:
            sub.add_argument("--export", metavar="PATH", help="also export the prop as this .glb file")
        sub.add_argument("--blend", help="open this .blend first")
        sub.add_argument("--output", help="save the result as this .blend")
        sub.add_argument("--save", action="store_true", help="save the result back into the --blend file")
    export = command("export", "export the world of a .blend: glb, cube map or depth")
    export.add_argument("path", help="a .glb file, a folder for the cube faces, or a depth map (.exr, .png)")
    export.add_argument("--blend", required=True, help="the .blend whose world to export")
    for option in declared.for_kind("export"):
        add_option(export, option, "export")
    lines = command("batch", "many jobs from a JSON Lines file, one .blend per line")
    lines.add_argument("file", help='one job a line: {"kind": "world", "prompt": "...", "seed": 3}')
    lines.add_argument("--output-dir", required=True, help="where the .blend files and summary.json go")
    lines.add_argument("--server", help="generate every line on this Promptscape server")
    lines.add_argument("--blend", help="start each line from this .blend (default: an empty file)")
    command("models", "the models, LoRAs, upscalers, depth models and world presets this machine knows")
    selftest = command("selftest", "check the install with a tiny built-in model")
    selftest.add_argument("--device", choices=declared.BY_NAME["device"].choices, default="auto")
    download = command("download", "fetch a model into the Hugging Face cache (needs --online-mode)")
    download.add_argument("model", help="a Hugging Face model id, such as stabilityai/sdxl-turbo")
    return parser


def run(args: argparse.Namespace, results: terminal.Results) -> int:
    if args.command == "download":
        return download_model(args.model, results)
    if args.command == "batch":
        return run_batch(args, results)
    if args.command == "models":
        return list_models(results)
    if args.command == "selftest":
        return run_self_test(args.device, results)
    if args.command == "export":
        bpy.ops.wm.open_mainfile(filepath=args.blend)
        scene = bpy.context.scene
        task = world3d.export_world(scene, scene.world, args.path, format=args.format)
        finish(task)
        results.emit({**records.record(task), "blend": str(Path(args.blend).resolve())})
        return 0
    if args.save and not args.blend:
        raise PromptscapeError("--save writes the result back into the --blend file: give --blend IN.blend")
    if not args.output and not args.save:
        # Nothing would keep the result: refuse before generating, not after.
        raise PromptscapeError(
            "Say where the result goes: --output OUT.blend, or --save to write it back into --blend"
        )
    if args.blend:
        bpy.ops.wm.open_mainfile(filepath=args.blend)
    output = Path(args.output or args.blend).resolve()
    new_folders = [folder for folder in (output.parent, *output.parent.parents) if not folder.exists()]
    output.parent.mkdir(parents=True, exist_ok=True)
    # Saved under a scratch name beside OUT first, so the files land in //promptscape/ next to it and the
    # images' paths are relative to it; OUT itself is written only once the result is in the scene.
    scratch = output.with_name(f".{output.stem}.promptscape-partial.blend")
    bpy.ops.wm.save_as_mainfile(filepath=str(scratch))
    try:
        made = generate(args)
        bpy.ops.wm.save_as_mainfile(filepath=str(output))
    finally:
        for leftover in (scratch, scratch.with_suffix(".blend1")):
            leftover.unlink(missing_ok=True)
        for folder in new_folders:  # a refused or failed job leaves no empty folders behind
            with contextlib.suppress(OSError):  # not empty: it holds what the job wrote
                folder.rmdir()
    print(f"promptscape: saved {output}", file=sys.stderr)
    for task in made:
        results.emit({**records.record(task), "blend": str(output)})
    return 0


def run_self_test(device: str, results: terminal.Results) -> int:
    from .generation.setup import self_test

    report = self_test.run(device=device)
    print(report.summary())
    found = {"kind": "selftest", **vars(report)}
    found["wrap_error"] = None if math.isnan(report.wrap_error) else report.wrap_error
    results.emit(found)
    return 0 if report.ok else 1


def list_models(results: terminal.Results) -> int:
    """What this machine knows, from the local cache and the upscaler folder; never the network."""
    from .generation.setup import inventory

    for model in inventory.known(settings.upscaler_folder()):
        results.emit(model)
        mark = "downloaded" if model["downloaded"] else "not downloaded"
        print(f"{model['kind']:<13} {model['name']:<50} {mark:<15} {model['licence']}")
    return 0


def run_batch(args: argparse.Namespace, results: terminal.Results) -> int:
    """Every line of the file; exit code 1 when any line failed."""
    output_dir = Path(args.output_dir).resolve()
    summary = batch.run_batch(Path(args.file), output_dir, args.server, args.blend, on_line=results.emit)
    for entry in summary["lines"]:
        problem = f": {entry['error']}" if entry.get("error") else ""
        print(f"promptscape: line {entry['line']} {entry['state']}{problem}", file=sys.stderr)
    print(
        f"promptscape: {summary['total']} lines: {summary['done']} done, {summary['skipped']} skipped "
        f"(done before), {summary['failed']} failed; summary in {Path(args.output_dir) / 'summary.json'}"
    )
    return 1 if summary["failed"] else 0


def download_model(repo_id: str, results: terminal.Results) -> int:
    """Generating never downloads: models are fetched here (or in the preferences), with progress."""
    from .generation.setup import model_catalog

    if not bpy.app.online_access:
        raise PromptscapeError(
            f"Downloading needs online access: run blender --online-mode -c promptscape download {repo_id}"
        )
    download = model_catalog.Download(repo_id, bpy.app.online_access).start()
    shown = -1
    try:
        while not download.wait(1.0):
            if int(download.fraction * 100) // 10 != shown:
                shown = int(download.fraction * 100) // 10
                print(
                    f"promptscape: downloading {repo_id}: {download.fraction:.0%}",
                    file=sys.stderr,
                    flush=True,
                )
    except KeyboardInterrupt:
        download.cancel()
        raise
    if download.state != "done":
        raise PromptscapeError(download.message)
    print(f"promptscape: {download.message} into {download.path}", file=sys.stderr)
    results.emit({"kind": "download", "name": repo_id, "path": str(download.path)})
    return 0


def generate(args: argparse.Namespace) -> list[runner.Task]:
    """Start the command's tasks in the open file, wait for each and apply it; raises on failure."""
    skip = {"command", "blend", "output", "save", "prompt", "path", "objects", "mesh", "export", "json"}
    stand_in = {option.name for option in declared.for_kind("mesh")}
    own = {option.name for option in declared.for_kind(JOB_COMMANDS[args.command][0])}
    given = {key: value for key, value in vars(args).items() if key not in skip and value is not None}
    options = {key: value for key, value in given.items() if key in own or key not in stand_in}
    mesh_options = {key: value for key, value in given.items() if key in stand_in}
    scene = bpy.context.scene
    objects = getattr(args, "objects", None)
    check_later_stages(args, scene, mesh_options)
    if args.command == "world":
        task = start.start_world(scene, prompt=args.prompt, **options)
    elif args.command == "material":
        task = start.start_material(scene, objects, prompt=args.prompt, **options)
    elif args.command == "prop":
        task = prop.start_prop(scene, prompt=args.prompt, **options)
    elif args.command == "project":
        task = project.start_project(scene, objects, prompt=args.prompt, **options)
    elif args.command == "world-from-image":
        task = start.world_from_image(scene, args.path, **options)
    elif args.command in EDIT_COMMANDS:
        task = start_edit(args, scene, objects, options)
    else:
        task = start.material_from_image(scene, args.path, objects, **options)
    made = [task]
    finish(task)
    if getattr(args, "mesh", False):
        made.append(world3d.start_depth(scene, scene.world, mesh=True, **mesh_options))
        finish(made[-1])
    if getattr(args, "export", None) and args.command == "prop":
        made.append(prop.export_prop(task.result, args.export))
        finish(made[-1])
    elif getattr(args, "export", None):
        made.append(world3d.export_world(scene, scene.world, args.export))
        finish(made[-1])
    return made


EDIT_COMMANDS = ("remix-world", "remix-material", "inpaint-world", "world-from-photo")


def start_edit(args: argparse.Namespace, scene, objects, options: dict) -> runner.Task:
    """An edit of the file at `path`, or of the open .blend's world (WORLD) or material (its name)."""
    if args.command == "world-from-photo":
        return edits.start_world_from_photo(scene, args.path, args.prompt, **options)
    if args.command == "remix-material":
        source = bpy.data.materials.get(args.path) or args.path
        return edits.start_remix_material(scene, source, args.prompt, objects, **options)
    source = scene.world if args.path == SCENE_WORLD else args.path
    if source is None:
        raise PromptscapeError(f"{args.path}: the .blend has no world; give a panorama file instead")
    start_world_edit = edits.start_remix_world if args.command == "remix-world" else edits.start_inpaint_world
    return start_world_edit(scene, source, args.prompt, **options)


def check_later_stages(args: argparse.Namespace, scene, mesh_options: dict):
    """What --mesh and --export will need, checked before the first step: a missing depth model or an
    unwritable export fails in a second, not after minutes of generating."""
    if getattr(args, "mesh", False):
        world3d.check_depth(scene, "mesh", mesh_options)
    if getattr(args, "export", None) and args.command == "prop":
        target = Path(args.export).resolve()
        if target.suffix.lower() != ".glb":
            raise PromptscapeError(f"--export {Path(args.export).name}: a prop exports to a .glb file")
        if problem := settings.cannot_write(target.parent):
            raise PromptscapeError(f"--export {args.export}: cannot write there ({problem})")
    elif getattr(args, "export", None):
        target = Path(args.export).resolve()
        made = world3d.export_format(target)
        if made in ("glb", "depth") and not args.mesh:
            what = "the world mesh" if made == "glb" else "the depth map the mesh is made from"
            raise PromptscapeError(f"--export {Path(args.export).name} writes {what}: add --mesh")
        if problem := settings.cannot_write(target if made == "cubemap" else target.parent):
            raise PromptscapeError(f"--export {args.export}: cannot write there ({problem})")


def finish(task) -> object:
    """Wait for a task with a progress line per step, apply it and say so; raises on failure."""
    printer = terminal.ProgressPrinter()
    runner.wait(task, progress=printer)
    printer(task)
    result = api.Generation(task).result()
    made = result if isinstance(result, list) else [result]
    names = ", ".join(str(getattr(one, "name", one)) for one in made)
    print(f"promptscape: {task.kind} '{names}' done", file=sys.stderr)
    return result


def main(argv: list[str]) -> int:
    """Run a command line (without the program name); the exit code: 0 done, 1 failed, 2 usage, 130
    interrupted."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help or a usage error: argparse already printed why
        return int(exit_.code or 0)
    with terminal.Results(args.json) as results, terminal.interruptible():
        try:
            return run(args, results)
        except (PromptscapeError, OSError) as error:
            print(f"promptscape: error: {wording.headless(str(error))}", file=sys.stderr)
            return 1
        except RuntimeError as error:  # Blender's own: a .blend it cannot open or save
            print(f"promptscape: error: {str(error).strip()}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            for task in runner.tasks():
                task.cancel()
            print(
                "promptscape: interrupted: the job was cancelled; files written stay on disk", file=sys.stderr
            )
            return 130


_handle = None


def register():
    global _handle
    _handle = bpy.utils.register_cli_command("promptscape", main)


def unregister():
    global _handle
    if _handle is not None:
        bpy.utils.unregister_cli_command(_handle)
        _handle = None
