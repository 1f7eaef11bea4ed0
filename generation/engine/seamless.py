"""Seamless padding: convolutions that wrap around the image edges for the length of one pipeline call.

Every padded nn.Conv2d in the UNet and the VAE pads circularly on the wrapped axes before its convolution,
which keeps its own zero padding on the other axes, so the left edge continues the right edge.
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


def _padded_convs(pipe):
    """Every Conv2d with numeric padding in the pipeline's UNet and VAE (1x1 convs pad nothing)."""
    import torch.nn as nn

    for part in (getattr(pipe, "unet", None), getattr(pipe, "vae", None)):
        if part is None:
            continue
        for module in part.modules():
            if (
                isinstance(module, nn.Conv2d)
                and isinstance(module.padding, tuple)
                and any(module.padding)
                and module.padding_mode == "zeros"
            ):
                yield module


def is_patched(pipe) -> bool:
    """Whether any convolution of the pipeline is currently wrapped by `seamless`."""
    import torch.nn as nn

    return any(
        hasattr(module, _MARK)
        for part in (getattr(pipe, "unet", None), getattr(pipe, "vae", None))
        if part is not None
        for module in part.modules()
        if isinstance(module, nn.Conv2d)
    )


@contextlib.contextmanager
def seamless(pipe, wrap_x: bool, wrap_y: bool):
    """Wrap the pipeline's convolutions on the chosen axes inside the `with` block; undo them on exit.

    Undoing removes the per-instance override, so the class's own `_conv_forward` is used again exactly
    as before, also when the block raises. With neither axis wrapped nothing is touched.
    """
    if not (wrap_x or wrap_y):
        yield 0
        return
    if is_patched(pipe):
        raise RuntimeError("the pipeline is already patched for seamless padding")
    patched = []
    try:
        for conv in _padded_convs(pipe):
            conv._conv_forward = _padded_conv_forward(conv, wrap_x, wrap_y)
            setattr(conv, _MARK, True)
            patched.append(conv)
        yield len(patched)
    finally:
        for conv in patched:
            del conv._conv_forward
            delattr(conv, _MARK)
