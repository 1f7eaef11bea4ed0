"""`blender -c promptscape ...`: worlds and materials from the command line.

    blender -c promptscape world "misty pine forest at dawn" --blend in.blend --output out.blend --seed 7
    blender -c promptscape material "weathered red bricks" --object Cube --output out.blend
    blender -c promptscape world-from-image pano.jpg --output out.blend
    blender -c promptscape world "a canyon" --mesh --export canyon.glb --output out.blend
    blender -c promptscape export cube/ --format cubemap --blend scene.blend
    blender -c promptscape batch jobs.jsonl --output-dir results [--server URL] [--blend IN]
    blender -c promptscape selftest
    blender --online-mode -c promptscape download stabilityai/stable-diffusion-xl-base-1.0

Flags have the API's names (--negative_prompt or --negative-prompt, --seed, --steps, ...). Exit code 0 on
success, 1 on a failure, with the reason on stderr and a progress line per denoising step.
"""

import argparse
import sys
from pathlib import Path

import bpy

from . import api
from .flow import batch, runner, settings, start, world3d
from .flow.settings import lora_argument
from .generation import options as declared
from .generation.engine import progress
from .generation.errors import PromptscapeError

# Each job command and the kind of job its options are declared for (generation/options.py).
JOB_COMMANDS = {
    "world": ("world", "generate a world HDRI"),
    "material": ("material", "generate a seamless PBR material"),
    "world-from-image": ("world_from_image", "a world from a panorama file"),
    "material-from-image": ("material_from_image", "a material from a texture file"),
}
NOT_FLAGS = {"prompt"}  # positional
NOT_STAGES = ("", progress.DENOISING)  # the stage log's entries that say no more than the state
ENDED = ("done", "failed", "cancelled")


def add_option(parser: argparse.ArgumentParser, option: declared.Option):
    """The flag of a declared option: --snake-case, also accepted as --snake_case, same help and range."""
    names = dict.fromkeys([option.flag, "--" + option.name])  # one name when they are the same
    common = {"dest": option.name, "help": option.help}
    if option.type == "loras":
        parser.add_argument(
            "--lora", action="append", type=lora_argument, metavar="PATH[:SCALE]", **common
        )  # --lora, repeated, as artists write one LoRA at a time
    elif option.type is bool:
        parser.add_argument(*names, action=argparse.BooleanOptionalAction, **common)
    else:
        parser.add_argument(*names, type=option.type, choices=option.choices or None, **common)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blender -c promptscape", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for command, (kind, help_text) in JOB_COMMANDS.items():
        sub = commands.add_parser(command, help=help_text)
        if kind in declared.GENERATE:
            sub.add_argument("prompt")
        else:
            sub.add_argument("path", help="the image file")
        for option in declared.for_kind(kind):
            if option.name not in NOT_FLAGS:
                add_option(sub, option)
        if kind in declared.MATERIAL:
            sub.add_argument("--object", action="append", dest="objects", help="object name (repeatable)")
        if kind in declared.WORLD:  # then a world you can stand in
            sub.add_argument("--mesh", action="store_true", help="also put the world mesh (its depth) in")
            sub.add_argument("--export", metavar="PATH", help="also export: .glb, a folder (cube map), .exr")
            own = {option.name for option in declared.for_kind(kind)}
            for option in declared.for_kind("mesh"):
                if option.name not in own:  # --server: the same server for both
                    add_option(sub, option)
        sub.add_argument("--blend", help="open this .blend first")
        sub.add_argument("--output", help="save the result as this .blend")
        sub.add_argument("--save", action="store_true", help="save the result back into the --blend file")
    export = commands.add_parser("export", help="export the world of a .blend: glb, cube map or depth")
    export.add_argument("path", help="a .glb file, a folder for the cube faces, or a depth file (.exr)")
    export.add_argument("--blend", required=True, help="the .blend whose world to export")
    for option in declared.for_kind("export"):
        add_option(export, option)
    lines = commands.add_parser("batch", help="many jobs from a JSON Lines file, one .blend per line")
    lines.add_argument("file", help='one job a line: {"kind": "world", "prompt": "...", "seed": 3}')
    lines.add_argument("--output-dir", required=True, help="where the .blend files and summary.json go")
    lines.add_argument("--server", help="generate every line on this Promptscape server")
    lines.add_argument("--blend", help="start each line from this .blend (default: an empty file)")
    selftest = commands.add_parser("selftest", help="check the install with a tiny built-in model")
    selftest.add_argument("--device", choices=declared.BY_NAME["device"].choices, default="auto")
    download = commands.add_parser(
        "download", help="fetch a model into the Hugging Face cache (needs online access)"
    )
    download.add_argument("model", help="a Hugging Face model id, such as stabilityai/sdxl-turbo")
    return parser


