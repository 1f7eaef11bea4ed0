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
    # Lean: an upsampler's output and a resnet's inner map are recomputed where read instead of stored,
    # for about 0.4 of the memory of whole maps at about 1.4x the time.
    lean: bool = False


class UnsupportedVae(ValueError):
    """The VAE has a layer this module does not know how to tile: the job fails saying which, since a
    plain decode is what the plan found too big. Every AutoencoderKL of SD 1.x, 2.x and SDXL tiles."""


def decode(vae, latents, tiling: Tiling):
    """Image tensor (B, 3, 8h, 8w) in [-1, 1] for latents already unscaled (as vae.decode takes them)."""
    import torch

    pass_ = _Pass(vae, tiling, image_height=latents.shape[2] * SCALE)
    decoder = vae.decoder
    with torch.no_grad():
        x = _Stored(pass_, latents.to(pass_.storage, pass_.dtype))
        if vae.post_quant_conv is not None:
            x = pass_.store(pass_.conv(vae.post_quant_conv, x))
        x = pass_.store(pass_.conv(decoder.conv_in, x))
        x = pass_.middle(decoder.mid_block, x)
        for block in decoder.up_blocks:
            for resnet in block.resnets:
                x = pass_.resnet(resnet, x)
            for upsampler in block.upsamplers or ():
                x = pass_.upsample(upsampler, x)
        x = pass_.conv(decoder.conv_out, x, pre=pass_.norm_act(decoder.conv_norm_out, x))
        return pass_.store(x).tensor


def encode(vae, image, tiling: Tiling):
    """The latent distribution (diffusers' DiagonalGaussianDistribution) of an image in [-1, 1]."""
    import torch
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    pass_ = _Pass(vae, tiling, image_height=image.shape[2])
    encoder = vae.encoder
    with torch.no_grad():
        x = _Stored(pass_, image.to(pass_.storage, pass_.dtype))
        x = pass_.store(pass_.conv(encoder.conv_in, x))
        for block in encoder.down_blocks:
            for resnet in block.resnets:
                x = pass_.resnet(resnet, x)
            for downsampler in block.downsamplers or ():
                x = pass_.store(pass_.downsample(downsampler, x))
        x = pass_.middle(encoder.mid_block, x)
        x = pass_.store(pass_.conv(encoder.conv_out, x, pre=pass_.norm_act(encoder.conv_norm_out, x)))
        if vae.quant_conv is not None:
            x = pass_.store(pass_.conv(vae.quant_conv, x))
        return DiagonalGaussianDistribution(x.tensor.to(pass_.device))


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


class _Stored:
    """A whole feature map held on the pass's storage device."""

    def __init__(self, pass_, tensor):
        self.pass_, self.tensor, self.shape = pass_, tensor, tuple(tensor.shape)

    def window(self, rows: tuple[int, int], cols: tuple[int, int]):
        """map[..., rows, cols] on the compute device with circular neighbours across wrapped edges, and
        the zero padding (left, right, top, bottom) the other edges still need."""
        tiling = self.pass_.tiling
        row_index, row_pad = _axis(self.shape[2], *rows, tiling.wrap_y)
        col_index, col_pad = _axis(self.shape[3], *cols, tiling.wrap_x)
        x = self.tensor
        window = x[:, :, row_index] if isinstance(row_index, slice) else x.index_select(2, row_index)
        window = window[..., col_index] if isinstance(col_index, slice) else window.index_select(3, col_index)
        return window.to(self.pass_.device, non_blocking=True), (*col_pad, *row_pad)


class _Computed:
    """A feature map never held whole: any window of it is computed from the map it comes from."""

    def __init__(self, pass_, shape, compute):
        self.pass_, self.shape, self.compute = pass_, tuple(shape), compute

    def window(self, rows: tuple[int, int], cols: tuple[int, int]):
        """As _Stored.window: wrapped ranges are computed as they are (the sources wrap), others clipped."""
        tiling = self.pass_.tiling
        (r0, r1), row_pad = _clip(self.shape[2], rows, tiling.wrap_y)
        (c0, c1), col_pad = _clip(self.shape[3], cols, tiling.wrap_x)
        return self.compute((r0, r1), (c0, c1)), (*col_pad, *row_pad)


