"""What one generation needs, as a plain frozen value built on the main thread and checked before any work."""

import dataclasses
import logging
import math
import os
import random
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidRequest, ModelNotFound
from .memory_plan import MEMORY_MODES
from .quantize import CHOICES as QUANTIZE

log = logging.getLogger(__name__)

MODES = ("world", "texture", "image", "project")  # project: views of objects, no wrap
SCHEDULERS = ("default", "euler", "euler_a", "dpm++", "ddim")
DEVICES = ("auto", "cuda", "mps", "cpu")
PRECISIONS = ("auto", "fp16", "bf16", "fp32")
# Pole treatment of a world: redrawn on the cube by the model, blended rows (no model), or none.
POLES = ("repair", "blend", "off")
# How a transformer's image wraps: latents rolled between steps (token_wrap.py) or periodic rotary
# positions (periodic_rope.py). UNets wrap exactly by padding and ignore it.
WRAP_MODES = ("roll", "periodic")
MIN_SIZE, MAX_SIZE = 64, 4096
MAX_STEPS = 150
MAX_SEED = 2**31 - 1
# CLIP reads 77 tokens; words are at least one token, so beyond this many words the tail is surely cut.
_LONG_PROMPT_WORDS = 75
# Pickle files can run code when loaded: models.py refuses them unless the artist allowed them.
PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth")
MODEL_FILE_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
_PREFERENCES_HINT = "check the model in Preferences > Add-ons > Promptscape"


@dataclass(frozen=True)
class LoraSpec:
    """A LoRA stacked on the base model: a .safetensors file, a folder or a repo id, with its weight."""

    path_or_id: str
    scale: float = 1.0


def _clean_text(text: str) -> str:
    """Replace control characters (newlines, tabs, NUL, ...) with spaces and collapse runs of spaces."""
    cleaned = "".join(" " if unicodedata.category(c).startswith("C") else c for c in text)
    return re.sub(r"\s+", " ", cleaned).strip()


def looks_like_path(model: str) -> bool:
    """Whether `model` names a file or folder rather than a Hugging Face repo id ("org/name").

    A repo id has exactly one "/", so a relative "a/b" is a path only when it exists on disk.
    """
    if os.path.isabs(model) or model.startswith(("~", ".")) or "\\" in model:
        return True
    if model.lower().endswith(MODEL_FILE_SUFFIXES) or model.count("/") > 1:
        return True
    return "/" in model and os.path.exists(model)


