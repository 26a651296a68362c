"""Blocks beyond a stack: Residual (out = block(x) + shortcut(x)) and Concat (branches on one
input, joined along channels).

A block, a shortcut or a branch is a layer or a Sequential, and containers nest in each
other and in a Sequential. Parameter names follow PyTorch's dotted paths for a twin built
the same way: a Residual keeps its parts as the attributes ``block`` and ``shortcut``, a
Concat its branches in ``branches`` (an nn.ModuleList in the twin), so a Sequential whose
layer 2 is ``Residual(Sequential(conv, ...))`` names the conv's weight ``2.block.0.weight``,
and branch 1 of a Concat at layer 3 gives ``3.branches.1.weight``.

Like a layer in a Sequential, a layer appears at most once in a container (its cache and
gradients would be overwritten by the second use); the container refuses it when built.
"""
import numpy as np

from .base import Layer, check_dtype, modules, one_line

__all__ = ["MAX_DEPTH", "Container", "Residual", "Concat", "check_child", "refuse_shared", "entry",
           "build", "output_shape_of"]

#: how deep a checkpoint's containers may nest (deeper is refused, not a recursion error)
MAX_DEPTH = 32


def _shape_text(shape):
    return "(N, " + ", ".join(str(v) for v in shape[1:]) + ")"


def _sequential_class():
    from . import CONTAINERS  # Sequential registers itself there (model imports layers)

    return CONTAINERS["Sequential"]


def check_child(owner, what, child):
    """``child`` if it is a layer or a Sequential, else TypeError naming it."""
    if not isinstance(child, (Layer, _sequential_class())):
        raise TypeError(f"{owner}: {what} must be a minicnn Layer or a Sequential, got "
                        f"{type(child).__name__} ({child!r})")
    return child


def refuse_shared(owner, children):
    """ValueError when one layer (or Sequential) appears in two children, or twice in one."""
    seen = {}
    for name, child in children:
        for m in modules(child):
            if id(m) in seen:
                raise ValueError(
                    f"{owner}: {one_line(m)} appears in {seen[id(m)]} and again in {name}; a "
                    f"layer keeps one forward's cache and writes its gradients in place, so it "
                    f"can appear only once in a model (use two layers)")
            seen[id(m)] = name


def entry(child):
    """{'class', 'config'} of a child, as checkpoints store it (a Sequential's config is
    {'layers': [...]})."""
    if isinstance(child, _sequential_class()):
        return {"class": "Sequential", "config": {"layers": child.get_config()}}
    return {"class": type(child).__name__, "config": child.get_config()}


def build(item, where, depth=0):
    """A layer or Sequential from an ``entry``; ValueError naming ``where`` when it is not one."""
    from . import LAYERS

    if depth > MAX_DEPTH:
        raise ValueError(f"{where}: containers nest deeper than {MAX_DEPTH} levels")
    if not isinstance(item, dict) or not isinstance(item.get("config"), dict):
        raise ValueError(f"{where}: expected {{'class': ..., 'config': {{...}}}}, got {item!r:.80}")
    name, config = item.get("class"), item["config"]
    if name == "Sequential":
        layers = config.get("layers")
        if not isinstance(layers, list):
            raise ValueError(f"{where}: a Sequential's config needs a list 'layers'")
        return _sequential_class()(*[build(e, f"{where}.{i}", depth + 1)
                                     for i, e in enumerate(layers)])
    if not isinstance(name, str) or name not in LAYERS:
        raise ValueError(f"{where}: unknown class {name!r}; known: {sorted(LAYERS)} and Sequential")
    cls = LAYERS[name]
    if issubclass(cls, Container):
        return cls.from_config(config, where, depth + 1)
    return cls.from_config(config)


def _indent(text):
    return text.replace("\n", "\n  ")


def _with_context(error, context):
    try:
        return type(error)(context + str(error))
    except Exception:  # an exception class with another constructor
        return (TypeError if isinstance(error, TypeError) else ValueError)(context + str(error))


