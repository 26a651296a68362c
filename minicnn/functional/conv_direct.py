"""Direct convolutions, stride 1 (kernels: minicnn/_kernels/direct_conv.pxi).

The GEMM's micro kernel reads each tap's inputs in place: for a stride-1 convolution of a
padded image (C, Hp, Wp), tap (c, ki, kj) of output row-run r is the contiguous run of the
image starting at offset c*Hp*Wp + ki*dh*Wp + kj*dw + r, so the output is computed over
"wide" rows of Wp columns (the last KW - 1 of each dropped) with no im2col and no column
matrix, forward or backward. ``conv_paths.DirectPath`` decides when this runs; the
functions here check every shape the kernels assume (they run with bounds checks off).
"""
import functools

import numpy as np

from .. import gemm
from . import thresholds
from .conv_image import IMAGE_RUNS

__all__ = ["image_floats", "tap_offsets", "forward", "backward", "dx_fits"]


def image_floats(kernel, o, padded_shape):
    """Floats of one image's layout in the direct weight gradient, at most (the wide
    gradient taken as long as the whole plane)."""
    _, c, hp, wp = padded_shape
    return kernel.direct_image_floats(o, c, hp, wp, hp * wp)


def _out_hw(owner, w_shape, xp, dilation, threads):
    """(OH, OW) of a stride-1 convolution of the padded xp, after checking what the direct
    kernels assume (they run with bounds checks off)."""
    gemm.check_threads(owner, threads, "conv_direct")
    if xp.ndim != 4 or len(w_shape) != 4 or xp.shape[1] != w_shape[1] or w_shape[1] == 0:
        raise ValueError(f"conv_direct.{owner}: expected a weight (O, C, KH, KW) and an input "
                         f"(N, C, Hp, Wp) with one C >= 1, got {tuple(w_shape)} and {xp.shape}")
    (kh, kw), (dh, dw) = w_shape[2:], dilation
    if dh < 1 or dw < 1:
        raise ValueError(f"conv_direct.{owner}: dilation must be at least 1, got {dilation}")
    oh, ow = xp.shape[2] - (kh - 1) * dh, xp.shape[3] - (kw - 1) * dw
    if oh < 1 or ow < 1:
        raise ValueError(f"conv_direct.{owner}: a {kh}x{kw} kernel with dilation {dilation} "
                         f"does not "
                         f"fit the input {xp.shape}")
    return oh, ow


