"""Full-size random-weight SD 1.5 and SDXL architectures from their published configs, for benchmarks.

They cost what the real models cost per step and per decode, in time and memory, without a download.
Random init at full depth overflows fp16 (NaN images), so the output layers of the residual branches
are scaled down; that changes no shape and no cost.
"""

from .tiny_models import _scheduler, _tokenizer_and_ids

KINDS = ("sd", "sdxl")
_SEED = 1234
# The last layer of each residual branch: resnet conv2, transformer proj_out, attention and MLP outputs
# (diffusers' names, then transformers' for the text encoders).
_RESIDUAL_OUTPUTS = ("conv2", "proj_out", "to_out.0", "ff.net.2", "self_attn.out_proj", "mlp.fc2")
RESIDUAL_SCALE = 0.05


def unet_config(kind: str) -> dict:
    if kind == "sd":
        return dict(
            sample_size=64,
            block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2,
            cross_attention_dim=768,
            attention_head_dim=8,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        )
    return dict(
        sample_size=128,
        block_out_channels=(320, 640, 1280),
        layers_per_block=2,
        transformer_layers_per_block=(1, 2, 10),
        attention_head_dim=(5, 10, 20),
        cross_attention_dim=2048,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    )


def vae_config(kind: str) -> dict:
    return dict(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        sample_size=1024 if kind == "sdxl" else 512,
        scaling_factor=0.13025 if kind == "sdxl" else 0.18215,
        force_upcast=kind == "sdxl",
    )


def text_configs(kind: str, ids: dict) -> list:
    """CLIP-L for both; SDXL adds OpenCLIP bigG with its projection."""
    from transformers import CLIPTextConfig

    common = dict(max_position_embeddings=77, **{**ids, "vocab_size": 49408})
    configs = [
        CLIPTextConfig(
            hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
            hidden_act="quick_gelu", projection_dim=768, **common,
        )
    ]  # fmt: skip
    if kind == "sdxl":
        configs.append(
            CLIPTextConfig(
                hidden_size=1280, intermediate_size=5120, num_attention_heads=20, num_hidden_layers=32,
                hidden_act="gelu", projection_dim=1280, **common,
            )
        )  # fmt: skip
    return configs


def scale_residual_outputs(model, factor: float = RESIDUAL_SCALE, outputs=_RESIDUAL_OUTPUTS) -> int:
    """Scale the weights of every residual branch's output layer (module names ending in `outputs`);
    return how many were scaled."""
    import torch

    count = 0
    with torch.no_grad():
        for name, module in model.named_modules():
            if name.endswith(outputs) and getattr(module, "weight", None) is not None:
                module.weight.mul_(factor)
                if module.bias is not None:
                    module.bias.mul_(factor)
                count += 1
    return count


def build_full_size_vae(kind: str, device: str = "cpu"):
    """The AutoencoderKL of SD 1.x/2.x or SDXL (the same architecture; scale and upcast differ)."""
    import torch
    from diffusers import AutoencoderKL

    _check(kind)
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(_SEED)
        vae = AutoencoderKL(**vae_config(kind))
    scale_residual_outputs(vae)
    return vae.eval()


def build_full_size_pipeline(kind: str, device: str = "cpu", dtype=None):
    """The whole text-to-image pipeline at real size, built on `device` (seconds on a GPU; SDXL is 3.5 G
    parameters: 13 GB in fp32), in `dtype` when given."""
    import torch
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    _check(kind)
    tokenizer, ids = _tokenizer_and_ids()
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(_SEED)
        unet = UNet2DConditionModel(**unet_config(kind))
        configs = text_configs(kind, ids)
        encoders = [CLIPTextModel(configs[0])]
        if kind == "sdxl":
            encoders.append(CLIPTextModelWithProjection(configs[1]))
    scale_residual_outputs(unet)
    for encoder in encoders:
        scale_residual_outputs(encoder)
    parts = dict(vae=build_full_size_vae(kind, device), unet=unet, scheduler=_scheduler())
    if kind == "sd":
        pipe = StableDiffusionPipeline(
            **parts, text_encoder=encoders[0], tokenizer=tokenizer, safety_checker=None,
            feature_extractor=None, requires_safety_checker=False,
        )  # fmt: skip
    else:
        pipe = StableDiffusionXLPipeline(
            **parts, text_encoder=encoders[0], text_encoder_2=encoders[1], tokenizer=tokenizer,
            tokenizer_2=tokenizer, add_watermarker=False,
        )  # fmt: skip
    if dtype is not None:
        pipe.to(dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _check(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"full-size model kind must be one of {KINDS}, not {kind!r}")
