"""2-d convolution, forward and backward, one output pixel at a time.

The forward pass, for image n, output channel o and output pixel (i, j):

    out[n, o, i, j] = b[o] + sum over c, ki, kj of
                      xp[n, c, i*sh + ki*dh, j*sw + kj*dw] * w[o, c, ki, kj]

xp is x padded (any mode of ``padding.pad``), (sh, sw) the stride and (dh, dw) the
dilation. This is a cross-correlation, as in every deep-learning library; a true
convolution first rotates the kernel by 180 degrees (``flip_kernel=True``). The input
pixels that output pixel (i, j) reads are its window: rows i*sh, i*sh + dh, ...,
i*sh + (KH - 1)*dh and the same for columns, so the output has, per axis,

    OH = floor((H + top + bottom - dh*(KH - 1) - 1) / sh) + 1

(the notes' (X + 2P - K)/S + 1 with P on both sides and no dilation).

Groups: the C input channels and the O output channels are split into ``groups`` equal
parts, and output group g sees only input group g, so w has C / groups input channels.
groups == C is a depthwise convolution (each channel filtered on its own); a 1x1 kernel
is a weighted sum of the channels at each pixel.

The backward pass runs over the same windows. Each output pixel's window was multiplied
by w and summed, so its gradient dout[n, o, i, j] flows back to

    dw[o, c, ki, kj] += dout[n, o, i, j] * window[n, c, ki, kj]      (what w multiplied)
    dxp[n, c, window] += dout[n, o, i, j] * w[o, c, ki, kj]           (what x was multiplied by)
    db[o] += dout[n, o, i, j]

and dxp, the gradient of the padded input, goes back through the padding
(``padding.pad_backward``): a padded pixel's gradient is added to the pixel it copied.
"""
import numbers

import numpy as np

from .. import geometry
from .activation import relu, relu_backward
from .padding import pad, pad_backward

__all__ = ["conv2d_forward", "conv2d_backward", "conv2d", "rotate_180", "window"]


def rotate_180(w):
    """w (O, C, KH, KW) turned by 180 degrees in its last two axes: a cross-correlation
    with the rotated kernel is a true convolution with w."""
    return w[:, :, ::-1, ::-1]


def window(i, j, KH, KW, stride, dilation):
    """The rows and columns of the padded input that output pixel (i, j) reads, as slices."""
    (sh, sw), (dh, dw) = stride, dilation
    rows = slice(i * sh, i * sh + (KH - 1) * dh + 1, dh)
    cols = slice(j * sw, j * sw + (KW - 1) * dw + 1, dw)
    return rows, cols


def _check_args(x, w, b, stride, padding, dilation, groups, activation, owner):
    """Normalise the argument forms and check the shapes; returns (stride, padding, dilation)
    with padding resolved to ((top, bottom), (left, right)) for this input."""
    stride = geometry.pair(stride, "stride", owner)
    dilation = geometry.pair(dilation, "dilation", owner)
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{owner}: groups must be a positive int, got {groups!r}")
    if activation not in (None, "relu"):
        raise ValueError(f"{owner}: activation must be None or 'relu', got {activation!r}")
    if w.ndim != 4:
        raise ValueError(f"{owner}: weight must be 4-d (out, in/groups, kh, kw), got shape "
                         f"{w.shape}")
    O, C_g, KH, KW = w.shape
    if x.ndim != 4 or x.shape[1] != C_g * groups:
        raise ValueError(f"{owner}: expected input (N, {C_g * groups}, H, W), got {x.shape}")
    if O % groups:
        raise ValueError(f"{owner}: out_channels={O} is not divisible by groups={groups}")
    if b is not None and np.shape(b) != (O,):
        raise ValueError(f"{owner}: bias must have shape ({O},), got {np.shape(b)}")
    padding = geometry.resolve_padding(geometry.normalize_padding(padding, owner), x.shape[2:],
                                       (KH, KW), stride, dilation)
    geometry.check_fits(owner, x.shape[2:], (KH, KW), padding, dilation)
    return stride, padding, dilation


