"""Full-size random-weight Z-Image Turbo, FLUX.2 klein 4B and Qwen-Image pipelines from their published
configs, for benchmarks: the real cost per step, per decode and in memory, without a download.

Each number below is marked: "published" where it was checked against the model's own config.json (or
diffusers' class defaults, which are that config) and its parameter count, "estimate" where it was not.
The shapes that decide cost (widths, depths, heads, vocabularies) are all published; the estimates are
scheduler shifts and VAE factors, which change no shape and no cost.
Checked on the CPU (2026-12): at full depth in bf16 with the residual outputs scaled, klein's transformer
(one step at 256x128) and Qwen3-4B (its hidden states 9, 18, 27 and -2) give finite outputs.
"""

from contextlib import contextmanager

from .full_size_models import scale_residual_outputs
from .tiny_transformers import FAMILIES, build_tokenizer

_SEED = 1234
# The last layer of each residual branch in these transformers and their language models (diffusers' then
# transformers' names). bf16 keeps fp32's range, but an fp16 run of the same weights would overflow.
RESIDUAL_OUTPUTS = ("to_out.0", "to_out", "to_add_out", "linear_out", "feed_forward.w2", "mlp.net.2",
                    "o_proj", "down_proj", "attn.proj")  # fmt: skip


def transformer_config(family: str) -> dict:
    _check(family)
    if family == "zimage":
        # Published: diffusers' ZImageTransformer2DModel defaults are Tongyi-MAI/Z-Image-Turbo's
        # transformer/config.json (dim 3840, 30 layers, 30 heads, cap_feat_dim 2560): 6.15 B parameters.
        return {}
    if family == "flux2-klein":
        # Published (black-forest-labs/FLUX.2-klein-4B transformer/config.json): 5 double and 20 single
        # blocks of 24 heads x 128, mlp_ratio 3, text width 3 x 2560 (Qwen3 hidden states 9, 18, 27), no
        # guidance embedding (step-distilled); the rest are diffusers' defaults.
        return dict(num_layers=5, num_single_layers=20, num_attention_heads=24, attention_head_dim=128,
                    joint_attention_dim=7680, guidance_embeds=False)  # fmt: skip
    # Published: diffusers' QwenImageTransformer2DModel defaults are Qwen/Qwen-Image's config (60 layers,
    # 24 heads x 128, text width 3584, axes (16, 56, 56)): 20.4 B parameters.
    return {}


def _qwen3_4b(ids: dict) -> dict:
    """Qwen3-4B, published (Qwen/Qwen3-4B config.json; Z-Image Turbo and klein 4B ship it as their text
    encoder): 4.02 B parameters, the embedding tied to the output head."""
    return dict(vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
                num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
                rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, **ids)  # fmt: skip


def _qwen25_vl_7b(ids: dict) -> tuple[dict, dict]:
    """Qwen2.5-VL-7B's text and vision configs, published (Qwen/Qwen2.5-VL-7B-Instruct config.json):
    8.29 B parameters with the vision tower (0.68 B), the output head untied."""
    text = dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=128000,
                rope_theta=1000000.0, rms_norm_eps=1e-6,
                rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}, **ids)  # fmt: skip
    vision = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
                  patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                  fullatt_block_indexes=[7, 15, 23, 31])  # fmt: skip
    return text, vision


def build_text_encoder(family: str, ids: dict | None = None):
    """The family's language model at full size, on the current default device and dtype."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen3Config,
        Qwen3ForCausalLM,
        Qwen3Model,
    )

    _check(family)
    ids = ids if ids is not None else _token_ids(build_tokenizer())
    if family == "qwen-image":
        text, vision = _qwen25_vl_7b(ids)
        config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids)
        return Qwen2_5_VLForConditionalGeneration(config)
    # Z-Image reads the second-to-last hidden state of the bare model; klein hidden states 9, 18 and 27 of
    # the causal LM (the same weights and count: its head is tied to the embedding).
    model = Qwen3Model if family == "zimage" else Qwen3ForCausalLM
    return model(Qwen3Config(**_qwen3_4b(ids)))


def build_transformer(family: str):
    """The family's diffusion transformer at full size, on the current default device and dtype."""
    from diffusers import Flux2Transformer2DModel, QwenImageTransformer2DModel, ZImageTransformer2DModel

    classes = {"zimage": ZImageTransformer2DModel, "flux2-klein": Flux2Transformer2DModel,
               "qwen-image": QwenImageTransformer2DModel}  # fmt: skip
    transformer = classes[family](**transformer_config(family))
    if family == "zimage":  # made with torch.empty: fill them
        for name in ("x_pad_token", "cap_pad_token"):
            getattr(transformer, name).data.normal_()
    return transformer