class ProgressPrinter:
    """Prints a line on stderr per change of a job's progress, in the words every surface uses: each
    denoising step, upscaler tile, detail step or depth view ("upscaling, tile 3 of 8") and each stage.

    It samples the job; what happened between two samples comes from the job's stage log, and units
    counted between two samples are printed when seen: none is skipped.
    """

    def __init__(self):
        self.last: progress.Progress | None = None
        self.logged = 0  # entries of the job's stage_log already printed

    def __call__(self, task: runner.Task):
        job = task.job
        log = getattr(job, "stage_log", [])
        stages, self.logged = log[self.logged : len(log)], len(log)
        now = progress.of(job)
        seen = [progress.Progress("running", stage, 1.0) for stage in stages if stage not in NOT_STAGES]
        for moment in [*seen, now]:
            for line in self.lines(moment):
                print(f"promptscape: {line}", file=sys.stderr, flush=True)

    def lines(self, now: progress.Progress) -> list[str]:
        last, self.last = self.last, now
        if last is not None and now.text == last.text:
            return []
        counted, before = now.counted(), last.counted() if last is not None else None
        finished = []  # a new stage means the one counted before it ran to its end
        if before is not None and (counted is None or counted[0] != before[0]) and now.state not in ENDED:
            finished = [f"{before[0]}{unit} of {before[2]}" for unit in range(before[1] + 1, before[2] + 1)]
        if counted is None:
            return [*finished, now.text]
        words, done, total = counted
        same_stage = before is not None and before[0] == words and before[2] == total
        first = before[1] + 1 if same_stage else 1
        return [*finished, *(f"{words}{unit} of {total}" for unit in range(min(first, done), done + 1))]


def run(args: argparse.Namespace) -> int:
    if args.command == "download":
        return download_model(args.model)
    if args.command == "batch":
        return run_batch(args)
    if args.command == "selftest":
        from .generation.setup import self_test

        report = self_test.run(device=args.device)
        print(report.summary())
        return 0 if report.ok else 1
    if args.command == "export":
        bpy.ops.wm.open_mainfile(filepath=args.blend)
        scene = bpy.context.scene
        finish(world3d.export_world(scene, scene.world, args.path, format=args.format))
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
    output.parent.mkdir(parents=True, exist_ok=True)
    # Saved under a scratch name beside OUT first, so the files land in //promptscape/ next to it and the
    # images' paths are relative to it; OUT itself is written only once the result is in the scene.
    scratch = output.with_name(f".{output.stem}.promptscape-partial.blend")
    bpy.ops.wm.save_as_mainfile(filepath=str(scratch))
    try:
        generate(args)
        bpy.ops.wm.save_as_mainfile(filepath=str(output))
    finally:
        for leftover in (scratch, scratch.with_suffix(".blend1")):
            leftover.unlink(missing_ok=True)
    print(f"promptscape: saved {output}", file=sys.stderr)
    return 0


