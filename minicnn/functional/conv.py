"""2-d convolution, forward and backward: the checks, the plan, and the call of the path.

``plan`` turns the arguments and the input's shape into everything decided from shapes
alone: the padding per side ('same' resolved), the output size, the path (conv_paths.py)
and the thread count. Conv2D keeps its plan per input shape, so that happens once; a direct
call of ``conv2d_forward`` plans on every call. Readable version of the arithmetic:
minicnn/reference/conv.py.
"""
from typing import NamedTuple

import numpy as np

from .. import functional_checks as checks
from .. import geometry
from . import conv_paths, thresholds
from ._common import real_array, threads_for, training_workspace
from .pad import pad, pad_backward

__all__ = ["CONV_ACTIVATIONS", "ConvPlan", "plan", "conv2d_forward", "conv2d",
           "conv2d_backward"]

CONV_ACTIVATIONS = (None, "relu")


class ConvPlan(NamedTuple):
    """What a convolution of one input shape does, decided once (see ``plan``)."""
    padding: tuple        # per side ((top, bottom), (left, right)), 'same' resolved
    out_hw: tuple         # (OH, OW)
    padded_shape: tuple   # (N, C, H + top + bottom, W + left + right)
    path: type            # a class of conv_paths.PATHS
    kernel: object        # the GEMM kernel's name for the image, direct and Winograd paths
    image_dx: bool        # the direct path's unfused input gradient goes image by image
    threads: int


def plan(x_shape, dtype, w_shape, stride, padding, dilation, groups, owner="conv2d"):
    """The ConvPlan of a convolution: x_shape (N, C, H, W), w_shape (O, C/groups, KH, KW),
    stride and dilation pairs, padding in any form ``geometry.normalize_padding`` takes.
    Checks that the kernel fits the padded input."""
    n, c, h, wd = x_shape
    o, cin_g, kh, kw = w_shape
    padding = geometry.resolve_padding(geometry.normalize_padding(padding, owner), (h, wd),
                                       (kh, kw), stride, dilation)
    geometry.check_fits(owner, (h, wd), (kh, kw), padding, dilation)
    (top, bottom), (left, right) = padding
    oh = geometry.conv_output_size(h, kh, stride[0], top, bottom, dilation=dilation[0])
    ow = geometry.conv_output_size(wd, kw, stride[1], left, right, dilation=dilation[1])
    padded_shape = (n, c, h + top + bottom, wd + left + right)
    path, kernel, image_dx = conv_paths.choose(dtype, n, w_shape, stride, dilation, groups,
                                               padded_shape, (oh, ow),
                                               padding != ((0, 0), (0, 0)))
    threads = threads_for(n * o * oh * ow * cin_g * kh * kw, thresholds.PARALLEL_MIN_MACS)
    return ConvPlan(padding, (oh, ow), padded_shape, path, kernel, image_dx, threads)


def _check_conv_args(x, w, b, stride, dilation, groups, owner):
    """Validate an input against a weight; return (stride, dilation, groups)."""
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"{owner}: expected a float32 or float64 input, got {got}")
    stride, dilation, groups = checks.conv_args(stride, dilation, groups, owner)
    checks.conv_weight(w, b, owner)
    out_channels, cin_g = w.shape[:2]
    in_channels = cin_g * groups
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(f"{owner}: expected input (N, {in_channels}, H, W), got {x.shape}")
    if x.dtype != w.dtype:
        raise TypeError(f"{owner}: input dtype {x.dtype} differs from weight dtype {w.dtype}")
    if out_channels % groups:
        raise ValueError(f"{owner}: out_channels={out_channels} is not divisible by groups={groups}")
    if b is not None and (b.shape != (out_channels,) or b.dtype != w.dtype):
        raise ValueError(f"{owner}: bias must be ({out_channels},) {w.dtype}, got {b.shape} {b.dtype}")
    return stride, dilation, groups


