"""Preferences > Add-ons > Promptscape: dependencies and their install, models, device, output folder."""

from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty

from .flow import installs
from .generation.setup import dependencies, installer, model_catalog, world_presets

DEFAULT_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"


class PromptscapePreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    model: StringProperty(
        name="Model",
        description="A Hugging Face model id, a diffusers model folder, or a .safetensors checkpoint file",
        default=DEFAULT_MODEL,
    )
    world_model: EnumProperty(
        name="World Model",
        description="What worlds are made with when no model is given: a model trained on 360° panoramas",
        items=(
            (world_presets.AUTO, "Automatic", "The first 360 model below that is downloaded, else the Model"),
            (world_presets.PLAIN, "The Model", "The model above: it draws a wide picture, not a panorama"),
            *((preset.key, preset.name, preset.repo_id) for preset in world_presets.PRESETS),
        ),
    )
    device: EnumProperty(
        name="Device",
        items=(
            ("auto", "Automatic", "CUDA, then Apple Metal, then the CPU"),
            ("cuda", "CUDA", "An NVIDIA GPU"),
            ("mps", "Apple Metal", "Apple Silicon GPU"),
            ("cpu", "CPU", "Slow, but always works"),
        ),
    )
    precision: EnumProperty(
        name="Precision",
        items=(
            ("auto", "Automatic", "Half precision on GPUs, full on the CPU"),
            ("fp16", "Half (fp16)", "Least memory; some older GPUs (GTX 16xx) need full precision"),
            ("bf16", "bfloat16", "Recent NVIDIA GPUs"),
            ("fp32", "Full (fp32)", "Most memory, most compatible"),
        ),
    )
    output_folder: StringProperty(
        name="Output Folder",
        description="Where images go when the .blend is unsaved (empty: the extension's user folder)",
        subtype="DIR_PATH",
    )
    torch_build: EnumProperty(
        name="torch Build",
        description="Which build of torch to install",
        items=(
            ("default", "Automatic", "PyPI's build: CUDA on Linux, Apple Metal on macOS, CPU on Windows"),
            ("cu128", "CUDA 12.8", "NVIDIA GPUs with a recent driver (RTX 50xx needs this)"),
            ("cu126", "CUDA 12.6", "NVIDIA GPUs with an older driver"),
            ("cpu", "CPU Only", "Smallest download; slow generation"),
        ),
    )
    wheel_folder: StringProperty(
        name="Wheel Folder",
        description="Install from this folder of .whl files, not the internet (offline or studio mirror)",
        subtype="DIR_PATH",
    )
    site_packages: StringProperty(
        name="Use Existing Environment",
        description="A site-packages folder of a Python of the same version as Blender's, with torch and "
        "diffusers already installed (takes effect when the extension is enabled)",
        subtype="DIR_PATH",
    )
    allow_pickle: BoolProperty(
        name="Allow .ckpt/.bin Models",
        description="Pickle checkpoints can run arbitrary code when loaded: only enable for files you trust",
        default=False,
    )

    server: StringProperty(
        name="Server",
        description="Generate on a Promptscape server at this URL, such as http://gpu-box:8765 "
        "(empty: on this computer). Any address but this computer's needs online access",
    )
    server_token: StringProperty(
        name="Server Token",
        description="The token the server was started with; kept in the preferences only, never in a "
        ".blend (headless: the PROMPTSCAPE_SERVER_TOKEN environment variable)",
        subtype="PASSWORD",
    )
    allow_http: BoolProperty(
        name="Allow Unencrypted Connections",
        description="Talk to a server on another computer over plain http://: the token and your prompts "
        "cross the network unencrypted. Leave off and put https:// in front of the server instead",
        default=False,
    )
    server_timeout: FloatProperty(
        name="Server Timeout",
        description="Seconds a server may stay silent before its job is reported failed",
        default=120.0,
        min=1.0,
        max=3600.0,
        unit="TIME_ABSOLUTE",
    )

    def draw(self, context):
        layout = self.layout
        draw_dependency_status(layout)
        self.draw_install(layout.box())
        self.draw_models(layout.box())
        col = layout.column(heading="Generation")
        col.prop(self, "device")
        col.prop(self, "precision")
        col.prop(self, "output_folder")
        row = col.row()
        row.alert = self.allow_pickle
        row.prop(self, "allow_pickle")
        self.draw_server(layout.box())

    def draw_server(self, box):
        box.label(text="Server (generate on the studio's GPUs)", icon="NETWORK_DRIVE")
        box.prop(self, "server")
        box.prop(self, "server_token")
        box.prop(self, "server_timeout")
        row = box.row()
        row.alert = self.allow_http
        row.prop(self, "allow_http")
        if self.server and not bpy.app.online_access:
            box.label(text="Only a server on this computer works while online access is off", icon="INFO")

    def draw_install(self, box):
        box.label(text="Install", icon="IMPORT")
        install = installs.current_install()
        if install is not None and not install.done:
            box.progress(
                factor=install.fraction, text=(install.lines[-1] if install.lines else "Starting pip")[:90]
            )
            box.operator("promptscape.cancel_install", icon="CANCEL")
        else:
            if install is not None and install.state != "done":
                for line in install.message.splitlines()[-6:]:
                    box.label(text=line[:120], icon="ERROR")
            if not bpy.app.online_access and not self.wheel_folder:
                box.label(
                    text="Online access is off: allow it in Preferences > System > Network,", icon="INFO"
                )
                box.label(text="or set a Wheel Folder or an existing environment below")
            row = box.row()
            row.prop(self, "torch_build", text="")
            row.operator("promptscape.install_dependencies", icon="IMPORT")
            row.operator("promptscape.uninstall_dependencies", text="Uninstall", icon="TRASH")
        box.prop(self, "wheel_folder")
        box.prop(self, "site_packages")
        if self.site_packages:
            for problem in installer.check_site_packages(Path(bpy.path.abspath(self.site_packages))):
                box.label(text=problem, icon="ERROR")
        for problem in installer.clashes(installs.site_packages_folder(create=False)):
            box.label(text=problem, icon="ERROR")
        box.operator("promptscape.self_test", icon="CHECKMARK")
        for line in installs.self_test_lines():
            box.label(text=line[:120])

    def draw_world_models(self, box):
        draw_world_models_box(self, box)

    def draw_models(self, box):
        box.label(text="Models", icon="FILE_3D")
        box.prop(self, "model")
        for entry in model_catalog.CURATED:
            row = box.row()
            mark = "~" if entry.vram_estimated else ""
            vram = f"{mark}{entry.vram_gb:g} GB ({mark}{entry.low_vram_gb:g} lowest)"
            text = f"{entry.name}: {vram}, {entry.licence}"
            row.operator(
                "promptscape.use_model", text=text, depress=self.model == entry.repo_id
            ).model = entry.repo_id
            row.label(text=entry.note)
        self.draw_world_models(box)
        cached = model_catalog.cached_models(wait=False)
        if cached:
            box.label(text="In the local cache (work offline):")
            for repo_id in cached:
                box.operator("promptscape.use_model", text=repo_id, icon="CHECKMARK").model = repo_id
        download = installs.current_download()
        if download is not None and download.state == "running":
            box.progress(factor=download.fraction, text=f"Downloading {download.repo_id}")
            box.operator("promptscape.cancel_download", icon="CANCEL")
        else:
            if download is not None and download.state != "done":
                box.label(text=download.message[:120], icon="ERROR")
            box.operator("promptscape.download_model", icon="IMPORT")


