"""2-d transposed convolution, forward and backward, on the convolution's kernels.
Readable version: minicnn/reference/conv_transpose.py.

A transposed convolution is the input gradient of a convolution: the convolution with the
same weight, stride, padding, dilation and groups, taking the transposed convolution's
output size to its input size. So its forward is the convolution's backward for the input
(dcols = w^T @ x, then col2im), and its backward is the convolution's forward for dx
(im2col of dout, w @ cols) plus a weight gradient from the same columns (x @ cols^T).
Weight layout (in_channels, out_channels / groups, KH, KW), as PyTorch's.
"""
import numpy as np

from .. import functional_checks as checks
from .. import gemm, geometry
from .._kernels import conv as _conv
from .._kernels import conv_transpose as _ct
from . import thresholds
from ._common import real_array, scratch, threads_for, training_workspace

__all__ = ["conv_transpose2d", "conv_transpose2d_forward", "conv_transpose2d_backward",
           "conv_transpose2d_args", "conv_transpose2d_output_hw"]


def conv_transpose2d_args(stride, padding, output_padding, groups, dilation, owner):
    """The arguments as pairs and an int, checked: output_padding must be smaller than the
    stride or the dilation in each axis (PyTorch's rule)."""
    stride, dilation, groups = checks.conv_args(stride, dilation, groups, owner)
    padding = geometry.pair(padding, "padding", owner, minimum=0)
    output_padding = geometry.pair(output_padding, "output_padding", owner, minimum=0)
    for axis in (0, 1):
        if output_padding[axis] >= max(stride[axis], dilation[axis]):
            raise ValueError(f"{owner}: output_padding must be smaller than stride or dilation "
                             f"in each axis, got output_padding={output_padding}, "
                             f"stride={stride}, dilation={dilation}")
    return stride, padding, output_padding, groups, dilation


def conv_transpose2d_output_hw(hw, kernel_size, stride, padding, output_padding, dilation,
                               owner="conv_transpose2d"):
    """(OH, OW) for an input (H, W); raises when the padding leaves nothing."""
    out = tuple(geometry.conv_transpose_output_size(hw[a], kernel_size[a], stride[a], padding[a],
                                                    output_padding[a], dilation[a])
                for a in (0, 1))
    if min(out) < 1:
        raise ValueError(f"{owner}: an input of {hw[0]}x{hw[1]} gives an output of "
                         f"{out[0]}x{out[1]}: padding={padding} removes more than the "
                         f"kernel adds")
    return out


def _check(x, w, b, groups, owner):
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"{owner}: expected a float32 or float64 input, got {got}")
    checks.conv_weight(w, b, owner)
    cin, cout_g = w.shape[:2]
    if cin % groups:
        raise ValueError(f"{owner}: the weight's in_channels={cin} is not divisible by "
                         f"groups={groups}")
    if x.ndim != 4 or x.shape[1] != cin:
        raise ValueError(f"{owner}: expected input (N, {cin}, H, W), got {x.shape}")
    if x.dtype != w.dtype:
        raise TypeError(f"{owner}: input dtype {x.dtype} differs from weight dtype {w.dtype}")
    if b is not None and (b.shape != (cout_g * groups,) or b.dtype != w.dtype):
        raise ValueError(f"{owner}: bias must be ({cout_g * groups},) {w.dtype}, got {b.shape} "
                         f"{b.dtype}")


