"""Dense: a fully connected layer, out = x @ W.T + b."""
import numpy as np

from .. import functional as F
from ..init import WEIGHT_INITS, init_weight
from .base import Layer, as_float_input, check_dtype


class Dense(Layer):
    """Fully connected layer. params: ``weight`` (out_features, in_features), ``bias`` (out_features,).

    Input (N, in_features); output (N, out_features).
    """

    defaults = {"bias": True, "weight_init": "he", "dtype": "float32"}

    def __init__(self, in_features, out_features, bias=True, weight_init="he", dtype=np.float32,
                 rng=None):
        super().__init__()
        owner = f"Dense({in_features}, {out_features})"
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{owner}: {name} must be a positive int, got {v!r}")
        if weight_init not in WEIGHT_INITS:
            raise ValueError(f"{owner}: weight_init must be one of {list(WEIGHT_INITS)}, got {weight_init!r}")
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"{owner}: bias must be True or False, got {bias!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight_init = weight_init
        self.dtype = check_dtype(dtype, owner)
        self.params["weight"] = init_weight((self.out_features, self.in_features), self.in_features,
                                            self.out_features, weight_init, self.dtype, rng, owner)
        self.grads["weight"] = np.zeros_like(self.params["weight"])
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

    def _check(self, shape):
        if len(shape) != 2 or shape[1] != self.in_features:
            hint = " (put a Flatten() before it)" if len(shape) > 2 else ""
            raise ValueError(f"{self!r}: expected input (N, {self.in_features}), got {tuple(shape)}{hint}")

    def forward(self, x, training=True):
        x = as_float_input(x, repr(self), self.dtype)
        self._check(x.shape)
        self.x = x if training else None
        return F.dense(x, self.params["weight"], self.params.get("bias"))

    def backward(self, dout):
        self._backward_check("x")
        dx, dw, db = F.dense_backward(dout, self.x, self.params["weight"], "bias" in self.params)
        self.grads["weight"] = dw
        if db is not None:
            self.grads["bias"] = db
        return dx

    def output_shape(self, input_shape):
        self._check((None,) + tuple(input_shape))
        return (self.out_features,)

    def macs(self, input_shape):
        return self.in_features * self.out_features
