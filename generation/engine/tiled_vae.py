"""Wrap-exact tiled VAE decode and encode: a tiled pass equals a plain pass, in a fraction of the memory.

Why not diffusers' `vae.enable_tiling()`: its tiles see zeros past the image edge, so a world's seam
breaks, and each tile normalises with its own GroupNorm statistics, so tiles drift apart and are blended
over. Here the VAE runs layer by layer instead: every convolution runs tile by tile over the whole
feature map, each tile seeing its neighbours (circular ones across wrapped edges), and every GroupNorm
uses the statistics of the whole feature map. No tile ever holds the plain decoder's stack of
full-size activations; whole feature maps are kept (on `storage`, which may be the CPU) only between
layers. Works for diffusers' AutoencoderKL as SD 1.x, 2.x and SDXL use it.
"""

from dataclasses import dataclass

SCALE = 8  # image pixels per latent pixel in every supported VAE


@dataclass(frozen=True)
class Tiling:
    """How to tile: `tile` is the tile side in image pixels; whole feature maps live on `storage`
    (None: the VAE's own device; "cpu" keeps them off a small GPU)."""

    tile: int = 512
    wrap_x: bool = False
    wrap_y: bool = False
    storage: str | None = None


class UnsupportedVae(ValueError):
    """The VAE has a layer this module does not know how to tile (the caller decodes plainly)."""


def decode(vae, latents, tiling: Tiling):
    """Image tensor (B, 3, 8h, 8w) in [-1, 1] for latents already unscaled (as vae.decode takes them)."""
    import torch

    pass_ = _Pass(vae, tiling, image_height=latents.shape[2] * SCALE)
    decoder = vae.decoder
    with torch.no_grad():
        x = pass_.store(latents.to(pass_.dtype))
        if vae.post_quant_conv is not None:
            x = pass_.conv(vae.post_quant_conv, x)
        x = pass_.conv(decoder.conv_in, x)
        x = pass_.middle(decoder.mid_block, x)
        for block in decoder.up_blocks:
            for resnet in block.resnets:
                x = pass_.resnet(resnet, x)
            for upsampler in block.upsamplers or ():
                x = pass_.upsample(upsampler, x)
        return pass_.conv(decoder.conv_out, x, pre=pass_.norm_act(decoder.conv_norm_out, x))


def encode(vae, image, tiling: Tiling):
    """The latent distribution (diffusers' DiagonalGaussianDistribution) of an image in [-1, 1]."""
    import torch
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    pass_ = _Pass(vae, tiling, image_height=image.shape[2])
    encoder = vae.encoder
    with torch.no_grad():
        x = pass_.conv(encoder.conv_in, pass_.store(image.to(pass_.dtype)))
        for block in encoder.down_blocks:
            for resnet in block.resnets:
                x = pass_.resnet(resnet, x)
            for downsampler in block.downsamplers or ():
                x = pass_.downsample(downsampler, x)
        x = pass_.middle(encoder.mid_block, x)
        x = pass_.conv(encoder.conv_out, x, pre=pass_.norm_act(encoder.conv_norm_out, x))
        if vae.quant_conv is not None:
            x = pass_.conv(vae.quant_conv, x)
        return DiagonalGaussianDistribution(x.to(pass_.device))


def _spans(size: int, tile: int):
    return [(start, min(start + tile, size)) for start in range(0, size, tile)]


def _axis(size: int, start: int, stop: int, wrap: bool):
    """Indices (or a slice) for rows start..stop of an axis, and the zeros to add before/after it."""
    if start >= 0 and stop <= size:
        return slice(start, stop), (0, 0)
    if wrap:
        import torch

        return torch.arange(start, stop) % size, (0, 0)
    low, high = max(start, 0), min(stop, size)
    return slice(low, high), (low - start, stop - high)


