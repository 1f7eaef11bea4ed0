"""Install, repair and remove torch and diffusers for Blender, and check the install with a self-test."""

from pathlib import Path

import bpy
from bpy.props import StringProperty

from .. import job_runner, preferences
from ..generation import installer
from ..generation.errors import PromptscapeError

_install: installer.Install | None = None  # the running or last pip run, drawn by the preferences


def current_install() -> installer.Install | None:
    return _install


def site_packages_folder(create: bool = True) -> Path:
    """Our packages folder, in the extension's user folder so updates of the extension keep it."""
    return Path(bpy.utils.extension_path_user(preferences.__package__, path="site-packages", create=create))


def activate_installed():
    """Put our finished install and the user's chosen environment on sys.path (after Blender's own)."""
    installer.activate(site_packages_folder())
    prefs = preferences.get()
    path = Path(bpy.path.abspath(prefs.site_packages)) if prefs.site_packages else None
    if path is not None and not installer.check_site_packages(path):
        installer.add_to_path(path)


def deactivate_installed():
    """Take our folders off sys.path when the extension is disabled (imported modules stay loaded)."""
    installer.deactivate(site_packages_folder())
    prefs = preferences.get()
    if prefs.site_packages:
        installer.deactivate(Path(bpy.path.abspath(prefs.site_packages)))


def start_install(context, packages: tuple[str, ...] = ()) -> installer.Install:
    """Start pip in the background; without online access only a local wheel folder is allowed."""
    global _install
    if _install is not None and not _install.done:
        raise PromptscapeError("An install is already running; wait for it or cancel it")
    prefs = preferences.get(context)
    wheels = Path(bpy.path.abspath(prefs.wheel_folder)) if prefs.wheel_folder else None
    if wheels is None and not bpy.app.online_access:
        raise PromptscapeError(
            "Installing downloads about 3 GB, and Blender's online access is off: allow it in Preferences > "
            "System > Network > Allow Online Access, or set a Wheel Folder, or Use Existing Environment"
        )
    if wheels is not None and not wheels.is_dir():
        raise PromptscapeError(f"The wheel folder {wheels} does not exist: pick a folder of .whl files")
    _install = installer.Install(
        site_packages_folder(), packages or installer.PINNED, prefs.torch_build, find_links=wheels
    ).start()
    if not bpy.app.timers.is_registered(_poll):
        bpy.app.timers.register(_poll, first_interval=0.5, persistent=True)
    return _install


def finish_install() -> str:
    """Main thread, once pip has ended: activate a good install; the words to show either way."""
    if _install.state == "done":
        installer.activate(site_packages_folder())
    return _install.message


def _poll():
    if _install is None:
        return None
    job_runner.redraw({"PREFERENCES"})
    if _install.done:
        finish_install()
        return None
    return 0.5


class PROMPTSCAPE_OT_install_dependencies(bpy.types.Operator):
    """Download and install torch, diffusers and transformers for Blender's Python (about 3 GB).
    They go in Promptscape's own folder, never into Blender itself"""

    bl_idname = "promptscape.install_dependencies"
    bl_label = "Install Dependencies"

    packages: StringProperty(
        name="Packages",
        description="Requirements to install instead of Promptscape's tested set (space separated)",
        options={"SKIP_SAVE", "HIDDEN"},
    )

    def execute(self, context):
        try:
            install = start_install(context, tuple(self.packages.split()))
        except PromptscapeError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if not bpy.app.background:
            self.report({"INFO"}, "Installing in the background; progress shows in the preferences")
            return {"FINISHED"}
        install.wait()  # scripts and `blender -b`: no timers, so finish here
        message = finish_install()
        self.report({"INFO"} if install.state == "done" else {"ERROR"}, message)
        return {"FINISHED"} if install.state == "done" else {"CANCELLED"}


class PROMPTSCAPE_OT_cancel_install(bpy.types.Operator):
    """Stop the running install; nothing already working is changed"""

    bl_idname = "promptscape.cancel_install"
    bl_label = "Cancel Install"

    def execute(self, context):
        if _install is None or _install.done:
            return {"CANCELLED"}
        _install.cancel()
        return {"FINISHED"}


class PROMPTSCAPE_OT_uninstall_dependencies(bpy.types.Operator):
    """Remove Promptscape's copy of torch and diffusers (to repair it, uninstall, restart Blender, install)"""

    bl_idname = "promptscape.uninstall_dependencies"
    bl_label = "Uninstall Dependencies"

    def execute(self, context):
        if _install is not None and not _install.done:
            self.report({"ERROR"}, "An install is running: cancel it first")
            return {"CANCELLED"}
        installer.remove(site_packages_folder())
        self.report({"INFO"}, "Removed; restart Blender to unload what was already imported")
        return {"FINISHED"}


class PROMPTSCAPE_OT_self_test(bpy.types.Operator):
    """Check the install in seconds with a tiny built-in model: no download, reports device and speed"""

    bl_idname = "promptscape.self_test"
    bl_label = "Self-Test"

    def execute(self, context):
        from ..generation import self_test

        prefs = preferences.get(context)
        try:
            report = self_test.run(device=prefs.device, precision=prefs.precision)
        except PromptscapeError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        for line in report.summary().splitlines():
            self.report({"INFO"} if report.ok else {"ERROR"}, line)
        return {"FINISHED"} if report.ok else {"CANCELLED"}


def unregister_timers():
    if _install is not None:
        _install.cancel()
    if bpy.app.timers.is_registered(_poll):
        bpy.app.timers.unregister(_poll)


classes = (
    PROMPTSCAPE_OT_install_dependencies,
    PROMPTSCAPE_OT_cancel_install,
    PROMPTSCAPE_OT_uninstall_dependencies,
    PROMPTSCAPE_OT_self_test,
)