@dataclass(frozen=True)
class GenerationRequest:
    """One text-to-image generation. Build it with keywords; `validate()` before submitting."""

    prompt: str
    negative_prompt: str = ""
    seed: int | None = None
    steps: int | None = None  # None: the model family's own (families.py), resolved by the worker
    guidance: float | None = None
    width: int = 1024
    height: int = 512
    model: str = ""
    scheduler: str = "default"
    mode: str = "world"
    device: str = "auto"
    precision: str = "auto"
    loras: tuple[LoraSpec, ...] = ()
    poles: str = "repair"  # worlds only
    memory: str = "auto"
    vae: str = ""
    quantize: str = "auto"  # transformer families: "8bit" or "4bit" weights (quantize.py)
    transformer: str = ""  # a single-file transformer in place of the model's (transformer_file.py)
    wrap_mode: str = "roll"  # transformer families: "periodic" rotary positions instead of rolled latents
    allow_download: bool = False
    allow_pickle: bool = False

    @property
    def wrap_x(self) -> bool:
        """Worlds wrap around the horizon; textures tile in both axes."""
        return self.mode in ("world", "texture")

    @property
    def wrap_y(self) -> bool:
        return self.mode == "texture"

    def validate(self) -> "GenerationRequest":
        """Check every field; return a copy with the prompts cleaned of control characters.

        Raises InvalidRequest naming the field and its allowed values, or ModelNotFound for a missing path.
        """
        if not isinstance(self.prompt, str) or not _clean_text(self.prompt):
            raise InvalidRequest("prompt is empty: describe the world or material to generate")
        prompt, negative = _clean_text(self.prompt), _clean_text(self.negative_prompt or "")
        for name, text in (("prompt", prompt), ("negative_prompt", negative)):
            if len(text.split()) > _LONG_PROMPT_WORDS:
                log.info(
                    "%s has %d words; the text encoder reads about 75 tokens and drops the rest",
                    name,
                    len(text.split()),
                )
        for name in ("width", "height"):
            value = getattr(self, name)
            if not _is_int(value) or value % 8 or not MIN_SIZE <= value <= MAX_SIZE:
                raise InvalidRequest(
                    f"{name} is {value!r}: use a multiple of 8 from {MIN_SIZE} to {MAX_SIZE} pixels"
                )
        if self.mode == "world" and self.width != 2 * self.height:
            raise InvalidRequest(
                f"width {self.width} and height {self.height}: a world panorama is 2:1, "
                f"so width must be twice the height (e.g. {2 * self.height}x{self.height})"
            )
        if self.steps is not None and (not _is_int(self.steps) or not 1 <= self.steps <= MAX_STEPS):
            raise InvalidRequest(
                f"steps is {self.steps!r}: use a whole number from 1 to {MAX_STEPS} (None: the model's own)"
            )
        if self.guidance is not None and (
            isinstance(self.guidance, bool)
            or not isinstance(self.guidance, int | float)
            or not math.isfinite(self.guidance)
            or self.guidance < 0
        ):
            raise InvalidRequest(f"guidance is {self.guidance!r}: use a finite number >= 0 (7 is typical)")
        if self.seed is not None and (not _is_int(self.seed) or not 0 <= self.seed <= MAX_SEED):
            raise InvalidRequest(f"seed is {self.seed!r}: use a whole number from 0 to {MAX_SEED}, or None")
        for name, allowed in (
            ("scheduler", SCHEDULERS),
            ("mode", MODES),
            ("device", DEVICES),
            ("precision", PRECISIONS),
            ("poles", POLES),
            ("memory", MEMORY_MODES),
            ("quantize", QUANTIZE),
            ("wrap_mode", WRAP_MODES),
        ):
            if getattr(self, name) not in allowed:
                raise InvalidRequest(f"{name} is {getattr(self, name)!r}: use one of {', '.join(allowed)}")
        for lora in self.loras:
            if not isinstance(lora, LoraSpec) or not lora.path_or_id.strip():
                raise InvalidRequest(f"loras: {lora!r} is not a LoraSpec(path_or_id, scale)")
            if not isinstance(lora.scale, int | float) or not math.isfinite(lora.scale):
                raise InvalidRequest(f"loras: the scale of {lora.path_or_id!r} must be a finite number")
            if looks_like_path(lora.path_or_id) and not Path(lora.path_or_id).expanduser().exists():
                raise ModelNotFound(f'LoRA "{lora.path_or_id}" does not exist: {_PREFERENCES_HINT}')
        vae = (self.vae or "").strip()
        if vae and looks_like_path(vae) and not Path(vae).expanduser().exists():
            raise ModelNotFound(f'VAE "{vae}" does not exist: {_PREFERENCES_HINT}')
        model = (self.model or "").strip()
        if not model:
            raise InvalidRequest(
                "model is empty: give a diffusers folder, a .safetensors file or a Hugging Face id "
                "(set a default model in Preferences > Add-ons > Promptscape)"
            )
        if looks_like_path(model) and not Path(model).expanduser().exists():
            raise ModelNotFound(f'model "{model}" does not exist: {_PREFERENCES_HINT}')
        transformer = (self.transformer or "").strip()
        if transformer and not (
            Path(transformer).expanduser().is_file()
            and transformer.lower().endswith((".safetensors", ".gguf"))
        ):
            raise ModelNotFound(f'transformer "{transformer}" is not a .safetensors or .gguf file')
        return dataclasses.replace(
            self, prompt=prompt, negative_prompt=negative, model=model, vae=vae, transformer=transformer
        )

    def resolved(self, steps: int = 25, guidance: float = 7.0) -> "GenerationRequest":
        """A copy with a concrete seed (a random one from 0 to 2**31-1 when the seed is None) and concrete
        steps and guidance (the given ones, the model family's own, where they are None)."""
        seed = random.SystemRandom().randint(0, MAX_SEED) if self.seed is None else self.seed
        steps = steps if self.steps is None else self.steps
        guidance = guidance if self.guidance is None else self.guidance
        return dataclasses.replace(self, seed=seed, steps=steps, guidance=guidance)

    def to_metadata(self) -> dict[str, str]:
        """The request as text fields, for image metadata and Blender custom properties."""
        loras = ";".join(f"{lora.path_or_id}:{lora.scale:g}" for lora in self.loras)
        fields = {
            "generator": "Promptscape",
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "seed": "" if self.seed is None else str(self.seed),
            "steps": "" if self.steps is None else str(self.steps),
            "guidance": "" if self.guidance is None else f"{self.guidance:g}",
            "width": str(self.width),
            "height": str(self.height),
            "model": self.model,
            "scheduler": self.scheduler,
            "mode": self.mode,
            "device": self.device,
            "precision": self.precision,
            "loras": loras,
            "memory": self.memory,
            "vae": self.vae,
            "quantize": self.quantize,
            "transformer": self.transformer,
            "wrap_mode": self.wrap_mode,
        }
        if self.mode == "world":
            fields["poles"] = self.poles
        return fields


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
