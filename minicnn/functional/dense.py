"""Fully connected layers: x @ w.T + b and its gradients, on minicnn's own GEMM (float32)
or NumPy's (float64). Readable version: minicnn/reference/fully_connected.py."""
import numpy as np

from .. import gemm
from ..runtime import numpy_matmul
from . import thresholds
from ._common import float_array, real_array, threads_for

__all__ = ["dense", "dense_backward"]


def _dense_product(a, b):
    """a @ b: float32 on minicnn's own GEMM (gemm.matmul), the OpenMP threads of every other
    kernel (threaded from PARALLEL_MIN_MACS multiply-adds), unless a has fewer than
    thresholds.DENSE_FEW_ROWS rows; those and float64 on NumPy's, its BLAS held to one thread
    (runtime.blas_single_thread)."""
    m, k, n = a.shape[0], a.shape[1], b.shape[1]
    if a.dtype == np.float32 and b.dtype == np.float32 and m >= thresholds.DENSE_FEW_ROWS:
        return gemm.matmul(a, b, np.empty((m, n), np.float32),
                           threads_for(m * k * n, thresholds.PARALLEL_MIN_MACS))
    return numpy_matmul(a, b)


def dense(x, w, b=None):
    """x (N, in) @ w.T (in, out) + b (out,) -> (N, out), one matmul, in w's dtype."""
    float_array(x, "dense")
    float_array(w, "dense", "weight")
    if b is not None and not isinstance(b, np.ndarray):
        raise TypeError(f"dense: bias must be None or a NumPy array, got {type(b).__name__}")
    if w.ndim != 2 or x.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"dense: expected x (N, {w.shape[-1]}) for weight {w.shape}, got {x.shape}")
    if x.dtype != w.dtype:
        raise TypeError(f"dense: input dtype {x.dtype} differs from weight dtype {w.dtype}")
    if b is not None and (b.shape != (w.shape[0],) or b.dtype != w.dtype):
        raise ValueError(f"dense: bias must be ({w.shape[0]},) {w.dtype}, got {b.shape} {b.dtype}")
    out = _dense_product(x, w.T)
    if b is not None:
        out += b
    return out


def dense_backward(dout, x, w, has_bias=True, need_dx=True):
    """Returns (dx, dw, db): dx = dout @ w, dw = dout.T @ x, db = sum of dout over the batch.

    dx is None when ``need_dx`` is False (the first layer of a network).
    """
    float_array(x, "dense_backward")
    float_array(w, "dense_backward", "weight")
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"dense_backward: expected x (N, {w.shape[-1]}) for weight {w.shape}, "
                         f"got {x.shape}")
    dout = real_array(dout, "dense_backward", "dout").astype(w.dtype, copy=False)
    if dout.shape != (x.shape[0], w.shape[0]):
        raise ValueError(f"dense_backward: dout must be {(x.shape[0], w.shape[0])}, got {dout.shape}")
    return ((_dense_product(dout, w) if need_dx else None), _dense_product(dout.T, x),
            (dout.sum(axis=0) if has_bias else None))


# Activations work on any rank and keep x's dtype; each backward takes what its forward
# returned or was given (the output for ReLU, sigmoid and tanh; the input for LeakyReLU)
# and casts dout to that dtype.
