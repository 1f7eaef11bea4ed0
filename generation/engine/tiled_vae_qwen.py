"""Qwen-Image's VAE decoder through the wrap-exact tiled pass of tiled_vae.py.

Its decoder is a causal 3D one (Wan's), run here on a single frame: a causal 3x3x3 convolution pads two
zero frames before the frame, so only its last temporal slice sees the image, and it is a 2D convolution
with that slice's weights; the temporal upsampling of a video's later frames never runs for the first.
Its norms are RMS norms over the channels of each pixel, so a tile normalises exactly as the whole map
does; the one global layer, the middle block's attention, runs whole at the latent size (small), as
tiled_vae does for SD's. The result equals the plain decode to float rounding, in tiles of any size.
"""

from types import SimpleNamespace

from .tiled_vae import Tiling, UnsupportedVae, _Pass, _Stored


def _frame_conv(conv):
    """A causal Conv3d as the 2D convolution it is on a first frame (weights are views, not copies)."""
    kernel_t = conv.kernel_size[0]
    if conv.stride[0] != 1 or getattr(conv, "_padding", (0,) * 6)[4] != 2 * (kernel_t // 2) * (kernel_t > 1):
        raise UnsupportedVae("a Qwen-Image VAE convolution that is not causal in time")
    # Its own spatial padding is "same" (half the kernel); read from the kernel, since seamless() moves
    # the padding of `_padding` into its own circular pad while a job runs.
    _, kernel_h, kernel_w = conv.kernel_size
    return SimpleNamespace(
        kernel_size=(kernel_h, kernel_w), stride=conv.stride[1:], padding=(kernel_h // 2, kernel_w // 2),
        out_channels=conv.out_channels, weight=conv.weight[:, :, -1], bias=conv.bias,
        dilation=conv.dilation[1:], groups=conv.groups,
    )  # fmt: skip


def _rms_act(norm, activate: bool = True):
    """The RMS norm (and SiLU) per tile: each pixel is normalised over its own channels."""
    import torch
    import torch.nn.functional as F

    gamma = norm.gamma.detach().float().view(1, -1, 1, 1)
    bias = norm.bias.detach().float().view(1, -1, 1, 1) if torch.is_tensor(norm.bias) else norm.bias

    def apply(tile):
        out = F.normalize(tile.float(), dim=1) * (norm.scale * gamma) + bias
        return (F.silu(out) if activate else out).to(tile.dtype)

    return apply


def _resnet(pass_: _Pass, block, x):
    """A Qwen-Image residual block, as tiled_vae's resnet: RMS norms, causal convolutions as 2D ones."""
    import torch.nn.functional as F

    h = pass_.conv(_frame_conv(block.conv1), x, pre=_rms_act(block.norm1))
    if not pass_.tiling.lean:
        h = pass_.store(h)
    shortcut = _frame_conv(block.conv_shortcut) if hasattr(block.conv_shortcut, "_padding") else None

    def add_input(y, rows, cols):
        skip, _ = x.window(rows, cols)
        if shortcut is not None:
            skip = F.conv2d(skip, shortcut.weight, shortcut.bias)
        return y.add_(skip)

    out = pass_.conv(_frame_conv(block.conv2), h, pre=_rms_act(block.norm2), residual=add_input)
    if shortcut is None and isinstance(x, _Stored):
        return pass_.store(out, into=x, reach=2 if pass_.tiling.lean else 0)
    return pass_.store(out)


def decode(vae, latents, tiling: Tiling):
    """Image tensor (B, 3, 8h, 8w) in [-1, 1] for 4D latents already unscaled (as the pipeline hands
    them to vae.decode, less their single frame axis)."""
    import torch

    pass_ = _Pass(vae, tiling, image_height=latents.shape[2] * 8)
    decoder = vae.decoder
    with torch.no_grad():
        x = _Stored(pass_, latents.to(pass_.storage, pass_.dtype))
        x = pass_.store(pass_.conv(_frame_conv(vae.post_quant_conv), x))
        x = pass_.store(pass_.conv(_frame_conv(decoder.conv_in), x))
        middle = decoder.mid_block
        x = _resnet(pass_, middle.resnets[0], x)
        for attention, resnet in zip(middle.attentions, middle.resnets[1:], strict=True):
            whole = attention(x.tensor.to(pass_.device)[:, :, None])[:, :, 0]  # global: small, whole
            x = _resnet(pass_, resnet, _Stored(pass_, whole.to(pass_.storage)))
        for block in decoder.up_blocks:
            for resnet in block.resnets:
                x = _resnet(pass_, resnet, x)
            for resample in block.upsamplers or ():
                if not resample.mode.startswith("upsample"):
                    raise UnsupportedVae(f"a Qwen-Image VAE resampling of mode {resample.mode}")
                conv = resample.resample[1]  # nearest-exact 2x is nearest 2x at a whole factor
                x = pass_.upsample(SimpleNamespace(use_conv_transpose=False, norm=None, conv=conv), x)
        x = pass_.conv(_frame_conv(decoder.conv_out), x, pre=_rms_act(decoder.norm_out))
        return pass_.store(x).tensor.clamp_(-1.0, 1.0)
