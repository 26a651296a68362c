"""Batches for training: uint8 images stay uint8 in memory and become float32 NCHW per batch."""
import numpy as np

from ..rng import get_rng

__all__ = ["normalize", "random_shift", "batches", "DataLoader"]

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530


def normalize(x, mean=MNIST_MEAN, std=MNIST_STD):
    """Images -> float32 (N, 1, H, W) with (x - mean) / std.

    uint8 input is scaled to [0, 1] first; float input is taken to be in [0, 1]
    already. Accepts (N, H, W) or (N, 1, H, W).
    """
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"normalize: expected images (N, H, W) or (N, C, H, W), got shape {x.shape}")
    if x.dtype == np.uint8:
        scale = np.float32(1 / (255 * std))
        return x.astype(np.float32) * scale - np.float32(mean / std)
    if x.dtype.kind != "f":
        raise TypeError(f"normalize: expected uint8 or float images, got {x.dtype}")
    return ((x - mean) / std).astype(np.float32, copy=False)


def random_shift(x, rng=None, max_shift=2):
    """Shift each image by up to ``max_shift`` pixels in each axis, filling with zeros.

    x: (N, H, W) or (N, C, H, W); the result has x's shape and dtype. Vectorised: one
    gather for the whole batch.
    """
    gen = get_rng(rng)
    x = np.asarray(x)
    squeeze = x.ndim == 3
    if squeeze:
        x = x[:, None]
    n, c, h, w = x.shape
    m = max_shift
    padded = np.zeros((n, c, h + 2 * m, w + 2 * m), dtype=x.dtype)
    padded[:, :, m:m + h, m:m + w] = x
    dy = gen.integers(-m, m + 1, n)
    dx = gen.integers(-m, m + 1, n)
    rows = (m - dy)[:, None] + np.arange(h)  # content moves down by dy
    cols = (m - dx)[:, None] + np.arange(w)
    out = padded[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]
    return out[:, 0] if squeeze else out


def batches(x, y, batch_size, shuffle=True, rng=None, normalize_images=True, mean=MNIST_MEAN,
            std=MNIST_STD, augment=False, drop_last=False):
    """Yield (xb, yb): xb float32 (B, 1, H, W) normalised (and shifted when ``augment``), yb int64."""
    n = len(x)
    if len(y) != n:
        raise ValueError(f"batches: x has {n} samples but y has {len(y)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batches: batch_size must be a positive int, got {batch_size!r}")
    gen = get_rng(rng)
    order = gen.permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        xb = x[idx]
        if augment:
            xb = random_shift(xb, gen)
        xb = normalize(xb, mean, std) if normalize_images else xb
        yield xb, np.asarray(y[idx], dtype=np.int64)


class DataLoader:
    """An iterable over ``batches(...)``, re-shuffled on every pass; ``len()`` is the batch count."""

    def __init__(self, x, y, batch_size=64, shuffle=True, rng=None, **options):
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.rng = get_rng(rng)
        self.options = options
        if len(x) != len(y):
            raise ValueError(f"DataLoader: x has {len(x)} samples but y has {len(y)}")

    def __iter__(self):
        return batches(self.x, self.y, self.batch_size, self.shuffle, self.rng, **self.options)

    def __len__(self):
        n = len(self.x)
        return n // self.batch_size if self.options.get("drop_last") else -(-n // self.batch_size)
