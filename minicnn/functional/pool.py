"""Max, average and global average pooling, forward and backward (kernels:
minicnn/_kernels/pool.pyx). Readable version: minicnn/reference/pool.py."""
import numpy as np

from .. import functional_checks as checks
from .. import geometry
from ..geometry import pool_args, pool_output_hw
from .._kernels import pool as _pool
from ._common import threads_for

__all__ = ["pool_args", "pool_output_hw", "max_pool2d", "max_pool2d_backward",
           "max_pool2d_2x2", "max_pool2d_2x2_backward", "avg_pool2d", "avg_pool2d_backward",
           "global_avg_pool2d", "global_avg_pool2d_backward", "global_max_pool2d",
           "global_max_pool2d_backward"]


def _check_pool_input(x, owner, name="input"):
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"{owner}: expected a float32 or float64 {name}, got {got}")
    if x.ndim != 4:
        raise ValueError(f"{owner}: expected a 4-d {name} (N, C, H, W), got shape {x.shape}")


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, owner="max_pool2d"):
    """Max pooling of each channel: returns (out, argmax).

    x: (N, C, H, W) float32/float64 (any strides). out: (N, C, OH, OW) of x's dtype;
    argmax: (N, C, OH, OW) intp, the flat index h*W + w of each maximum in its input
    plane (what ``max_pool2d_backward`` needs). Padding counts as minus infinity.
    NaN rule: a NaN in a window wins (the output is NaN, as in PyTorch; argmax is the
    first NaN); otherwise ties go to the first maximum in row-major window order.
    """
    kernel_size, stride, padding = pool_args(kernel_size, stride, padding, owner)
    _check_pool_input(x, owner)
    n, c, h, w = x.shape
    oh, ow = pool_output_hw((h, w), kernel_size, stride, padding, bool(ceil_mode), owner)
    out = np.empty((n, c, oh, ow), dtype=x.dtype)
    argmax = np.empty((n, c, oh, ow), dtype=np.intp)
    if out.size:
        _pool.max_pool_forward(np.ascontiguousarray(x).reshape(n * c, h, w),
                               out.reshape(n * c, oh, ow), argmax.reshape(n * c, oh, ow),
                               *kernel_size, *stride, padding[0][0], padding[1][0],
                               threads_for(out.size * kernel_size[0] * kernel_size[1]))
    return out, argmax


def max_pool2d_backward(dout, argmax, input_shape, owner="max_pool2d_backward"):
    """Gradient of ``max_pool2d``: dout (N, C, OH, OW) goes to the argmax positions.

    Returns dx with shape ``input_shape`` (N, C, H, W) and dout's dtype; a pixel that
    is the maximum of several windows receives the sum of their gradients.
    """
    n, c, h, w = checks.input_shape(input_shape, owner)
    _check_pool_input(dout, owner, "dout")
    argmax = np.asarray(argmax)
    if argmax.shape != dout.shape or dout.shape[:2] != (n, c):
        raise ValueError(f"{owner}: dout {dout.shape} and argmax {argmax.shape} must have one "
                         f"shape (N, C, OH, OW) with (N, C) = {(n, c)}")
    if argmax.dtype.kind not in "iu":
        raise TypeError(f"{owner}: argmax must be an integer array, got {argmax.dtype}")
    dx = np.zeros((n, c, h, w), dtype=dout.dtype)
    if dout.size == 0 or dx.size == 0:
        return dx
    if argmax.min() < 0 or argmax.max() >= h * w:
        # the kernel writes through these indices unchecked
        raise ValueError(f"{owner}: argmax values must lie in [0, H*W) = [0, {h * w}), got "
                         f"[{argmax.min()}, {argmax.max()}]")
    _pool.max_pool_backward(np.ascontiguousarray(dout).reshape(n * c, -1),
                            np.ascontiguousarray(argmax, dtype=np.intp).reshape(n * c, -1),
                            dx.reshape(n * c, h * w), threads_for(dx.size))
    return dx