def build_vae(family: str):
    from diffusers import AutoencoderKL, AutoencoderKLFlux2, AutoencoderKLQwenImage

    _check(family)
    if family == "zimage":
        # Published: FLUX.1's 16-channel VAE (Z-Image ships it): SD's block widths, no quant convs, the
        # latent scale and shift below. force_upcast as FLUX.1's config: an estimate for Z-Image's copy.
        return AutoencoderKL(
            latent_channels=16, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
            use_quant_conv=False, use_post_quant_conv=False, scaling_factor=0.3611, shift_factor=0.1159,
            sample_size=1024, force_upcast=True,
        )  # fmt: skip
    if family == "flux2-klein":
        return AutoencoderKLFlux2()  # published: the class defaults are FLUX.2's VAE (32 channels, 84 M)
    return AutoencoderKLQwenImage()  # published: the defaults are Qwen-Image's (base 96, z 16, 127 M)


def scheduler_config(family: str) -> dict:
    """FlowMatchEulerDiscreteScheduler settings. Estimates (not checked against the repositories'
    scheduler_config.json): they move the sigmas, never the cost of a step."""
    _check(family)
    if family == "zimage":
        return dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False)
    if family == "flux2-klein":
        return dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True)
    return dict(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9,
                max_image_seq_len=8192, shift_terminal=0.02, time_shift_type="exponential")  # fmt: skip


@contextmanager
def _building(device: str, dtype):
    """Parameters made directly on `device` in `dtype`: Qwen-Image's transformer alone is 82 GB in fp32,
    more than an 80 GB card holds before it could be cast."""
    import torch

    previous = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(_SEED)
        if dtype is not None:
            torch.set_default_dtype(dtype)
        try:
            yield
        finally:
            torch.set_default_dtype(previous)


def build_full_size_pipeline(family: str, device: str = "cpu", dtype=None):
    """The family's whole text-to-image pipeline at real size on `device` (the meta device costs nothing),
    in `dtype` when given (bf16 on a GPU: Qwen-Image is 28.8 B parameters, 58 GB in bf16)."""
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        QwenImagePipeline,
        ZImagePipeline,
    )

    _check(family)
    tokenizer = build_tokenizer()
    with _building(device, dtype):
        transformer = build_transformer(family)
        text_encoder = build_text_encoder(family, _token_ids(tokenizer))
        vae = build_vae(family)
    for model in (transformer, text_encoder, vae):
        scale_residual_outputs(model, outputs=RESIDUAL_OUTPUTS)
        model.eval()
    scheduler = FlowMatchEulerDiscreteScheduler(**scheduler_config(family))
    parts = dict(transformer=transformer, text_encoder=text_encoder, vae=vae, tokenizer=tokenizer,
                 scheduler=scheduler)  # fmt: skip
    if family == "zimage":
        pipe = ZImagePipeline(**parts)
    elif family == "flux2-klein":
        pipe = Flux2KleinPipeline(**parts, is_distilled=True)
    else:
        pipe = QwenImagePipeline(**parts)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _token_ids(tokenizer) -> dict:
    """The word-level tokenizer's special ids (a word-level vocabulary is enough for random weights; the
    language model keeps its real vocabulary size, so its embedding costs what the real one does)."""
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    return {"pad_token_id": pad, "eos_token_id": eos, "bos_token_id": None}


def _check(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"full-size transformer family must be one of {FAMILIES}, not {family!r}")
