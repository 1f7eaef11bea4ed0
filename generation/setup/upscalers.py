"""Upscalers: the curated default, and random-weight ESRGAN (RRDBNet) state dicts built offline.

The random ones let the tests and the bench run the real tiled, wrap-aware path through spandrel without
a download: a tiny one in milliseconds, and the full Real-ESRGAN x4plus architecture (23 RRDB blocks, 64
features) to measure time and memory at real size.
"""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CuratedUpscaler:
    id: str
    file: str  # the name the release publishes it under
    url: str
    licence: str
    scale: int


DEFAULT = "real-esrgan-x4plus"
CURATED = {
    DEFAULT: CuratedUpscaler(
        DEFAULT,
        "RealESRGAN_x4plus.pth",
        "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth",
        "BSD-3-Clause",
        4,
    ),
}
SIZES = {
    # (RRDB blocks, features, growth channels)
    "tiny": (1, 8, 32),  # spandrel reads ESRGAN with 32 growth channels, as every published one has
    "x4plus": (23, 64, 32),  # Real-ESRGAN x4plus's published architecture
}


def esrgan_state_dict(size: str = "tiny", seed: int = 0) -> dict:
    """A random-weight x4 RRDBNet state dict under BasicSR's key names (the ones Real-ESRGAN ships), which
    spandrel reads as ESRGAN. Weights are scaled down as BasicSR initialises them: 23 blocks stay finite."""
    import torch

    blocks, features, growth = SIZES[size]
    generator = torch.Generator().manual_seed(seed)
    state = {}

    def conv(name: str, out_channels: int, in_channels: int, gain: float = 0.1) -> None:
        fan_in = in_channels * 9
        weight = torch.randn(out_channels, in_channels, 3, 3, generator=generator) * (2.0 / fan_in) ** 0.5
        state[f"{name}.weight"] = weight * gain
        state[f"{name}.bias"] = torch.zeros(out_channels)

    conv("conv_first", features, 3, 1.0)
    for block in range(blocks):
        for rdb in (1, 2, 3):
            for number in range(1, 5):
                conv(f"body.{block}.rdb{rdb}.conv{number}", growth, features + (number - 1) * growth)
            conv(f"body.{block}.rdb{rdb}.conv5", features, features + 4 * growth)
    conv("conv_body", features, features)
    conv("conv_up1", features, features, 1.0)
    conv("conv_up2", features, features, 1.0)
    conv("conv_hr", features, features, 1.0)
    conv("conv_last", 3, features, 1.0)
    return state


def save_esrgan(path: Path, size: str = "tiny", seed: int = 0) -> Path:
    """Write a random-weight ESRGAN as .safetensors at `path`."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(esrgan_state_dict(size, seed), str(path))
    return path
