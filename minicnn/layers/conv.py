"""Conv2D: a 2-d convolution layer over NCHW input."""
import numpy as np

from .. import functional as F
from .. import gemm, geometry
from ..backend import ops
from ..functional import conv_winograd
from ..functional.conv import plan as conv_plan
from ..initializers import WEIGHT_INITS, init_weight
from .base import Layer, as_float_input, as_tuples, check_dtype, fixed

__all__ = ["CONV_PADDING_MODES", "Conv2D"]

CONV_PADDING_MODES = ("zeros", "reflect", "symmetric", "replicate", "circular")


class Conv2D(Layer):
    """2-d convolution (cross-correlation, or a true convolution with ``flip_kernel=True``).

    params: ``weight`` (out_channels, in_channels // groups, kh, kw), ``bias`` (out_channels,).
    Input (N, in_channels, H, W); output (N, out_channels, OH, OW) with, per axis,
    OH = floor((H + pad_before + pad_after - dilation * (kh - 1) - 1) / stride) + 1.

    padding: an int, (h, w), ((top, bottom), (left, right)), the flat (left, right, top,
    bottom) of torch.nn.functional.pad, 'valid', or 'same'
    (output ceil(H / stride); an odd total puts the extra row/column at the bottom/right).
    padding_mode: 'zeros', 'reflect' (1 2 3 -> 2 1 2 3 2), 'symmetric' (1 1 2 3 3),
    'replicate' or 'circular'. groups == in_channels is a depthwise convolution.
    activation: None or 'relu' (as Keras's Conv2D): max(conv, 0), computed in the pass
    that lays out the convolution's output, so it is cheaper than a ReLU layer after it
    and gives the same numbers.

    backward may read the input of the last forward itself, not a copy (depthwise
    convolutions and, without padding, float32 stride-1 convolutions of 8 or more images
    and large convolutions keep a view of it, as PyTorch keeps saved tensors): change that
    array in place between forward and backward and the weight gradient changes with it.
    """

    skips_input_grad = True
    in_channels, out_channels, groups = fixed("in_channels"), fixed("out_channels"), fixed("groups")
    kernel_size, stride, dilation = fixed("kernel_size"), fixed("stride"), fixed("dilation")
    padding, padding_mode = fixed("padding"), fixed("padding_mode")
    flip_kernel, activation, weight_init = fixed("flip_kernel"), fixed("activation"), fixed("weight_init")
    defaults = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True,
                "padding_mode": "zeros", "flip_kernel": False, "activation": None,
                "weight_init": "he", "dtype": "float32"}

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", flip_kernel=False, activation=None,
                 weight_init="he", dtype=np.float32, rng=None):
        super().__init__()
        owner = f"Conv2D({in_channels}->{out_channels}, kernel_size={kernel_size!r})"
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("groups", groups)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{owner}: {name} must be a positive int, got {v!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{owner}: groups={groups} must divide in_channels={in_channels} and "
                f"out_channels={out_channels}")
        if padding_mode not in CONV_PADDING_MODES:
            raise ValueError(f"{owner}: padding_mode must be one of {list(CONV_PADDING_MODES)}, "
                             f"got padding_mode={padding_mode!r}")
        if weight_init not in WEIGHT_INITS:
            raise ValueError(f"{owner}: weight_init must be one of {list(WEIGHT_INITS)}, "
                             f"got {weight_init!r}")
        if activation not in F.CONV_ACTIVATIONS:
            raise ValueError(f"{owner}: activation must be None or 'relu', got {activation!r}")
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"{owner}: bias must be True or False, got {bias!r}")
        self._in_channels, self._out_channels = int(in_channels), int(out_channels)
        self._kernel_size = geometry.pair(kernel_size, "kernel_size", owner)
        self._stride = geometry.pair(stride, "stride", owner)
        self._dilation = geometry.pair(dilation, "dilation", owner)
        self._padding = geometry.normalize_padding(padding, owner)
        self._groups = int(groups)
        self._padding_mode = padding_mode
        self._flip_kernel = bool(flip_kernel)
        self._activation = activation
        self._weight_init = weight_init
        self.dtype = check_dtype(dtype, owner)
        self._args = {"kernel_size": as_tuples(kernel_size), "stride": as_tuples(stride),
                      "padding": as_tuples(padding), "dilation": as_tuples(dilation)}
        kh, kw = self.kernel_size
        cin_g = self.in_channels // self.groups
        fan_in = cin_g * kh * kw
        fan_out = self.out_channels // self.groups * kh * kw
        self.params["weight"] = init_weight((self.out_channels, cin_g, kh, kw), fan_in, fan_out,
                                            weight_init, self.dtype, rng, owner)
        # np.zeros (calloc), not zeros_like (which writes every page): a model loaded from a
        # checkpoint holds no memory for gradients until it trains
        self.grads["weight"] = np.zeros(self.params["weight"].shape, self.dtype)
        if bias:
            self.params["bias"] = np.zeros(self.out_channels, dtype=self.dtype)
            self.grads["bias"] = np.zeros_like(self.params["bias"])
        self.cache = None
        # large temporaries (the im2col matrix and its gradient) reused from step to step
        self._workspace = {}
        self._plan = None       # (input shape and kernel choice, its functional.conv.ConvPlan)

    def get_config(self):
        cfg = {"in_channels": self.in_channels, "out_channels": self.out_channels}
        cfg.update(self._args)
        cfg.update(groups=self.groups, bias="bias" in self.params, padding_mode=self.padding_mode,
                   flip_kernel=self.flip_kernel, weight_init=self.weight_init,
                   dtype=np.dtype(self.dtype).name)
        if self.activation is not None:     # left out when None: older minicnn reads the file
            cfg["activation"] = self.activation
        return cfg

    def __repr__(self):
        head = f"{self.in_channels}->{self.out_channels}, kernel_size={self._args['kernel_size']!r}"
        extra = self.extra_repr(skip=("in_channels", "out_channels", "kernel_size"))
        return f"Conv2D({head}{', ' + extra if extra else ''})"

    def _padding_for(self, in_hw):
        return geometry.resolve_padding(self.padding, in_hw, self.kernel_size, self.stride,
                                        self.dilation)

    def _plan_for(self, x):
        """The convolution's plan for this input shape (padding resolved, path chosen), made
        once per shape and kept; a switch of GEMM kernel or Winograd makes it again."""
        key = (x.shape, x.dtype, gemm.kernel_name(), conv_winograd.ENABLED)
        kept = self._plan
        if kept is None or kept[0] != key:
            kept = self._plan = (key, conv_plan(x.shape, x.dtype, self.params["weight"].shape,
                                                self.stride, self.padding, self.dilation,
                                                self.groups, self))
        return kept[1]

    def forward(self, x, training=True):
        x = as_float_input(x, self, self.dtype, ndim=4)
        w = self.params["weight"]
        fits = getattr(w, "ndim", 0) == 4 and w.shape[1] * self.groups == x.shape[1]
        plan = self._plan_for(x) if fits else None     # else conv2d_forward names the problem
        out, self.cache = ops.conv2d_forward(
            x, self.params["weight"], self.params.get("bias"), self.stride,
            plan.padding if plan else self.padding, self.dilation, self.groups,
            self.padding_mode, self.flip_kernel, training, owner=self,
            workspace=self._workspace, activation=self.activation, conv_plan=plan)
        return out

    def backward(self, dout, need_dx=True):
        """Fill grads (in place) and return dx; ``need_dx=False`` skips dx and returns None."""
        self._backward_check()
        dx, dw, db = ops.conv2d_backward(dout, self.cache, need_dx)
        self._store_grads(dw, db)
        return dx

    def output_shape(self, input_shape):
        c, h, w = input_shape
        if c != self.in_channels:
            raise ValueError(f"{self!r}: expected input (N, {self.in_channels}, H, W), "
                             f"got (N, {c}, {h}, {w})")
        padding = self._padding_for((h, w))
        geometry.check_fits(repr(self), (h, w), self.kernel_size, padding, self.dilation)
        if self.padding_mode != "zeros":
            F.check_pad_mode(repr(self), (h, w), padding, self.padding_mode)
        oh = geometry.conv_output_size(h, self.kernel_size[0], self.stride[0], *padding[0],
                                       dilation=self.dilation[0])
        ow = geometry.conv_output_size(w, self.kernel_size[1], self.stride[1], *padding[1],
                                       dilation=self.dilation[1])
        return (self.out_channels, oh, ow)

    def macs(self, input_shape):
        _, oh, ow = self.output_shape(input_shape)
        return geometry.mac_count((oh, ow), self.kernel_size, self.in_channels,
                                  self.out_channels, self.groups)

    def receptive_params(self):
        return self.kernel_size, self.stride, self.dilation
