"""Dense: a fully connected layer, out = x @ W.T + b."""
import numpy as np

from ..backend import ops
from ..initializers import WEIGHT_INITS, init_weight
from ..rng import get_rng
from .base import Layer, as_float_input, check_dtype, fixed

__all__ = ["check_positive_int", "Dense"]


def check_positive_int(v, name, owner):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{owner}: {name} must be a positive int, got {v!r}")
    if v < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {v!r}")
    return int(v)


class Dense(Layer):
    """Fully connected layer. params: ``weight`` (out_features, in_features), ``bias`` (out_features,).

    Input (N, in_features); output (N, out_features). Weights are drawn with
    ``weight_init`` ('he' or 'glorot', fan_in = in_features, fan_out = out_features)
    from ``rng`` (a Generator, an int seed, or None for the package's generator);
    the bias starts at zero.
    """

    skips_input_grad = True
    defaults = {"bias": True, "weight_init": "he", "dtype": "float32"}
    in_features, out_features = fixed("in_features"), fixed("out_features")
    weight_init = fixed("weight_init")

    def __init__(self, in_features, out_features, bias=True, weight_init="he", dtype=np.float32,
                 rng=None):
        super().__init__()
        owner = f"Dense({in_features!r}, {out_features!r})"
        self._in_features = check_positive_int(in_features, "in_features", owner)
        self._out_features = check_positive_int(out_features, "out_features", owner)
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"{owner}: bias must be True or False, got {bias!r}")
        if not isinstance(weight_init, str) or weight_init not in WEIGHT_INITS:
            raise ValueError(f"{owner}: weight_init must be one of {list(WEIGHT_INITS)}, got {weight_init!r}")
        self._weight_init = weight_init
        self.dtype = check_dtype(dtype, owner)
        try:
            rng = get_rng(rng)
        except TypeError as e:
            raise TypeError(f"{owner}: {e}") from None
        self.params["weight"] = init_weight((self.out_features, self.in_features), self.in_features,
                                            self.out_features, weight_init, self.dtype, rng, owner)
        # np.zeros (calloc), not zeros_like (which writes every page): a model loaded from a
        # checkpoint holds no memory for gradients until it trains
        self.grads["weight"] = np.zeros(self.params["weight"].shape, self.dtype)
        if bias:
            self.params["bias"] = np.zeros(self.out_features, dtype=self.dtype)
            self.grads["bias"] = np.zeros_like(self.params["bias"])
        self.x = None

    def get_config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": "bias" in self.params, "weight_init": self.weight_init,
                "dtype": np.dtype(self.dtype).name}

    def __repr__(self):
        extra = self.extra_repr(skip=("in_features", "out_features"))
        return f"Dense({self.in_features}, {self.out_features}{', ' + extra if extra else ''})"

    def _check(self, shape, batch=None):
        """Raise unless ``shape`` is (N, in_features); ``batch`` names N when the shape lacks it."""
        full = tuple(shape) if batch is None else (batch,) + tuple(shape)
        if len(full) != 2 or full[1] != self.in_features:
            hint = " (put a Flatten() before it)" if len(full) > 2 else ""
            got = "(" + ", ".join(str(d) for d in full) + ("," if len(full) == 1 else "") + ")"
            raise ValueError(f"{self!r}: expected input (N, {self.in_features}), got {got}{hint}")

    def forward(self, x, training=True):
        x = as_float_input(x, self, self.dtype)
        self._check(x.shape)
        self.x = x if training else None
        return ops.dense(x, self.params["weight"], self.params.get("bias"))

    def backward(self, dout, need_dx=True):
        """Fill grads (in place) and return dx; ``need_dx=False`` skips dx and returns None."""
        self._backward_check("x")
        dx, dw, db = ops.dense_backward(dout, self.x, self.params["weight"], "bias" in self.params,
                                      need_dx)
        self._store_grads(dw, db)
        return dx

    def output_shape(self, input_shape):
        self._check(input_shape, batch="N")
        return (self.out_features,)

    def macs(self, input_shape):
        return self.in_features * self.out_features
