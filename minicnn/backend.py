"""Which implementation of each operation the layers run: the fast one or the readable one.

Every layer calls its operations through ``ops`` (``ops.conv2d_forward(...)``), never
``minicnn.functional`` directly. Two backends fill it:

- ``"fast"`` (the default): ``minicnn.functional``, the Cython kernels.
- ``"reference"``: ``minicnn.reference``, NumPy written to be read beside the notes: the
  same signatures, the same results to rounding, many times slower.

Switch with ``minicnn.use_backend("reference")`` (for the rest of the program) or, for a
block, ``with minicnn.use_backend("reference"): ...``; or start the program with
``MINICNN_BACKEND=reference`` in the environment. ``minicnn.get_backend()`` says which is
in use. The switch is minicnn's own and process-wide, like ``set_num_threads``.

To try your own version of one operation, register its forward and its backward (same
signatures as in ``minicnn.reference``), and check them with ``minicnn.gradcheck``::

    def my_relu(x):
        return np.where(x > 0, x, 0.0)

    def my_relu_backward(dout, out):
        return dout * (out > 0)

    with minicnn.register_op("relu", my_relu), \\
            minicnn.register_op("relu_backward", my_relu_backward):
        minicnn.gradcheck(minicnn.ReLU(), np.random.randn(4, 5))

A registered operation replaces that one on every backend until its ``with`` block ends
(or ``minicnn.register_op(name, None)`` removes it). The optimizers' updates are not
layers' operations and always run on their kernels.
"""
import os
import warnings

from . import functional, reference

__all__ = ["OPS", "BACKENDS", "ops", "use_backend", "get_backend", "register_op"]

#: the operations the layers and losses call through ``ops``
OPS = ("pad", "pad_backward", "conv2d_forward", "conv2d_backward",
       "max_pool2d", "max_pool2d_backward", "max_pool2d_2x2", "max_pool2d_2x2_backward",
       "avg_pool2d", "avg_pool2d_backward", "global_avg_pool2d", "global_avg_pool2d_backward",
       "global_max_pool2d", "global_max_pool2d_backward",
       "dense", "dense_backward", "relu", "relu_backward", "leaky_relu", "leaky_relu_backward",
       "sigmoid", "sigmoid_backward", "tanh", "tanh_backward", "dropout_mask",
       "softmax", "log_softmax", "softmax_backward", "log_softmax_backward",
       "softmax_cross_entropy", "softmax_cross_entropy_backward",
       "mse", "mse_backward", "batch_norm_forward", "batch_norm_backward",
       "conv_transpose2d_forward", "conv_transpose2d_backward", "upsample_nearest",
       "upsample_nearest_backward", "upsample_bilinear", "upsample_bilinear_backward")
#: backend name -> the module that implements every name of OPS
BACKENDS = {"fast": functional, "reference": reference}


class _Ops:
    """The operations in use, one attribute each (rebound on every switch, so a call costs
    one attribute lookup)."""

    def __repr__(self):
        changed = sorted(_overrides)
        return (f"<minicnn ops: backend {_backend!r}"
                + (f", your own {', '.join(changed)}" if changed else "") + ">")


ops = _Ops()
_backend = "fast"
_overrides = {}


def _bind():
    module = BACKENDS[_backend]
    for name in OPS:
        setattr(ops, name, _overrides.get(name) or getattr(module, name))


class _Restore:
    """What use_backend and register_op return: the change is made already; used in a
    ``with`` statement, it is undone at the end of the block."""

    def __init__(self, undo):
        self._undo = undo

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._undo()
        return False


def get_backend():
    """The backend the layers run on: 'fast' or 'reference'."""
    return _backend


def use_backend(name):
    """Run every layer on backend ``name`` ('fast' or 'reference') from now on; in a
    ``with`` statement, only inside the block."""
    global _backend
    if name not in BACKENDS:
        raise ValueError(f"use_backend: name must be one of {sorted(BACKENDS)}, got {name!r}")
    before = _backend
    _backend = name
    _bind()

    def undo():
        global _backend
        _backend = before
        _bind()
    return _Restore(undo)


def register_op(name, function):
    """Run your ``function`` for operation ``name`` (one of OPS) on every backend; ``None``
    removes yours. In a ``with`` statement, only inside the block."""
    if name not in OPS:
        raise ValueError(f"register_op: name must be one of the operations {list(OPS)}, "
                         f"got {name!r}")
    if function is not None and not callable(function):
        raise TypeError(f"register_op: function must be callable or None, got "
                        f"{type(function).__name__}")
    before = _overrides.get(name)

    def put(f):
        if f is None:
            _overrides.pop(name, None)
        else:
            _overrides[name] = f
        _bind()
    put(function)
    return _Restore(lambda: put(before))


def _from_environment(value):
    """The backend MINICNN_BACKEND names; an unknown name warns and keeps 'fast' (a typo in
    the environment must not stop ``import minicnn``)."""
    value = (value or "").strip().lower()
    if value in ("", "fast"):
        return "fast"
    if value in BACKENDS:
        return value
    warnings.warn(f"MINICNN_BACKEND must be one of {sorted(BACKENDS)}, got {value!r}; using "
                  f"'fast'", RuntimeWarning, stacklevel=2)
    return "fast"


_backend = _from_environment(os.environ.get("MINICNN_BACKEND"))
_bind()
