"""The words for where the user is. Messages are written once, for the sidebar (they name the button or the
preference); a headless run (`blender -b -c promptscape`, a batch) names the flag instead, here.
"""

# (what the sidebar's message says, what a headless run says instead), longest first where they overlap
HEADLESS = (
    (
        "check the model in Preferences > Add-ons > Promptscape",
        "check --model (a diffusers folder, a .safetensors file or a cached id: "
        "`blender -c promptscape models` lists them)",
    ),
    ("set a default model in Preferences > Add-ons > Promptscape", "give --model"),
    ("choose auto or cpu in Preferences > Add-ons > Promptscape", "give --device auto or --device cpu"),
    (
        "save the .blend in a writable folder or set an Output Folder in Preferences > Add-ons > Promptscape",
        "give --output in a folder you can write to",
    ),
    ("choose another Output Folder in Preferences > Add-ons > Promptscape", "give --output on another disk"),
    ("run World Depth (api.world_depth) first", "run the world command with --mesh first"),
    ("run World Mesh (api.world_mesh) first", "run the world command with --mesh first"),
    ("Preferences > System > Network, or blender --online-mode", "blender --online-mode"),
)


def headless(message: str) -> str:
    """`message` as a command line says it: the flags to use, not a Preferences page or a button."""
    for sidebar, flag in HEADLESS:
        message = message.replace(sidebar, flag)
    return message
