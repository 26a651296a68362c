"""Losses. ``forward(pred, target)`` (also ``loss(pred, target)``) returns the loss as a
Python float; ``backward()`` then returns d loss / d pred, in pred's dtype."""
import numpy as np

from .backend import ops

__all__ = ["Loss", "SoftmaxCrossEntropy", "MSELoss"]


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

    def check_targets(self, target, owner):
        """Refuse, before any step, targets this loss can never take (``owner`` names the caller)."""
        target = np.asarray(target)
        if target.dtype.kind not in "biuf":
            raise TypeError(f"{owner}: {self!r} needs numeric targets, got {target.dtype}")
        return target


class SoftmaxCrossEntropy(Loss):
    """Softmax followed by cross-entropy, averaged over the batch.

    pred: logits (N, C); target: integer class labels (N,) in [0, C) (not one-hot).
    Computed with log-sum-exp, so large logits never overflow. ``probs`` holds the
    softmax (N, C) of the last forward (for accuracy); the gradient is
    (softmax - one_hot) / N.
    """

    def __init__(self):
        self.cache = None
        self.probs = None

    def check_targets(self, target, owner):
        """Labels for a whole data set: (N,) integer class indices >= 0 (the upper bound, the
        number of classes, is checked against the logits at every forward)."""
        target = np.asarray(target)
        if target.ndim == 2 and target.shape[1] > 1:
            raise ValueError(f"{owner}: {self!r} takes class indices (N,), got labels of shape "
                             f"{target.shape} that look one-hot; pass y.argmax(axis=1)")
        if target.ndim != 1:
            raise ValueError(f"{owner}: {self!r} takes labels of shape (N,) (class indices), got "
                             f"shape {target.shape}")
        if target.dtype.kind not in "iu":
            hint = ("; whole numbers stored as floats: pass y.astype(int)" if target.dtype.kind == "f"
                    and target.size and np.all(np.isfinite(target)) and np.all(target == np.round(target))
                    else "")
            raise TypeError(f"{owner}: {self!r} takes integer class indices, got {target.dtype} "
                            f"labels{hint}")
        if target.size and target.min() < 0:
            raise ValueError(f"{owner}: {self!r} takes class indices >= 0, got {target.min()}")
        return target

    def _check_target(self, pred, target):
        if pred.ndim != 2:
            raise ValueError(f"{self!r}: expected logits (N, C), got shape {pred.shape}")
        if target.dtype.kind not in "iu":
            raise TypeError(f"{self!r}: labels must be integers (class indices), got {target.dtype} "
                            f"labels of shape {target.shape} for logits {pred.shape}")
        if target.shape != (pred.shape[0],):
            hint = " (class indices, not one-hot)" if target.shape == pred.shape else ""
            raise ValueError(f"{self!r}: expected labels of shape ({pred.shape[0]},) for logits "
                             f"{pred.shape}, got {target.shape}{hint}")
        c = pred.shape[1]
        if target.size and (target.min() < 0 or target.max() >= c):
            raise ValueError(f"{self!r}: labels must be in [0, {c}) for logits {pred.shape}, got "
                             f"values from {target.min()} to {target.max()}")

    def forward(self, pred, target):
        pred = self._check_pred(pred)
        target = np.asarray(target)
        self._check_target(pred, target)
        target = target.astype(np.intp, copy=False)
        loss, self.probs = ops.softmax_cross_entropy(pred, target)
        self.cache = target
        return loss

    def backward(self):
        self._backward_check()
        return ops.softmax_cross_entropy_backward(self.probs, self.cache)


class MSELoss(Loss):
    """Mean squared error over every element (PyTorch's default 'mean' reduction).

    pred and target have the same shape; the gradient is 2 (pred - target) / pred.size.
    """

    def __init__(self):
        self.cache = None

    def forward(self, pred, target):
        pred = self._check_pred(pred)
        target = np.asarray(target)
        if target.dtype.kind not in "biuf":
            raise TypeError(f"{self!r}: target must be real numbers, got {target.dtype}")
        if target.shape != pred.shape:
            raise ValueError(f"{self!r}: target shape {target.shape} differs from prediction "
                             f"shape {pred.shape}")
        loss, self.cache = ops.mse(pred, target)
        return loss

    def backward(self):
        self._backward_check()
        return ops.mse_backward(self.cache)
