"""The few PyTorch modules ``minicnn.interop.to_torch`` needs where ``torch.nn`` has none.

PyTorch pads in 'constant', 'reflect', 'replicate' and 'circular' modes, pads a convolution
the same on both sides of an axis, has 'same' padding only for stride 1, and pools only with
the same padding on both sides. minicnn's layers go further; these modules compute what the
layer computes, in PyTorch, differentiably:

- ``SymmetricPad2d((left, right, top, bottom))``: mirror padding that repeats the edge
  (1 2 3 -> 1 1 2 3 3), as ``Pad(mode='symmetric')``.
- ``SamePad2d(kernel_size, stride, dilation, mode)``: the padding of ``Conv2D(padding='same')``
  for the input at hand (output ceil(n / stride); an odd total puts the extra row or column at
  the bottom or right), in any of minicnn's modes; a convolution without padding follows it.
- ``PerSidePool2d(kernel_size, stride, padding, mode, ceil_mode, count_include_pad)``: max or
  average pooling with ``((top, bottom), (left, right))`` padding, by minicnn's rules.
- ``Residual(block, shortcut=None)``: block(x) + shortcut(x) (x itself without a shortcut),
  as minicnn's Residual, with the attributes ``block`` and ``shortcut``.
- ``Concat(*branches)``: every branch on x, joined along the channels (dim 1), the
  branches in an nn.ModuleList ``branches``, as minicnn's Concat.

Only ``minicnn.interop`` imports this module, when asked for PyTorch. Without PyTorch the
module still imports (its classes are then plain, unused objects).
"""
from . import geometry

try:
    import torch
    import torch.nn.functional as TF
    _Module = torch.nn.Module
except ImportError:                    # PyTorch is optional; minicnn.interop says what to install
    torch = TF = None
    _Module = object

__all__ = ["SymmetricPad2d", "SamePad2d", "PerSidePool2d", "Residual", "Concat", "symmetric_pad",
           "pad2d"]

_TORCH_MODES = {"zeros": "constant", "constant": "constant", "reflect": "reflect",
                "replicate": "replicate", "circular": "circular"}


def symmetric_pad(x, left, right, top, bottom):
    """Mirror padding that repeats the edge pixel, on the last two axes (each pad <= size)."""
    if left or right:
        width = x.shape[-1]
        x = torch.cat([x[..., :left].flip(-1), x, x[..., width - right:].flip(-1)], dim=-1)
    if top or bottom:
        height = x.shape[-2]
        x = torch.cat([x[..., :top, :].flip(-2), x, x[..., height - bottom:, :].flip(-2)], dim=-2)
    return x


def pad2d(x, sides, mode, value=0.0):
    """Pad the last two axes by ``sides`` = (left, right, top, bottom) in a minicnn mode."""
    if not any(sides):
        return x
    if mode == "symmetric":
        return symmetric_pad(x, *sides)
    if _TORCH_MODES[mode] == "constant":
        return TF.pad(x, sides, mode="constant", value=value)
    return TF.pad(x, sides, mode=_TORCH_MODES[mode])


class SymmetricPad2d(_Module):
    """``Pad(padding, mode='symmetric')``: padding = (left, right, top, bottom), as PyTorch's
    padding modules take it."""

    def __init__(self, padding):
        super().__init__()
        self.padding = tuple(int(v) for v in padding)

    def forward(self, x):
        return symmetric_pad(x, *self.padding)

    def extra_repr(self):
        return repr(self.padding)


class SamePad2d(_Module):
    """The padding ``Conv2D(padding='same', padding_mode=mode)`` adds for each input size."""

    def __init__(self, kernel_size, stride=(1, 1), dilation=(1, 1), mode="zeros"):
        super().__init__()
        self.kernel_size, self.stride = tuple(kernel_size), tuple(stride)
        self.dilation, self.mode = tuple(dilation), mode

    def forward(self, x):
        (top, bottom), (left, right) = geometry.resolve_padding(
            "same", tuple(x.shape[-2:]), self.kernel_size, self.stride, self.dilation)
        return pad2d(x, (left, right, top, bottom), self.mode)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, "
                f"dilation={self.dilation}, mode={self.mode!r}")


class PerSidePool2d(_Module):
    """``Pool2D`` with padding ((top, bottom), (left, right)) that differs between the sides.

    The input is padded explicitly (minus infinity for max, zeros for average) and pooled
    without padding; the divisor of an average is the window's cells inside the padded
    input, or with ``count_include_pad=False`` inside the input. In ceil mode the last
    window must start inside the input or its leading padding (minicnn's and PyTorch's
    rule), so the result is cut to the size ``geometry.pool_output_size`` gives.
    """

    def __init__(self, kernel_size, stride, padding, mode="max", ceil_mode=False,
                 count_include_pad=True):
        super().__init__()
        self.kernel_size, self.stride = tuple(kernel_size), tuple(stride)
        self.padding = tuple(tuple(side) for side in padding)
        self.mode, self.ceil_mode = mode, bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x):
        (top, bottom), (left, right) = self.padding
        sides = (left, right, top, bottom)
        height, width = x.shape[-2:]
        args = dict(kernel_size=self.kernel_size, stride=self.stride, ceil_mode=self.ceil_mode)
        if self.mode == "max":
            out = TF.max_pool2d(TF.pad(x, sides, value=float("-inf")), **args)
        elif self.count_include_pad:
            out = TF.avg_pool2d(TF.pad(x, sides), **args)
        else:
            sums = TF.avg_pool2d(TF.pad(x, sides), divisor_override=1, **args)
            ones = torch.ones((1, 1, height, width), dtype=x.dtype, device=x.device)
            out = sums / TF.avg_pool2d(TF.pad(ones, sides), divisor_override=1, **args)
        oh = geometry.pool_output_size(height, self.kernel_size[0], self.stride[0], top, bottom,
                                       self.ceil_mode)
        ow = geometry.pool_output_size(width, self.kernel_size[1], self.stride[1], left, right,
                                       self.ceil_mode)
        return out[..., :oh, :ow]

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"mode={self.mode!r}, ceil_mode={self.ceil_mode}, "
                f"count_include_pad={self.count_include_pad}")


class Residual(_Module):
    """block(x) + shortcut(x); the shortcut is the identity when None."""

    def __init__(self, block, shortcut=None):
        super().__init__()
        self.block, self.shortcut = block, shortcut

    def forward(self, x):
        return self.block(x) + (x if self.shortcut is None else self.shortcut(x))


class Concat(_Module):
    """Every branch on the same input, the outputs joined along dim 1 (the channels)."""

    def __init__(self, *branches):
        super().__init__()
        self.branches = torch.nn.ModuleList(branches)

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.branches], dim=1)