def _clip(size: int, span: tuple[int, int], wrap: bool):
    if wrap:
        return span, (0, 0)
    low, high = max(span[0], 0), min(span[1], size)
    return (low, high), (low - span[0], span[1] - high)


class _Pass:
    """One tiled run through a VAE: the layer operations on whole (stored or computed) feature maps."""

    def __init__(self, vae, tiling: Tiling, image_height: int):
        import torch

        parameter = next(vae.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype
        self.storage = torch.device(tiling.storage) if tiling.storage else self.device
        self.tiling, self.image_height = tiling, image_height

    def _tile(self, height: int) -> int:
        """The tile side at a feature map `height` rows tall: the same image area at every level."""
        return max(1, self.tiling.tile * height // self.image_height)

    def _tiles(self, shape):
        tile = self._tile(shape[2])
        return [(rows, cols) for rows in _spans(shape[2], tile) for cols in _spans(shape[3], tile)]

    def store(self, source, into=None, reach: int = 0):
        """Compute a map tile by tile into storage: a new tensor, or `into` (the map it reads, in place).

        In place with `reach` > 0 (tiles read that many rows of `into` past their own), a band of rows is
        written only once no later band reads it; the first band waits for the last when y wraps.
        """
        import torch

        if isinstance(source, _Stored):
            return source
        batch, channels, height, width = source.shape
        if into is None:
            target = torch.empty(source.shape, dtype=self.dtype, device=self.storage)
            for rows, cols in self._tiles(source.shape):
                target[:, :, slice(*rows), slice(*cols)] = source.window(rows, cols)[0].to(self.storage)
            return _Stored(self, target)
        target, tile, pending = into.tensor, self._tile(height), []
        for r0, r1 in _spans(height, max(tile, reach)):
            band = torch.empty((batch, channels, r1 - r0, width), dtype=self.dtype, device=self.storage)
            for cols in _spans(width, tile):
                band[..., slice(*cols)] = source.window((r0, r1), cols)[0].to(self.storage)
            pending.append((r0, r1, band))
            # Reaching past its rows, the next band still reads this one (and, wrapping, the last band reads
            # the first): write the band before it only, and the first at the end.
            waiting = 0 if not reach else 2 if self.tiling.wrap_y else 1
            while len(pending) > waiting:
                start, stop, done = pending.pop(1 if waiting == 2 else 0)
                target[:, :, start:stop] = done
        for start, stop, done in pending:
            target[:, :, start:stop] = done
        return into

    def conv(self, conv, source, pre=None, before=None, residual=None) -> _Computed:
        """conv(pre(source)) as a computed map: `before` is the padding before the first row and column
        (default: the conv's own, on both sides), `residual(y, rows, cols)` what to add to each tile."""
        import torch.nn.functional as F

        (kh, kw), (sh, sw) = conv.kernel_size, conv.stride
        ph, pw = conv.padding if before is None else before
        height, width = source.shape[2:]
        after_h, after_w = (ph, pw) if before is None else (1, 1)
        shape = (
            source.shape[0],
            conv.out_channels,
            (height + ph + after_h - kh) // sh + 1,
            (width + pw + after_w - kw) // sw + 1,
        )

        def compute(rows, cols):
            (r0, r1), (c0, c1) = rows, cols
            window, pad = source.window(
                (r0 * sh - ph, (r1 - 1) * sh - ph + kh), (c0 * sw - pw, (c1 - 1) * sw - pw + kw)
            )
            if pre is not None:
                window = pre(window)
            if any(pad):
                window = F.pad(window, pad)
            y = F.conv2d(window, conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups)
            return y if residual is None else residual(y, rows, cols)

        return _Computed(self, shape, compute)

    def norm_act(self, norm, source):
        """GroupNorm with the statistics of the whole map, then SiLU, as a function applied per tile.

        The statistics are merged tile by tile (Chan's parallel mean and variance, in float64), so a
        computed map is computed once for them.
        """
        import torch

        batch, channels = source.shape[:2]
        groups = norm.num_groups
        count = 0
        mean = torch.zeros((batch, groups), dtype=torch.float64)
        squares = torch.zeros((batch, groups), dtype=torch.float64)
        for rows, cols in self._tiles(source.shape):
            tile = source.window(rows, cols)[0].float().reshape(batch, groups, -1)
            tile_mean = tile.mean(2)
            tile_squares = ((tile - tile_mean[..., None]) ** 2).sum(2)
            n = tile.shape[2]
            tile_mean, tile_squares = tile_mean.cpu().double(), tile_squares.cpu().double()
            delta, total = tile_mean - mean, count + n
            mean += delta * (n / total)
            squares += tile_squares + delta**2 * (count * n / total)
            count = total
        inv = (squares / count + norm.eps).rsqrt()
        weight = norm.weight.detach().double().cpu().view(1, groups, -1)
        bias = norm.bias.detach().double().cpu().view(1, groups, -1)
        scale = (weight * inv[..., None]).reshape(batch, channels)
        shift = (bias - (mean * inv)[..., None] * weight).reshape(batch, channels)
        scale = scale.to(self.device, torch.float32)[..., None, None]
        shift = shift.to(self.device, torch.float32)[..., None, None]

        def apply(tile):
            # One new tensor (two from fp16): the tile may be a view of a stored map, never changed here.
            out = tile.float() * scale
            return torch.nn.functional.silu(out.add_(shift), inplace=True).to(tile.dtype)

        return apply

    def resnet(self, block, x):
        """A resnet block. Lean, its inner map is computed where read instead of stored."""
        if block.time_emb_proj is not None or block.upsample is not None or block.downsample is not None:
            raise UnsupportedVae("a VAE resnet with a time embedding or resampling")
        h = self.conv(block.conv1, x, pre=self.norm_act(block.norm1, x))
        if not self.tiling.lean:
            h = self.store(h)
        shortcut, factor = block.conv_shortcut, block.output_scale_factor

        def add_input(y, rows, cols):
            skip, _ = x.window(rows, cols)
            if shortcut is not None:
                skip = shortcut(skip)
            y += skip  # y is this tile's own new conv output
            return y if factor == 1 else y.div_(factor)

        out = self.conv(block.conv2, h, pre=self.norm_act(block.norm2, h), residual=add_input)
        if shortcut is None and isinstance(x, _Stored):
            # The output overwrites the input: stored, a tile reads only its own input; lean, two rows more.
            return self.store(out, into=x, reach=2 if self.tiling.lean else 0)
        return self.store(out)

    def middle(self, block, x):
        x = self.resnet(block.resnets[0], x)
        for attention, resnet in zip(block.attentions, block.resnets[1:], strict=True):
            if attention is not None:  # global attention at the latent size: small, and not tileable
                x = _Stored(self, attention(x.tensor.to(self.device)).to(self.storage))
            x = self.resnet(resnet, x)
        return x

    def upsample(self, upsampler, x):
        """Nearest 2x then a 3x3 conv, each window from a source window one pixel wider; lean, the
        (4x larger) result is computed where read instead of stored."""
        import torch.nn.functional as F

        if upsampler.use_conv_transpose or upsampler.norm is not None or upsampler.conv.kernel_size != (3, 3):
            raise UnsupportedVae("an upsampler other than nearest 2x + 3x3 conv")
        conv = upsampler.conv
        batch, _, height, width = x.shape

        def compute(rows, cols):
            (r0, r1), (c0, c1) = rows, cols
            source_rows, source_cols = ((r0 - 1) // 2, r1 // 2 + 1), ((c0 - 1) // 2, c1 // 2 + 1)
            window, pad = x.window(source_rows, source_cols)
            if any(pad):
                window = F.pad(window, pad)
            window = F.interpolate(window, scale_factor=2.0, mode="nearest")
            top, left = r0 - 1 - 2 * source_rows[0], c0 - 1 - 2 * source_cols[0]
            window = window[:, :, top : top + r1 - r0 + 2, left : left + c1 - c0 + 2]
            return F.conv2d(window, conv.weight, conv.bias, 1, 0)

        result = _Computed(self, (batch, conv.out_channels, 2 * height, 2 * width), compute)
        return result if self.tiling.lean else self.store(result)

    def downsample(self, downsampler, x):
        """A stride-2 3x3 conv; with padding 0 diffusers pads one zero row and column after the image,
        which wraps around here on wrapped axes."""
        if downsampler.norm is not None or not downsampler.use_conv:
            raise UnsupportedVae("a downsampler other than a stride-2 conv")
        return self.conv(downsampler.conv, x, before=(0, 0) if downsampler.padding == 0 else None)