def conv_transpose2d_forward(x, w, b=None, stride=(1, 1), padding=(0, 0), output_padding=(0, 0),
                             groups=1, dilation=(1, 1), training=True,
                             owner="conv_transpose2d", workspace=None):
    """x (N, Cin, H, W), w (Cin, Cout/groups, KH, KW), b (Cout,) or None -> (out, cache);
    out (N, Cout, OH, OW), OH = (H - 1) * stride - 2 * padding + dilation * (KH - 1) +
    output_padding + 1. The cache (None without ``training``) keeps x, laid out for the
    GEMM. ``workspace``: a dict in which to keep the large temporaries between training
    calls (as conv2d_forward's; ConvTranspose2D keeps one per layer), so that backward must
    come before the next training forward with the same workspace."""
    stride, padding, output_padding, groups, dilation = conv_transpose2d_args(
        stride, padding, output_padding, groups, dilation, owner)
    _check(x, w, b, groups, owner)
    ws = training_workspace(workspace, training, owner)
    n, cin, h, wd = x.shape
    _, cout_g, kh, kw = w.shape
    cout, g = cout_g * groups, groups
    oh, ow = conv_transpose2d_output_hw((h, wd), (kh, kw), stride, padding, output_padding,
                                        dilation, owner)
    w = np.ascontiguousarray(w)
    x = np.ascontiguousarray(x)
    macs = n * cin * h * wd * cout_g * kh * kw
    threads = threads_for(macs, thresholds.PARALLEL_MIN_MACS)
    # x as the GEMM's right side: (Cin, N * H * W)
    x_t = scratch(ws, "x_t", (cin, n, h * wd), x.dtype)
    x3 = x.reshape(n, cin, h * wd)
    _conv.images_to_gemm(x3, x3, x_t, False, threads_for(x.size))
    cols = gemm.matmul(w.reshape(g, cin // g, cout_g * kh * kw).transpose(0, 2, 1),
                       x_t.reshape(g, cin // g, n * h * wd),
                       scratch(ws, "cols", (g, cout_g * kh * kw, n * h * wd), x.dtype), threads)
    out = np.empty((n, cout, oh, ow), x.dtype)
    bias = np.ascontiguousarray(b) if b is not None else np.zeros(cout, x.dtype)
    _ct.scatter_columns(cols.reshape(cout * kh * kw, n, h * wd), bias, out, kh, kw, *stride,
                        *dilation, *padding, wd, threads)
    cache = None
    if training:
        cache = {"x_t": x_t, "x_shape": x.shape, "w": w, "has_bias": b is not None,
                 "stride": stride, "padding": padding, "dilation": dilation, "groups": g,
                 "out_shape": out.shape, "threads": threads, "owner": owner, "workspace": ws}
    return out, cache


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """The forward alone, with int or pair arguments (PyTorch's F.conv_transpose2d order)."""
    return conv_transpose2d_forward(x, w, b, stride, padding, output_padding, groups, dilation,
                                    training=False)[0]


def conv_transpose2d_backward(dout, cache, need_dx=True):
    """(dx, dw, db) from conv_transpose2d_forward's cache; db None without bias, dx None
    without need_dx."""
    owner, w, g = cache["owner"], cache["w"], cache["groups"]
    dout = real_array(dout, owner, "dout")
    if dout.shape != cache["out_shape"]:
        raise ValueError(f"{owner}: dout must have shape {cache['out_shape']}, got {dout.shape}")
    dout = dout.astype(w.dtype, copy=False)
    n, cin, h, wd = cache["x_shape"]
    _, cout_g, kh, kw = w.shape
    cout = cout_g * g
    (ph, pw), (sh, sw), (dh, dw) = cache["padding"], cache["stride"], cache["dilation"]
    threads = cache["threads"]
    dout = np.ascontiguousarray(dout)
    ws = cache["workspace"]
    cols = scratch(ws, "cols", (g, cout_g * kh * kw, n * h * wd), w.dtype)
    cols = cols.reshape(cout * kh * kw, n, h * wd)
    _ct.gather_columns(dout, cols, kh, kw, sh, sw, dh, dw, ph, pw, wd, threads)
    cols_g = cols.reshape(g, cout_g * kh * kw, n * h * wd)
    dw_ = gemm.matmul(cache["x_t"].reshape(g, cin // g, n * h * wd), cols_g.transpose(0, 2, 1),
                      np.empty((g, cin // g, cout_g * kh * kw), w.dtype), threads)
    db = dout.sum(axis=(0, 2, 3)) if cache["has_bias"] else None
    dx = None
    if need_dx:
        dx_t = gemm.matmul(w.reshape(g, cin // g, cout_g * kh * kw), cols_g,
                           scratch(ws, "dx_t", (g, cin // g, n * h * wd), w.dtype), threads)
        dx = np.empty((n, cin, h, wd), w.dtype)
        _conv.gemm_to_images(dx_t.reshape(cin, n, h * wd), np.zeros(cin, w.dtype),
                             dx.reshape(n, cin, h * wd), False, threads_for(dx.size))
    return dx, dw_.reshape(w.shape), db
