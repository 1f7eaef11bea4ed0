"""Depth models: the curated default, and random-weight Depth Anything V2 architectures built offline.

The tiny one runs the real estimation path in the tests in milliseconds; the full-size Small one (the
published configuration, random weights) measures time and memory at real size without a download.
"""

from pathlib import Path

from .tiny_models import build_once

DEFAULT = "depth-anything/Depth-Anything-V2-Small-hf"  # Apache-2.0, 25 M parameters
BUILDER_VERSION = 1
SIZES = {
    # (backbone width, layers, heads, neck sizes, fusion width, head width, processor size)
    "tiny": (32, 4, 2, (8, 16, 32, 32), 16, 8, 56),
    "small": (384, 12, 6, (48, 96, 192, 384), 64, 32, 518),  # Depth-Anything-V2-Small's published config
}


def build_depth_model(folder: Path, size: str = "tiny", seed: int = 0) -> Path:
    """Save a random-weight Depth Anything V2 model and its image processor into `folder`."""
    import torch
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    width, layers, heads, neck, fusion, head, pixels = SIZES[size]
    backbone = Dinov2Config(
        hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=4 * width,
        patch_size=14, image_size=518, out_features=[f"stage{layers // 4 * k}" for k in (1, 2, 3, 4)],
        reshape_hidden_states=False,
    )  # fmt: skip
    config = DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=width, patch_size=14, neck_hidden_sizes=list(neck),
        fusion_hidden_size=fusion, head_hidden_size=head, depth_estimation_type="relative",
    )  # fmt: skip
    torch.manual_seed(seed)
    DepthAnythingForDepthEstimation(config).eval().save_pretrained(folder, safe_serialization=True)
    DPTImageProcessor(
        do_resize=True, size={"height": pixels, "width": pixels}, keep_aspect_ratio=False,
        ensure_multiple_of=14, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(folder)  # fmt: skip
    return Path(folder)


def ensure_depth_model(size: str, cache_dir: Path) -> Path:
    """The folder of the random-weight `size` depth model under cache_dir, built once."""
    target = Path(cache_dir) / f"depth-{size}-v{BUILDER_VERSION}"
    return build_once(target, "config.json", lambda folder: build_depth_model(folder, size))
