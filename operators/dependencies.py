"""Install, repair and remove torch and diffusers for Blender, and check the install with a self-test."""

import bpy
from bpy.props import StringProperty

from .. import preferences
from ..flow import installs
from ..generation.errors import PromptscapeError
from ..generation.setup import installer


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
            install = installs.start_install(preferences.get(context), tuple(self.packages.split()))
        except PromptscapeError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if not bpy.app.background:
            self.report({"INFO"}, "Installing in the background; progress shows in the preferences")
            return {"FINISHED"}
        install.wait()  # scripts and `blender -b`: no timers, so finish here
        message = installs.finish_install()
        self.report({"INFO"} if install.state == "done" else {"ERROR"}, message)
        return {"FINISHED"} if install.state == "done" else {"CANCELLED"}


class PROMPTSCAPE_OT_cancel_install(bpy.types.Operator):
    """Stop the running install; nothing already working is changed"""

    bl_idname = "promptscape.cancel_install"
    bl_label = "Cancel Install"

    def execute(self, context):
        install = installs.current_install()
        if install is None or install.done:
            return {"CANCELLED"}
        install.cancel()
        return {"FINISHED"}


class PROMPTSCAPE_OT_uninstall_dependencies(bpy.types.Operator):
    """Remove Promptscape's copy of torch and diffusers (to repair it, uninstall, restart Blender, install)"""

    bl_idname = "promptscape.uninstall_dependencies"
    bl_label = "Uninstall Dependencies"

    def execute(self, context):
        install = installs.current_install()
        if install is not None and not install.done:
            self.report({"ERROR"}, "An install is running: cancel it first")
            return {"CANCELLED"}
        installer.remove(installs.site_packages_folder())
        self.report({"INFO"}, "Removed; restart Blender to unload what was already imported")
        return {"FINISHED"}


class PROMPTSCAPE_OT_self_test(bpy.types.Operator):
    """Check the install in seconds with a tiny built-in model: no download, reports device and speed"""

    bl_idname = "promptscape.self_test"
    bl_label = "Self-Test"

    def execute(self, context):
        prefs = preferences.get(context)
        try:
            job = installs.start_self_test(prefs.device, prefs.precision)
        except PromptscapeError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if not bpy.app.background:
            self.report({"INFO"}, "Self-test running in the background; the result shows in the preferences")
            return {"FINISHED"}
        job.wait()  # scripts and `blender -b`: report here
        ok = job.outputs is not None and job.outputs.ok
        for line in installs.self_test_lines():
            self.report({"INFO"} if ok else {"ERROR"}, line)
        return {"FINISHED"} if ok else {"CANCELLED"}


classes = (
    PROMPTSCAPE_OT_install_dependencies,
    PROMPTSCAPE_OT_cancel_install,
    PROMPTSCAPE_OT_uninstall_dependencies,
    PROMPTSCAPE_OT_self_test,
)