def output_shape_of(child, shape):
    return tuple(child.output_shape(tuple(shape)))


class Container(Layer):
    """What Residual and Concat share: children, parameters, modes, dtype, repr."""

    def __init__(self):
        super().__init__()
        self.out_shape = None  # of the last training forward, checked against dout

    def children(self):
        raise NotImplementedError

    def _run(self, name, child, x, training):
        try:
            return child.forward(x, training)
        except (ValueError, TypeError) as e:
            raise _with_context(e, f"{type(self).__name__}.{name}: ") from e

    def _back(self, child, dout):
        return child.backward(dout)

    def _check_dout(self, dout):
        self._backward_check("out_shape")
        if np.shape(dout) != self.out_shape:
            raise ValueError(f"{type(self).__name__}: dout must have shape {self.out_shape}, "
                             f"got {np.shape(dout)}")

    def parameters(self, prefix=""):
        return [p for name, child in self.children() for p in child.parameters(f"{prefix}{name}.")]

    def named_buffers(self, prefix=""):
        return [b for name, child in self.children()
                for b in child.named_buffers(f"{prefix}{name}.")]

    def state_entries(self, prefix=""):
        return [e for name, child in self.children()
                for e in child.state_entries(f"{prefix}{name}.")]

    def zero_grad(self):
        for _, child in self.children():
            child.zero_grad()

    def train(self):
        self.training = True
        for _, child in self.children():
            child.train()
        return self

    def eval(self):
        self.training = False
        for _, child in self.children():
            child.eval()
        return self

    def astype(self, dtype):
        check_dtype(dtype, type(self).__name__)
        for _, child in self.children():
            child.astype(dtype)
        return self

    def macs(self, input_shape):
        total = 0
        for _, child in self.children():
            total += child.macs(tuple(input_shape))
        return total

    def receptive_params(self):
        return None  # the summary follows each child (minicnn.summary)

    @classmethod
    def from_config(cls, config, where=None, depth=0):
        raise NotImplementedError

    def __repr__(self):
        body = "".join(f"\n  ({name}): {_indent(repr(child))}" for name, child in self.children())
        return f"{type(self).__name__}({body}\n)"


class Residual(Container):
    """out = block(x) + shortcut(x); the shortcut is the identity when None.

    ``block`` and ``shortcut`` are layers or Sequentials; their outputs must have one shape
    (a projection shortcut, e.g. a 1x1 strided Conv2D, matches a block that changes the
    channels or the size). Backward sums the two paths' input gradients. Parameters are
    named ``block.<...>`` and ``shortcut.<...>`` (PyTorch's keys for a module with the
    attributes ``block`` and ``shortcut``).
    """

    def __init__(self, block, shortcut=None):
        super().__init__()
        self.block = check_child("Residual", "block", block)
        self.shortcut = None if shortcut is None else check_child("Residual", "shortcut",
                                                                   shortcut)
        refuse_shared("Residual", self.children())

    def children(self):
        kids = [("block", self.block)]
        return kids + ([("shortcut", self.shortcut)] if self.shortcut is not None else [])

    def _mismatch(self, out_shape, skip_shape):
        what = "the identity shortcut (its input)" if self.shortcut is None else "the shortcut"
        return ValueError(f"Residual: the block's output {_shape_text(out_shape)} and "
                          f"{what}'s output {_shape_text(skip_shape)} differ; they are added, "
                          f"so they need one shape (give a shortcut that maps the input to "
                          f"the block's output shape, e.g. a 1x1 Conv2D with the block's stride)")

    def forward(self, x, training=True):
        self.out_shape = None
        out = self._run("block", self.block, x, training)
        skip = np.asarray(x) if self.shortcut is None else self._run("shortcut", self.shortcut,
                                                                     x, training)
        if out.shape != skip.shape:
            raise self._mismatch(out.shape, skip.shape)
        out = out + skip.astype(out.dtype, copy=False)
        if training:
            self.out_shape = out.shape
        return out

    def backward(self, dout):
        self._check_dout(dout)
        dout = np.asarray(dout)
        # the block's backward gets its own copy: the identity path returns dout itself
        dx = self._back(self.block, dout.copy())
        dskip = dout if self.shortcut is None else self._back(self.shortcut, dout)
        return dx + dskip

    def output_shape(self, input_shape):
        out = output_shape_of(self.block, input_shape)
        skip = tuple(input_shape) if self.shortcut is None else output_shape_of(self.shortcut,
                                                                                input_shape)
        if out != skip:
            raise self._mismatch((None,) + out, (None,) + skip)
        return out

    def get_config(self):
        return {"block": entry(self.block),
                "shortcut": None if self.shortcut is None else entry(self.shortcut)}

    @classmethod
    def from_config(cls, config, where="Residual", depth=0):
        if set(config) - {"block", "shortcut"} or "block" not in config:
            raise ValueError(f"{where}: a Residual's config has the keys 'block' and "
                             f"'shortcut', got {sorted(config)}")
        shortcut = config.get("shortcut")
        return cls(build(config["block"], f"{where}.block", depth),
                   None if shortcut is None else build(shortcut, f"{where}.shortcut", depth))


