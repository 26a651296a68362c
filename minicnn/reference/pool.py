"""Max and average pooling, forward and backward, one output pixel at a time.

Pooling slides a KH x KW window over each channel on its own. Output pixel (i, j) looks
at input rows i*sh - top ... i*sh - top + KH - 1 and columns j*sw - left ... j*sw - left
+ KW - 1; rows and columns outside the input are padding. Per axis,

    OH = floor((H + top + bottom - KH) / sh) + 1

or, with ``ceil_mode``, rounded up instead, keeping a last window that hangs over the end
only if it starts inside the input or the leading padding (PyTorch's rule,
``geometry.pool_output_size``). As in PyTorch each side pads at most KH // 2 (KW // 2),
so every window holds at least one input pixel.

Max pooling takes the largest input pixel of each window: padding counts as minus
infinity, so it never wins. A NaN in a window wins (the output is NaN, as in PyTorch);
otherwise ties go to the first maximum in row-major order. The argmax, the flat index
h*W + w of that pixel in its plane, is what the backward needs: the output gradient
goes to that one pixel, and a pixel that won several windows gets the sum.

Average pooling divides the sum of the window's input pixels by the number of its cells
that lie inside the padded input (``count_include_pad=True``; a ceil-mode window that
passes the padding counts only up to its end) or by the number of its input pixels
(``count_include_pad=False``). Its backward spreads dout / divisor over those pixels.
"""
import numpy as np

from .. import geometry
from ..geometry import pool_args, pool_output_hw

__all__ = ["pool_args", "pool_output_hw", "max_pool2d", "max_pool2d_backward",
           "max_pool2d_2x2", "max_pool2d_2x2_backward", "avg_pool2d", "avg_pool2d_backward",
           "global_avg_pool2d", "global_avg_pool2d_backward", "global_max_pool2d",
           "global_max_pool2d_backward"]


def _span(i, k, s, before, n, after):
    """Where window i lies along one axis: (first, end) of its input pixels and (first,
    end) of its cells inside the padded input (end is one past the last)."""
    start = i * s - before
    return (max(start, 0), min(start + k, n)), (max(start, -before), min(start + k, n + after))


def _check_input(x, owner, name="input"):
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{owner}: expected a 4-d {name} (N, C, H, W), got shape {x.shape}")
    return x


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, owner="max_pool2d"):
    """Max pooling of each channel: returns (out, argmax), both (N, C, OH, OW).

    out has x's dtype; argmax (intp) is the flat index h*W + w of each window's winner.
    """
    (KH, KW), (sh, sw), ((top, bottom), (left, right)) = pool_args(kernel_size, stride,
                                                                   padding, owner)
    x = _check_input(x, owner)
    N, C, H, W = x.shape
    OH, OW = pool_output_hw((H, W), (KH, KW), (sh, sw), ((top, bottom), (left, right)),
                            ceil_mode, owner)
    out = np.zeros((N, C, OH, OW), dtype=x.dtype)
    argmax = np.zeros((N, C, OH, OW), dtype=np.intp)
    for i in range(OH):
        (r0, r1), _ = _span(i, KH, sh, top, H, bottom)
        for j in range(OW):
            (c0, c1), _ = _span(j, KW, sw, left, W, right)
            cells = x[:, :, r0:r1, c0:c1].reshape(N, C, (r1 - r0) * (c1 - c0))  # row-major
            nan = np.isnan(cells)
            # the first NaN if there is one, else the first maximum
            best = np.where(nan.any(axis=2), nan.argmax(axis=2), cells.argmax(axis=2))
            out[:, :, i, j] = np.take_along_axis(cells, best[:, :, None], axis=2)[:, :, 0]
            row, col = r0 + best // (c1 - c0), c0 + best % (c1 - c0)
            argmax[:, :, i, j] = row * W + col
    return out, argmax


