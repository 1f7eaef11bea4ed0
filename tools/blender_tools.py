"""Blender's extension tool, building and installing the zip, running code in a fresh Blender.

Shared by the tests, the demo (the main job) and the benchmarks. As a script it is `make zip` and
`make repo`:

    python tools/blender_tools.py zip dist     # dist/promptscape-<version>.zip, with Blender's builder
    python tools/blender_tools.py repo dist    # the zip plus index.json: a remote extension repository
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE = "bl_ext.user_default.promptscape"


def blender_ext_tool() -> Path:
    """Blender's own extension validator and builder, shipped inside the bpy wheel."""
    bpy_dir = Path(importlib.util.find_spec("bpy").submodule_search_locations[0])
    (tool,) = bpy_dir.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py")
    return tool


def run_blender_ext(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(blender_ext_tool()), *args], capture_output=True, text=True, timeout=120
    )


def source_files(source: Path) -> list[str] | None:
    """The files git tracks in `source`, and new ones it does not ignore; None outside a git checkout.

    What `make demo`, a test or an editor leaves behind (demo-output/, renders, caches) is ignored by git,
    so the zip never picks it up, whatever its name.
    """
    try:
        done = subprocess.run(
            ["git", "-C", str(source), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            timeout=60,
        )
    except OSError:  # no git on this machine
        return None
    if done.returncode != 0:
        return None
    names = [name for name in done.stdout.decode().split("\0") if name]
    return [name for name in names if (source / name).is_file()]  # a deleted tracked file is not shipped


def build_zip(out_dir: Path, source: Path = ROOT) -> Path:
    """The zip of `source` by Blender's builder: from git's files in a checkout, else the whole folder."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    names = source_files(source)
    with tempfile.TemporaryDirectory(prefix="promptscape-zip-") as staging:
        if names is not None:
            for name in names:
                target = Path(staging, name)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source / name, target)
            source = Path(staging)
        done = run_blender_ext("build", "--source-dir", str(source), "--output-dir", str(out_dir))
    if done.returncode != 0:
        raise RuntimeError(f"Blender's builder failed:\n{done.stdout}{done.stderr}")
    (zip_path,) = Path(out_dir).glob("promptscape-*.zip")
    return zip_path


def build_repo(out_dir: Path, source: Path = ROOT) -> Path:
    """A static extension repository in `out_dir`: the zip and Blender's own index.json (and index.html),
    ready for any static web server; Blender 4.2+ follows it from Preferences > Get Extensions."""
    zip_path = build_zip(out_dir, source)
    done = run_blender_ext("server-generate", "--repo-dir", str(out_dir), "--html")
    if done.returncode != 0:
        raise RuntimeError(f"Blender's server-generate failed:\n{done.stdout}{done.stderr}")
    return zip_path.parent / "index.json"


def install_extension(zip_path: Path):
    """Install and enable the zip the way a user does; return the extension's module."""
    import bpy

    result = bpy.ops.extensions.package_install_files(
        filepath=str(zip_path), repo="user_default", enable_on_install=True
    )
    if result != {"FINISHED"}:
        raise RuntimeError(f"Installing {zip_path} failed: {result}")
    return importlib.import_module(MODULE)


def run_in_fresh_blender(code: str, timeout: float = 180, block_imports: tuple[str, ...] = ()) -> str:
    """Run `code` in a new Python with bpy and its own empty Blender user folder; return its stdout.

    `block_imports` names packages made unimportable there, as on a Blender without them.
    The code fails the test by raising; its stdout is returned for further checks.
    """
    prelude = f"import sys\nfor _name in {block_imports!r}:\n    sys.modules[_name] = None\n"
    path = os.pathsep.join([str(ROOT / "tools"), str(ROOT / "tests")])
    with tempfile.TemporaryDirectory(prefix="promptscape-fresh-") as user_dir:
        env = dict(os.environ, BLENDER_USER_RESOURCES=user_dir, HF_HUB_OFFLINE="1", PYTHONPATH=path)
        done = subprocess.run(
            [sys.executable, "-c", prelude + textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=str(ROOT / "tests"),
        )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-4000:]}"
    return done.stdout


if __name__ == "__main__":
    command, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("promptscape-*.zip"):  # one version per repository: the one just built
        old.unlink()
    print(build_zip(out) if command == "zip" else build_repo(out))
