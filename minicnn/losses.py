"""Losses. ``forward(pred, target)`` returns the loss as a float; ``backward()`` returns dpred."""
import numpy as np

from . import functional as F


class Loss:
    def __call__(self, pred, target):
        return self.forward(pred, target)

    def __repr__(self):
        return f"{type(self).__name__}()"

    def _check_pred(self, pred):
        pred = np.asarray(pred)
        if pred.dtype not in (np.float32, np.float64):
            raise TypeError(f"{self!r}: predictions must be float32 or float64, got {pred.dtype}")
        return pred

    def _backward_check(self):
        if getattr(self, "cache", None) is None:
            raise RuntimeError(f"{self!r}: backward called before forward")


class SoftmaxCrossEntropy(Loss):
    """Softmax followed by cross-entropy, averaged over the batch.

    pred: logits (N, C); target: integer class labels (N,) in [0, C). Computed with
    log-sum-exp, so large logits never overflow. ``probs`` holds the softmax of the
    last forward (for accuracy); the gradient is (softmax - one_hot) / N.
    """

    def __init__(self):
        self.cache = None
        self.probs = None

    def forward(self, pred, target):
        pred = self._check_pred(pred)
        target = np.asarray(target)
        if pred.ndim != 2:
            raise ValueError(f"{self!r}: expected logits (N, C), got shape {pred.shape}")
        if target.dtype.kind not in "iu":
            raise TypeError(f"{self!r}: labels must be integers, got {target.dtype}")
        if target.shape != (pred.shape[0],):
            raise ValueError(f"{self!r}: expected labels of shape ({pred.shape[0]},) for logits "
                             f"{pred.shape}, got {target.shape}")
        n, c = pred.shape
        if n and (target.min() < 0 or target.max() >= c):
            raise ValueError(f"{self!r}: labels must be in [0, {c}), got values from "
                             f"{target.min()} to {target.max()}")
        logp = F.log_softmax(pred, axis=1)
        rows = np.arange(n)
        self.probs = np.exp(logp)
        self.cache = (target.astype(np.intp), pred.dtype)
        return float(-logp[rows, target].mean()) if n else 0.0

    def backward(self):
        self._backward_check()
        target, dtype = self.cache
        n = target.shape[0]
        grad = self.probs.copy()
        grad[np.arange(n), target] -= 1
        grad /= max(n, 1)
        return grad.astype(dtype, copy=False)


class MSELoss(Loss):
    """Mean squared error over every element (PyTorch's default 'mean' reduction)."""

    def __init__(self):
        self.cache = None

    def forward(self, pred, target):
        pred = self._check_pred(pred)
        target = np.asarray(target)
        if target.shape != pred.shape:
            raise ValueError(f"{self!r}: target shape {target.shape} differs from prediction "
                             f"shape {pred.shape}")
        diff = pred - target.astype(pred.dtype, copy=False)
        self.cache = diff
        return float(np.mean(diff * diff)) if diff.size else 0.0

    def backward(self):
        self._backward_check()
        diff = self.cache
        return (2 / max(diff.size, 1)) * diff