class Concat(Container):
    """Every branch on the same input, the outputs joined along the channels (axis 1).

    The outputs must agree on every other axis; backward splits dout by channels and sums
    the branches' input gradients. Parameters are named ``branches.<i>.<...>`` (PyTorch's
    keys for a module holding an nn.ModuleList ``branches``).
    """

    def __init__(self, *branches):
        super().__init__()
        if not branches:
            raise ValueError("Concat: needs at least one branch, got none")
        self.branches = [check_child("Concat", f"branch {i}", b) for i, b in enumerate(branches)]
        refuse_shared("Concat", self.children())
        self.channels = None

    def children(self):
        return [(f"branches.{i}", b) for i, b in enumerate(self.branches)]

    def _joined_shape(self, shapes):
        first = shapes[0]
        if len(first) < 2 or any(len(s) != len(first) or s[:1] + s[2:] != first[:1] + first[2:]
                                 for s in shapes):
            listed = ", ".join(f"branch {i} {_shape_text(s)}" for i, s in enumerate(shapes))
            raise ValueError(f"Concat: the branches' outputs must have a channel axis and agree "
                             f"on every axis but the channels (axis 1), got {listed}")
        return first[:1] + (sum(s[1] for s in shapes),) + first[2:]

    def forward(self, x, training=True):
        self.out_shape = None
        outs = [self._run(name, b, x, training) for name, b in self.children()]
        self._joined_shape([o.shape for o in outs])
        dtype = outs[0].dtype
        out = np.concatenate([o.astype(dtype, copy=False) for o in outs], axis=1)
        if training:
            self.out_shape = out.shape
            self.channels = [o.shape[1] for o in outs]
        return out

    def backward(self, dout):
        self._check_dout(dout)
        dout = np.asarray(dout)
        dx, start = None, 0
        for b, c in zip(self.branches, self.channels):
            part = np.ascontiguousarray(dout[:, start:start + c])
            start += c
            g = self._back(b, part)
            dx = g if dx is None else dx + g
        return dx

    def output_shape(self, input_shape):
        shapes = [(None,) + output_shape_of(b, input_shape) for b in self.branches]
        return self._joined_shape(shapes)[1:]

    def get_config(self):
        return {"branches": [entry(b) for b in self.branches]}

    @classmethod
    def from_config(cls, config, where="Concat", depth=0):
        branches = config.get("branches")
        if set(config) != {"branches"} or not isinstance(branches, list):
            raise ValueError(f"{where}: a Concat's config is {{'branches': [...]}}, got "
                             f"keys {sorted(config)}")
        return cls(*[build(b, f"{where}.branches.{i}", depth) for i, b in enumerate(branches)])
