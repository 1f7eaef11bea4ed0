"""Tiny TripoSR models for tests, saved the way a download lands: a folder with config.yaml and model.ckpt.

"random": every weight random, as a fresh network; its densities stay far below the iso-level, so its shape
stage finds no object. "blob": random too, except that the transformer's output projection is zero (the
triplane is then the learned tokens themselves), the tokens paint a disc on each plane and the NeRF MLP reads
density from those discs alone: the object is the intersection of three cylinders, whatever the image.
"""

import math
from pathlib import Path

KINDS = ("random", "blob")
CONFIG_TEXT = "# a tiny random-weight TripoSR made by Promptscape's tests ({kind}); not the published model\n"


def tiny_triposr(kind: str = "random", seed: int = 0):
    """The tiny TripoSR module of `kind` (see the module's docstring)."""
    import torch

    from ..engine import triposr_model
    from ..engine.triposr_config import TINY

    if kind not in KINDS:
        raise ValueError(f"tiny TripoSR kind must be one of {KINDS}, not {kind!r}")
    torch.manual_seed(seed)
    model = triposr_model.build(TINY)
    if kind == "blob":
        with torch.no_grad():
            _paint_blob(model, TINY)
    return model


def _paint_blob(model, config) -> None:
    import torch

    model.backbone.proj_out.weight.zero_()
    model.backbone.proj_out.bias.zero_()
    size = config.plane_size
    centre = (torch.arange(size) + 0.5) / size * 2 - 1
    disc = ((centre[:, None] ** 2 + centre[None, :] ** 2) < 0.55).float()
    model.tokenizer.embeddings.zero_()
    model.tokenizer.embeddings[:, 0] = disc  # channel 0 of each plane: 1 inside the disc
    upsample = model.post_processor.upsample
    upsample.weight.zero_()
    upsample.bias.zero_()
    upsample.weight[0, 0] = 1.0  # token channel 0 -> triplane channel 0 on each of the 2x2 sub-cells
    layers = [layer for layer in model.decoder.layers if isinstance(layer, torch.nn.Linear)]
    for layer in layers:
        layer.weight.zero_()
        layer.bias.zero_()
    channels = config.triplane_channels
    layers[0].weight[0, [0, channels, 2 * channels]] = 4.0  # 4 x (sum of the three discs)
    for layer in layers[1:-1]:
        layer.weight[0, 0] = 1.0  # pass it on: SiLU keeps it increasing
    # The level sits where the discs' sum is 2.5 of 3: find what the hidden chain makes of that, then bias.
    hidden = torch.nn.functional.silu(torch.tensor(2.5 * 4.0))
    for _ in layers[1:-1]:
        hidden = torch.nn.functional.silu(hidden)
    last = layers[-1]
    last.weight[0, 0] = 1.0
    last.bias[0] = math.log(config.density_threshold) - config.density_bias - float(hidden.squeeze())
    last.bias[1:4] = torch.tensor([1.5, 0.2, -1.0])  # an orange object: sigmoid of these


def save_tiny_triposr(folder: Path, kind: str = "random", seed: int = 0) -> Path:
    """Write config.yaml and model.ckpt (torch.save of the state dict, as published) into `folder`."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = tiny_triposr(kind, seed)
    (folder / "config.yaml").write_text(CONFIG_TEXT.format(kind=kind))
    torch.save(model.state_dict(), folder / "model.ckpt")
    return folder
