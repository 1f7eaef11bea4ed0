"""Seamless padding: convolutions that wrap around the image edges for the length of one pipeline call.

Every padded nn.Conv2d in the UNet and the VAE pads circularly on the wrapped axes before its convolution,
which keeps its own zero padding on the other axes, so the left edge continues the right edge.

Some VAEs pad by hand instead of through a conv's `padding` (the encoders' strided downsamplers, which
pad one zero row and column in their forward; Qwen-Image's causal 3D convs that call F.pad and its
ZeroPad2d before each downsampling conv); those pads wrap on the same axes too. A
transformer's rotary positions are not padding: its wrap is the worker's business, not this module's.
"""

import contextlib
import types

_MARK = "_promptscape_seamless"


def _padded_conv_forward(conv, wrap_x: bool, wrap_y: bool):
    import torch.nn.functional as F

    pad_y, pad_x = conv.padding

    # One circular pad for the wrapped axes; the convolution zero-pads the others itself, as it always did.
    wrap = (pad_x * wrap_x, pad_x * wrap_x, pad_y * wrap_y, pad_y * wrap_y)
    native = (0 if wrap_y else pad_y, 0 if wrap_x else pad_x)

    def conv_forward(self, x, weight, bias):
        if any(wrap):
            x = F.pad(x, wrap, mode="circular")
        return F.conv2d(x, weight, bias, self.stride, native, self.dilation, self.groups)

    return types.MethodType(conv_forward, conv)


def _causal_conv_forward(conv, wrap_x: bool, wrap_y: bool):
    """A causal 3D conv (pads in forward from `_padding`: W, W, H, H, time, 0): circular in W and H as
    asked, before its own pad, which keeps the rest (time, always causal zeros). Its cached frames are
    wrapped alike, so they still line up with the padded input."""
    import torch.nn.functional as F

    left, right, top, bottom = conv._padding[:4]
    wrap = (left * wrap_x, right * wrap_x, top * wrap_y, bottom * wrap_y, 0, 0)  # W, H, not time
    kept = (0, 0) if wrap_x else (left, right)
    kept += ((0, 0) if wrap_y else (top, bottom)) + tuple(conv._padding[4:])
    forward = type(conv).forward

    def causal_forward(self, x, cache_x=None):
        x = F.pad(x, wrap, mode="circular")
        if cache_x is not None:
            cache_x = F.pad(cache_x.to(x.device), wrap, mode="circular")
        return forward(self, x, cache_x)

    return types.MethodType(causal_forward, conv), kept


def _wrapped_pad(padding, wrap_x: bool, wrap_y: bool):
    """pad(x): a (left, right, top, bottom) pad that is circular on the wrapped axes, zeros elsewhere."""
    import torch.nn.functional as F

    left, right, top, bottom = padding
    wrap = (left * wrap_x, right * wrap_x, top * wrap_y, bottom * wrap_y)
    zeros = (0 if wrap_x else left, 0 if wrap_x else right, 0 if wrap_y else top, 0 if wrap_y else bottom)
    return lambda x: F.pad(F.pad(x, wrap, mode="circular"), zeros)


def _zero_pad_forward(module, wrap_x: bool, wrap_y: bool):
    """A ZeroPad2d (left, right, top, bottom) before a strided conv: circular on the wrapped axes."""
    pad = _wrapped_pad(module.padding, wrap_x, wrap_y)
    return types.MethodType(lambda self, x: pad(x), module)


def _downsample_forward(module, wrap_x: bool, wrap_y: bool):
    """A diffusers Downsample2D that zero-pads right and bottom in its forward, then convolves."""
    pad = _wrapped_pad((0, 1, 0, 1), wrap_x, wrap_y)
    return types.MethodType(lambda self, x, *args, **kwargs: self.conv(pad(x)), module)


def _parts(pipe):
    return [part for part in (getattr(pipe, "unet", None), getattr(pipe, "vae", None)) if part is not None]


def _padded_convs(pipe):
    """Every Conv2d with numeric padding in the pipeline's UNet and VAE (1x1 convs pad nothing)."""
    import torch.nn as nn

    for part in _parts(pipe):
        for module in part.modules():
            if (
                isinstance(module, nn.Conv2d)
                and isinstance(module.padding, tuple)
                and any(module.padding)
                and module.padding_mode == "zeros"
            ):
                yield module


def _hand_pads(pipe):
    """(forward maker, module) for each module of the VAE that pads by hand: causal 3D convs, zero pads,
    and downsamplers that pad in their forward (conv unpadded, no norm before it)."""
    import torch.nn as nn

    vae = getattr(pipe, "vae", None)
    for module in vae.modules() if vae is not None else ():
        if isinstance(module, nn.Conv3d) and any(getattr(module, "_padding", (0,))[:4]):
            yield "causal", module
        elif isinstance(module, nn.ZeroPad2d):
            yield _zero_pad_forward, module
        elif (
            getattr(module, "use_conv", False)
            and getattr(module, "padding", None) == 0
            and getattr(module, "norm", 0) is None
            and isinstance(getattr(module, "conv", None), nn.Conv2d)
        ):
            yield _downsample_forward, module


def is_patched(pipe) -> bool:
    """Whether any module of the pipeline is currently wrapped by `seamless`."""
    return any(hasattr(module, _MARK) for part in _parts(pipe) for module in part.modules())


@contextlib.contextmanager
def seamless(pipe, wrap_x: bool, wrap_y: bool):
    """Wrap the pipeline's convolutions on the chosen axes inside the `with` block; undo them on exit.

    Undoing removes the per-instance overrides, so the class's own methods are used again exactly as
    before, also when the block raises. With neither axis wrapped nothing is touched.
    """
    if not (wrap_x or wrap_y):
        yield 0
        return
    if is_patched(pipe):
        raise RuntimeError("the pipeline is already patched for seamless padding")
    undo = []
    try:
        for conv in _padded_convs(pipe):
            conv._conv_forward = _padded_conv_forward(conv, wrap_x, wrap_y)
            undo.append((conv, "_conv_forward", None))
        for make, module in _hand_pads(pipe):
            if make == "causal":
                original = module._padding
                module.forward, module._padding = _causal_conv_forward(module, wrap_x, wrap_y)
                undo.append((module, "forward", original))
            else:
                module.forward = make(module, wrap_x, wrap_y)
                undo.append((module, "forward", None))
        for module, _, _ in undo:
            setattr(module, _MARK, True)
        yield len(undo)
    finally:
        for module, attribute, padding in undo:
            module.__dict__.pop(attribute, None)
            module.__dict__.pop(_MARK, None)
            if padding is not None:
                module._padding = padding
