"""Pooling layers: Pool2D (max or average), MaxPool2D, AvgPool2D, GlobalAvgPool2D and
GlobalMaxPool2D."""
import numpy as np

from .. import functional as F
from ..backend import ops
from .base import Layer, as_float_input, as_tuples, fixed

__all__ = ["POOL_MODES", "Pool2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "GlobalMaxPool2D"]

POOL_MODES = ("max", "avg")


def _float_dout(dout, dtype):
    """dout as an array in the forward's dtype (functional rejects non-float dout)."""
    dout = np.asarray(dout)
    return dout.astype(dtype, copy=False) if dout.dtype.kind == "f" else dout


class Pool2D(Layer):
    """2-d pooling of each channel on its own, without parameters.

    Input (N, C, H, W), float32 or float64 (the output keeps the dtype); output
    (N, C, OH, OW) with, per axis, OH = floor((H + pad_before + pad_after - kh) / stride) + 1
    (ceil instead with ``ceil_mode``, as in PyTorch: the last window may hang over the
    end but must start inside the input or the leading padding).

    kernel_size, stride: an int or (h, w); stride None means kernel_size.
    padding: an int, (h, w), ((top, bottom), (left, right)), the flat (left, right, top,
    bottom) of torch.nn.functional.pad, or 'valid'; each side at
    most kernel // 2 in its axis (as in PyTorch), so every window overlaps the input.
    mode 'max': padding counts as minus infinity. NaN rule: a NaN in a window wins
    (the output is NaN, as in PyTorch); otherwise ties go to the first maximal element
    in row-major window order, which alone receives the gradient.
    mode 'avg': the window sum over, with count_include_pad, the window cells inside
    the padded input, else over the real input cells only (PyTorch's rule).
    """

    defaults = {"stride": None, "padding": 0, "mode": "max", "ceil_mode": False,
                "count_include_pad": True}
    kernel_size, stride, padding = fixed("kernel_size"), fixed("stride"), fixed("padding")
    mode, ceil_mode = fixed("mode"), fixed("ceil_mode")
    count_include_pad = fixed("count_include_pad")

    def __init__(self, kernel_size, stride=None, padding=0, mode="max", ceil_mode=False,
                 count_include_pad=True):
        super().__init__()
        owner = f"{type(self).__name__}(kernel_size={as_tuples(kernel_size)!r})"
        if not isinstance(mode, str) or mode not in POOL_MODES:
            raise ValueError(f"{owner}: mode must be one of {list(POOL_MODES)}, got mode={mode!r}")
        for name, v in (("ceil_mode", ceil_mode), ("count_include_pad", count_include_pad)):
            if not isinstance(v, (bool, np.bool_)):
                raise TypeError(f"{owner}: {name} must be True or False, got {v!r}")
        if mode == "max" and not count_include_pad:
            raise ValueError(f"{owner}: count_include_pad=False needs mode='avg', got mode='max'")
        self._kernel_size, self._stride, self._padding = F.pool_args(kernel_size, stride,
                                                                     padding, owner)
        self._mode = mode
        self._ceil_mode = bool(ceil_mode)
        self._count_include_pad = bool(count_include_pad)
        self._args = {"kernel_size": as_tuples(kernel_size), "stride": as_tuples(stride),
                      "padding": as_tuples(padding)}
        self.cache = None

    def get_config(self):
        return dict(self._args, mode=self.mode, ceil_mode=self.ceil_mode,
                    count_include_pad=self.count_include_pad)

    def forward(self, x, training=True):
        owner = self
        x = as_float_input(x, owner, None)
        two = False
        if self.mode == "max":
            two = self._two_by_two(x.shape)
            if two:
                out, argmax = ops.max_pool2d_2x2(x, owner)
            else:
                out, argmax = ops.max_pool2d(x, self.kernel_size, self.stride, self.padding,
                                           self.ceil_mode, owner)
        else:
            out = ops.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                               self.count_include_pad, owner)
            argmax = None
        self.cache = (x.shape, x.dtype, argmax, two) if training else None
        return out

    def _two_by_two(self, shape):
        """Whether this is MaxPool2D(2)'s case, with its own kernels (max_pool2d_2x2): 2x2
        windows at stride 2, unpadded, each wholly inside the input (ceil_mode only adds a
        clipped window when a size is odd)."""
        return (self.kernel_size == (2, 2) and self.stride == (2, 2)
                and self.padding == ((0, 0), (0, 0)) and len(shape) == 4
                and min(shape[2:]) >= 2
                and not (self.ceil_mode and (shape[2] % 2 or shape[3] % 2)))

    def backward(self, dout):
        self._backward_check()
        shape, dtype, argmax, two = self.cache
        dout = _float_dout(dout, dtype)
        if two:
            return ops.max_pool2d_2x2_backward(dout, argmax, shape, owner=self)
        if self.mode == "max":
            return ops.max_pool2d_backward(dout, argmax, shape, owner=self)
        return ops.avg_pool2d_backward(dout, shape, self.kernel_size, self.stride, self.padding,
                                     self.ceil_mode, self.count_include_pad, owner=self)

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self!r}: input_shape must be (C, H, W), got {tuple(input_shape)}")
        c, h, w = input_shape
        oh, ow = F.pool_output_hw((h, w), self.kernel_size, self.stride, self.padding,
                                  self.ceil_mode, repr(self))
        return (c, oh, ow)

    def macs(self, input_shape):
        return 0

    def receptive_params(self):
        return self.kernel_size, self.stride, (1, 1)


