"""Winograd F(2x2, 3x3): 3x3 convolutions with 16 multiplications per 2x2 output tile
instead of 36 (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2015).

For one output tile y (2 x 2), its input patch d (4 x 4) and one 3 x 3 kernel g,

    y = A^T [ (G g G^T) * (B^T d B) ] A          (* elementwise, 4 x 4)

with the matrices below (points 0, 1, -1 and infinity). Summed over input channels, each
of the 16 positions of the 4 x 4 product is a matrix product over channels, so a
convolution becomes 16 GEMMs of 1/2.25 the direct GEMM's multiply-adds, plus transforms
that are additions only. The gradients read the same identity backwards:

    dg = G^T [ sum over tiles (A dy A^T) * (B^T d B) ] G
    dd = B [ (G g G^T) * (A dy A^T) ] B^T        (summed into the overlapping patches)

and the second is the forward formula on the output gradient padded by 2 with the kernel
rotated by 180 degrees and its channels swapped (a full correlation), so the input
gradient runs on the forward kernel. The kernels: minicnn/_kernels/winograd.pxi.

The price is rounding: the transforms add up to nine inputs before a multiplication, so a
float32 result differs from the direct sum by a few more units in the last place (the
tests bound it against float64), and an infinite input can come out NaN where the direct
sum gives an infinity: such a pass is redone on the direct kernels. ``conv_paths``
uses it for the float32 3x3 stride-1 convolutions without dilation or groups that would
run on the direct kernels, with at least thresholds.WINOGRAD_MIN_CHANNELS channels each way
(``conv_paths.WinogradPath``); ``minicnn.functional.conv_winograd.ENABLED = False`` (or
``MINICNN_WINOGRAD=0`` in the environment) turns it off.
"""
import os
import warnings

import numpy as np

from .. import gemm
from .conv_image import IMAGE_RUNS

__all__ = ["BT", "G", "AT", "ENABLED", "forward", "backward"]

#: B^T, G and A^T of F(2x2, 3x3)
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)


def _enabled(value, source="MINICNN_WINOGRAD"):
    """On unless value says off (0, false, no, off); anything else unknown warns and keeps
    it on (a typo in the environment must not stop ``import minicnn``)."""
    value = (value or "").strip().lower()
    if value in ("0", "false", "no", "off"):
        return False
    if value not in ("", "1", "true", "yes", "on"):
        warnings.warn(f"{source} must be 0 or 1 (or false/true, no/yes, off/on), got "
                      f"{value!r}; Winograd stays on", RuntimeWarning, stacklevel=2)
    return True


#: whether minicnn's convolutions use it where it fits
ENABLED = _enabled(os.environ.get("MINICNN_WINOGRAD"))


