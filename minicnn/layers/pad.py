"""Pad: pad the spatial axes of NCHW input in any mode."""
import numbers

import numpy as np

from .. import functional as F
from ..backend import ops
from .. import geometry
from .base import Layer, as_float_input, as_tuples, fixed

__all__ = ["Pad"]


class Pad(Layer):
    """Pad H and W. padding: an int, (h, w), ((top, bottom), (left, right)), the flat
    (left, right, top, bottom) of torch.nn.functional.pad, or 'valid'.

    mode: 'zeros', 'constant' (with ``value``), 'reflect' (mirror, edge not repeated:
    1 2 3 -> 2 1 2 3 2), 'symmetric' (mirror, edge repeated: 1 1 2 3 3), 'replicate'
    or 'circular'. The backward adds each gradient back into the pixel it was copied from.
    """

    defaults = {"mode": "zeros", "value": 0.0}
    padding, mode, value = fixed("padding"), fixed("mode"), fixed("value")

    def __init__(self, padding, mode="zeros", value=0.0):
        super().__init__()
        owner = f"Pad({padding!r})"
        self._padding = geometry.normalize_padding(padding, owner, allow_same=False)
        if mode not in geometry.PADDING_MODES:
            raise ValueError(f"{owner}: mode must be one of {list(geometry.PADDING_MODES)}, "
                             f"got mode={mode!r}")
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise TypeError(f"{owner}: value must be a number, got {value!r}")
        if value != 0 and mode != "constant":
            raise ValueError(f"{owner}: value={value!r} needs mode='constant', got mode={mode!r}")
        self._mode = mode
        self._value = float(value)
        self._padding_arg = as_tuples(padding)
        self.in_shape = self.in_dtype = None

    def get_config(self):
        return {"padding": self._padding_arg, "mode": self.mode, "value": self.value}

    def forward(self, x, training=True):
        x = as_float_input(x, self, None, ndim=4)
        self.in_shape, self.in_dtype = (x.shape, x.dtype) if training else (None, None)
        return ops.pad(x, self.padding, self.mode, self.value, owner=self)

    def backward(self, dout):
        self._backward_check("in_shape")
        n, c, h, w = self.in_shape
        dout = np.asarray(dout)
        if dout.dtype.kind == "f":          # in the forward's dtype, as the other layers
            dout = dout.astype(self.in_dtype, copy=False)
        if dout.shape[:2] != (n, c):
            expected = (n, c) + self.output_shape((c, h, w))[1:]
            raise ValueError(f"{self!r}: expected dout {expected}, got {dout.shape}")
        return ops.pad_backward(dout, self.padding, self.mode, (h, w), owner=self)

    def output_shape(self, input_shape):
        c, h, w = input_shape
        F.check_pad_mode(repr(self), (h, w), self.padding, self.mode)
        (t, b), (l, r) = self.padding
        return (c, h + t + b, w + l + r)
