"""A transformer family loaded in 8 or 4 bits (bitsandbytes, NVIDIA GPUs only), so a 4-20B model fits an
8-12 GB card: the transformer and the language-model text encoder are quantised, the VAE is not.

`auto` picks the lightest weights that leave room for the work: none on the CPU and Apple Metal (where
bitsandbytes does not run) and for the UNet families, else the first of none, 8-bit, 4-bit whose
transformer takes at most WEIGHT_SHARE of the GPU's budget (the text encoder runs first and is moved off
before the transformer needs the memory, under model CPU offload).
"""

import importlib.util

from ..errors import InvalidRequest, missing_dependency
from .families import Family

CHOICES = ("auto", "none", "8bit", "4bit")
BYTES_PER_PARAMETER = {"none": 2.0, "8bit": 1.0, "4bit": 0.56}  # nf4 stores a scale per 64 weights
WEIGHT_SHARE = 0.6


def resolve(choice: str, device: str, family: Family, parameters: float, budget: int | None) -> str:
    """The quantisation a job runs with ("none", "8bit" or "4bit"); an impossible choice is refused in
    words. `parameters` counts the transformer's weights, `budget` is the GPU's bytes (None: unknown)."""
    if choice not in CHOICES:
        raise InvalidRequest(f"quantize is {choice!r}: use one of {', '.join(CHOICES)}")
    if choice in ("8bit", "4bit"):
        if device != "cuda":
            raise InvalidRequest(
                f"quantize={choice} needs an NVIDIA GPU (bitsandbytes); on {device} set quantize to auto "
                "or none"
            )
        if not family.transformer:
            raise InvalidRequest(
                f"quantize={choice} is for the transformer families (Z-Image, FLUX.2 klein, Qwen-Image); "
                f"{family.name} models fit by their memory plan: set quantize to auto or none"
            )
        return choice
    if choice == "none" or device != "cuda" or not family.transformer or budget is None:
        return "none"
    for mode in ("none", "8bit"):
        if parameters * BYTES_PER_PARAMETER[mode] <= WEIGHT_SHARE * budget:
            return mode
    return "4bit"


def planned_size(size, mode: str, precision_bytes: int):
    """`size` (a memory_plan.ModelSize) as the planner must count it once quantised: the transformer and
    text encoder's parameters scaled to their bytes in `mode` at the precision's bytes per parameter."""
    from dataclasses import replace

    if mode == "none":
        return size
    scale = BYTES_PER_PARAMETER[mode] / precision_bytes
    return replace(size, unet=size.unet * scale, text_encoders=size.text_encoders * scale, quantised=True)


def pipeline_config(mode: str):
    """diffusers' quantisation config for loading a pipeline in `mode`; None for "none"."""
    if mode == "none":
        return None
    if importlib.util.find_spec("bitsandbytes") is None:
        raise missing_dependency("bitsandbytes", f"quantize={mode}")
    import torch
    from diffusers import PipelineQuantizationConfig

    if mode == "8bit":
        backend, options = "bitsandbytes_8bit", {"load_in_8bit": True}
    else:
        backend = "bitsandbytes_4bit"
        options = {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": "nf4",
            "bnb_4bit_compute_dtype": torch.bfloat16,
        }
    return PipelineQuantizationConfig(
        quant_backend=backend, quant_kwargs=options, components_to_quantize=["transformer", "text_encoder"]
    )