def run_batch(args: argparse.Namespace) -> int:
    """Every line of the file; exit code 1 when any line failed."""
    summary = batch.run_batch(Path(args.file), Path(args.output_dir).resolve(), args.server, args.blend)
    for entry in summary["lines"]:
        problem = f": {entry['error']}" if entry.get("error") else ""
        print(f"promptscape: line {entry['line']} {entry['state']}{problem}", file=sys.stderr)
    print(
        f"promptscape: {summary['total']} lines: {summary['done']} done, {summary['skipped']} skipped "
        f"(done before), {summary['failed']} failed; summary in {Path(args.output_dir) / 'summary.json'}"
    )
    return 1 if summary["failed"] else 0


def download_model(repo_id: str) -> int:
    """Generating never downloads: models are fetched here (or in the preferences), with progress."""
    from .generation.setup import model_catalog

    download = model_catalog.Download(repo_id, bpy.app.online_access).start()
    shown = -1
    while not download.wait(1.0):
        if int(download.fraction * 100) // 10 != shown:
            shown = int(download.fraction * 100) // 10
            print(f"promptscape: downloading {repo_id}: {download.fraction:.0%}", file=sys.stderr, flush=True)
    if download.state != "done":
        raise PromptscapeError(download.message)
    print(f"promptscape: {download.message} into {download.path}", file=sys.stderr)
    return 0


def generate(args: argparse.Namespace) -> int:
    """Start the command's task in the open file, wait for it and apply it; raises on failure."""
    skip = {"command", "blend", "output", "save", "prompt", "path", "objects", "mesh", "export"}
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
    elif args.command == "world-from-image":
        task = start.world_from_image(scene, args.path, **options)
    else:
        task = start.material_from_image(scene, args.path, objects, **options)
    finish(task)
    if getattr(args, "mesh", False):
        finish(world3d.start_depth(scene, scene.world, mesh=True, **mesh_options))
    if getattr(args, "export", None):
        finish(world3d.export_world(scene, scene.world, args.export))
    return 0


def check_later_stages(args: argparse.Namespace, scene, mesh_options: dict):
    """What --mesh and --export will need, checked before the first step: a missing depth model or an
    unwritable export fails in a second, not after minutes of generating."""
    if getattr(args, "mesh", False):
        world3d.check_depth(scene, "mesh", mesh_options)
    if getattr(args, "export", None):
        target = Path(args.export).resolve()
        made = world3d.export_format(target)
        if made in ("glb", "depth") and not args.mesh:
            what = "the world mesh" if made == "glb" else "the depth map the mesh is made from"
            raise PromptscapeError(f"--export {Path(args.export).name} writes {what}: add --mesh")
        if problem := settings.cannot_write(target if made == "cubemap" else target.parent):
            raise PromptscapeError(f"--export {args.export}: cannot write there ({problem})")


def finish(task) -> object:
    """Wait for a task with a progress line per step, apply it and say so; raises on failure."""
    printer = ProgressPrinter()
    runner.wait(task, progress=printer)
    printer(task)
    result = api.Generation(task).result()
    print(f"promptscape: {task.kind} '{getattr(result, 'name', result)}' done", file=sys.stderr)
    return result


def main(argv: list[str]) -> int:
    """Run a command line (without the program name); the exit code is 0 on success, 1 on failure."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help or a usage error: argparse already printed why
        return int(exit_.code or 0)
    try:
        return run(args)
    except (PromptscapeError, OSError) as error:
        print(f"promptscape: error: {error}", file=sys.stderr)
        return 1
    except RuntimeError as error:  # Blender's own: a .blend it cannot open or save
        print(f"promptscape: error: {str(error).strip()}", file=sys.stderr)
        return 1


_handle = None


def register():
    global _handle
    _handle = bpy.utils.register_cli_command("promptscape", main)


def unregister():
    global _handle
    if _handle is not None:
        bpy.utils.unregister_cli_command(_handle)
        _handle = None
