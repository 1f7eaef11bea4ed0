"""Tiny random-weight SD1.x- and SDXL-style pipelines, built offline, for tests and the self-test.

They produce noise, but run every part of a real pipeline (tokenizer, text encoders, UNet, VAE with the
real scale factor 8, scheduler) in milliseconds and take under 1 MB on disk.
"""

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

# Bump when the architecture or weights change, so cached folders are rebuilt.
BUILDER_VERSION = 2
KINDS = ("sd", "sdxl")
_SEED = 1234
# Seeding is process-wide: two threads building at once would interleave their random weights.
_BUILD_LOCK = threading.Lock()
_MERGES = ["t h", "th e</w>", "s k", "sk y</w>", "o f</w>", "i n", "in g</w>"]


def _byte_characters() -> list[str]:
    """The 256 printable characters byte-level BPE uses for the 256 byte values (GPT-2's scheme)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    characters = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in characters:
            characters[b] = chr(256 + extra)
            extra += 1
    return [characters[b] for b in range(256)]


def write_tokenizer(folder: Path) -> dict[str, int]:
    """Write a minimal CLIP BPE tokenizer (vocab.json + merges.txt); return its special token ids."""
    folder.mkdir(parents=True, exist_ok=True)
    characters = _byte_characters()
    tokens = characters + [c + "</w>" for c in characters]
    tokens += ["".join(merge.split()) for merge in _MERGES]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(_MERGES) + "\n", encoding="utf-8")
    return {
        "vocab_size": len(vocab),
        "bos_token_id": vocab["<|startoftext|>"],
        "eos_token_id": vocab["<|endoftext|>"],
        "pad_token_id": vocab["<|endoftext|>"],
    }


def _tokenizer_and_ids():
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory(prefix="promptscape-tokenizer-") as folder:
        ids = write_tokenizer(Path(folder))
        tokenizer = CLIPTokenizer.from_pretrained(folder, model_max_length=77)
    return tokenizer, ids


def _text_config(ids: dict[str, int]):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        projection_dim=32,
        **ids,
    )


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=2,
        sample_size=64,
    )


def _scheduler():
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1
    )


def build_tiny_pipeline(kind: str):
    """A tiny random-weight pipeline in memory: "sd" (SD1.x layout) or "sdxl" (two text encoders).

    Weights come from a fixed torch seed, so two builds are identical.
    """
    import torch
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    if kind not in KINDS:
        raise ValueError(f"tiny pipeline kind must be one of {KINDS}, not {kind!r}")
    tokenizer, ids = _tokenizer_and_ids()
    unet_options = dict(
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=2,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=2,
    )
    with _BUILD_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED)
        if kind == "sd":
            unet = UNet2DConditionModel(cross_attention_dim=32, **unet_options)
            return StableDiffusionPipeline(
                vae=_vae(),
                text_encoder=CLIPTextModel(_text_config(ids)),
                tokenizer=tokenizer,
                unet=unet,
                scheduler=_scheduler(),
                safety_checker=None,
                feature_extractor=None,
                requires_safety_checker=False,
            )
        text_config = _text_config(ids)
        unet = UNet2DConditionModel(
            cross_attention_dim=64,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            # Six size/crop numbers of 8 each, plus the pooled embedding of the second encoder.
            projection_class_embeddings_input_dim=6 * 8 + text_config.projection_dim,
            use_linear_projection=True,
            **unet_options,
        )
        return StableDiffusionXLPipeline(
            vae=_vae(),
            text_encoder=CLIPTextModel(text_config),
            text_encoder_2=CLIPTextModelWithProjection(text_config),
            tokenizer=tokenizer,
            tokenizer_2=tokenizer,
            unet=unet,
            scheduler=_scheduler(),
            add_watermarker=False,
        )


def ensure_tiny_pipeline(kind: str, cache_dir: Path) -> Path:
    """The folder of the tiny `kind` pipeline under cache_dir, built once and reused."""

    def build(folder: Path):
        build_tiny_pipeline(kind).save_pretrained(folder, safe_serialization=True)
        # transformers 5 saves only tokenizer.json; the BPE files keep the folder loadable by older versions.
        for tokenizer_folder in folder.glob("tokenizer*"):
            write_tokenizer(tokenizer_folder)

    return build_once(Path(cache_dir) / f"{kind}-v{BUILDER_VERSION}", "model_index.json", build)


def build_once(target: Path, marker: str, build) -> Path:
    """`target`, made by `build(folder)` unless it already holds `marker`: built in a temporary sibling
    folder and moved into place atomically, so processes building at the same time never see half a
    folder (the first to finish wins; the others use its folder)."""
    if (target / marker).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}-building-", dir=target.parent))
    try:
        build(building)
        try:
            os.replace(building, target)
        except OSError:
            if not (target / marker).is_file():
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target


def write_tiny_lora(base: Path, folder: Path, seed: int = 0) -> Path:
    """A LoRA (made with peft) for a tiny SD pipeline folder, with random up-weights so it visibly changes
    the image; returns the .safetensors file. Tests use it to check that LoRAs stack and come off again."""
    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = StableDiffusionPipeline.from_pretrained(base)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    generator = torch.Generator().manual_seed(seed)
    for name, parameter in pipe.unet.named_parameters():
        if "lora_B" in name:  # peft starts these at zero, which would make the LoRA a no-op
            parameter.data = torch.randn(parameter.shape, generator=generator)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet))
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=layers, safe_serialization=True)
    return Path(folder) / "pytorch_lora_weights.safetensors"
