"""minicnn.reference's dense layer, activations, dropout and losses against
minicnn.functional and central differences; every reference op's signature against its
fast counterpart's; what the package exports."""
import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn.reference as R
from minicnn import functional as F
from minicnn.gradcheck import numerical_gradient

from conftest import assert_gradients


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 4), st.integers(1, 5), st.integers(1, 5), st.booleans(),
       st.integers(0, 2**16))
def test_dense_matches_functional(N, I, O, bias, seed):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((N, I)), rng.standard_normal((O, I))
    b = rng.standard_normal(O) if bias else None
    out = R.dense(x, w, b)
    np.testing.assert_allclose(out, F.dense(x, w, b), rtol=1e-12, atol=1e-14)
    dout = rng.standard_normal(out.shape)
    for ours, fast in zip(R.dense_backward(dout, x, w, bias), F.dense_backward(dout, x, w, bias)):
        if fast is None:
            assert ours is None
        else:
            np.testing.assert_allclose(ours, fast, rtol=1e-12, atol=1e-14)


def test_dense_backward_gradcheck():
    rng = np.random.default_rng(6)
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)
    dout = rng.standard_normal((3, 5))
    dx, dw, db = R.dense_backward(dout, x, w)
    assert_gradients(lambda: R.dense(x, w, b), {"x": x, "w": w, "b": b},
                     {"x": dx, "w": dw, "b": db}, dout)
    assert R.dense_backward(dout, x, w, has_bias=False, need_dx=False)[::2] == (None, None)


# (name, forward, backward, whether the backward takes the forward's input, not output)
ACTIVATIONS = [("relu", R.relu, R.relu_backward, False),
               ("leaky_relu", R.leaky_relu, R.leaky_relu_backward, True),
               ("sigmoid", R.sigmoid, R.sigmoid_backward, False),
               ("tanh", R.tanh, R.tanh_backward, False)]


@pytest.mark.parametrize("name,forward,backward,takes_x", ACTIVATIONS, ids=lambda v: str(v)[:12])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_matches_functional_and_gradcheck(name, forward, backward, takes_x, dtype):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 4)) * 3
    x = (x + np.sign(x) * 0.05).astype(dtype)          # no step of the check crosses 0
    out = forward(x)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, getattr(F, name)(x), rtol=1e-6 if dtype == np.float32 else 0)
    saved = x if takes_x else out
    dout = rng.standard_normal(x.shape)
    dx = backward(dout, saved)
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, getattr(F, name + "_backward")(dout, saved), rtol=1e-6)
    if dtype == np.float64:
        assert_gradients(lambda: forward(x), {"x": x}, {"x": dx}, dout)


def test_relu_rules_at_zero_nan_and_extremes():
    x = np.array([-1.0, 0.0, 2.0, np.nan])
    np.testing.assert_array_equal(R.relu(x), [0, 0, 2, np.nan])
    np.testing.assert_array_equal(R.relu_backward(np.array([1.0, 1.0, 1.0, 1.0]), R.relu(x)),
                                  [0, 0, 1, 0])                 # 0 at x = 0, as PyTorch
    np.testing.assert_array_equal(R.relu_backward(np.array([np.nan, 1, 1, 1]), R.relu(x))[0], 0)
    np.testing.assert_allclose(R.leaky_relu_backward(np.full(3, 2.0), x[:3], 0.1), [0.2, 0.2, 2])
    with np.errstate(over="raise"):
        np.testing.assert_array_equal(R.sigmoid(np.array([-1e4, 1e4])), [0, 1])


def test_dropout_mask_is_functionals_and_backward_masks():
    mask = R.dropout_mask((3, 4), 0.5, np.float32, np.random.default_rng(8))
    np.testing.assert_array_equal(mask, F.dropout_mask((3, 4), 0.5, np.float32,
                                                       np.random.default_rng(8)))
    assert set(np.unique(mask)) <= {0.0, 2.0} and mask.dtype == np.float32
    x = np.random.default_rng(9).standard_normal((3, 4))
    np.testing.assert_array_equal(R.dropout(x, mask), x * mask)
    np.testing.assert_array_equal(R.dropout_backward(np.ones((3, 4)), mask), mask)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.sampled_from([0.1, 1.0, 30.0]),
       st.integers(0, 2**16))
