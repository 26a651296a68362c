"""Non-finite values and concurrency: NaN goes where NumPy would send it; threads don't interfere."""
import threading

import numpy as np
import pytest

import minicnn
from minicnn import AvgPool2D, Conv2D, Dense, MaxPool2D, Pad, functional as F


def affected(shape_in, conv_kwargs, nan_at):
    """Which outputs read the NaN pixel: the convolution of a 0/1 indicator, with ones for weights."""
    ind = np.zeros(shape_in)
    ind[nan_at] = 1.0
    return F.conv2d(ind, np.ones((1, shape_in[1], 3, 3)), **conv_kwargs) > 0


@pytest.mark.parametrize("kwargs", [dict(), dict(padding=1), dict(stride=2, padding=1),
                                    dict(padding=1, padding_mode="reflect"), dict(dilation=2, padding=2)])
def test_nan_reaches_exactly_the_outputs_that_read_it(kwargs, rng):
    x = rng.standard_normal((1, 1, 7, 7))
    x[0, 0, 3, 2] = np.nan
    conv = Conv2D(1, 1, 3, dtype=np.float64, rng=rng, **kwargs)
    out = conv.forward(x)
    np.testing.assert_array_equal(np.isnan(out), affected(x.shape, kwargs, (0, 0, 3, 2)))


def test_nan_through_pad_dense_and_pools():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 0, 0] = np.nan
    padded = Pad(1, mode="reflect").forward(x)
    assert np.isnan(padded).sum() == 1 and np.isnan(padded[0, 0, 1, 1])  # (0,0) is only copied to itself
    pooled = MaxPool2D(2).forward(x)
    assert np.isnan(pooled[0, 0, 0, 0]) and not np.isnan(pooled[0, 0, 1, 1])
    avg = AvgPool2D(2).forward(x)
    assert np.isnan(avg[0, 0, 0, 0]) and np.isfinite(avg[0, 0, 1]).all()
    dense = Dense(4, 3, rng=0).forward(np.array([[1, np.nan, 2, 3], [1, 2, 3, 4]], np.float32))
    assert np.isnan(dense[0]).all() and np.isfinite(dense[1]).all()


def test_infinity_in_max_pool_and_conv():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 1] = np.inf
    assert MaxPool2D(2).forward(x)[0, 0, 0, 0] == np.inf
    w = np.ones((1, 1, 2, 2))
    out = F.conv2d(x, w)
    assert np.isinf(out).sum() == 4 and np.isfinite(out).sum() == 5


def train_once(seed, results, key):
    rng = np.random.default_rng(seed)
    model = minicnn.Sequential(Conv2D(1, 4, 3, padding=1, rng=rng), minicnn.ReLU(), MaxPool2D(2),
                               minicnn.Flatten(), Dense(64, 3, rng=rng))
    x = rng.standard_normal((32, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    trainer = minicnn.Trainer(model, minicnn.SoftmaxCrossEntropy(),
                              minicnn.SGD(model.parameters(), lr=0.05, momentum=0.9))
    trainer.fit(x, y, epochs=3, batch_size=8, seed=seed, verbose=0)
    results[key] = model.state_dict()


def test_two_models_in_two_threads_match_their_solo_runs():
    solo = {}
    train_once(1, solo, "a")
    train_once(2, solo, "b")
    together = {}
    threads = [threading.Thread(target=train_once, args=(s, together, k)) for s, k in ((1, "a"), (2, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in ("a", "b"):
        for name, value in solo[k].items():
            np.testing.assert_array_equal(value, together[k][name])
