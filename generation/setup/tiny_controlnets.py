"""Tiny random-weight depth ControlNets for the tiny SD and SDXL pipelines, built offline, for tests.

`ControlNetModel.from_unet` copies the tiny UNet's encoder and zero-initialises the convolutions that feed
the UNet, so a fresh one has no effect at all: those, and the small network that embeds the depth map, are
re-drawn at random here (fixed seed), so a changed depth map changes the image, as with a trained one.
"""

from pathlib import Path

from .tiny_models import _BUILD_LOCK, KINDS, build_once, ensure_tiny_pipeline

BUILDER_VERSION = 2
_SEED = 4321
LIVE = ("controlnet_cond_embedding", "controlnet_down_blocks", "controlnet_mid_block")


def build_tiny_controlnet(unet):
    """A tiny depth ControlNet for `unet` (a tiny UNet2DConditionModel), with live output convolutions."""
    import torch
    from diffusers import ControlNetModel

    with _BUILD_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED)
        net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(4, 8, 8, 16))
        with torch.no_grad():
            for name, parameter in net.named_parameters():
                if name.startswith(LIVE):
                    # He-scaled weights and no biases: what reaches the UNet depends on the depth map
                    # (default-initialised, the small convolutions' biases drown it).
                    if parameter.dim() > 1:
                        parameter.copy_(torch.randn_like(parameter) * (2.0 / parameter[0].numel()) ** 0.5)
                    else:
                        parameter.zero_()
    return net


def ensure_tiny_controlnet(kind: str, cache_dir: Path) -> Path:
    """The folder of the tiny depth ControlNet for the tiny `kind` pipeline ("sd" or "sdxl"), built once."""
    if kind not in KINDS:
        raise ValueError(f"tiny ControlNet kind must be one of {KINDS}, not {kind!r}")

    def build(folder: Path):
        from diffusers import UNet2DConditionModel

        unet = UNet2DConditionModel.from_pretrained(ensure_tiny_pipeline(kind, cache_dir) / "unet")
        build_tiny_controlnet(unet).save_pretrained(folder, safe_serialization=True)

    return build_once(Path(cache_dir) / f"controlnet-{kind}-v{BUILDER_VERSION}", "config.json", build)
