"""The dense (fully connected) layer, forward and backward.

Every output is a weighted sum of every input, plus a bias:

    out[n, o] = b[o] + sum over i of x[n, i] * w[o, i]          x (N, I), w (O, I), out (N, O)

so out = x @ w.T + b. Each weight w[o, i] multiplied x[n, i] into out[n, o], so the
chain rule gives, summed over the images n of the batch:

    dx[n, i] = sum over o of dout[n, o] * w[o, i]                dx = dout @ w
    dw[o, i] = sum over n of dout[n, o] * x[n, i]                dw = dout.T @ x
    db[o]    = sum over n of dout[n, o]

Each line below is one of these sums, written with np.einsum, whose subscripts are the
indices of the formula.
"""
import numpy as np

__all__ = ["dense", "dense_backward"]


def dense(x, w, b=None):
    """x (N, I), w (O, I), b (O,) or None -> out (N, O)."""
    if w.ndim != 2 or x.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"dense: expected x (N, {w.shape[-1]}) for weight {w.shape}, "
                         f"got {x.shape}")
    out = np.einsum("ni,oi->no", x, w)
    if b is not None:
        out = out + b
    return out


def dense_backward(dout, x, w, has_bias=True, need_dx=True):
    """Gradients of ``dense``: returns (dx, dw, db); dx is None when ``need_dx`` is False,
    db None when ``has_bias`` is False."""
    dout = np.asarray(dout)
    if dout.dtype.kind not in "fiu":      # a complex gradient would lose its imaginary part
        raise TypeError(f"dense_backward: expected a real (float or integer) dout, got "
                        f"{dout.dtype}")
    dout = dout.astype(w.dtype, copy=False)
    if dout.shape != (x.shape[0], w.shape[0]):
        raise ValueError(f"dense_backward: dout must be {(x.shape[0], w.shape[0])}, "
                         f"got {dout.shape}")
    dx = np.einsum("no,oi->ni", dout, w) if need_dx else None
    dw = np.einsum("no,ni->oi", dout, x)
    db = dout.sum(axis=0) if has_bias else None
    return dx, dw, db