def conv2d_forward(x, w, b=None, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1),
                   groups=1, padding_mode="zeros", flip_kernel=False, training=True,
                   owner="conv2d", workspace=None, activation=None, conv_plan=None):
    """2-d cross-correlation (a true convolution when ``flip_kernel``): returns (out, cache).

    x: (N, C, H, W); w: (O, C / groups, KH, KW); b: (O,) or None. stride and dilation:
    an int or (h, w); padding: an int, (h, w), ((top, bottom), (left, right)), 'valid' or
    'same'. out: (N, O, OH, OW). ``activation='relu'`` returns max(out, 0).
    ``workspace`` and ``conv_plan`` are accepted and ignored (the fast version keeps
    temporaries and its choice of algorithm there); cache is None when not training.
    """
    x, w = np.asarray(x), np.asarray(w)
    stride, padding, dilation = _check_args(x, w, b, stride, padding, dilation, groups,
                                            activation, owner)
    N, C, H, W = x.shape
    O, C_g, KH, KW = w.shape
    O_g = O // groups                          # output channels per group
    k = rotate_180(w) if flip_kernel else w    # the kernel the sums use
    xp = pad(x, padding, padding_mode, owner=owner)
    OH = geometry.conv_output_size(H, KH, stride[0], *padding[0], dilation=dilation[0])
    OW = geometry.conv_output_size(W, KW, stride[1], *padding[1], dilation=dilation[1])

    # np.einsum's letters name the formula's indices: n image, o output channel, c input
    # channel, k and l kernel row and column (ki, kj); a letter missing after -> is summed
    out = np.zeros((N, O, OH, OW), dtype=np.result_type(x, w))
    for g in range(groups):
        group_in = slice(g * C_g, (g + 1) * C_g)        # the input channels group g reads
        group_out = slice(g * O_g, (g + 1) * O_g)       # the output channels it writes
        for i in range(OH):
            for j in range(OW):
                rows, cols = window(i, j, KH, KW, stride, dilation)
                patch = xp[:, group_in, rows, cols]                  # (N, C_g, KH, KW)
                out[:, group_out, i, j] = np.einsum("nckl,ockl->no", patch, k[group_out])
    if b is not None:
        out += np.asarray(b, dtype=out.dtype).reshape(1, O, 1, 1)
    if activation == "relu":
        out = relu(out)

    cache = {"xp": xp, "w": w, "x_shape": x.shape, "stride": stride, "padding": padding,
             "padding_mode": padding_mode, "dilation": dilation, "groups": groups,
             "flip_kernel": flip_kernel, "has_bias": b is not None,
             "relu_out": out if activation == "relu" else None}
    return out, (cache if training else None)


def conv2d_backward(dout, cache, need_dx=True):
    """Gradients of ``conv2d_forward``: returns (dx, dw, db).

    dout: (N, O, OH, OW). dx: (N, C, H, W), or None when ``need_dx`` is False; dw: the
    weight's shape (the gradient of w as given, also with ``flip_kernel``); db: (O,), or
    None without bias.
    """
    xp, w, groups = cache["xp"], cache["w"], cache["groups"]
    stride, dilation = cache["stride"], cache["dilation"]
    N, C, H, W = cache["x_shape"]
    O, C_g, KH, KW = w.shape
    O_g = O // groups
    dout = np.asarray(dout)
    if dout.dtype.kind not in "fiu":      # a complex gradient would lose its imaginary part
        raise TypeError(f"conv2d_backward: expected a real (float or integer) dout, got "
                        f"{dout.dtype}")
    OH = geometry.conv_output_size(H, KH, stride[0], *cache["padding"][0], dilation=dilation[0])
    OW = geometry.conv_output_size(W, KW, stride[1], *cache["padding"][1], dilation=dilation[1])
    if dout.shape != (N, O, OH, OW):
        raise ValueError(f"conv2d_backward: dout must be {(N, O, OH, OW)}, got {dout.shape}")
    dout = dout.astype(w.dtype, copy=False)
    if cache["relu_out"] is not None:          # through the ReLU first: out = relu(conv)
        dout = relu_backward(dout, cache["relu_out"])
    k = rotate_180(w) if cache["flip_kernel"] else w

    dk = np.zeros(k.shape, dtype=dout.dtype)   # the gradient of the kernel the sums used
    dxp = np.zeros(xp.shape, dtype=dout.dtype)
    for g in range(groups):
        group_in = slice(g * C_g, (g + 1) * C_g)
        group_out = slice(g * O_g, (g + 1) * O_g)
        for i in range(OH):
            for j in range(OW):
                rows, cols = window(i, j, KH, KW, stride, dilation)
                d = dout[:, group_out, i, j]                         # (N, O_g)
                dk[group_out] += np.einsum("no,nckl->ockl", d, xp[:, group_in, rows, cols])
                dxp[:, group_in, rows, cols] += np.einsum("no,ockl->nckl", d, k[group_out])

    db = dout.sum(axis=(0, 2, 3)) if cache["has_bias"] else None
    dw = rotate_180(dk).copy() if cache["flip_kernel"] else dk   # rotate the gradient back
    dx = None
    if need_dx:
        dx = pad_backward(dxp, cache["padding"], cache["padding_mode"], (H, W))
    return dx, dw, db


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
           flip_kernel=False, activation=None):
    """``conv2d_forward`` without the cache, with Conv2D's argument forms: returns out."""
    return conv2d_forward(x, w, b, stride, padding, dilation, groups, padding_mode, flip_kernel,
                          training=False, activation=activation)[0]