def max_pool2d_backward(dout, argmax, input_shape, owner="max_pool2d_backward"):
    """Gradient of ``max_pool2d``: each dout[n, c, i, j] is added to the pixel argmax names.

    Returns dx with shape ``input_shape`` (N, C, H, W) and dout's dtype.
    """
    N, C, H, W = input_shape
    dout, argmax = _check_input(dout, owner, "dout"), np.asarray(argmax)
    if argmax.shape != dout.shape or dout.shape[:2] != (N, C):
        raise ValueError(f"{owner}: dout {dout.shape} and argmax {argmax.shape} must have one "
                         f"shape (N, C, OH, OW) with (N, C) = {(N, C)}")
    dx = np.zeros((N, C, H * W), dtype=dout.dtype)       # each plane flat, as argmax counts
    image, channel = np.meshgrid(np.arange(N), np.arange(C), indexing="ij")   # (N, C) each
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dx[image, channel, argmax[:, :, i, j]] += dout[:, :, i, j]
    return dx.reshape(N, C, H, W)


def max_pool2d_2x2(x, owner="max_pool2d_2x2"):
    """``max_pool2d(x, 2)`` naming each maximum by its place in the window, not in the plane:
    returns (out, code) with code 0 top left, 1 top right, 2 bottom left, 3 bottom right
    (int32), the form MaxPool2D(2) keeps."""
    x = _check_input(x, owner)
    if x.ndim == 4 and min(x.shape[2:]) < 2:
        raise ValueError(f"{owner}: a 2x2 window needs an input of at least 2 x 2, got "
                         f"{x.shape[2]} x {x.shape[3]}")
    out, argmax = max_pool2d(x, 2, owner=owner)
    W = x.shape[3]
    i = np.arange(out.shape[2])[:, None]          # window row and column
    j = np.arange(out.shape[3])[None, :]
    row_in_window = argmax // W - 2 * i
    col_in_window = argmax % W - 2 * j
    return out, (2 * row_in_window + col_in_window).astype(np.int32)


def max_pool2d_2x2_backward(dout, code, input_shape, owner="max_pool2d_2x2_backward"):
    """Gradient of ``max_pool2d_2x2``: the code turned back into the pixel's flat index,
    then ``max_pool2d_backward``."""
    N, C, H, W = input_shape
    code = np.asarray(code)
    i = np.arange(code.shape[2])[:, None]
    j = np.arange(code.shape[3])[None, :]
    argmax = (2 * i + code // 2) * W + (2 * j + code % 2)
    return max_pool2d_backward(dout, argmax, input_shape, owner)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               owner="avg_pool2d"):
    """Average pooling of each channel: x (N, C, H, W) -> (N, C, OH, OW), x's dtype.

    Each window's sum is taken in float64.
    """
    (KH, KW), (sh, sw), ((top, bottom), (left, right)) = pool_args(kernel_size, stride,
                                                                   padding, owner)
    x = _check_input(x, owner)
    N, C, H, W = x.shape
    OH, OW = pool_output_hw((H, W), (KH, KW), (sh, sw), ((top, bottom), (left, right)),
                            ceil_mode, owner)
    out = np.zeros((N, C, OH, OW), dtype=x.dtype)
    for i in range(OH):
        (r0, r1), (pr0, pr1) = _span(i, KH, sh, top, H, bottom)
        for j in range(OW):
            (c0, c1), (pc0, pc1) = _span(j, KW, sw, left, W, right)
            total = x[:, :, r0:r1, c0:c1].sum(axis=(2, 3), dtype=np.float64)
            divisor = (pr1 - pr0) * (pc1 - pc0) if count_include_pad else (r1 - r0) * (c1 - c0)
            out[:, :, i, j] = total / divisor
    return out


