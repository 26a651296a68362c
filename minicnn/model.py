"""Sequential: a stack of layers run in order."""
import threading

import numpy as np

from .backend import ops
from .layers import register_container
from .allocator import cached_allocation
from .layers.base import Layer, check_dtype, modules, one_line
from .rng import get_rng
from .runtime import blas_single_thread

__all__ = ["ConcurrentUseError", "Sequential"]


def _with_context(error, context):
    """The same kind of error with ``context`` (which layers, which shapes) in front."""
    try:
        return type(error)(context + str(error))
    except Exception:  # an exception class with another constructor
        return (TypeError if isinstance(error, TypeError) else ValueError)(context + str(error))


class ConcurrentUseError(RuntimeError):
    """A model was trained from two threads at once."""


@register_container
class Sequential:
    """Layers applied one after the other.

    ``forward`` runs them in order, ``backward`` in reverse (each layer fills its
    ``grads``), ``parameters()`` lists every parameter with a dotted name such as
    ``0.weight``. Indexable (a slice gives a new Sequential sharing the layers) and
    iterable; the layers are in ``layers``. ``input_shape`` (one sample's, e.g. (1, 28, 28))
    is what ``summary()`` describes when given no shape and the model has not run yet.

    A layer appears at most once in a model: each layer keeps the cache of its last
    forward pass and writes its gradients in place, so a second use would overwrite the
    first's (use two layers). Training belongs to one thread at a time: a training forward
    or a backward while another thread runs one, or a backward of another thread's forward,
    raises ConcurrentUseError (it would mix the two passes' caches and gradients); so does
    an inference forward while another thread trains. Inference forwards
    (``training=False``) may run in several threads at once.
    """

    def __init__(self, *layers, rng=None, input_shape=None):
        self.layers = []
        self.training = True
        self.rng = None if rng is None else get_rng(rng)
        self.input_shape = None
        self.last_input_shape = None  # of one sample, in the last forward
        if input_shape is not None:
            from .summary import check_input_shape

            self.input_shape = check_input_shape(input_shape, "Sequential")
        self._init_guard()
        for layer in layers:
            self.add(layer)

    def _init_guard(self):
        self._busy = threading.Lock()    # held while a training forward or a backward runs
        self._busy_thread = None         # by this thread (its ident)
        self._forward_thread = None      # the thread of the last training forward

    def __getstate__(self):              # copy.deepcopy and pickle: a lock is neither
        state = dict(self.__dict__)
        for key in ("_busy", "_busy_thread", "_forward_thread"):
            state.pop(key, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_guard()

    def add(self, layer):
        """Append a layer or a container such as Residual (returns self); a layer the model
        already holds, at any depth, is refused."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential: layer {len(self.layers)} must be a minicnn Layer, got "
                            f"{type(layer).__name__} ({layer!r})")
        held = {id(m): (f"layer {i}" if m is other else f"in layer {i}")
                for i, other in enumerate(self.layers) for m in modules(other)}
        held[id(self)] = "the model itself"
        for m in modules(layer):
            if id(m) in held:
                what = "is" if m is layer else f"holds {m!r}, which is"
                raise ValueError(
                    f"Sequential: layer {len(self.layers)} {one_line(layer)} {what} "
                    f"{held[id(m)]} already; a layer keeps one forward's cache and writes its "
                    f"gradients in place, so it can appear only once in a model (use two layers)")
        if self.rng is not None:
            for m in modules(layer):
                if isinstance(m, Layer) and getattr(m, "rng", False) is None:
                    m.rng = self.rng  # Dropout draws from the model's generator
        self.layers.append(layer)
        return self

    def children(self):
        """[(index as a string, layer)]: the names of the dotted parameter paths."""
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

    # --- running -------------------------------------------------------------------
    def forward(self, x, training=None):
        """Run every layer; ``training=None`` uses the mode set by train() / eval()."""
        training = self.training if training is None else bool(training)
        if not training:
            if self._busy.locked() and self._busy_thread != threading.get_ident():
                self._refuse("an inference forward")     # it would clear the caches
            return self._run(x, False)
        self._enter("a training forward")
        try:
            held = [id(m) for m in modules(self)]
            if len(set(held)) != len(held):
                raise ValueError(f"Sequential: a layer appears twice in {self.layers} (changed "
                                 f"through .layers?); each layer can appear only once")
            out = self._run(x, True)
            self._forward_thread = self._busy_thread
            return out
        finally:
            self._leave()

    def _run(self, x, training):
        shape = tuple(np.shape(x)[1:])
        # once for the whole pass, not per product; temporaries reuse freed blocks
        with blas_single_thread(), cached_allocation():
            for i, layer in enumerate(self.layers):
                try:
                    x = layer.forward(x, training)
                except (ValueError, TypeError) as e:
                    raise _with_context(e, self._where(i, np.shape(x))) from e
        self.last_input_shape = shape
        return x

    __call__ = forward

    def backward(self, dout, input_grad=True):
        """Backpropagate ``dout`` (the gradient of the loss with respect to the output); returns dx.

        With ``input_grad=False`` (as the Trainer calls it) the first layer skips the
        gradient of the model input, which nothing uses in training, and None is returned.
        """
        self._enter("a backward")
        try:
            if self._forward_thread not in (None, self._busy_thread):
                self._refuse("a backward", "whose last training forward ran in another thread")
            with blas_single_thread(), cached_allocation():    # (as in _run)
                for i in range(len(self.layers) - 1, -1, -1):
                    layer = self.layers[i]
                    if i == 0 and not input_grad and layer.skips_input_grad:
                        # (assigned, not returned: the last gradient dies inside the block,
                        # where the allocator keeps its memory for the next step)
                        dout = layer.backward(dout, need_dx=False)
                        break
                    dout = layer.backward(dout)
            return dout
        finally:
            self._leave()

    # --- one thread trains at a time ------------------------------------------------
    def _enter(self, what):
        """Take the model for a training forward or a backward, or raise ConcurrentUseError
        when another thread has it: never a wait (waiting would interleave two trainers'
        steps silently)."""
        if not self._busy.acquire(blocking=False):
            self._refuse(what)
        self._busy_thread = threading.get_ident()

    def _leave(self):
        self._busy_thread = None
        self._busy.release()

    def _refuse(self, what, why="while another thread trains it"):
        raise ConcurrentUseError(
            f"Sequential: {what} from thread {threading.current_thread().name!r} {why}; "
            f"training one model from two threads at once mixes their caches and gradients "
            f"(give each thread its own model, or train one after the other)")

    def predict(self, x, batch_size=256):
        """Class probabilities (softmax of the outputs), in eval mode, ``batch_size`` images at a time."""
        if batch_size < 1:
            raise ValueError(f"Sequential.predict: batch_size must be >= 1, got {batch_size}")
        out = [ops.softmax(self.forward(x[i:i + batch_size], training=False), axis=1)
               for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, 0))

    def _where(self, i, shape):
        here = f"layer {i} {one_line(self.layers[i])}"
        shape = "(" + ", ".join(str(v) for v in shape) + ("," if len(shape) == 1 else "") + ")"
        if i == 0:
            return f"{here} cannot take the model input of shape {shape}: "
        return (f"{here} cannot take the output of layer {i - 1} {one_line(self.layers[i - 1])}, of "
                f"shape {shape}: ")

    # --- parameters and modes ------------------------------------------------------------
    def parameters(self, prefix=""):
        """Every parameter as a Parameter (name like ``3.weight``, or ``2.block.0.weight`` in
        a container, value, grad); ``prefix`` goes in front of each name."""
        return [p for i, layer in enumerate(self.layers)
                for p in layer.parameters(f"{prefix}{i}.")]

    def buffers(self, prefix=""):
        """Every buffer (saved but not trained, e.g. ``1.running_mean``) as a Buffer."""
        return [b for i, layer in enumerate(self.layers)
                for b in layer.named_buffers(f"{prefix}{i}.")]

    named_buffers = buffers     # the name a container asks its children for

    def state_entries(self, prefix=""):
        """Parameters and buffers, in PyTorch's order (each layer's parameters, then its
        buffers; a container's children in turn), as objects with ``name`` and ``value``
        (the live array)."""
        return [e for i, layer in enumerate(self.layers)
                for e in layer.state_entries(f"{prefix}{i}.")]

    def state_dict(self):
        """{dotted name: a copy of the parameter or buffer array} (PyTorch's keys)."""
        return {e.name: e.value.copy() for e in self.state_entries()}

    def load_state_dict(self, state):
        """Copy arrays into the parameters and buffers; names and shapes must match exactly."""
        params = {e.name: e for e in self.state_entries()}
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if missing or unexpected:
            raise KeyError(f"Sequential.load_state_dict: missing {missing}, unexpected {unexpected}")
        for name, p in params.items():
            value = np.asarray(state[name])
            if value.shape != p.value.shape:
                raise ValueError(f"Sequential.load_state_dict: {name} has shape {value.shape}, "
                                 f"the model expects {p.value.shape}")
            p.value[...] = value
        return self

    def zero_grad(self):
        for layer in self.layers:
            layer.zero_grad()

    def train(self):
        self.training = True
        for layer in self.layers:
            layer.train()
        return self

    def eval(self):
        self.training = False
        for layer in self.layers:
            layer.eval()
        return self

    def astype(self, dtype):
        """Convert every layer's parameters in place; returns self."""
        check_dtype(dtype, "Sequential.astype")
        for layer in self.layers:
            layer.astype(dtype)
        return self

    def output_shape(self, input_shape):
        """The output shape (without batch) for an input shape (without batch)."""
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = tuple(layer.output_shape(shape))
        return shape

    def macs(self, input_shape):
        """Multiply-accumulates for one sample of ``input_shape`` (no batch axis)."""
        total, shape = 0, tuple(input_shape)
        for layer in self.layers:
            total += layer.macs(shape)
            shape = tuple(layer.output_shape(shape))
        return total

    # --- description -------------------------------------------------------------------
    def summary(self, input_shape=None, print_fn="auto"):
        """The table of output shapes, parameters, MACs and receptive fields (see minicnn.summary).

        Without ``input_shape``: the shape of the last batch the model ran on, else the one
        given to the constructor, else the one a loaded checkpoint records.

        Shown once wherever it is called: ``print_fn='auto'`` prints the table in a script
        and returns it without printing at a prompt or in a notebook, which show the returned
        table themselves (as text, or as an HTML table in Jupyter). ``print_fn=print`` (or any
        function taking a string) always prints it, ``None`` never does.
        """
        from .summary import summarize

        table = summarize(self, self._described_shape(input_shape, "summary"))
        if print_fn == "auto":
            from .notebook import session_shows_values

            print_fn = None if session_shows_values() else print
        if print_fn is not None:
            print_fn(str(table))
        return table

    def explain(self, input_shape=None):
        """Every layer's arithmetic with its numbers (output size, 'same' padding, parameters,
        MACs, receptive field and jump), as text; see minicnn.explain. ``input_shape`` as in
        summary()."""
        from .explain import explain

        return explain(self, self._described_shape(input_shape, "explain"))

    def _described_shape(self, input_shape, method):
        """``input_shape``, else the last batch's, the constructor's or a checkpoint's."""
        if input_shape is None:
            recorded = getattr(self, "metadata", None)
            recorded = recorded.get("input_shape") if isinstance(recorded, dict) else None
            input_shape = self.last_input_shape or self.input_shape or recorded
        if input_shape is None:
            raise ValueError(f"Sequential.{method}: no input shape to describe: pass one, e.g. "
                             f"model.{method}((1, 28, 28)), build the model with "
                             "Sequential(..., input_shape=(1, 28, 28)), or run it on a batch first")
        return input_shape

    def _repr_html_(self):
        """Jupyter's view of the model: the summary table when an input shape is known, else
        the layers and their parameter counts."""
        from .notebook import model_html

        return model_html(self)

    def save(self, path, metadata=None):
        """Write the architecture and parameters to one .npz file, atomically (see minicnn.checkpoint)."""
        from .checkpoint import save

        save(self, path, metadata)

    def get_config(self):
        return [{"class": type(layer).__name__, "config": layer.get_config()} for layer in self.layers]

    # --- container protocol ---------------------------------------------------------------
    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self):
        body = "".join(f"\n  ({i}): " + repr(layer).replace("\n", "\n  ")
                       for i, layer in enumerate(self.layers))
        return f"Sequential({body}\n)" if body else "Sequential()"
