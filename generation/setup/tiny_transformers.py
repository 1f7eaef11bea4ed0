"""Tiny random-weight parts of the transformer families (Z-Image, FLUX.2 klein, Qwen-Image), built offline.

diffusers' own tiny test configs are not in its wheel; these are written here at the smallest sizes that
keep each part's real structure (the VAE's scale factor 8, its latent channels, its kind of padding).
"""

import threading
from pathlib import Path

from .tiny_models import build_once

# Bump when an architecture or its weights change, so cached folders are rebuilt.
BUILDER_VERSION = 1
FAMILIES = ("zimage", "flux2-klein", "qwen-image")
_SEED = 4321
_BUILD_LOCK = threading.Lock()  # seeding is process-wide


def build_tiny_vae(family: str):
    """The family's VAE, tiny: Z-Image's 16-channel AutoencoderKL, FLUX.2's AutoencoderKLFlux2 (32
    channels), or Qwen-Image's AutoencoderKLQwenImage (causal 3D convs, 16 channels)."""
    import torch
    from diffusers import AutoencoderKL, AutoencoderKLFlux2, AutoencoderKLQwenImage

    if family not in FAMILIES:
        raise ValueError(f"tiny VAE family must be one of {FAMILIES}, not {family!r}")
    blocks = {"block_out_channels": (8, 8, 16, 16), "layers_per_block": 1, "norm_num_groups": 2}
    with _BUILD_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED)
        if family == "zimage":
            encoder, decoder = ("DownEncoderBlock2D",) * 4, ("UpDecoderBlock2D",) * 4
            # Z-Image's latents are scaled and shifted (the published VAE's own factors).
            vae = AutoencoderKL(latent_channels=16, down_block_types=encoder, up_block_types=decoder,
                                scaling_factor=0.3611, shift_factor=0.1159, **blocks)  # fmt: skip
        elif family == "flux2-klein":
            vae = AutoencoderKLFlux2(latent_channels=32, **blocks)
        else:
            vae = AutoencoderKLQwenImage(
                base_dim=8, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                temperal_downsample=[False, True, True], latents_mean=[0.0] * 16, latents_std=[1.0] * 16,
            )  # fmt: skip
    return vae.eval()


# A word-level vocabulary is enough for random weights: the pipelines only need a chat template to apply
# and token ids to feed; byte-level BPE merges would add nothing a test can see.
_WORDS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>", "user", "assistant", "system", "a", "the",
          "sky", "world", "of", "red", "dunes", "bricks", "<think>", "</think>", "\n"]  # fmt: skip
_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer():
    """A fast tokenizer with a chat template (the families' pipelines call apply_chat_template)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocabulary = {word: index for index, word in enumerate(_WORDS)}
    core = Tokenizer(models.WordLevel(vocabulary, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", pad_token="<|endoftext|>", eos_token="<|im_end|>",
        model_max_length=512,
    )  # fmt: skip
    tokenizer.chat_template = _CHAT_TEMPLATE
    return tokenizer


def _qwen3(layers: int, width: int, causal_lm: bool):
    from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen3Model

    config = Qwen3Config(
        vocab_size=len(_WORDS), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
        num_attention_heads=2, num_key_value_heads=2, head_dim=width // 2, max_position_embeddings=512,
        pad_token_id=0, eos_token_id=2,
    )  # fmt: skip
    return (Qwen3ForCausalLM if causal_lm else Qwen3Model)(config)


def _qwen25_vl(width: int):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    text = {
        "vocab_size": len(_WORDS),
        "hidden_size": width,
        "intermediate_size": 2 * width,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "rope_scaling": {"type": "mrope", "mrope_section": [1, 1, 2]},
    }
    vision = {
        "depth": 1,
        "hidden_size": 16,
        "intermediate_size": 16,
        "num_heads": 2,
        "out_hidden_size": width,
        "fullatt_block_indexes": [0],
        "patch_size": 14,
        "spatial_merge_size": 2,
        "window_size": 28,
    }
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, pad_token_id=0, eos_token_id=2)
    return Qwen2_5_VLForConditionalGeneration(config)


def build_tiny_pipeline(family: str):
    """A tiny random-weight text-to-image pipeline of a transformer family, in memory."""
    import torch
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
        QwenImagePipeline,
        QwenImageTransformer2DModel,
        ZImagePipeline,
        ZImageTransformer2DModel,
    )

    vae = build_tiny_vae(family)
    with _BUILD_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED + 1)
        parts = {"vae": vae, "tokenizer": build_tokenizer(), "scheduler": FlowMatchEulerDiscreteScheduler()}
        if family == "zimage":
            transformer = ZImageTransformer2DModel(
                all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=32, n_layers=2,
                n_refiner_layers=1, n_heads=2, n_kv_heads=2, qk_norm=True, cap_feat_dim=16,
                axes_dims=[8, 4, 4], axes_lens=[1024, 512, 512],
            )  # fmt: skip
            for name in ("x_pad_token", "cap_pad_token"):  # made with torch.empty: fill them
                getattr(transformer, name).data.normal_()
            return ZImagePipeline(transformer=transformer, text_encoder=_qwen3(2, 16, False), **parts)
        if family == "flux2-klein":
            # klein reads hidden states 9, 18 and 27 of its Qwen3: 28 layers, three widths stacked.
            transformer = Flux2Transformer2DModel(
                in_channels=128, num_layers=1, num_single_layers=1, attention_head_dim=16,
                num_attention_heads=2, joint_attention_dim=48, axes_dims_rope=(4, 4, 4, 4),
                guidance_embeds=False,
            )  # fmt: skip
            encoder = _qwen3(28, 16, True)
            return Flux2KleinPipeline(
                transformer=transformer, text_encoder=encoder, is_distilled=True, **parts
            )
        transformer = QwenImageTransformer2DModel(
            in_channels=64, out_channels=16, num_layers=1, attention_head_dim=16, num_attention_heads=2,
            joint_attention_dim=16, axes_dims_rope=(4, 6, 6),
        )  # fmt: skip
        return QwenImagePipeline(transformer=transformer, text_encoder=_qwen25_vl(16), **parts)


def ensure_tiny_pipeline(family: str, cache_dir: Path) -> Path:
    """The folder of the tiny `family` pipeline under cache_dir, built once, loadable offline as a user's
    download is (DiffusionPipeline.from_pretrained, the tokenizer's chat template included)."""
    target = Path(cache_dir) / f"{family}-v{BUILDER_VERSION}"
    save = lambda folder: build_tiny_pipeline(family).save_pretrained(folder, safe_serialization=True)  # noqa: E731
    return build_once(target, "model_index.json", save)