class MaxPool2D(Pool2D):
    """Max pooling: ``Pool2D(kernel_size, stride, padding, mode='max', ceil_mode=ceil_mode)``.

    NaN rule: a NaN in a window wins; otherwise ties go to the first maximal element
    in row-major window order (see Pool2D).
    """

    defaults = {"stride": None, "padding": 0, "ceil_mode": False}

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__(kernel_size, stride, padding, "max", ceil_mode)

    def get_config(self):
        return dict(self._args, ceil_mode=self.ceil_mode)


class AvgPool2D(Pool2D):
    """Average pooling: ``Pool2D(..., mode='avg')``; see Pool2D for count_include_pad."""

    defaults = {"stride": None, "padding": 0, "ceil_mode": False, "count_include_pad": True}

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(kernel_size, stride, padding, "avg", ceil_mode, count_include_pad)

    def get_config(self):
        return dict(self._args, ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad)


class GlobalAvgPool2D(Layer):
    """The mean of each channel over the whole H x W: (N, C, H, W) -> (N, C, 1, 1).

    Its window is the whole input, so its receptive-field step depends on the input size
    (receptive_params_for); receptive_params() alone is None.
    """

    def __init__(self):
        super().__init__()
        self.cache = None

    def forward(self, x, training=True):
        x = as_float_input(x, self, None)
        out = ops.global_avg_pool2d(x, owner=self)
        self.cache = (x.shape, x.dtype) if training else None
        return out

    def backward(self, dout):
        self._backward_check()
        shape, dtype = self.cache
        return ops.global_avg_pool2d_backward(_float_dout(dout, dtype), shape, owner=self)

    def output_shape(self, input_shape):
        if len(input_shape) != 3 or min(input_shape[1:]) < 1:
            raise ValueError(f"{self!r}: input_shape must be (C, H, W) with H, W >= 1, "
                             f"got {tuple(input_shape)}")
        return (input_shape[0], 1, 1)

    def receptive_params_for(self, input_shape):
        return tuple(input_shape[1:]), (1, 1), (1, 1)

    def macs(self, input_shape):
        return 0


class GlobalMaxPool2D(Layer):
    """The maximum of each channel over the whole H x W: (N, C, H, W) -> (N, C, 1, 1).

    MaxPool2D's rules with one window: a NaN wins, otherwise ties go to the first maximum
    in row-major order, which alone receives the gradient. Its receptive-field step, like
    GlobalAvgPool2D's, depends on the input size (receptive_params_for).
    """

    def __init__(self):
        super().__init__()
        self.cache = None

    output_shape = GlobalAvgPool2D.output_shape
    receptive_params_for = GlobalAvgPool2D.receptive_params_for
    macs = GlobalAvgPool2D.macs

    def forward(self, x, training=True):
        x = as_float_input(x, self, None)
        out, argmax = ops.global_max_pool2d(x, owner=self)
        self.cache = (x.shape, x.dtype, argmax) if training else None
        return out

    def backward(self, dout):
        self._backward_check()
        shape, dtype, argmax = self.cache
        return ops.global_max_pool2d_backward(_float_dout(dout, dtype), argmax, shape, owner=self)