def max_pool2d_2x2(x, owner="max_pool2d_2x2"):
    """``max_pool2d(x, 2)`` in MaxPool2D(2)'s own form: returns (out, code).

    2x2 windows at stride 2, unpadded, floor mode: out (N, C, H // 2, W // 2) as
    max_pool2d's. code, of that shape, int32: the position of each maximum in its window
    (0 top left, 1 top right, 2 bottom left, 3 bottom right), the pixel max_pool2d's
    argmax names (same NaN and tie rules). Half the memory of a flat index, and
    ``max_pool2d_2x2_backward`` writes whole windows, with no zeroing pass and no index to
    check (about twice as fast as the general kernel on LeNet-5's first pool).
    """
    _check_pool_input(x, owner)
    n, c, h, w = x.shape
    if h < 2 or w < 2:
        raise ValueError(f"{owner}: a 2x2 window needs an input of at least 2 x 2, got "
                         f"{h} x {w}")
    out = np.empty((n, c, h // 2, w // 2), dtype=x.dtype)
    code = np.empty(out.shape, dtype=np.int32)
    if out.size:
        _pool.max_pool_2x2_forward(np.ascontiguousarray(x).reshape(n * c, h, w),
                                   out.reshape(n * c, h // 2, w // 2),
                                   code.reshape(n * c, h // 2, w // 2), threads_for(x.size))
    return out, code


def max_pool2d_2x2_backward(dout, code, input_shape, owner="max_pool2d_2x2_backward"):
    """Gradient of ``max_pool2d_2x2``: each window's gradient goes to the pixel its code
    names; the other pixels, and an odd last row or column, get zero. Returns dx with
    shape ``input_shape`` (N, C, H, W) and dout's dtype."""
    n, c, h, w = checks.input_shape(input_shape, owner)
    _check_pool_input(dout, owner, "dout")
    code = np.asarray(code)
    expected = (n, c, h // 2, w // 2)
    if dout.shape != expected or code.shape != expected:
        raise ValueError(f"{owner}: dout {dout.shape} and code {code.shape} must both be "
                         f"{expected} for an input {(n, c, h, w)}")
    if code.dtype != np.int32:
        raise TypeError(f"{owner}: code must be int32 (from max_pool2d_2x2), got {code.dtype}")
    dx = np.empty((n, c, h, w), dtype=dout.dtype)
    if dout.size == 0:          # no window fits (an input of one row or column): all zero
        dx.fill(0)
    elif dx.size:
        _pool.max_pool_2x2_backward(np.ascontiguousarray(dout).reshape(n * c, h // 2, w // 2),
                                    np.ascontiguousarray(code).reshape(n * c, h // 2, w // 2),
                                    dx.reshape(n * c, h, w), threads_for(dx.size))
    return dx


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               owner="avg_pool2d"):
    """Average pooling of each channel: x (N, C, H, W) -> (N, C, OH, OW), x's dtype.

    Each window is clipped to the input; its sum is divided, when count_include_pad,
    by the number of window cells inside the padded input (a ceil_mode window that
    passes the padding counts only up to its end), else by the real cells only.
    Sums are accumulated in float64.
    """
    kernel_size, stride, padding = pool_args(kernel_size, stride, padding, owner)
    _check_pool_input(x, owner)
    n, c, h, w = x.shape
    oh, ow = pool_output_hw((h, w), kernel_size, stride, padding, bool(ceil_mode), owner)
    out = np.empty((n, c, oh, ow), dtype=x.dtype)
    if out.size:
        (pt, pb), (pl, pr) = padding
        _pool.avg_pool_forward(np.ascontiguousarray(x).reshape(n * c, h, w),
                               out.reshape(n * c, oh, ow), *kernel_size, *stride,
                               pt, pl, pb, pr, bool(count_include_pad),
                               threads_for(out.size * kernel_size[0] * kernel_size[1]))
    return out


def avg_pool2d_backward(dout, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, owner="avg_pool2d_backward"):
    """Gradient of ``avg_pool2d`` with the same arguments: dout (N, C, OH, OW) -> dx.

    dx has shape ``input_shape`` (N, C, H, W) and dout's dtype: each output gradient
    over its divisor is added to every input cell of its window.
    """
    n, c, h, w = checks.input_shape(input_shape, owner)
    kernel_size, stride, padding = pool_args(kernel_size, stride, padding, owner)
    _check_pool_input(dout, owner, "dout")
    oh, ow = pool_output_hw((h, w), kernel_size, stride, padding, bool(ceil_mode), owner)
    if dout.shape != (n, c, oh, ow):
        raise ValueError(f"{owner}: dout must be {(n, c, oh, ow)}, got {dout.shape}")
    dx = np.empty((n, c, h, w), dtype=dout.dtype)     # the kernel writes every cell
    if dx.size:
        (pt, pb), (pl, pr) = padding
        _pool.avg_pool_backward(np.ascontiguousarray(dout).reshape(n * c, oh, ow),
                                dx.reshape(n * c, h, w), *kernel_size, *stride,
                                pt, pl, pb, pr, bool(count_include_pad),
                                threads_for(dout.size * kernel_size[0] * kernel_size[1]))
    return dx


def global_avg_pool2d(x, owner="global_avg_pool2d"):
    """The mean over H x W of each channel: (N, C, H, W) -> (N, C, 1, 1), x's dtype."""
    _check_pool_input(x, owner)
    if min(x.shape[2:]) < 1:
        raise ValueError(f"{owner}: expected an input with H >= 1 and W >= 1, got shape {x.shape}")
    return avg_pool2d(x, x.shape[2:], owner=owner)


def global_avg_pool2d_backward(dout, input_shape, owner="global_avg_pool2d_backward"):
    """Gradient of ``global_avg_pool2d``: dout (N, C, 1, 1) spread evenly over H x W."""
    shape = checks.input_shape(input_shape, owner)
    return avg_pool2d_backward(dout, shape, shape[2:], owner=owner)


def global_max_pool2d(x, owner="global_max_pool2d"):
    """The maximum over H x W of each channel: returns (out (N, C, 1, 1), argmax (N, C, 1, 1)).

    ``max_pool2d`` with one window the size of the input, so the NaN and tie rules are its
    own: a NaN wins, else the first maximum in row-major order (argmax is h*W + w)."""
    _check_pool_input(x, owner)
    if x.ndim != 4 or min(x.shape[2:]) < 1:
        raise ValueError(f"{owner}: expected an input (N, C, H, W) with H >= 1 and W >= 1, "
                         f"got shape {x.shape}")
    return max_pool2d(x, x.shape[2:], owner=owner)


def global_max_pool2d_backward(dout, argmax, input_shape, owner="global_max_pool2d_backward"):
    """Gradient of ``global_max_pool2d``: dout (N, C, 1, 1) goes to each plane's argmax."""
    n, c = checks.input_shape(input_shape, owner)[:2]
    if np.shape(dout) != (n, c, 1, 1):
        raise ValueError(f"{owner}: dout must be {(n, c, 1, 1)}, got {np.shape(dout)}")
    return max_pool2d_backward(dout, argmax, input_shape, owner)
