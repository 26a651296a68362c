"""Softmax, log-softmax and the losses: softmax cross-entropy and mean squared error.
Readable version: minicnn/reference/loss.py."""
import numpy as np

__all__ = ["log_softmax", "log_softmax_backward", "softmax", "softmax_backward",
           "softmax_cross_entropy", "softmax_cross_entropy_backward", "mse", "mse_backward"]


def log_softmax(x, axis=-1):
    """x - logsumexp(x): the max is subtracted first, so large logits never overflow."""
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)), computed stably (the max is subtracted first)."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_backward(dout, out, axis=-1):
    """dx for out = softmax(x): out * (dout - sum(dout * out)) along ``axis``, out's dtype."""
    dout = np.asarray(dout, dtype=out.dtype)
    return out * (dout - (dout * out).sum(axis=axis, keepdims=True))


def log_softmax_backward(dout, out, axis=-1):
    """dx for out = log_softmax(x): dout - exp(out) * sum(dout) along ``axis``, out's dtype."""
    dout = np.asarray(dout, dtype=out.dtype)
    return dout - np.exp(out) * dout.sum(axis=axis, keepdims=True)


def softmax_cross_entropy(logits, labels):
    """Mean over the batch of -log softmax(logits)[n, labels[n]]: returns (loss, probs).

    logits (N, C) float; labels (N,) ints in [0, C) (not checked here). probs (N, C)
    has logits' dtype; the loss is a Python float (0.0 for an empty batch).
    """
    logp = log_softmax(logits, axis=1)
    n = logits.shape[0]
    loss = float(-logp[np.arange(n), labels].mean()) if n else 0.0
    return loss, np.exp(logp)


def softmax_cross_entropy_backward(probs, labels):
    """(probs - one_hot(labels)) / N, in probs' dtype."""
    n = probs.shape[0]
    dlogits = probs.copy()
    dlogits[np.arange(n), labels] -= 1
    dlogits /= max(n, 1)
    return dlogits


def mse(pred, target):
    """Mean of (pred - target)**2 over every element: returns (loss, diff)."""
    diff = pred - np.asarray(target, dtype=pred.dtype)
    return (float(np.mean(diff * diff)) if diff.size else 0.0), diff


def mse_backward(diff):
    """2 (pred - target) / number of elements, in diff's dtype."""
    return diff * diff.dtype.type(2 / max(diff.size, 1))