def conv2d_forward(x, w, b=None, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1),
                   groups=1, padding_mode="zeros", flip_kernel=False, training=True, owner="conv2d",
                   workspace=None, activation=None, conv_plan=None):
    """2-d cross-correlation (a true convolution when ``flip_kernel``): returns (out, cache).

    x: (N, C, H, W); w: (O, C/groups, KH, KW); b: (O,) or None. ``padding`` is an int,
    (h, w), per-side ((top, bottom), (left, right)) or 'same'; ``padding_mode`` any mode
    of ``pad``. out: (N, O, OH, OW) with OH = floor((H + top + bottom -
    dilation*(KH - 1) - 1) / stride) + 1. ``cache`` is what ``conv2d_backward``
    needs (None when not training). ``workspace``: a dict in which to keep the large
    temporaries between calls (see ``_common.scratch``); the cache may point into it, so
    backward must come before the next forward with the same workspace (Conv2D keeps one
    per layer, and any forward there replaces the cache backward reads anyway). The cache
    may also keep a view of ``x`` itself (depthwise, direct and image-by-image convolutions
    without padding, among them every unpadded float32 stride-1 convolution of a batch of 8
    or more; a 1x1 convolution of one image): change x in place between forward and
    backward and the weight gradient changes with it, as with PyTorch's saved tensors.
    ``activation='relu'`` returns max(conv, 0), folded into the pass that lays the GEMM's
    output out as images (or applied in place on the other paths): the same numbers as a
    ReLU after the convolution, without a pass over memory of its own.
    ``conv_plan``: this input shape's ``plan`` (Conv2D passes the one it keeps), else made here.
    """
    if activation not in CONV_ACTIVATIONS:
        raise ValueError(f"{owner}: activation must be None or 'relu', got {activation!r}")
    stride, dilation, groups = _check_conv_args(x, w, b, stride, dilation, groups, owner)
    ws = training_workspace(workspace, training, owner)
    p = conv_plan or plan(x.shape, x.dtype, w.shape, stride, padding, dilation, groups, owner)
    if flip_kernel:
        w = w[:, :, ::-1, ::-1]
    w = np.ascontiguousarray(w)
    padded = p.padding != ((0, 0), (0, 0))
    xp = pad(x, p.padding, padding_mode, owner=owner) if padded else np.ascontiguousarray(x)
    o = w.shape[0]
    relu = activation == "relu"
    bias = np.ascontiguousarray(b) if b is not None else np.zeros(o, dtype=w.dtype)
    cache = {"x_shape": x.shape, "padding": p.padding, "padding_mode": padding_mode,
             "stride": stride, "dilation": dilation, "groups": groups, "w": w,
             "flip": flip_kernel, "has_bias": b is not None, "out_hw": p.out_hw,
             "padded_shape": p.padded_shape, "kernel": p.kernel, "image_dx": p.image_dx,
             "workspace": ws}
    out = np.empty((x.shape[0], o, *p.out_hw), dtype=w.dtype)
    saved, path = p.path.forward(xp, w, bias, out, relu, cache, p.threads)
    if not training:
        return out, None
    cache.update(path=path, saved=saved, relu_out=out if relu else None)
    if cache["kernel"] is None:
        del cache["kernel"], cache["image_dx"]
    return out, cache


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
           flip_kernel=False, activation=None):
    """Functional 2-d convolution, forward only, with the Conv2D argument forms."""
    owner = "conv2d"
    stride = geometry.pair(stride, "stride", owner)
    dilation = geometry.pair(dilation, "dilation", owner)
    padding = geometry.normalize_padding(padding, owner)
    if padding_mode not in geometry.PADDING_MODES or padding_mode == "constant":
        raise ValueError(f"{owner}: padding_mode must be one of zeros, reflect, symmetric, "
                         f"replicate, circular, got {padding_mode!r}")
    return conv2d_forward(x, w, b, stride, padding, dilation, groups, padding_mode,
                          flip_kernel, training=False, owner=owner, activation=activation)[0]


def conv2d_backward(dout, cache, need_dx=True):
    """Gradients of ``conv2d_forward``: returns (dx, dw, db).

    db is None without bias; dx is None when ``need_dx`` is False (the first layer of
    a network needs no input gradient, which saves a GEMM and a col2im). The cache is
    checked first (functional_checks.conv_cache): a changed one raises a ValueError.
    """
    n, c, h, wd = checks.conv_cache(cache)
    w = cache["w"]
    o, cin_g, kh, kw = w.shape
    oh, ow = cache["out_hw"]
    dout = real_array(dout, "conv2d_backward", "dout")
    if dout.shape != (n, o, oh, ow):
        raise ValueError(f"conv2d_backward: dout must be {(n, o, oh, ow)}, got {dout.shape}")
    dout = np.ascontiguousarray(dout, dtype=w.dtype)
    threads = threads_for(dout.size * cin_g * kh * kw, thresholds.PARALLEL_MIN_MACS)
    path = conv_paths.PATHS[cache["path"]]
    dxp, dw_, db = path.backward(dout, cache, need_dx, threads)
    if dxp is None:
        dx = None
    elif cache["padding"] != ((0, 0), (0, 0)):
        dx = pad_backward(dxp, cache["padding"], cache["padding_mode"], (h, wd))
    else:
        dx = dxp
    if cache["flip"]:
        dw_ = np.ascontiguousarray(dw_[:, :, ::-1, ::-1])
    return dx, dw_, db
