"""Exactly periodic rotary positions: a transformer that wraps like a torus, for one pipeline call.

Attention with rotary positions sees only the angle (p - q) * f between two tokens. Snapping each
frequency f of a wrapped axis to the nearest k * 2π / N (N tokens across, k whole) makes that angle the
same for p and p + N, so the token grid closes on itself and rolling the image by whole tokens rolls the
output alike. The text tokens sit at one position on the wrapped axes; `shift` moves them along with a
rolled image (the worker generates unrolled, shift 0; the tests prove the symmetry with it).

The trained frequencies change (the low ones collapse to 0), which is why `wrap_mode="periodic"` is opt-in.
Each family keeps its rotary embedding in its own place, so each has a patch here, named by the family
table's `rope` field; the patches are per-instance attributes that the exit removes, as seamless.py does.
"""

import contextlib
import math

_MARK = "_promptscape_periodic"


def _angles(positions, dim: int, theta: float, period: int):
    """(..., dim/2) float32 angles of integer `positions` with the frequencies 1/theta^(2i/dim) snapped
    to whole turns over `period` tokens; computed from (p*k) mod period, so p and p + period agree
    bit for bit."""
    import torch

    frequencies = theta ** -(torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    turns = torch.round(frequencies * period / (2 * math.pi)).to(torch.int64).to(positions.device)
    whole = torch.remainder(positions.to(torch.int64)[..., None] * turns, period)
    return whole.to(torch.float32) * (2 * math.pi / period)


def _zimage(transformer, periods: dict, shift: dict, undo: list) -> None:
    """Z-Image indexes per-axis tables (frame, height, width) of a RopeEmbedder: a copy with the wrapped
    axes' tables snapped stands in, and the caption's (and padding's) ids move by `shift`."""
    import torch

    stock = transformer.rope_embedder
    snapped = type(stock)(theta=stock.theta, axes_dims=stock.axes_dims, axes_lens=stock.axes_lens)
    tables = snapped.precompute_freqs_cis(stock.axes_dims, stock.axes_lens, theta=stock.theta)
    for axis, period in periods.items():
        angles = _angles(torch.arange(stock.axes_lens[axis]), stock.axes_dims[axis], stock.theta, period)
        tables[axis] = torch.polar(torch.ones_like(angles), angles)
    snapped.freqs_cis = tables
    patchify = transformer.patchify_and_embed

    def moved(ids, rows):
        ids = ids.clone()
        for axis, step in shift.items():
            ids[rows, axis] += step
        return ids

    def patchify_and_embed(*args, **kwargs):
        x, cap, sizes, x_ids, cap_ids, x_pad, cap_pad = patchify(*args, **kwargs)
        # The image's padding tokens sit at the origin, as the text does: they move with it.
        x_ids = [moved(ids, pad) for ids, pad in zip(x_ids, x_pad, strict=True)]
        cap_ids = [moved(ids, slice(None)) for ids in cap_ids]
        return x, cap, sizes, x_ids, cap_ids, x_pad, cap_pad

    _set(transformer, "rope_embedder", snapped, undo)
    _set(transformer, "patchify_and_embed", patchify_and_embed, undo)


def _flux2(transformer, periods: dict, shift: dict, undo: list) -> None:
    """FLUX.2 takes (t, h, w, l) ids and returns real (cos, sin) per axis: the wrapped axes' columns are
    recomputed snapped; the text ids (given apart, as txt_ids) move by `shift`."""
    embed = transformer.pos_embed
    stock_embed, stock_forward = embed.forward, transformer.forward

    def pos_embed(ids):
        cos, sin = stock_embed(ids)
        for axis, period in periods.items():
            start, end = sum(embed.axes_dim[:axis]), sum(embed.axes_dim[: axis + 1])
            angles = _angles(ids[..., axis], embed.axes_dim[axis], embed.theta, period)
            cos[..., start:end] = angles.cos().repeat_interleave(2, dim=-1).to(cos)
            sin[..., start:end] = angles.sin().repeat_interleave(2, dim=-1).to(sin)
        return cos, sin

    def forward(*args, txt_ids=None, **kwargs):
        if txt_ids is not None and shift:
            txt_ids = txt_ids.clone()
            for axis, step in shift.items():
                txt_ids[..., axis] += step
        return stock_forward(*args, txt_ids=txt_ids, **kwargs)

    _set(embed, "forward", pos_embed, undo)
    _set(transformer, "forward", forward, undo)


def _qwen_image(transformer, periods: dict, shift: dict, undo: list) -> None:
    """Qwen-Image builds image and text angles together from the image's (frame, height, width); the
    image's positions are centred (scale_rope), the text's run on after the largest side on every axis.
    Its cached tables are left alone: this forward computes the wrapped axes itself."""
    import torch

    from ..errors import InvalidRequest

    embed = transformer.pos_embed
    if type(embed).__name__ != "QwenEmbedRope":
        raise InvalidRequest(f"wrap_mode periodic does not know {type(embed).__name__}: use wrap_mode roll")

    def snapped(positions, axis, like):
        angles = _angles(positions, embed.axes_dim[axis], embed.theta, periods[axis])
        return torch.polar(torch.ones_like(angles), angles).to(like)

    stock_embed = embed.forward

    def pos_embed(video_fhw, device=None, max_txt_seq_len=None):
        images, text = stock_embed(video_fhw, device=device, max_txt_seq_len=max_txt_seq_len)
        shapes = video_fhw[0] if isinstance(video_fhw, list) else video_fhw
        shapes = shapes if isinstance(shapes, list) else [shapes]
        if len(shapes) != 1:  # reference images beside the drawn one: not a grid that wraps
            raise InvalidRequest("wrap_mode periodic draws one image at a time: use wrap_mode roll")
        frames, height, width = shapes[0]
        sizes = [dim // 2 for dim in embed.axes_dim]
        centred = (lambda n: torch.arange(n) - (n - n // 2)) if embed.scale_rope else torch.arange
        image_parts = list(images.view(frames, height, width, -1).split(sizes, dim=-1))
        text_parts = list(text.split(sizes, dim=-1))
        first_text = max(height // 2, width // 2) if embed.scale_rope else max(height, width)
        text_positions = torch.arange(first_text, first_text + text.shape[0], device=images.device)
        for axis, period in periods.items():
            shape = [1, 1, 1, -1]
            shape[axis] = (height, width)[axis - 1]
            if shape[axis] != period:
                raise RuntimeError(f"periodic over {period} tokens, but the image has {shape[axis]}")
            line = snapped(centred(shape[axis]).to(images.device), axis, images)
            image_parts[axis] = line.view(shape).expand_as(image_parts[axis])
            text_parts[axis] = snapped(text_positions + shift.get(axis, 0), axis, text)
        return torch.cat(image_parts, dim=-1).reshape(images.shape), torch.cat(text_parts, dim=-1)

    _set(embed, "forward", pos_embed, undo)


def _set(module, attribute, value, undo: list) -> None:
    """Set a per-instance attribute, remembering what the instance held before (an offloading hook's
    forward, or nothing) so the exit puts exactly that back."""
    undo.append((module, attribute, module.__dict__.get(attribute, _ABSENT)))
    module.__dict__[attribute] = value


_ABSENT = object()
_PATCHES = {"zimage": _zimage, "flux2": _flux2, "qwen-image": _qwen_image}


@contextlib.contextmanager
def periodic_rope(transformer, rope: str, rows: int, columns: int, wrap_x: bool, wrap_y: bool, shift=(0, 0)):
    """Inside the block the transformer's rotary positions close on themselves over `columns` tokens
    (wrap_x) and `rows` tokens (wrap_y); `shift` (rows, columns) of tokens moves the text's positions
    with an image rolled by as many. On exit every per-instance patch is removed, also when the block
    raises, so the class's own methods and the stock embedder run again exactly as before."""
    from ..errors import InvalidRequest

    if rope not in _PATCHES:
        raise InvalidRequest("this model's rotary positions cannot be made periodic: use wrap_mode roll")
    if getattr(transformer, _MARK, False):
        raise RuntimeError("the transformer's rotary positions are already periodic")
    periods = {axis: count for axis, count, wrapped in ((1, rows, wrap_y), (2, columns, wrap_x)) if wrapped}
    moves = {
        axis: step % periods[axis]
        for axis, step in zip((1, 2), shift, strict=True)
        if axis in periods and step
    }
    undo = []
    try:
        if periods:
            _PATCHES[rope](transformer, periods, moves, undo)
            transformer.__dict__[_MARK] = True
        yield len(undo)
    finally:
        for module, attribute, before in reversed(undo):
            module.__dict__.pop(attribute, None)
            if before is not _ABSENT:
                module.__dict__[attribute] = before
        transformer.__dict__.pop(_MARK, None)
