"""Layers that make images larger: ConvTranspose2D (learned) and Upsample (fixed)."""
import numpy as np

from .. import functional as F
from .. import geometry
from ..backend import ops
from ..initializers import WEIGHT_INITS, init_weight
from .base import Layer, as_float_input, as_tuples, check_dtype, fixed

__all__ = ["ConvTranspose2D", "Upsample", "UPSAMPLE_MODES"]


class ConvTranspose2D(Layer):
    """2-d transposed convolution: the input gradient of the Conv2D with the same arguments,
    so it maps that convolution's output size back to its input size (PyTorch's
    ConvTranspose2d: arguments, weight layout and output size).

    params: ``weight`` (in_channels, out_channels // groups, kh, kw), ``bias`` (out_channels,).
    Input (N, in_channels, H, W); output (N, out_channels, OH, OW), per axis
    OH = (H - 1) * stride - 2 * padding + dilation * (kh - 1) + output_padding + 1.
    stride, padding, output_padding, dilation: an int or (h, w); output_padding must be
    smaller than stride or dilation (it picks one of the sizes a strided convolution maps
    to the same H). The summary shows no receptive field through it (an upsampling step:
    the recurrence's jump would fall below one pixel), so the column keeps the one before.
    backward reads the input of the last forward (a transposed copy of it).
    """

    skips_input_grad = True
    in_channels, out_channels, groups = fixed("in_channels"), fixed("out_channels"), fixed("groups")
    kernel_size, stride, padding = fixed("kernel_size"), fixed("stride"), fixed("padding")
    output_padding, dilation, weight_init = (fixed("output_padding"), fixed("dilation"),
                                             fixed("weight_init"))
    defaults = {"stride": 1, "padding": 0, "output_padding": 0, "groups": 1, "bias": True,
                "dilation": 1, "weight_init": "he", "dtype": "float32"}

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, weight_init="he",
                 dtype=np.float32, rng=None):
        super().__init__()
        owner = f"ConvTranspose2D({in_channels}->{out_channels}, kernel_size={kernel_size!r})"
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("groups", groups)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{owner}: {name} must be a positive int, got {v!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{owner}: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        if weight_init not in WEIGHT_INITS:
            raise ValueError(f"{owner}: weight_init must be one of {list(WEIGHT_INITS)}, "
                             f"got {weight_init!r}")
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"{owner}: bias must be True or False, got {bias!r}")
        self._kernel_size = geometry.pair(kernel_size, "kernel_size", owner)
        (self._stride, self._padding, self._output_padding, self._groups,
         self._dilation) = F.conv_transpose2d_args(stride, padding, output_padding, groups,
                                                   dilation, owner)
        self._in_channels, self._out_channels = int(in_channels), int(out_channels)
        self._weight_init = weight_init
        self.dtype = check_dtype(dtype, owner)
        self._args = {"kernel_size": as_tuples(kernel_size), "stride": as_tuples(stride),
                      "padding": as_tuples(padding), "output_padding": as_tuples(output_padding),
                      "dilation": as_tuples(dilation)}
        kh, kw = self.kernel_size
        cout_g = self.out_channels // self.groups
        shape = (self.in_channels, cout_g, kh, kw)
        # PyTorch's fans for this layout: weight.shape[1] * taps in, weight.shape[0] * taps out
        self.params["weight"] = init_weight(shape, cout_g * kh * kw, self.in_channels * kh * kw,
                                            weight_init, self.dtype, rng, owner)
        self.grads["weight"] = np.zeros(shape, self.dtype)
        if bias:
            self.params["bias"] = np.zeros(self.out_channels, self.dtype)
            self.grads["bias"] = np.zeros(self.out_channels, self.dtype)
        self.cache = None
        # large temporaries (the GEMM's columns and layouts) reused from step to step
        self._workspace = {}

    def get_config(self):
        cfg = {"in_channels": self.in_channels, "out_channels": self.out_channels}
        cfg.update(self._args)
        cfg.update(groups=self.groups, bias="bias" in self.params, weight_init=self.weight_init,
                   dtype=np.dtype(self.dtype).name)
        return cfg

    def __repr__(self):
        head = f"{self.in_channels}->{self.out_channels}, kernel_size={self._args['kernel_size']!r}"
        extra = self.extra_repr(skip=("in_channels", "out_channels", "kernel_size"))
        return f"ConvTranspose2D({head}{', ' + extra if extra else ''})"

    def forward(self, x, training=True):
        x = as_float_input(x, self, self.dtype, ndim=4)
        out, self.cache = ops.conv_transpose2d_forward(
            x, self.params["weight"], self.params.get("bias"), self.stride, self.padding,
            self.output_padding, self.groups, self.dilation, training, owner=self,
            workspace=self._workspace)
        return out

    def backward(self, dout, need_dx=True):
        """Fill grads (in place) and return dx; ``need_dx=False`` skips dx and returns None."""
        self._backward_check()
        dx, dw, db = ops.conv_transpose2d_backward(dout, self.cache, need_dx)
        self._store_grads(dw, db)
        return dx

    def output_shape(self, input_shape):
        c, h, w = input_shape
        if c != self.in_channels:
            raise ValueError(f"{self!r}: expected input (N, {self.in_channels}, H, W), "
                             f"got (N, {c}, {h}, {w})")
        oh, ow = F.conv_transpose2d_output_hw((h, w), self.kernel_size, self.stride, self.padding,
                                              self.output_padding, self.dilation, repr(self))
        return (self.out_channels, oh, ow)

    def macs(self, input_shape):
        """Each input value times each tap of its group's output channels."""
        c, h, w = input_shape
        kh, kw = self.kernel_size
        return h * w * c * (self.out_channels // self.groups) * kh * kw


UPSAMPLE_MODES = ("nearest", "bilinear")


class Upsample(Layer):
    """Make images scale_factor times larger along each axis (PyTorch's Upsample with an
    integer scale_factor): 'nearest' repeats each pixel, 'bilinear' interpolates between
    the four nearest pixels, with PyTorch's align_corners rule (False: pixel centres line
    up; True: the corner pixels do).

    scale_factor: a positive int or (h, w). Input (N, C, H, W), output (N, C, H * sh, W * sw).
    align_corners: None for 'nearest' (as PyTorch requires), False or True for 'bilinear'
    (None means False). No receptive field in the summary (see ConvTranspose2D).
    """

    scale_factor, mode, align_corners = fixed("scale_factor"), fixed("mode"), fixed("align_corners")
    defaults = {"mode": "nearest", "align_corners": None}

    def __init__(self, scale_factor, mode="nearest", align_corners=None):
        super().__init__()
        owner = f"Upsample(scale_factor={scale_factor!r})"
        if not isinstance(mode, str) or mode not in UPSAMPLE_MODES:
            raise ValueError(f"{owner}: mode must be one of {list(UPSAMPLE_MODES)}, got "
                             f"mode={mode!r}")
        if align_corners is not None and not isinstance(align_corners, (bool, np.bool_)):
            raise TypeError(f"{owner}: align_corners must be None, True or False, got "
                            f"{align_corners!r}")
        if mode == "nearest" and align_corners is not None:
            raise ValueError(f"{owner}: align_corners only applies to mode='bilinear', got "
                             f"align_corners={align_corners!r} with mode='nearest'")
        self._scale_factor = F.upsample_args(scale_factor, owner)
        self._mode = mode
        self._align_corners = None if align_corners is None else bool(align_corners)
        self._args = {"scale_factor": as_tuples(scale_factor)}
        self.cache = None

    def get_config(self):
        cfg = dict(self._args, mode=self.mode)
        if self.align_corners is not None:
            cfg["align_corners"] = self.align_corners
        return cfg

    def forward(self, x, training=True):
        x = as_float_input(x, self, None, ndim=4)
        self.cache = (x.shape, x.dtype) if training else None
        if self.mode == "nearest":
            return ops.upsample_nearest(x, self.scale_factor, owner=self)
        return ops.upsample_bilinear(x, self.scale_factor, bool(self.align_corners), owner=self)

    def backward(self, dout):
        self._backward_check()
        shape, dtype = self.cache
        if self.mode == "nearest":
            return ops.upsample_nearest_backward(dout, self.scale_factor, shape, dtype,
                                                 owner=self)
        return ops.upsample_bilinear_backward(dout, self.scale_factor, shape,
                                              bool(self.align_corners), dtype, owner=self)

    def output_shape(self, input_shape):
        c, h, w = input_shape
        return (c, h * self.scale_factor[0], w * self.scale_factor[1])
