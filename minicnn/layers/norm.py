"""Batch normalisation layers: BatchNorm1D (Dense outputs) and BatchNorm2D (images)."""
import numbers

import numpy as np

from ..backend import ops
from .base import Layer, as_float_input, check_dtype, fixed

__all__ = ["BatchNorm1D", "BatchNorm2D"]


class _BatchNorm(Layer):
    """Normalise each channel with the batch's mean and variance (training) or running
    estimates of them (evaluation), then scale by ``weight`` and shift by ``bias``.

    PyTorch's arguments and rules: momentum is the weight of each batch in the running
    statistics (None: their cumulative average, 1 / num_batches_tracked); the running
    variance is the unbiased one; with ``track_running_stats=False`` there are no running
    statistics and evaluation uses the batch's too. params: ``weight`` (ones) and ``bias``
    (zeros), of shape (num_features,), when ``affine``; buffers: ``running_mean`` (zeros),
    ``running_var`` (ones) and ``num_batches_tracked`` (an int64 scalar), when tracking.
    backward reads the input of the last forward itself, not a copy.
    """

    skips_input_grad = True
    #: the input ranks the layer takes, and how its error message names them
    ranks, shapes = (), ""
    num_features, eps, momentum = fixed("num_features"), fixed("eps"), fixed("momentum")
    affine, track_running_stats = fixed("affine"), fixed("track_running_stats")
    defaults = {"eps": 1e-5, "momentum": 0.1, "affine": True, "track_running_stats": True,
                "dtype": "float32"}

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32):
        super().__init__()
        owner = f"{type(self).__name__}({num_features!r})"
        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)) \
                or num_features < 1:
            raise ValueError(f"{owner}: num_features must be a positive int, got {num_features!r}")
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
            raise ValueError(f"{owner}: eps must be a positive number, got eps={eps!r}")
        if momentum is not None and (isinstance(momentum, bool)
                                     or not isinstance(momentum, numbers.Real)
                                     or not 0 <= momentum <= 1):
            raise ValueError(f"{owner}: momentum must be a number in [0, 1] or None (a "
                             f"cumulative average), got momentum={momentum!r}")
        for name, v in (("affine", affine), ("track_running_stats", track_running_stats)):
            if not isinstance(v, (bool, np.bool_)):
                raise TypeError(f"{owner}: {name} must be True or False, got {v!r}")
        self._num_features = int(num_features)
        self._eps = float(eps)
        self._momentum = None if momentum is None else float(momentum)
        self._affine, self._track_running_stats = bool(affine), bool(track_running_stats)
        self.dtype = check_dtype(dtype, owner)
        C = self.num_features
        if self.affine:
            self.params["weight"] = np.ones(C, self.dtype)
            self.params["bias"] = np.zeros(C, self.dtype)
            self.grads["weight"] = np.zeros(C, self.dtype)
            self.grads["bias"] = np.zeros(C, self.dtype)
        if self.track_running_stats:
            self.buffers["running_mean"] = np.zeros(C, self.dtype)
            self.buffers["running_var"] = np.ones(C, self.dtype)
            self.buffers["num_batches_tracked"] = np.zeros((), np.int64)
        self.cache = None

    def get_config(self):
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.affine, "track_running_stats": self.track_running_stats,
                "dtype": np.dtype(self.dtype).name}

    def __repr__(self):
        extra = self.extra_repr(skip=("num_features",))
        return f"{self.name}({self.num_features}{', ' + extra if extra else ''})"

    def reset_running_stats(self):
        """Running mean 0, variance 1, no batch counted (as when built)."""
        if self.track_running_stats:
            self.buffers["running_mean"].fill(0)
            self.buffers["running_var"].fill(1)
            self.buffers["num_batches_tracked"][...] = 0

    def _check_input(self, x):
        x = as_float_input(x, self, self.dtype)
        if x.ndim not in self.ranks or x.shape[1] != self.num_features:
            raise ValueError(f"{self!r}: expected input {self.shapes.format(C=self.num_features)}, "
                             f"got {x.shape}")
        return x

    def forward(self, x, training=True):
        x = self._check_input(x)
        momentum = self.momentum
        running_mean = self.buffers.get("running_mean")
        running_var = self.buffers.get("running_var")
        if training and self.track_running_stats:
            if x.size // x.shape[1] > 1:        # else batch_norm_forward names the problem
                count = self.buffers["num_batches_tracked"]
                count[...] = count + 1
                if momentum is None:
                    momentum = 1.0 / int(count)
        out, cache = ops.batch_norm_forward(
            x, running_mean, running_var, self.params.get("weight"), self.params.get("bias"),
            training, 0.0 if momentum is None else momentum, self.eps, owner=self)
        self.cache = cache if training else None
        return out

    def backward(self, dout, need_dx=True):
        """Fill grads (in place) and return dx; ``need_dx=False`` skips dx and returns None."""
        self._backward_check()
        dx, dweight, dbias = ops.batch_norm_backward(dout, self.cache, need_dx)
        if self.affine:
            self._store_grads(dweight, dbias)
        return dx

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) + 1 not in self.ranks or shape[0] != self.num_features:
            raise ValueError(f"{self!r}: expected input {self.shapes.format(C=self.num_features)},"
                             f" got (N, {', '.join(str(v) for v in shape)})")
        return shape

    def macs(self, input_shape):
        """One multiply-add per value (the folded scale and shift)."""
        return int(np.prod(input_shape))


class BatchNorm2D(_BatchNorm):
    """Batch normalisation of images (N, C, H, W), over N, H and W for each channel
    (PyTorch's BatchNorm2d)."""

    ranks, shapes = (4,), "(N, {C}, H, W)"


class BatchNorm1D(_BatchNorm):
    """Batch normalisation of features (N, C) (a Dense layer's output) or sequences
    (N, C, L), over N (and L) for each channel (PyTorch's BatchNorm1d)."""

    ranks, shapes = (2, 3), "(N, {C}) or (N, {C}, L)"
