"""Softmax, log-softmax and the losses, forward and backward.

softmax turns a row of scores x (the logits) into probabilities:

    softmax(x)_k = e^(x_k) / sum over j of e^(x_j)

Subtracting any constant from every x_j leaves this unchanged, so the largest score m
is subtracted first: then no e^ overflows, and the log of the sum is the log-sum-exp

    logsumexp(x) = m + log(sum over j of e^(x_j - m)),   log_softmax(x) = x - logsumexp(x).

The cross-entropy of a row with integer label y is -log softmax(x)_y, averaged over the
N rows of the batch; its gradient is (softmax(x) - one_hot(y)) / N. The mean squared
error is the mean of (pred - target)^2 over all its elements, its gradient
2 (pred - target) / (number of elements).
"""
import numpy as np

__all__ = ["logsumexp", "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
           "one_hot", "softmax_cross_entropy", "softmax_cross_entropy_backward", "mse",
           "mse_backward"]


def logsumexp(x, axis=-1):
    """log(sum of e^x) along ``axis`` (kept as an axis of size 1), without overflow."""
    m = x.max(axis=axis, keepdims=True)
    return m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def log_softmax(x, axis=-1):
    """x - logsumexp(x) along ``axis``."""
    return x - logsumexp(x, axis)


def softmax(x, axis=-1):
    """e^(x - logsumexp(x)) along ``axis``: each slice is positive and sums to 1."""
    return np.exp(log_softmax(x, axis))


def softmax_backward(dout, out, axis=-1):
    """dx for out = softmax(x): dx_k = out_k * (dout_k - sum over j of dout_j * out_j)."""
    return out * (dout - (dout * out).sum(axis=axis, keepdims=True))


def log_softmax_backward(dout, out, axis=-1):
    """dx for out = log_softmax(x): dx_k = dout_k - softmax(x)_k * sum over j of dout_j."""
    return dout - np.exp(out) * dout.sum(axis=axis, keepdims=True)


def one_hot(labels, C, dtype):
    """(N, C) with a 1 at [n, labels[n]] and 0 elsewhere."""
    y = np.zeros((len(labels), C), dtype=dtype)
    y[np.arange(len(labels)), labels] = 1
    return y


def softmax_cross_entropy(logits, labels):
    """Mean over the batch of -log softmax(logits)[n, labels[n]]: returns (loss, probs).

    logits (N, C); labels (N,) integers in [0, C). loss is a Python float (0.0 for an
    empty batch); probs = softmax(logits) (N, C), what the backward needs.
    """
    N = logits.shape[0]
    logp = log_softmax(logits, axis=1)
    loss = -sum(float(logp[n, labels[n]]) for n in range(N)) / N if N else 0.0
    return loss, np.exp(logp)


def softmax_cross_entropy_backward(probs, labels):
    """d loss / d logits = (probs - one_hot(labels)) / N, in probs' dtype."""
    N, C = probs.shape
    return (probs - one_hot(labels, C, probs.dtype)) / probs.dtype.type(max(N, 1))


def mse(pred, target):
    """Mean of (pred - target)^2 over every element: returns (loss, diff), diff = pred - target."""
    diff = pred - np.asarray(target, dtype=pred.dtype)
    return (float(np.mean(diff ** 2)) if diff.size else 0.0), diff


def mse_backward(diff):
    """d loss / d pred = 2 (pred - target) / (number of elements), in diff's dtype."""
    return diff * diff.dtype.type(2 / max(diff.size, 1))
