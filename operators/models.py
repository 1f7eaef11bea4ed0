"""Pick a model from the curated list or the local cache, and download one with a progress bar."""

import bpy
from bpy.props import StringProperty

from .. import job_runner, preferences
from ..generation import model_catalog
from ..generation.errors import PromptscapeError

_download: model_catalog.Download | None = None


def current_download() -> model_catalog.Download | None:
    return _download


def _poll():
    job_runner.redraw({"PREFERENCES"})
    return None if _download is None or _download.state != "running" else 0.5


class PROMPTSCAPE_OT_use_model(bpy.types.Operator):
    """Generate with this model from now on"""

    bl_idname = "promptscape.use_model"
    bl_label = "Use Model"

    model: StringProperty(name="Model", description="Hugging Face id, folder or .safetensors file")

    def execute(self, context):
        preferences.get(context).model = self.model
        return {"FINISHED"}


class PROMPTSCAPE_OT_unload_model(bpy.types.Operator):
    """Free the memory (RAM and GPU) the loaded model holds; the next generation loads it again"""

    bl_idname = "promptscape.unload_model"
    bl_label = "Free Model Memory"

    def execute(self, context):
        from ..generation import worker

        running = worker.current_worker()  # never starts a worker just to find nothing loaded
        # Never wait here: a load in progress holds the model for seconds, and this is the UI thread.
        if running is not None and running.busy:
            self.report({"WARNING"}, "Promptscape: a generation is using the model; free it when it ends")
            return {"CANCELLED"}
        if running is None or running.cache.loaded_key is None:
            self.report({"INFO"}, "Promptscape: no model is loaded")
            return {"CANCELLED"}
        if not running.cache.try_unload():
            self.report({"WARNING"}, "Promptscape: a generation is using the model; free it when it ends")
            return {"CANCELLED"}
        self.report({"INFO"}, "Promptscape: model unloaded, memory freed")
        return {"FINISHED"}


class PROMPTSCAPE_OT_download_model(bpy.types.Operator):
    """Download the model to the Hugging Face cache (several GB), so it works offline afterwards"""

    bl_idname = "promptscape.download_model"
    bl_label = "Download Model"

    def execute(self, context):
        global _download
        if _download is not None and _download.state == "running":
            self.report({"ERROR"}, "A download is already running; wait for it or cancel it")
            return {"CANCELLED"}
        prefs = preferences.get(context)
        try:
            _download = model_catalog.Download(prefs.model, bpy.app.online_access).start()
        except PromptscapeError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if bpy.app.background:
            _download.wait()
            self.report({"INFO"} if _download.state == "done" else {"ERROR"}, _download.message)
            return {"FINISHED"} if _download.state == "done" else {"CANCELLED"}
        bpy.app.timers.register(_poll, first_interval=0.5, persistent=True)
        return {"FINISHED"}


class PROMPTSCAPE_OT_cancel_download(bpy.types.Operator):
    """Stop the download; what is already downloaded is kept and resumed next time"""

    bl_idname = "promptscape.cancel_download"
    bl_label = "Cancel Download"

    def execute(self, context):
        if _download is None or _download.state != "running":
            return {"CANCELLED"}
        _download.cancel()
        return {"FINISHED"}


def unregister_timers():
    if _download is not None:
        _download.cancel()
    if bpy.app.timers.is_registered(_poll):
        bpy.app.timers.unregister(_poll)


classes = (
    PROMPTSCAPE_OT_use_model,
    PROMPTSCAPE_OT_unload_model,
    PROMPTSCAPE_OT_download_model,
    PROMPTSCAPE_OT_cancel_download,
)