@functools.lru_cache(maxsize=256)
def tap_offsets(c, kh, kw, hp, wp, dh, dw, multiple=1):
    """Each tap's offset c*Hp*Wp + ki*dh*Wp + kj*dw into an (C, Hp, Wp) image, taps in
    weight order (c, ki, kj), padded with zeros to a multiple of ``multiple``. Kept per
    shape (a read-only array): making it again on every call is a cost a small network's
    step feels."""
    offs = (np.arange(c)[:, None, None] * (hp * wp) + np.arange(kh)[None, :, None] * (dh * wp)
            + np.arange(kw)[None, None, :] * dw).ravel()
    padded = np.zeros(-(-offs.size // multiple) * multiple, dtype=np.intp)
    padded[:offs.size] = offs
    padded.flags.writeable = False
    return padded


def forward(kernel, w, xp, b, out, relu, dilation, threads):
    """out (N, O, OH, OW) = max?(conv(xp, w) + b): a stride-1 convolution of the padded xp
    (N, C, Hp, Wp) with w (O, C, KH, KW) and dilation (dh, dw), read in place."""
    oh, ow = _out_hw("forward", w.shape, xp, dilation, threads)
    o, c, kh, kw = w.shape
    if out.shape != (xp.shape[0], o, oh, ow) or b.shape != (o,):
        raise ValueError(f"conv_direct.forward: expected an output {(xp.shape[0], o, oh, ow)} "
                         f"and a bias ({o},), got {out.shape} and {b.shape}")
    mr = kernel.tile()[0]
    offs = tap_offsets(c, kh, kw, *xp.shape[2:], *dilation)
    width = (oh - 1) * xp.shape[3] + ow
    kernel.direct_forward(w.reshape(o, -1), offs, xp, b, out,
                          gemm.scratch("packed", (-(-o // mr) * mr * c * kh * kw,)),
                          gemm.scratch("wide", (threads, mr * width)), relu, threads)


def backward(kernel, dout, gate, xp, dw, dilation, threads, w=None, dxp=None):
    """dw (O, C, KH, KW) = the weight gradient of that convolution, and returns the bias
    gradient (O,) float32, from the output's gradient dout (N, O, OH, OW) and the padded
    input; with ``gate`` (the ReLU's output, same shape as dout) the gradient is first
    zeroed where the output is not positive (None: no ReLU). With the weight ``w`` (finite)
    and ``dxp`` (C-contiguous float32, xp's shape; see direct_dx_fits) also dxp = the padded
    input's gradient, from the same laid-out output gradient."""
    oh, ow = _out_hw("backward", dw.shape, xp, dilation, threads)
    o, c, kh, kw = dw.shape
    n, hp, wp = xp.shape[0], xp.shape[2], xp.shape[3]
    if dout.shape != (n, o, oh, ow) or (gate is not None and gate.shape != dout.shape):
        raise ValueError(f"conv_direct.backward: expected dout (and gate) "
                         f"{(n, o, oh, ow)}, got {dout.shape}"
                         + ("" if gate is None else f" and {gate.shape}"))
    if not dw.flags.c_contiguous:            # the kernel writes through a (O, K) view of it
        raise ValueError("conv_direct.backward: dw must be C-contiguous")
    width = (oh - 1) * wp + ow
    k = c * kh * kw
    _, dt, vl = kernel.direct_tile()
    want_dx = dxp is not None
    if want_dx != (w is not None):
        raise ValueError("conv_direct.backward: the input gradient needs both w and dxp")
    if want_dx:
        if not dx_fits(kernel, xp.shape, oh, ow):
            raise ValueError(f"conv_direct.backward: an input gradient needs a wide row of at "
                             f"least {kernel.tile()[1]} columns, got {width}")
        if dxp.shape != xp.shape or dxp.dtype != np.float32 or not dxp.flags.c_contiguous:
            raise ValueError(f"conv_direct.backward: dxp must be a C-contiguous float32 "
                             f"{xp.shape}, got {dxp.shape} {dxp.dtype}")
        if w.shape != dw.shape or w.dtype != np.float32:
            raise ValueError(f"conv_direct.backward: w must be a float32 {dw.shape}, got "
                             f"{w.shape} {w.dtype}")
        mr = kernel.tile()[0]
        w2 = np.ascontiguousarray(w).reshape(o, k)
        wt = gemm.scratch("packed", (-(-k // mr) * mr * o,))
        doffs = np.arange(o, dtype=np.intp) * (-(-width // vl) * vl)
        dx4 = dxp
    else:                                   # placeholders the kernel does not touch
        w2, wt, doffs, dx4 = _NO_DX
    runs = max(1, min(IMAGE_RUNS, n))
    chunk = max(1, min(-(-n // runs),
                       thresholds.DIRECT_CHUNK // image_floats(kernel, o, xp.shape)))
    offs = tap_offsets(c, kh, kw, hp, wp, *dilation, multiple=dt)
    floats = kernel.direct_weight_floats(o, c, hp, wp, width, chunk)
    d3 = dout.reshape(n, o, oh * ow)
    db = np.empty(o, np.float32)            # each run's sums, added in run order (runs fixed
    kernel.direct_backward(d3, d3 if gate is None else gate.reshape(n, o, oh * ow),  # by n)
                           gate is not None, offs, xp, dw.reshape(o, -1),
                           np.empty((runs, o), np.float64), db,
                           gemm.scratch("partial", (runs - 1, o, k)),
                           gemm.scratch("direct", (threads, floats)), ow, runs, chunk,
                           w2, wt, doffs, dx4, want_dx, threads)
    return db


#: direct_backward's input-gradient arguments when it makes none
_NO_DX = (np.zeros((1, 1), np.float32), np.zeros(1, np.float32), np.zeros(1, np.intp),
          np.zeros((1, 1, 1, 1), np.float32))


def dx_fits(kernel, padded_shape, oh, ow):
    """Whether direct_backward can make the input gradient: a wide row (OH - 1)*Wp + OW of
    at least one register tile (NR) columns."""
    return (oh - 1) * padded_shape[3] + ow >= kernel.tile()[1]