def test_losses_match_functional(N, C, scale, seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((N, C)) * scale
    labels = rng.integers(0, C, N)
    loss, probs = R.softmax_cross_entropy(logits, labels)
    fast_loss, fast_probs = F.softmax_cross_entropy(logits, labels)
    assert loss == pytest.approx(fast_loss, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(probs, fast_probs, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(R.softmax_cross_entropy_backward(probs, labels),
                               F.softmax_cross_entropy_backward(probs, labels), rtol=1e-12)
    for axis in (0, 1):
        np.testing.assert_allclose(R.softmax(logits, axis), F.softmax(logits, axis), rtol=1e-12)
        np.testing.assert_allclose(R.log_softmax(logits, axis), F.log_softmax(logits, axis),
                                   rtol=1e-12, atol=1e-12)
    target = rng.standard_normal((N, C))
    (m, diff), (fast_m, fast_diff) = R.mse(logits, target), F.mse(logits, target)
    assert m == pytest.approx(fast_m, rel=1e-12)
    np.testing.assert_allclose(R.mse_backward(diff), F.mse_backward(fast_diff), rtol=1e-14)


def test_loss_gradients_by_central_differences():
    rng = np.random.default_rng(10)
    z = rng.standard_normal((3, 4)) * 2
    labels = np.array([0, 3, 1])
    probs = R.softmax_cross_entropy(z, labels)[1]
    numeric = numerical_gradient(lambda: R.softmax_cross_entropy(z, labels)[0], z)
    np.testing.assert_allclose(R.softmax_cross_entropy_backward(probs, labels), numeric,
                               rtol=1e-6, atol=1e-9)
    target = rng.standard_normal((3, 4))
    numeric = numerical_gradient(lambda: R.mse(z, target)[0], z)
    np.testing.assert_allclose(R.mse_backward(R.mse(z, target)[1]), numeric, rtol=1e-6, atol=1e-9)
    for axis in (0, 1):
        dout = rng.standard_normal(z.shape)
        for forward, backward in ((R.softmax, R.softmax_backward),
                                  (R.log_softmax, R.log_softmax_backward)):
            dz = backward(dout, forward(z, axis), axis)
            assert_gradients(lambda: forward(z, axis), {"z": z}, {"z": dz}, dout)


def test_cross_entropy_of_huge_logits_by_log_sum_exp():
    logits = np.array([[1000.0, 0.0], [0.0, -1000.0]])
    with np.errstate(over="raise"):
        loss, probs = R.softmax_cross_entropy(logits, np.array([1, 1]))
    assert loss == pytest.approx((1000.0 + 1000.0) / 2)
    np.testing.assert_array_equal(probs, [[1, 0], [1, 0]])
    assert R.softmax_cross_entropy(np.zeros((0, 3)), np.zeros(0, int))[0] == 0.0


# Each reference op takes its fast counterpart's arguments (a backend may call either).
SHARED = ["pad", "pad_backward", "check_pad_mode", "conv2d_forward", "conv2d_backward", "conv2d",
          "pool_args", "pool_output_hw", "max_pool2d", "max_pool2d_backward", "avg_pool2d",
          "avg_pool2d_backward", "global_avg_pool2d", "global_avg_pool2d_backward",
          "global_max_pool2d", "global_max_pool2d_backward", "dense",
          "dense_backward", "relu", "relu_backward", "leaky_relu", "leaky_relu_backward",
          "sigmoid", "sigmoid_backward", "tanh", "tanh_backward", "dropout_mask", "softmax",
          "log_softmax", "softmax_backward", "log_softmax_backward", "softmax_cross_entropy", "softmax_cross_entropy_backward", "mse",
          "mse_backward"]


@pytest.mark.parametrize("name", SHARED)
def test_signature_matches_functional(name):
    def params(f):
        return [(p.name, p.default) for p in inspect.signature(f).parameters.values()]
    assert params(getattr(R, name)) == params(getattr(F, name))


def test_exports():
    assert sorted(R.__all__) == sorted(set(R.__all__))
    for name in R.__all__:
        assert callable(getattr(R, name)), name
    for module in (R.padding, R.conv, R.pool, R.fully_connected, R.activation, R.loss):
        assert set(module.__all__) <= set(R.__all__), module.__name__
        assert (module.__doc__ or "").strip(), module.__name__
