"""Background work that is not a generation: the dependency install, a model download and the self-test.

Their state lives here, on the Blender side, so that both the preferences (which draw it) and the
operators (which start and cancel it) import this module and neither imports the other. Each kind has
one poll timer, registered only when none is: a timer redraws the preferences while its work runs.
The preferences are passed in, never imported, so the import graph has no circle.
"""

from pathlib import Path

import bpy

from ..generation.errors import PromptscapeError
from ..generation.setup import installer, model_catalog
from . import runner

_install: installer.Install | None = None  # the running or last pip run
_download: model_catalog.Download | None = None  # the running or last model download
_self_test = None  # the worker's Job running the self-test; its outputs are the SelfTestReport
ADDON_PACKAGE = __package__.rpartition(".")[0]  # the extension's module, whose user folder holds ours


def current_install() -> installer.Install | None:
    return _install


def current_download() -> model_catalog.Download | None:
    return _download


def current_self_test():
    return _self_test


def site_packages_folder(create: bool = True) -> Path:
    """Our packages folder, in the extension's user folder so updates of the extension keep it."""
    return Path(bpy.utils.extension_path_user(ADDON_PACKAGE, path="site-packages", create=create))


def activate_installed(prefs):
    """Put our finished install and the user's chosen environment on sys.path (after Blender's own)."""
    installer.activate(site_packages_folder())
    path = Path(bpy.path.abspath(prefs.site_packages)) if prefs.site_packages else None
    if path is not None and not installer.check_site_packages(path):
        installer.add_to_path(path)


def deactivate_installed(prefs):
    """Take our folders off sys.path when the extension is disabled (imported modules stay loaded)."""
    installer.deactivate(site_packages_folder())
    if prefs.site_packages:
        installer.deactivate(Path(bpy.path.abspath(prefs.site_packages)))


def start_install(prefs, packages: tuple[str, ...] = ()) -> installer.Install:
    """Start pip in the background; without online access only a local wheel folder is allowed."""
    global _install
    if _install is not None and not _install.done:
        raise PromptscapeError("An install is already running; wait for it or cancel it")
    wheels = Path(bpy.path.abspath(prefs.wheel_folder)) if prefs.wheel_folder else None
    if wheels is None and not bpy.app.online_access:
        raise PromptscapeError(
            "Installing downloads about 3 GB, and Blender's online access is off: allow it in Preferences > "
            "System > Network > Allow Online Access, or set a Wheel Folder, or Use Existing Environment"
        )
    if wheels is not None and not wheels.is_dir():
        raise PromptscapeError(f"The wheel folder {wheels} does not exist: pick a folder of .whl files")
    _install = installer.Install(
        site_packages_folder(), packages, prefs.torch_build, find_links=wheels
    ).start()
    _watch(_poll_install)
    return _install


def finish_install() -> str:
    """Main thread, once pip has ended: activate a good install; the words to show either way."""
    if _install.state == "done":
        installer.activate(site_packages_folder())
    return _install.message


def start_download(repo_id: str, lora: bool = False) -> model_catalog.Download:
    """Fetch a model (or a LoRA) into the Hugging Face cache in the background (only with online access)."""
    global _download
    if _download is not None and _download.state == "running":
        raise PromptscapeError("A download is already running; wait for it or cancel it")
    _download = model_catalog.Download(repo_id, bpy.app.online_access, lora=lora).start()
    _watch(_poll_download)
    return _download


def start_self_test(device: str, precision: str):
    """Run the self-test in the worker thread, like any job: the UI stays responsive while torch loads."""
    global _self_test
    if _self_test is not None and not _self_test.done:
        raise PromptscapeError("The self-test is already running")
    from ..generation.engine import worker
    from ..generation.setup import self_test

    _self_test = worker.get_worker().submit_conversion(
        lambda job: self_test.run(device=device, precision=precision), {"prompt": "self-test"}
    )
    _watch(_poll_self_test)
    return _self_test


def self_test_lines() -> list[str]:
    """What the preferences show of the latest self-test: its summary, or why it did not run."""
    job = _self_test
    if job is None:
        return []
    if not job.done:
        return ["Self-test running..."]
    if job.outputs is not None:
        return job.outputs.summary().splitlines()
    return [job.message or job.state]


def _watch(poll):
    if not bpy.app.background and not bpy.app.timers.is_registered(poll):
        bpy.app.timers.register(poll, first_interval=0.5, persistent=True)


def _poll_install():
    runner.redraw({"PREFERENCES"})
    if _install is None or _install.done:
        if _install is not None:
            finish_install()
        return None
    return 0.5


def _poll_download():
    runner.redraw({"PREFERENCES"})
    return None if _download is None or _download.state != "running" else 0.5


def _poll_self_test():
    runner.redraw({"PREFERENCES"})
    return None if _self_test is None or _self_test.done else 0.5


def unregister():
    """Stop what runs in the background and remove the poll timers."""
    for work in (_install, _download, _self_test):
        if work is not None:
            work.cancel()
    for poll in (_poll_install, _poll_download, _poll_self_test):
        if bpy.app.timers.is_registered(poll):
            bpy.app.timers.unregister(poll)