def _weight_panels(kernel, w, rotated):
    """The kernels' B operand from w (O, C, 3, 3) float32: U[xi]^T per position in NR-column
    panels (kernel.wino_panels; ``rotated``: the input gradient's kernel)."""
    nr = kernel.tile()[1]
    no, ni = (w.shape[1], w.shape[0]) if rotated else w.shape[:2]
    dst = gemm.scratch("wino_w" + "r" * rotated, (16 * -(-no // nr) * nr * ni,))
    kernel.wino_panels(np.ascontiguousarray(w), dst, rotated)
    return dst


def _check(owner, w, xp, threads):
    """(OH, OW) of a 3x3 valid convolution of the padded xp, after the checks the kernels
    assume (they run with bounds checks off)."""
    gemm.check_threads(owner, threads, "conv_winograd")
    if not isinstance(w, np.ndarray):
        raise ValueError(f"conv_winograd.{owner}: expected the weight as a NumPy array, got "
                         f"{type(w).__name__}")
    if (not isinstance(xp, np.ndarray) or xp.dtype != np.float32 or xp.ndim != 4
            or not xp.flags.c_contiguous):
        raise ValueError(f"conv_winograd.{owner}: expected a C-contiguous float32 "
                         "(N, C, H, W) input")
    if (w.ndim != 4 or w.shape[2:] != (3, 3) or w.shape[1] != xp.shape[1]
            or w.dtype != np.float32 or w.shape[0] == 0 or w.shape[1] == 0):
        raise ValueError(f"conv_winograd.{owner}: expected a float32 weight (O, {xp.shape[1]}, 3, "
                         f"3) with O and C at least 1, got {w.shape} {w.dtype}")
    if xp.shape[2] < 3 or xp.shape[3] < 3:
        raise ValueError(f"conv_winograd.{owner}: a 3x3 kernel does not fit the input {xp.shape}")
    return xp.shape[2] - 2, xp.shape[3] - 2


def _describe(a):
    return f"{a.shape} {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__


def forward(kernel, w, xp, b, out, relu, threads):
    """out (N, O, H - 2, W - 2) = max?(the valid 3x3 cross-correlation of xp (N, C, H, W)
    with w (O, C, 3, 3), + b), all float32, by F(2x2, 3x3). Returns False when an output
    (before the ReLU) was not finite: then out may hold NaN where the direct sum gives an
    infinity (the caller redoes the pass directly)."""
    oh, ow = _check("forward", w, xp, threads)
    n, c = xp.shape[:2]
    o = w.shape[0]
    if (not isinstance(out, np.ndarray) or not isinstance(b, np.ndarray)
            or out.shape != (n, o, oh, ow) or out.dtype != np.float32
            or not out.flags.c_contiguous or b.shape != (o,) or b.dtype != np.float32):
        raise ValueError(f"conv_winograd.forward: expected a float32 output {(n, o, oh, ow)} and "
                         f"bias ({o},), got {_describe(out)} and {_describe(b)}")
    if n == 0:
        return True
    bw = _weight_panels(kernel, w, False)
    buf = gemm.scratch("wino", (threads, kernel.wino_floats(c, o, oh, ow)))
    return kernel.wino_forward(xp, bw, np.ascontiguousarray(b), out, buf, relu, threads) == 0


def backward(kernel, dout, gate, xp, w, dxp, threads):
    """The gradients of ``forward``: from the output's gradient dout (N, O, OH, OW), gated by
    gate > 0 (the ReLU's output) unless None, the padded input xp (N, C, OH + 2, OW + 2)
    and the weight w (O, C, 3, 3): writes the padded input's gradient into dxp (float32,
    xp's shape, C-contiguous; None: no input gradient) and returns (dw, db, finite), the
    weight's (O, C, 3, 3) and the bias's (O,) float32 gradients and whether all of them,
    dxp too, are finite (when not, the caller redoes the pass directly, as for
    ``forward``)."""
    oh, ow = _check("backward", w, xp, threads)
    o, c = w.shape[:2]
    n = xp.shape[0]
    if dout.shape != (n, o, oh, ow) or dout.dtype != np.float32 or not dout.flags.c_contiguous:
        raise ValueError(f"conv_winograd.backward: dout must be a C-contiguous float32 "
                         f"{(n, o, oh, ow)}, got {dout.shape} {dout.dtype}")
    if gate is not None and (gate.shape != dout.shape or gate.dtype != np.float32
                             or not gate.flags.c_contiguous):
        raise ValueError(f"conv_winograd.backward: gate must be a C-contiguous float32 "
                         f"{dout.shape}, got {gate.shape} {gate.dtype}")
    want_dx = dxp is not None
    if want_dx and (not isinstance(dxp, np.ndarray) or dxp.shape != xp.shape
                    or dxp.dtype != np.float32 or not dxp.flags.c_contiguous):
        raise ValueError(f"conv_winograd.backward: dxp must be a C-contiguous float32 {xp.shape}, "
                         f"got {_describe(dxp)}")
    nr = kernel.tile()[1]
    # runs of images with their own partial sums, fixed by the batch size (added in order:
    # the same bits on any thread count)
    runs = max(1, min(IMAGE_RUNS, n))
    du = np.empty((runs, 16, -(-o // nr) * nr, -(-c // nr) * nr), np.float32)
    db = np.empty((runs, o), np.float64)
    bwr = _weight_panels(kernel, w, True) if want_dx else _NO_DX[0]
    buf = gemm.scratch("wino", (threads, kernel.wino_grad_floats(c, o, oh, ow)))
    bad = kernel.wino_backward(dout, dout if gate is None else gate, gate is not None, xp, du,
                               db, bwr, dxp if want_dx else _NO_DX[1], want_dx, buf, runs,
                               threads)
    dw = np.empty((o, c, 3, 3), np.float32)
    kernel.wino_weight_grad(du, dw)
    with np.errstate(over="ignore"):        # an infinity here is caught below: a redo
        db = db.sum(axis=0).astype(np.float32)
    finite = bad == 0 and np.isfinite(dw).all() and np.isfinite(db).all()
    return dw, db, bool(finite)


#: the kernel's input-gradient arguments when it makes none
_NO_DX = (np.zeros(1, np.float32), np.zeros((1, 1, 1, 1), np.float32))
