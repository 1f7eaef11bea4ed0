"""The model families, in one table: what differs between a UNet (SD 1.x, 2.x, SDXL) and the diffusion
transformers (Z-Image, FLUX.2 klein, Qwen-Image) that the worker, the loader and the planner ask about.

A family is found from the pipeline class a model's own `model_index.json` names, never from its name.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    name: str
    pipelines: tuple[str, ...]  # text-to-image classes (model_index.json's _class_name) of the family
    img2img: str | None = None  # the class for img2img-type stages; None: the family has none
    inpaint: str | None = None
    transformer: bool = False  # rotary positions instead of convolutions: wrapped by rolling (token_wrap)
    rope: str = ""  # how periodic_rope.py makes its rotary positions periodic ("": it cannot)
    packed: bool = False  # its latents travel between steps as 2x2-patch tokens (B, tokens, C)
    steps: int = 25  # the family's own defaults
    guidance: float = 7.0
    guidance_argument: str = "guidance_scale"  # Qwen-Image's classifier-free guidance is true_cfg_scale
    negative_prompt: bool = True  # whether its pipelines take one
    licence: str = ""


FAMILIES = (
    Family("sd", ("StableDiffusionPipeline", "LatentConsistencyModelPipeline"),
           "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline"),
    Family("sdxl", ("StableDiffusionXLPipeline",), "StableDiffusionXLImg2ImgPipeline",
           "StableDiffusionXLInpaintPipeline"),
    # Z-Image Turbo: 8 steps without classifier-free guidance (its model card's recommendation).
    Family("zimage", ("ZImagePipeline",), "ZImageImg2ImgPipeline", "ZImageInpaintPipeline",
           transformer=True, rope="zimage", steps=8, guidance=0.0, licence="Apache-2.0"),
    # klein is step-distilled: 4 steps, guidance ignored. Its diffusers img2img is a reference-image editor
    # without strength, so img2img-type stages go through its inpainting pipeline.
    Family("flux2-klein", ("Flux2KleinPipeline",), None, "Flux2KleinInpaintPipeline", transformer=True,
           rope="flux2", packed=True, steps=4, guidance=1.0, negative_prompt=False, licence="Apache-2.0"),
    Family("qwen-image", ("QwenImagePipeline",), "QwenImageImg2ImgPipeline", "QwenImageInpaintPipeline",
           transformer=True, rope="qwen-image", packed=True, steps=50, guidance=4.0,
           guidance_argument="true_cfg_scale", licence="Apache-2.0"),
)  # fmt: skip
_BY_CLASS = {
    name: family for family in FAMILIES for name in (*family.pipelines, family.img2img, family.inpaint)
}
TRANSFORMER_PIPELINES = frozenset(
    name for family in FAMILIES if family.transformer for name in family.pipelines
)


def named(name: str) -> Family | None:
    return next((family for family in FAMILIES if family.name == name), None)


def check_request(family: Family, scheduler: str, width: int, height: int, wrap_mode: str = "roll") -> None:
    """Refuse in words what a transformer family cannot run; UNet families take every request (their
    wrap is exact whatever wrap_mode says)."""
    from ..errors import InvalidRequest

    if not family.transformer:
        return
    if wrap_mode == "periodic" and not family.rope:
        raise InvalidRequest(
            f"the rotary positions of {family.name} models cannot be made periodic: set wrap_mode to roll"
        )
    if scheduler != "default":
        raise InvalidRequest(
            f"{family.name} models run the flow-matching scheduler they ship with: set scheduler to default"
        )
    if width % 16 or height % 16:
        raise InvalidRequest(
            f"{family.name} models draw in 16-pixel tokens: width and height must be multiples of 16 "
            f"(not {width}x{height})"
        )


def guidance_options(family: Family, request) -> dict:
    """A request's guidance in the family's own words; Qwen-Image's true CFG needs a negative prompt."""
    options = {family.guidance_argument: request.guidance}
    true_cfg = family.guidance_argument == "true_cfg_scale" and request.guidance > 1
    if family.negative_prompt and (request.negative_prompt or true_cfg):
        options["negative_prompt"] = request.negative_prompt or " "
    return options


def of_class(class_name: str) -> Family | None:
    """The family of a pipeline class name (any of its stages), or None for one Promptscape cannot run."""
    return _BY_CLASS.get(class_name)


def of_pipeline(pipe) -> Family:
    """The family of a loaded pipeline; UNet pipelines not in the table (SD 2.x variants) count as SD."""
    return of_class(type(pipe).__name__) or FAMILIES[0]
