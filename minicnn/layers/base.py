"""The Layer base class: params/grads dicts, config, repr, dtype handling."""
import operator

import numpy as np

__all__ = ["FLOAT_DTYPES", "check_dtype", "fixed", "Parameter", "Layer", "as_tuples",
           "as_float_input", "modules", "one_line"]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_dtype(dtype, owner):
    """Return np.float32 or np.float64 from a dtype-like, else raise TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{owner}: dtype must be float32 or float64, got {dtype!r}")
    return dt.type


def fixed(name):
    """A read-only attribute ``name``, stored as ``_name`` by the constructor.

    For a layer's constructor arguments, which its weights, config (its checkpoint) and
    repr were made from: changed afterwards, the layer would compute one thing and save
    another, or save what it cannot be rebuilt from. The getter is C code (attrgetter), so
    reading it costs about what a plain attribute does.
    """
    def refuse(self, value):
        raise AttributeError(f"{type(self).__name__}: {name} is fixed when the layer is built "
                             f"(its weights, config and checkpoints follow it); build a new "
                             f"layer instead")

    return property(operator.attrgetter("_" + name), refuse,
                    doc=f"{name} (read-only: fixed when the layer is built)")


class _Entry:
    """One entry of a layer's dict of arrays, by key: its dotted name and value. It looks the
    array up on each access, so it stays valid after ``astype`` replaces the arrays."""

    __slots__ = ("layer", "key", "name")

    def __init__(self, layer, key, name=None):
        self.layer = layer
        self.key = key
        self.name = name or key

    def __repr__(self):
        return (f"{type(self).__name__}({self.name!r}, shape={self.value.shape}, "
                f"dtype={self.value.dtype})")


class Parameter(_Entry):
    """A view of one parameter of a layer: its dotted name, value and gradient.
    Optimizers update ``value`` in place."""

    __slots__ = ()

    @property
    def value(self):
        return self.layer.params[self.key]

    @property
    def grad(self):
        return self.layer.grads[self.key]


class Buffer(_Entry):
    """A view of one buffer of a layer (state that is saved but not trained, such as
    BatchNorm's running statistics): its dotted name and value."""

    __slots__ = ()

    @property
    def value(self):
        return self.layer.buffers[self.key]


class Layer:
    """A layer of a network.

    Subclasses set ``self.params`` / ``self.grads`` (same keys, same shapes),
    optionally ``self.buffers`` (arrays saved with the parameters but not trained),
    implement ``forward(x, training=True)`` (caching what backward needs) and
    ``backward(dout)`` (filling ``grads`` and returning dx), and ``get_config()``
    returning their constructor arguments as plain JSON-able values.
    """

    #: defaults of the constructor arguments, used by repr to show only what differs
    defaults = {}
    #: True when backward(dout, need_dx=False) can skip computing the input gradient
    skips_input_grad = False

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.buffers = {}
        self.training = True
        self.dtype = None  # set by layers with parameters

    # --- interface -------------------------------------------------------
    def forward(self, x, training=True):
        raise NotImplementedError

    def backward(self, dout):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def output_shape(self, input_shape):
        """The output shape (without batch) for an input shape (without batch)."""
        return tuple(self.forward(np.zeros((1,) + tuple(input_shape), np.float32), False).shape[1:])

    def macs(self, input_shape):
        """Multiply-accumulates for one sample of ``input_shape`` (no batch axis)."""
        return 0

    def receptive_params(self):
        """((kh, kw), (sh, sw), (dh, dw)) for the receptive-field recurrence, or None."""
        return None

    def receptive_params_for(self, input_shape):
        """receptive_params() for an input of ``input_shape`` (C, H, W); global layers need it."""
        return self.receptive_params()

    def children(self):
        """[(name, child)] of a container (Residual, Concat); a plain layer has none."""
        return []

    # --- conveniences ------------------------------------------------------
    def parameters(self, prefix=""):
        """The layer's parameters as a list of Parameter, named ``prefix + key``."""
        return [Parameter(self, k, prefix + k) for k in self.params]

    def named_buffers(self, prefix=""):
        """The layer's buffers as a list of Buffer, named ``prefix + key``."""
        return [Buffer(self, k, prefix + k) for k in getattr(self, "buffers", {})]

    def state_entries(self, prefix=""):
        """Parameters and buffers in PyTorch's state_dict order: a module's own parameters,
        then its own buffers, then each child's entries in turn."""
        return self.parameters(prefix) + self.named_buffers(prefix)

    def __call__(self, x, training=True):
        return self.forward(x, training)

    def train(self):
        self.training = True
        return self

    def eval(self):
        self.training = False
        return self

    def zero_grad(self):
        for g in self.grads.values():
            g.fill(0)

    def astype(self, dtype):
        """Convert parameters (and gradients) to ``dtype`` in place; returns self."""
        dt = check_dtype(dtype, type(self).__name__)
        if self.params or self.dtype is not None:   # BatchNorm(affine=False) has no params
            self.dtype = dt
        for k in self.params:
            self.params[k] = np.ascontiguousarray(self.params[k], dtype=dt)
            self.grads[k] = np.zeros_like(self.params[k])
        for k, v in getattr(self, "buffers", {}).items():     # counters stay integers
            if v.dtype.kind == "f":
                self.buffers[k] = np.ascontiguousarray(v, dtype=dt)
        return self

    def _backward_check(self, name="cache"):
        if getattr(self, name, None) is None:
            raise RuntimeError(f"{self!r}: backward called before forward(x, training=True)")

    def _store_grads(self, dw, db=None):
        """Copy a backward's weight gradient (and bias gradient, when there is one) into
        ``grads`` in place: optimizers keep references to these arrays."""
        self.grads["weight"][...] = dw
        if db is not None:
            self.grads["bias"][...] = db

    @property
    def name(self):
        return type(self).__name__

    def extra_repr(self, skip=()):
        """The config arguments that differ from ``defaults``, as ``k=v`` pairs."""
        parts = []
        for k, v in self.get_config().items():
            if k in skip or (k in self.defaults and self.defaults[k] == v):
                continue
            parts.append(f"{k}={v!r}")
        return ", ".join(parts)

    def __repr__(self):
        return f"{self.name}({self.extra_repr()})"


def modules(module):
    """``module`` and everything nested in it (layers, containers, Sequentials), depth first."""
    yield module
    for _, child in module.children():
        yield from modules(child)


def one_line(module, limit=120):
    """A module's repr on one line (containers and Sequentials written inline), cut at
    ``limit`` characters: for error messages, where the printed tree would not fit."""
    text = " ".join(part.strip() for part in repr(module).split("\n"))
    text = text.replace("( ", "(").replace(" )", ")")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def as_tuples(v):
    """An argument with lists turned into tuples, so a config read back from JSON
    (which has lists) rebuilds a layer with the same config and repr."""
    if isinstance(v, (tuple, list)):
        return tuple(as_tuples(u) for u in v)
    return v


def as_float_input(x, owner, dtype=None, ndim=None):
    """Check an input array: floating (or cast to ``dtype``), of rank ``ndim``.

    Layers with parameters pass their own ``dtype`` so that float32/float64 input
    is cast to it; layers without pass ``None`` and compute in the input's dtype.
    Integer, boolean and complex input is rejected: raw uint8 images must be
    normalised first. ``owner`` (a name, or the layer) is formatted only into errors.
    """
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype not in FLOAT_DTYPES:
        if x.dtype.kind in "biu":
            hint = " (normalise raw images first, e.g. x.astype(np.float32) / 255)"
        else:
            hint = ""
        raise TypeError(f"{owner}: expected a float32 or float64 input, got {x.dtype}{hint}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{owner}: expected a {ndim}-d input, got shape {x.shape}")
    if dtype is not None and x.dtype != dtype:
        x = x.astype(dtype)
    return x
