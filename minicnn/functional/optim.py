"""Optimizer updates on a kernel (minicnn/_kernels/optim.pyx): one pass over each
parameter for SGD's whole rule. The optimizers themselves: minicnn/optim.py."""
import numpy as np

from .._kernels import optim as _optim
from ._common import threads_for

__all__ = ["sgd_arrays_problem", "sgd_update", "sgd_update_checked"]


def sgd_arrays_problem(w, g, buf=None):
    """Why ``sgd_update`` cannot take these arrays, or None when it can (optim.SGD falls
    back to NumPy expressions for anything else)."""
    if not isinstance(w, np.ndarray) or w.dtype not in (np.float32, np.float64):
        return f"expected float32 or float64 arrays, got {getattr(w, 'dtype', type(w).__name__)}"
    arrays = (w, g) if buf is None else (w, g, buf)
    for name, a in zip(("w", "g", "buf"), arrays):
        if not isinstance(a, np.ndarray) or a.dtype != w.dtype or a.shape != w.shape \
                or not a.flags.c_contiguous:
            return f"{name} must be a C-contiguous {w.dtype} array of shape {w.shape}"
    return None


def sgd_update(w, g, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
               first=False):
    """One in-place SGD update of ``w`` (and ``buf``), torch.optim.SGD's rule (see optim.SGD).

    ``w``, ``g`` and ``buf`` (None without momentum) must be C-contiguous arrays of one
    float dtype and one shape; ``first`` marks the step that starts the momentum buffer.
    """
    problem = sgd_arrays_problem(w, g, buf)
    if problem:
        raise ValueError(f"sgd_update: {problem}")
    if momentum and buf is None:
        raise ValueError("sgd_update: momentum needs a buffer")
    sgd_update_checked(w, g, buf, lr, momentum, dampening, weight_decay, nesterov, first)


def sgd_update_checked(w, g, buf, lr, momentum, dampening, weight_decay, nesterov, first):
    """``sgd_update`` for arrays the caller has checked with ``sgd_arrays_problem`` (as
    optim.SGD does once per step: checking them twice cost time on every parameter). It still
    refuses, in O(1), what would make the kernel read or write outside the arrays: sizes
    that differ, or momentum without a buffer."""
    if (not all(isinstance(a, np.ndarray) for a in (w, g))
            or g.size != w.size or (buf is not None and buf.size != w.size)):
        raise ValueError("sgd_update_checked: w, g (and buf) must be arrays of one size; "
                         "check them with sgd_arrays_problem first")
    if momentum and buf is None:
        raise ValueError("sgd_update_checked: momentum needs a buffer")
    if w.size:
        flat = w.reshape(-1)
        _optim.sgd_update(flat, g.reshape(-1), flat if buf is None else buf.reshape(-1),
                          lr, momentum, dampening, weight_decay, nesterov, first,
                          threads_for(w.size))