def avg_pool2d_backward(dout, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, owner="avg_pool2d_backward"):
    """Gradient of ``avg_pool2d`` with the same arguments: dout (N, C, OH, OW) -> dx.

    dx has shape ``input_shape`` (N, C, H, W) and dout's dtype.
    """
    (KH, KW), (sh, sw), ((top, bottom), (left, right)) = pool_args(kernel_size, stride,
                                                                   padding, owner)
    N, C, H, W = input_shape
    OH, OW = pool_output_hw((H, W), (KH, KW), (sh, sw), ((top, bottom), (left, right)),
                            ceil_mode, owner)
    dout = _check_input(dout, owner, "dout")
    if dout.shape != (N, C, OH, OW):
        raise ValueError(f"{owner}: dout must be {(N, C, OH, OW)}, got {dout.shape}")
    dx = np.zeros((N, C, H, W), dtype=dout.dtype)
    for i in range(OH):
        (r0, r1), (pr0, pr1) = _span(i, KH, sh, top, H, bottom)
        for j in range(OW):
            (c0, c1), (pc0, pc1) = _span(j, KW, sw, left, W, right)
            divisor = (pr1 - pr0) * (pc1 - pc0) if count_include_pad else (r1 - r0) * (c1 - c0)
            dx[:, :, r0:r1, c0:c1] += (dout[:, :, i, j] / divisor)[:, :, None, None]
    return dx


def global_avg_pool2d(x, owner="global_avg_pool2d"):
    """The mean over H x W of each channel: (N, C, H, W) -> (N, C, 1, 1), x's dtype."""
    x = _check_input(x, owner)
    if min(x.shape[2:]) < 1:
        raise ValueError(f"{owner}: expected an input with H >= 1 and W >= 1, got shape {x.shape}")
    return x.mean(axis=(2, 3), keepdims=True, dtype=np.float64).astype(x.dtype)


def global_avg_pool2d_backward(dout, input_shape, owner="global_avg_pool2d_backward"):
    """Gradient of ``global_avg_pool2d``: each dout[n, c] / (H * W) to every pixel of the plane."""
    N, C, H, W = input_shape
    dout = _check_input(dout, owner, "dout")
    if dout.shape != (N, C, 1, 1):
        raise ValueError(f"{owner}: dout must be {(N, C, 1, 1)}, got {dout.shape}")
    return np.broadcast_to(dout / dout.dtype.type(H * W), (N, C, H, W)).copy()


def global_max_pool2d(x, owner="global_max_pool2d"):
    """The maximum of each plane: returns (out, argmax), both (N, C, 1, 1).

    argmax is the flat index h*W + w of the winner: the first NaN if the plane has one,
    else the first maximum in row-major order (max_pool2d's rule, with one window).
    """
    x = _check_input(x, owner)
    if min(x.shape[2:]) < 1:
        raise ValueError(f"{owner}: expected an input with H >= 1 and W >= 1, got shape {x.shape}")
    N, C, H, W = x.shape
    planes = x.reshape(N, C, H * W)
    nan = np.isnan(planes)
    best = np.where(nan.any(axis=2), nan.argmax(axis=2), planes.argmax(axis=2))
    out = np.take_along_axis(planes, best[:, :, None], axis=2)
    return out.reshape(N, C, 1, 1), best.reshape(N, C, 1, 1).astype(np.intp)


def global_max_pool2d_backward(dout, argmax, input_shape, owner="global_max_pool2d_backward"):
    """Gradient of ``global_max_pool2d``: each dout[n, c] goes to the pixel argmax names."""
    N, C, H, W = input_shape
    dout = _check_input(dout, owner, "dout")
    if dout.shape != (N, C, 1, 1):
        raise ValueError(f"{owner}: dout must be {(N, C, 1, 1)}, got {dout.shape}")
    dx = np.zeros((N, C, H * W), dtype=dout.dtype)
    np.put_along_axis(dx, np.asarray(argmax).reshape(N, C, 1), dout.reshape(N, C, 1), axis=2)
    return dx.reshape(N, C, H, W)
