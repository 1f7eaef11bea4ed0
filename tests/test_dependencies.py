"""Installing packages for Blender (end to end with pip and small wheels built here), models, self-test."""

import importlib
import os
import shutil
import sys
import threading
import zipfile
from pathlib import Path

import bpy
import pytest
from scene_helpers import wait_until


@pytest.fixture(scope="module")
def modules(addon):
    name = addon.__name__
    return (
        importlib.import_module(name + ".flow.installs"),
        importlib.import_module(name + ".generation.setup.installer"),
        importlib.import_module(name + ".generation.setup.model_catalog"),
    )


@pytest.fixture
def prefs(addon):
    prefs = bpy.context.preferences.addons[addon.__name__].preferences
    yield prefs
    prefs.wheel_folder = prefs.site_packages = ""


def build_wheel(folder: Path, name: str, version: str, value: int) -> Path:
    """A pure-Python wheel made by hand (a zip with dist-info), so pip can install it offline."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VALUE = {value}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{dist}/RECORD"] = "".join(f"{path},,\n" for path in files) + f"{dist}/RECORD,,\n"
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, text in files.items():
            wheel.writestr(member, text)
    return path


@pytest.fixture
def wheels(tmp_path):
    build_wheel(tmp_path, "psdemo", "1.0", 42)
    return tmp_path


def test_install_from_a_wheel_folder_lands_on_sys_path(modules, prefs, wheels):
    ops, installer, _ = modules
    folder = ops.site_packages_folder()
    installer.remove(folder)
    prefs.wheel_folder = str(wheels)
    try:
        assert bpy.ops.promptscape.install_dependencies(packages="psdemo==1.0") == {"FINISHED"}
        install = ops.current_install()
        assert install.state == "done" and install.collected == 1  # pip's "Processing ..." line was read
        found = [line for line in install.lines if line.startswith(("Collecting", "Processing"))]
        assert any("psdemo" in line for line in found)
        assert any("Successfully installed psdemo" in line for line in install.lines)
        assert str(folder) in sys.path and installer.is_complete(folder)
        assert importlib.import_module("psdemo").VALUE == 42
        assert not list(folder.parent.glob("site-packages.staging*"))
        assert bpy.ops.promptscape.uninstall_dependencies() == {"FINISHED"}
        assert str(folder) not in sys.path and not folder.exists()
    finally:
        sys.modules.pop("psdemo", None)
        installer.remove(folder)


def test_failed_install_reports_pips_words_and_changes_nothing(modules, prefs, wheels):
    ops, installer, _ = modules
    folder = ops.site_packages_folder()
    path_before = list(sys.path)
    prefs.wheel_folder = str(wheels)
    # An operator's error report reaches a script as a RuntimeError with the same words.
    with pytest.raises(RuntimeError, match="No matching distribution found for psmissing"):
        bpy.ops.promptscape.install_dependencies(packages="psmissing==9.9")
    install = ops.current_install()
    assert install.state == "failed"
    assert "pip failed" in install.message and "psmissing" in install.message  # pip's own last lines
    assert sys.path == path_before
    assert not installer.is_complete(folder)
    assert not list(folder.parent.glob("site-packages.staging*"))


def test_a_failed_repair_keeps_the_working_install(modules, prefs, wheels):
    ops, installer, _ = modules
    folder = ops.site_packages_folder()
    prefs.wheel_folder = str(wheels)
    try:
        assert bpy.ops.promptscape.install_dependencies(packages="psdemo==1.0") == {"FINISHED"}
        with pytest.raises(RuntimeError, match="nothing was changed"):
            bpy.ops.promptscape.install_dependencies(packages="psmissing==9.9")
        assert installer.is_complete(folder) and (folder / "psdemo" / "__init__.py").is_file()
    finally:
        installer.remove(folder)


def test_without_online_access_nothing_is_started(modules, prefs, monkeypatch):
    ops, installer, _ = modules
    assert not bpy.app.online_access  # the bpy module runs offline, as a user who has not allowed it
    started = []
    monkeypatch.setattr(installer.subprocess, "Popen", lambda *a, **k: started.append(a))
    before = ops.current_install()
    with pytest.raises(RuntimeError, match="Allow Online Access"):
        bpy.ops.promptscape.install_dependencies()
    assert started == [] and ops.current_install() is before


def test_model_download_refuses_without_online_access(modules, prefs):
    *_, catalog = modules
    with pytest.raises(catalog.PromptscapeError, match="Allow Online Access"):
        catalog.Download("stabilityai/sdxl-turbo", allow_network=bpy.app.online_access)
    with pytest.raises(RuntimeError, match="Allow Online Access"):
        bpy.ops.promptscape.download_model()


def test_an_environment_of_another_python_is_named(modules, tmp_path):
    _, installer, _ = modules
    (tmp_path / "torch").mkdir()
    (tmp_path / "diffusers").mkdir()
    (tmp_path / "torch" / "_C.cpython-39-x86_64-linux-gnu.so").write_bytes(b"")
    problems = installer.check_site_packages(tmp_path)
    assert len(problems) == 1 and "another Python" in problems[0]
    assert installer.check_site_packages(tmp_path / "nowhere") == [f"{tmp_path / 'nowhere'} is not a folder"]


def test_pip_runs_with_blenders_python_and_holds_numpy(modules, tmp_path):
    _, installer, _ = modules
    command = installer.pip_command(tmp_path / "staging", installer.requirements(), "cu128")
    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    torch = [argument for argument in command if argument.startswith("torch==")]
    assert torch == [installer.TORCH_FOR_PYTHON[sys.version_info[:2]]] and "--target" in command
    assert not any(argument.startswith("numpy") for argument in command)  # numpy is held, never installed
    constraints = Path(command[command.index("--constraint") + 1]).read_text()
    import numpy  # Blender's own: 1.x in 4.2 and 5.0, 2.x in 5.2

    assert constraints == f"numpy=={numpy.__version__}\n"  # held as it is, never a second numpy


def test_cached_models_are_listed_for_offline_use(modules, tiny_sd, monkeypatch):
    *_, catalog = modules
    # The session's Hugging Face cache (HF_HOME is a temp folder set before anything imported the hub).
    repo = Path(os.environ["HF_HOME"]) / "hub" / "models--acme--tiny-draw"
    if repo.exists():
        shutil.rmtree(repo)
    assert "acme/tiny-draw" not in catalog.cached_models(max_age=0)
    shutil.copytree(tiny_sd, repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    # Drawing never scans in its own thread: the last result now, the new one from a background scan.
    real_scan, scanned_in = catalog._scan_cache, []
    monkeypatch.setattr(
        catalog, "_scan_cache", lambda: (scanned_in.append(threading.current_thread()), real_scan())[1]
    )
    catalog.cached_models(max_age=0, wait=False)
    wait_until(lambda: "acme/tiny-draw" in catalog.cached_models(max_age=60, wait=False), 60, "the scan")
    assert scanned_in and threading.current_thread() not in scanned_in
    assert "acme/tiny-draw" in catalog.cached_models(max_age=0)


def test_self_test_runs_in_the_worker_and_reports_in_the_preferences(addon, modules, monkeypatch):
    installs = modules[0]
    self_test = importlib.import_module(addon.__name__ + ".generation.setup.self_test")
    threads, real_run = [], self_test.run

    def run(**kwargs):
        threads.append(threading.current_thread().name)
        return real_run(**kwargs)

    monkeypatch.setattr(self_test, "run", run)
    assert bpy.ops.promptscape.self_test() == {"FINISHED"}
    assert threads == ["promptscape-worker"]  # never Blender's main thread, which it froze for seconds
    lines = installs.self_test_lines()
    assert lines[0] == "Promptscape self-test: OK"
    assert any("wrap" in line for line in lines) and any("cpu" in line.lower() for line in lines)


def test_preferences_page_draws_status_install_and_models(prefs):
    from test_extension import RecordingLayout

    texts = []
    type(prefs).draw(type("P", (), {"layout": RecordingLayout(texts), **_props(prefs)})(), bpy.context)
    assert any(text.startswith("torch: ") for text in texts)
    assert any("Online access is off" in text for text in texts)
    # VRAM from the planner: whole at native size (measured at real size, so no "~"), and the lowest plan.
    assert any(text.startswith("SDXL 1.0: 14.3 GB (0.5 lowest)") for text in texts)
    assert any(text.startswith("Stable Diffusion 1.5: ~") for text in texts)


def _props(prefs) -> dict:
    """The preferences' values and draw helpers, for calling draw() on a recording stand-in."""
    names = (
        "model", "wheel_folder", "site_packages", "allow_pickle", "server", "server_token", "server_timeout",
        "allow_http",
        "draw_install", "draw_models", "draw_world_models", "draw_server",
    )  # fmt: skip
    return {name: getattr(prefs, name) for name in (*names, "bl_rna")}


def test_a_torch_shadowing_ours_is_named(modules, tmp_path):
    _, installer, _ = modules
    ours = tmp_path / "site-packages"
    (ours / "torch").mkdir(parents=True)
    (ours / installer.COMPLETE_MARKER).write_text("torch\n")
    # The test environment's own torch comes first on sys.path, as a user-site torch would.
    problems = installer.clashes(ours)
    assert len(problems) == 1 and problems[0].startswith("torch is loaded from ")
    assert "not from Promptscape's folder" in problems[0]


def test_the_torch_build_follows_blenders_python(modules, errors):
    _, installer, _ = modules
    # Blender 4.2 and 5.0 run Python 3.11, 5.2 runs 3.13: both have a torch built for them.
    for python in ((3, 11), (3, 13), sys.version_info[:2]):
        torch = installer.requirements(python)[0]
        assert torch.startswith("torch==") and torch == installer.TORCH_FOR_PYTHON[python]
    with pytest.raises(
        errors.PromptscapeError, match=r"Python 3\.15, for which Promptscape knows no tested torch"
    ):
        installer.requirements((3, 15))