def draw_world_models_box(prefs, box):
    """The 360 presets: what each is, whether it is here, and a Download button for it."""
    box.label(text="World models (trained on 360° panoramas):")
    box.prop(prefs, "world_model")
    for preset in world_presets.PRESETS:
        row = box.row()
        here = world_presets.is_downloaded(preset, wait=False)
        row.label(text=f"{preset.name}: {preset.width}x{preset.height}, '{preset.trigger}'", icon="WORLD")
        if here:
            row.label(text="Downloaded", icon="CHECKMARK")
        else:
            op = row.operator("promptscape.download_model", text="Download")
            op.model, op.lora = preset.repo_id, preset.is_lora


def draw_dependency_status(layout):
    """A box listing each package with its version, or what is missing and what that means."""
    box = layout.box()
    box.label(text="Dependencies", icon="SCRIPTPLUGINS")
    for name, version in dependencies.status().items():
        required = name in dependencies.REQUIRED
        icon = "CHECKMARK" if version else ("ERROR" if required else "INFO")
        box.label(text=f"{name}: {version or 'not installed'}", icon=icon)
    if summary := dependencies.torch_devices():
        box.label(text=summary, icon="MEMORY")
    if missing := dependencies.missing():
        box.label(text=f"Generating needs {', '.join(missing)}; from-image tools work without them")


def get(context=None):
    """The add-on's preferences."""
    context = context or bpy.context
    return context.preferences.addons[__package__].preferences


def register():
    bpy.utils.register_class(PromptscapePreferences)


def unregister():
    bpy.utils.unregister_class(PromptscapePreferences)
