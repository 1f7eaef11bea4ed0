"""Pick a model from the curated list or the local cache, and download one with a progress bar."""

import bpy
from bpy.props import BoolProperty, StringProperty

from .. import preferences
from ..flow import installs
from ..generation.errors import PromptscapeError


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
        from ..generation.engine import worker

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

    model: StringProperty(name="Model", description="The model to fetch (empty: the preferences' model)")
    lora: BoolProperty(name="LoRA", description="The repo holds LoRA weights, not a diffusers pipeline")

    def execute(self, context):
        try:
            download = installs.start_download(self.model or preferences.get(context).model, self.lora)
        except PromptscapeError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if bpy.app.background:  # scripts and `blender -b`: no timers, so finish here
            download.wait()
            self.report({"INFO"} if download.state == "done" else {"ERROR"}, download.message)
            return {"FINISHED"} if download.state == "done" else {"CANCELLED"}
        return {"FINISHED"}


class PROMPTSCAPE_OT_cancel_download(bpy.types.Operator):
    """Stop the download; what is already downloaded is kept and resumed next time"""

    bl_idname = "promptscape.cancel_download"
    bl_label = "Cancel Download"

    def execute(self, context):
        download = installs.current_download()
        if download is None or download.state != "running":
            return {"CANCELLED"}
        download.cancel()
        return {"FINISHED"}


classes = (
    PROMPTSCAPE_OT_use_model,
    PROMPTSCAPE_OT_unload_model,
    PROMPTSCAPE_OT_download_model,
    PROMPTSCAPE_OT_cancel_download,
)
