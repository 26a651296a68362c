"""The transposed convolution (sometimes called a deconvolution), forward and backward.

Where a convolution gathers a window of inputs into one output, the transposed one
scatters each input pixel, times the kernel, onto a window of the output:

    full[n, o, i*S + ki*D, j*S + kj*D] += x[n, c, i, j] * w[c, o', ki, kj]

for every input channel c and output channel o of the same group (o' = o's index inside
its group), then out = full with ``padding`` rows and columns cut from each side, plus
the bias. So out has (H - 1) * S - 2 * P + D * (KH - 1) + output_padding + 1 rows:
output_padding adds rows at the bottom (right) that only the bias reaches, to pick one
of the sizes that a strided convolution maps to the same H. It is exactly the gradient
of conv2d with respect to its input, with the same weight read as (out, in, KH, KW).

Backward. Each product above made one contribution, so, with dfull the gradient padded
back by P on each side:

    dx[n, c, i, j]      = sum over o', ki, kj of dfull[n, o, i*S + ki*D, j*S + kj*D] * w[c, o', ki, kj]
    dw[c, o', ki, kj]   = sum over n, i, j of dfull[n, o, i*S + ki*D, j*S + kj*D] * x[n, c, i, j]
    db[o]               = sum of dout[:, o]

dx is the convolution of dout with w (the forward of conv2d): the two operations are
each other's adjoints. Below, one kernel tap (ki, kj) at a time: the positions
i*S + ki*D over all i are the slice ki*D :: S of the full output.
"""
import numpy as np

from .. import geometry

__all__ = ["conv_transpose2d", "conv_transpose2d_forward", "conv_transpose2d_backward",
           "conv_transpose2d_args", "conv_transpose2d_output_hw"]


def conv_transpose2d_args(stride, padding, output_padding, groups, dilation, owner):
    """(stride, padding, output_padding, groups, dilation) as pairs and an int; each
    output_padding below its axis's stride or dilation (PyTorch's rule)."""
    stride = geometry.pair(stride, "stride", owner)
    dilation = geometry.pair(dilation, "dilation", owner)
    padding = geometry.pair(padding, "padding", owner, minimum=0)
    output_padding = geometry.pair(output_padding, "output_padding", owner, minimum=0)
    if not geometry.is_int(groups) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{owner}: groups must be a positive int, got {groups!r}")
    if any(output_padding[a] >= max(stride[a], dilation[a]) for a in (0, 1)):
        raise ValueError(f"{owner}: output_padding must be smaller than stride or dilation "
                         f"in each axis, got output_padding={output_padding}, "
                         f"stride={stride}, dilation={dilation}")
    return stride, padding, output_padding, int(groups), dilation


def conv_transpose2d_output_hw(hw, kernel_size, stride, padding, output_padding, dilation,
                               owner="conv_transpose2d"):
    """(OH, OW) = (H - 1) * stride - 2 * padding + dilation * (K - 1) + output_padding + 1."""
    out = tuple((hw[a] - 1) * stride[a] - 2 * padding[a] + dilation[a] * (kernel_size[a] - 1)
                + output_padding[a] + 1 for a in (0, 1))
    if min(out) < 1:
        raise ValueError(f"{owner}: an input of {hw[0]}x{hw[1]} gives an output of "
                         f"{out[0]}x{out[1]}: padding={padding} removes more than the "
                         f"kernel adds")
    return out


def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def _taps(x_hw, w, stride, dilation):
    """(ki, kj, rows slice, cols slice) of the full output each kernel tap reaches."""
    (h, wd), (sh, sw), (dh, dw) = x_hw, stride, dilation
    for ki in range(w.shape[2]):
        for kj in range(w.shape[3]):
            yield (ki, kj, slice(ki * dh, ki * dh + (h - 1) * sh + 1, sh),
                   slice(kj * dw, kj * dw + (wd - 1) * sw + 1, sw))


def conv_transpose2d_forward(x, w, b=None, stride=(1, 1), padding=(0, 0), output_padding=(0, 0),
                             groups=1, dilation=(1, 1), training=True,
                             owner="conv_transpose2d", workspace=None):
    """x (N, C, H, W), w (C, O/groups, KH, KW) -> (out, cache). ``workspace`` is the fast
    version's buffer dict, unused here."""
    stride, padding = _pair(stride), _pair(padding)
    output_padding, dilation = _pair(output_padding), _pair(dilation)
    if x.ndim != 4 or x.shape[1] != w.shape[0]:
        raise ValueError(f"{owner}: expected input (N, {w.shape[0]}, H, W), got {x.shape}")
    n, c, h, wd = x.shape
    og = w.shape[1]
    cg = c // groups
    oh, ow = conv_transpose2d_output_hw((h, wd), w.shape[2:], stride, padding, output_padding,
                                        dilation, owner)
    full = np.zeros((n, og * groups, oh + 2 * padding[0], ow + 2 * padding[1]),
                    np.result_type(x, w))
    for g in range(groups):
        xg, wg = x[:, g * cg:(g + 1) * cg], w[g * cg:(g + 1) * cg]
        for ki, kj, rows, cols in _taps((h, wd), w, stride, dilation):
            full[:, g * og:(g + 1) * og, rows, cols] += np.einsum("nchw,co->nohw", xg,
                                                                  wg[:, :, ki, kj])
    out = full[:, :, padding[0]:padding[0] + oh, padding[1]:padding[1] + ow]
    if b is not None:
        out = out + b.reshape(1, -1, 1, 1)
    cache = {"x": x, "w": w, "has_bias": b is not None, "stride": stride, "padding": padding,
             "dilation": dilation, "groups": groups, "out_shape": out.shape, "owner": owner}
    return np.ascontiguousarray(out), cache if training else None


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return conv_transpose2d_forward(x, w, b, stride, padding, output_padding, groups, dilation,
                                    training=False)[0]


def conv_transpose2d_backward(dout, cache, need_dx=True):
    """(dx, dw, db); db None without bias, dx None without need_dx."""
    x, w, groups = cache["x"], cache["w"], cache["groups"]
    (ph, pw), stride, dilation = cache["padding"], cache["stride"], cache["dilation"]
    n, c, h, wd = x.shape
    og, cg = w.shape[1], c // groups
    dout = np.asarray(dout, dtype=w.dtype)
    if dout.shape != cache["out_shape"]:
        raise ValueError(f"{cache['owner']}: dout must have shape {cache['out_shape']}, got "
                         f"{dout.shape}")
    dfull = np.pad(dout, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for g in range(groups):
        ci, co = slice(g * cg, (g + 1) * cg), slice(g * og, (g + 1) * og)
        for ki, kj, rows, cols in _taps((h, wd), w, stride, dilation):
            window = dfull[:, co, rows, cols]
            dx[:, ci] += np.einsum("nohw,co->nchw", window, w[ci, :, ki, kj])
            dw[ci, :, ki, kj] += np.einsum("nohw,nchw->co", window, x[:, ci])
    db = dout.sum(axis=(0, 2, 3)) if cache["has_bias"] else None
    return (dx if need_dx else None), dw, db