class _Pass:
    """One tiled run through a VAE: the layer operations, all on whole feature maps."""

    def __init__(self, vae, tiling: Tiling, image_height: int):
        import torch

        parameter = next(vae.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype
        self.storage = torch.device(tiling.storage) if tiling.storage else self.device
        self.tiling, self.image_height = tiling, image_height

    def store(self, x):
        return x.to(self.storage)

    def empty(self, x, channels: int, height: int, width: int):
        import torch

        return torch.empty((x.shape[0], channels, height, width), dtype=x.dtype, device=self.storage)

    def _tile(self, height: int) -> int:
        """The tile side at a feature map `height` rows tall: the same image area at every level."""
        return max(1, self.tiling.tile * height // self.image_height)

    def _window(self, x, rows: tuple[int, int], cols: tuple[int, int]):
        """x[..., rows, cols] on the compute device with circular neighbours across wrapped edges, and
        the zero padding (left, right, top, bottom) the other edges still need."""
        row_index, row_pad = _axis(x.shape[2], *rows, self.tiling.wrap_y)
        col_index, col_pad = _axis(x.shape[3], *cols, self.tiling.wrap_x)
        window = x[:, :, row_index] if isinstance(row_index, slice) else x.index_select(2, row_index)
        window = window[..., col_index] if isinstance(col_index, slice) else window.index_select(3, col_index)
        return window.to(self.device, non_blocking=True), (*col_pad, *row_pad)

    def conv(self, conv, x, pre=None, before=None, out=None, residual=None):
        """conv(pre(x)) tile by tile: `before` is the padding before the first row/column (default the
        conv's own), `residual(rows, cols)` a tile to add, `out` where to write (may be x's own storage
        when nothing reads x with a halo)."""
        import torch.nn.functional as F

        (kh, kw), (sh, sw) = conv.kernel_size, conv.stride
        ph, pw = conv.padding if before is None else before
        height, width = x.shape[2:]
        out_h = (height + 2 * ph - kh) // sh + 1 if before is None else (height + ph + 1 - kh) // sh + 1
        out_w = (width + 2 * pw - kw) // sw + 1 if before is None else (width + pw + 1 - kw) // sw + 1
        if out is None:
            out = self.empty(x, conv.out_channels, out_h, out_w)
        tile = self._tile(out_h)
        for r0, r1 in _spans(out_h, tile):
            for c0, c1 in _spans(out_w, tile):
                rows = (r0 * sh - ph, (r1 - 1) * sh - ph + kh)
                cols = (c0 * sw - pw, (c1 - 1) * sw - pw + kw)
                window, pad = self._window(x, rows, cols)
                if pre is not None:
                    window = pre(window)
                if any(pad):
                    window = F.pad(window, pad)
                y = F.conv2d(window, conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups)
                if residual is not None:
                    y = residual(y, (r0, r1), (c0, c1))
                out[:, :, r0:r1, c0:c1] = y.to(self.storage, non_blocking=True)
        return out

    def norm_act(self, norm, x):
        """GroupNorm with the statistics of the whole map, then SiLU, as a function applied per tile."""
        import torch

        batch, channels = x.shape[:2]
        groups = norm.num_groups
        total = torch.zeros((2, batch, groups), dtype=torch.float64, device=self.storage)
        count = x[0, 0].numel() * (channels // groups)
        rows = max(1, 4 * self._tile(x.shape[2]) ** 2 // x.shape[3])  # chunks of about four tiles
        for step in (0, 1):  # the mean, then the variance around it: exact where sum of squares is not
            for r0, r1 in _spans(x.shape[2], rows):
                chunk = x[:, :, r0:r1].to(self.device).float().reshape(batch, groups, -1)
                if step == 0:
                    total[0] += chunk.sum(2).to(self.storage, torch.float64)
                else:
                    mean = (total[0] / count).to(self.device, torch.float32)
                    total[1] += ((chunk - mean[..., None]) ** 2).sum(2).to(self.storage, torch.float64)
        mean, var = total[0] / count, total[1] / count
        inv = (var + norm.eps).rsqrt()
        weight = norm.weight.double().to(self.storage).view(1, groups, -1)
        bias = norm.bias.double().to(self.storage).view(1, groups, -1)
        scale = (weight * inv[..., None]).reshape(batch, channels)
        shift = (bias - (mean * inv)[..., None] * weight).reshape(batch, channels)
        scale = scale.to(self.device, torch.float32)[..., None, None]
        shift = shift.to(self.device, torch.float32)[..., None, None]

        def apply(tile):
            return torch.nn.functional.silu(tile.float() * scale + shift).to(tile.dtype)

        return apply

    def resnet(self, block, x):
        if block.time_emb_proj is not None or block.upsample is not None or block.downsample is not None:
            raise UnsupportedVae("a VAE resnet with a time embedding or resampling")
        h = self.conv(block.conv1, x, pre=self.norm_act(block.norm1, x))
        shortcut, factor = block.conv_shortcut, block.output_scale_factor

        def add_input(y, rows, cols):
            skip, _ = self._window(x, rows, cols)
            if shortcut is not None:
                skip = shortcut(skip)
            return (skip + y) / factor

        # Without a shortcut conv the output overwrites the input in place: each tile reads only its own.
        out = x if shortcut is None else None
        return self.conv(block.conv2, h, pre=self.norm_act(block.norm2, h), out=out, residual=add_input)

    def middle(self, block, x):
        x = self.resnet(block.resnets[0], x)
        for attention, resnet in zip(block.attentions, block.resnets[1:], strict=True):
            if attention is not None:  # global attention at the latent size: small, and not tileable
                x = self.store(attention(x.to(self.device)))
            x = self.resnet(resnet, x)
        return x

    def upsample(self, upsampler, x):
        """Nearest 2x then a 3x3 conv, per output tile from a source window with a one-pixel halo."""
        import torch.nn.functional as F

        if upsampler.use_conv_transpose or upsampler.norm is not None or upsampler.conv.kernel_size != (3, 3):
            raise UnsupportedVae("an upsampler other than nearest 2x + 3x3 conv")
        conv = upsampler.conv
        height, width = x.shape[2:]
        out = self.empty(x, conv.out_channels, 2 * height, 2 * width)
        tile = max(2, self._tile(2 * height) // 2 * 2)
        for r0, r1 in _spans(2 * height, tile):
            for c0, c1 in _spans(2 * width, tile):
                window, pad = self._window(x, (r0 // 2 - 1, r1 // 2 + 1), (c0 // 2 - 1, c1 // 2 + 1))
                if any(pad):
                    window = F.pad(window, pad)
                window = F.interpolate(window, scale_factor=2.0, mode="nearest")[:, :, 1:-1, 1:-1]
                y = F.conv2d(window, conv.weight, conv.bias, 1, 0)
                out[:, :, r0:r1, c0:c1] = y.to(self.storage, non_blocking=True)
        return out

    def downsample(self, downsampler, x):
        """A stride-2 3x3 conv; with padding 0 diffusers pads one zero row and column after the image,
        which wraps around here on wrapped axes."""
        if downsampler.norm is not None or not downsampler.use_conv:
            raise UnsupportedVae("a downsampler other than a stride-2 conv")
        conv = downsampler.conv
        return self.conv(conv, x, before=(0, 0) if downsampler.padding == 0 else None)
