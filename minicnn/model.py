"""Sequential: a stack of layers run in order."""
import numpy as np

from . import functional as F
from .layers.base import Layer, check_dtype
from .random import get_rng
from .runtime import blas_single_thread


def _with_context(error, context):
    """The same kind of error with ``context`` (which layers, which shapes) in front."""
    try:
        return type(error)(context + str(error))
    except Exception:  # an exception class with another constructor
        return (TypeError if isinstance(error, TypeError) else ValueError)(context + str(error))


class Sequential:
    """Layers applied one after the other.

    ``forward`` runs them in order, ``backward`` in reverse (each layer fills its
    ``grads``), ``parameters()`` lists every parameter with a dotted name such as
    ``0.weight``. Indexable (a slice gives a new Sequential sharing the layers) and
    iterable; the layers are in ``layers``. ``input_shape`` (one sample's, e.g. (1, 28, 28))
    is what ``summary()`` describes when given no shape and the model has not run yet.
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
        for layer in layers:
            self.add(layer)

    def add(self, layer):
        """Append a layer (returns self)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential: layer {len(self.layers)} must be a minicnn Layer, got "
                            f"{type(layer).__name__} ({layer!r})")
        if self.rng is not None and getattr(layer, "rng", False) is None:
            layer.rng = self.rng  # Dropout draws from the model's generator
        self.layers.append(layer)
        return self

    # --- running -------------------------------------------------------------------
    def forward(self, x, training=None):
        """Run every layer; ``training=None`` uses the mode set by train() / eval()."""
        training = self.training if training is None else bool(training)
        shape = tuple(np.shape(x)[1:])
        with blas_single_thread():          # once for the whole pass, not per product
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
        with blas_single_thread():
            for i in range(len(self.layers) - 1, -1, -1):
                layer = self.layers[i]
                if i == 0 and not input_grad and layer.skips_input_grad:
                    return layer.backward(dout, need_dx=False)
                dout = layer.backward(dout)
        return dout

    def predict(self, x, batch_size=256):
        """Class probabilities (softmax of the outputs), in eval mode, ``batch_size`` images at a time."""
        if batch_size < 1:
            raise ValueError(f"Sequential.predict: batch_size must be >= 1, got {batch_size}")
        out = [F.softmax(self.forward(x[i:i + batch_size], training=False), axis=1)
               for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, 0))

    def _where(self, i, shape):
        here = f"layer {i} {self.layers[i]!r}"
        shape = "(" + ", ".join(str(v) for v in shape) + ("," if len(shape) == 1 else "") + ")"
        if i == 0:
            return f"{here} cannot take the model input of shape {shape}: "
        return (f"{here} cannot take the output of layer {i - 1} {self.layers[i - 1]!r}, of "
                f"shape {shape}: ")

    # --- parameters and modes ------------------------------------------------------------
    def parameters(self):
        """Every parameter as a Parameter (name like ``3.weight``, value, grad)."""
        return [p for i, layer in enumerate(self.layers) for p in layer.parameters(f"{i}.")]

    def state_dict(self):
        """{dotted name: a copy of the parameter array}."""
        return {p.name: p.value.copy() for p in self.parameters()}

    def load_state_dict(self, state):
        """Copy arrays into the parameters; names and shapes must match exactly."""
        params = {p.name: p for p in self.parameters()}
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

    # --- description -------------------------------------------------------------------
    def summary(self, input_shape=None, print_fn=print):
        """The table of output shapes, parameters, MACs and receptive fields (see minicnn.summary).

        Without ``input_shape``: the shape of the last batch the model ran on, else the one
        given to the constructor, else the one a loaded checkpoint records.
        """
        from .summary import summarize

        if input_shape is None:
            recorded = getattr(self, "metadata", None)
            recorded = recorded.get("input_shape") if isinstance(recorded, dict) else None
            input_shape = self.last_input_shape or self.input_shape or recorded
        if input_shape is None:
            raise ValueError("Sequential.summary: no input shape to describe: pass one, e.g. "
                             "model.summary((1, 28, 28)), build the model with "
                             "Sequential(..., input_shape=(1, 28, 28)), or run it on a batch first")
        table = summarize(self, input_shape)
        if print_fn is not None:
            print_fn(str(table))
        return table

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
        body = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({body}\n)" if body else "Sequential()"
