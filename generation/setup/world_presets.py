"""Models trained on equirectangular panoramas, as world presets: a plain model draws a wide picture at
2:1, not a 360° world; these were fine-tuned on panoramas, so the horizon is straight and the top is sky.

Each preset names its base, the trigger words it was trained with, its native size and licence, and what
could not be verified from its model card (this machine cannot reach the Hub: facts were read from the
published cards where a copy could be found; `unverified` says what is from the issue that listed them).
"""

from dataclasses import dataclass

from ..errors import PromptscapeError


@dataclass(frozen=True)
class WorldPreset:
    key: str  # the preference's value
    name: str
    repo_id: str  # the model, or the LoRA
    base: str  # the base model a LoRA stacks on; the model itself for a fine-tune
    trigger: str  # put before the prompt
    width: int  # native size, 2:1
    height: int
    licence: str
    unverified: str = ""  # what the card did not confirm

    @property
    def is_lora(self) -> bool:
        return self.base != self.repo_id


# Best first: with World Model on Automatic the first one downloaded wins. The transformer LoRAs lead (their
# text encoders follow a long prompt far better than SDXL's CLIP), Qwen-Image's MIT one before Z-Image's
# (the larger model, the larger 360 training set on its card), then the SDXL and SD 1.5 ones.
PRESETS = (
    WorldPreset(
        "qwen-360", "Qwen 360 Diffusion (Qwen-Image LoRA)", "ProGamerGov/qwen-360-diffusion",
        "Qwen/Qwen-Image", "equirectangular 360 degree panorama", 2048, 1024, "MIT",
        unverified="trigger and size (the card's usage section was not readable here)",
    ),
    WorldPreset(
        "zimage-360", "Z-Image 360 (Z-Image Turbo LoRA)", "CedarC/Z-Image_360", "Tongyi-MAI/Z-Image-Turbo",
        "360panorama", 2048, 1024, "Apache-2.0",
        unverified="trigger, size and licence (card not readable here)",
    ),
    WorldPreset(
        "qwen-image-360", "QwenImage360 (Qwen-Image LoRA)", "CedarC/QwenImage360", "Qwen/Qwen-Image", "LL360",
        2048, 1024, "as its model card says", unverified="trigger, size and licence (card not readable here)",
    ),
    WorldPreset(
        "sdxl-360", "SDXL 360 Diffusion", "ProGamerGov/sdxl-360-diffusion",
        "ProGamerGov/sdxl-360-diffusion", "equirectangular 360 view", 2048, 1024,
        "not stated on the model card (base: CreativeML Open RAIL++-M)",
        unverified="the licence",
    ),
    WorldPreset(
        "360-redmond", "360Redmond (SDXL LoRA)", "artificialguybr/360Redmond",
        "stabilityai/stable-diffusion-xl-base-1.0", "360, 360 view", 1600, 800, "as its model card says",
        unverified="trigger, size and licence (card not readable here)",
    ),
    WorldPreset(
        "sd15-360", "360 Diffusion (SD 1.5 LoRA)", "ProGamerGov/360-Diffusion-LoRA-sd-v1-5",
        "stable-diffusion-v1-5/stable-diffusion-v1-5", "qxj", 1024, 512, "as its model card says",
        unverified="trigger, size and licence (card not readable here)",
    ),
)  # fmt: skip
PLAIN = "plain"  # the preference's value for "no preset: the model in the preferences"
AUTO = "auto"  # the first preset that is downloaded, else plain
PLAIN_WARNING = "Plain models draw wide pictures, not panoramas: download a 360 model"


def by_key(key: str) -> WorldPreset:
    for preset in PRESETS:
        if preset.key == key:
            return preset
    raise PromptscapeError(f"No world preset {key!r}; known: {', '.join(p.key for p in PRESETS)}")


def choose(preference: str, available) -> WorldPreset | None:
    """The preset a world is made with: the preference's, if it is downloaded; for "auto" the first one
    downloaded; None for a plain model. `available(preset)` says whether its files are on this machine."""
    if preference == PLAIN:
        return None
    candidates = PRESETS if preference == AUTO else (by_key(preference),)
    return next((preset for preset in candidates if available(preset)), None)


def apply(preset: WorldPreset, options: dict, given: set[str]) -> dict:
    """The options of a world made with `preset`: its model (or its base with its LoRA stacked), its
    trigger words before the prompt and its native size unless the caller set width and height."""
    out = dict(options)
    out["model"] = preset.base
    if preset.is_lora:
        out["loras"] = (*tuple(options.get("loras") or ()), preset.repo_id)
    if preset.trigger.lower() not in out["prompt"].lower():
        out["prompt"] = f"{preset.trigger}, {out['prompt']}"
    if not {"width", "height"} & given:
        out["width"], out["height"] = preset.width, preset.height
    return out


def is_downloaded(preset: WorldPreset, wait: bool = True) -> bool:
    """Whether the preset's files (and a LoRA's base) are in the local Hugging Face cache; `wait=False`
    (for drawing) answers from the last scan of the cache without scanning in this thread."""
    from .model_catalog import cached_loras, cached_models

    models = cached_models(wait=wait)
    if preset.is_lora:
        return preset.repo_id in cached_loras(wait=wait) and preset.base in models
    return preset.repo_id in models
