"""ReLU, LeakyReLU, Sigmoid, Tanh and Dropout: values, gradients, dtypes, errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn
from minicnn import Dropout, LeakyReLU, ReLU, Sequential, Sigmoid, Tanh
from minicnn import functional as F
from minicnn import reference as R

ACTIVATIONS = [ReLU(), LeakyReLU(), LeakyReLU(0.2), LeakyReLU(-0.5), Sigmoid(), Tanh()]


def away_from_kinks(rng, shape):
    x = rng.standard_normal(shape)
    return x + np.sign(x) * 0.05  # finite differences must not straddle 0


def expected(layer, x):
    """Each activation's reference (minicnn.reference)."""
    if isinstance(layer, LeakyReLU):
        return R.leaky_relu(x, layer.negative_slope)
    if isinstance(layer, ReLU):
        return R.relu(x)
    if isinstance(layer, Sigmoid):
        return R.sigmoid(x)
    return R.tanh(x)


@pytest.mark.parametrize("layer", ACTIVATIONS, ids=repr)
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4, 2)])
def test_activation_gradcheck_any_rank(layer, shape, rng):
    assert minicnn.gradcheck(layer, away_from_kinks(rng, shape))


@settings(max_examples=30, deadline=None)
@given(which=st.integers(0, len(ACTIVATIONS) - 1), dtype=st.sampled_from([np.float32, np.float64]),
       shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), seed=st.integers(0, 2**16))
def test_activation_values_and_dtype(which, dtype, shape, seed):
    layer = ACTIVATIONS[which]
    x = (np.random.default_rng(seed).standard_normal(shape) * 4).astype(dtype)
    out = layer.forward(x)
    assert out.dtype == dtype and out.shape == x.shape
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(out, expected(layer, x.astype(np.float64)), rtol=tol, atol=tol)
    dx = layer.backward(np.ones(x.shape))  # a float64 dout does not change the dtype
    assert dx.dtype == dtype and dx.shape == x.shape


def test_activation_derivatives_at_points():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    dout = np.full(5, 2.0)
    relu, leaky, sig, tanh = ReLU(), LeakyReLU(0.1), Sigmoid(), Tanh()
    relu.forward(x), leaky.forward(x), sig.forward(x), tanh.forward(x)
    np.testing.assert_array_equal(relu.backward(dout), [0, 0, 0, 2, 2])  # 0 at x = 0, as PyTorch
    np.testing.assert_allclose(leaky.backward(dout), [0.2, 0.2, 0.2, 2, 2])
    s = R.sigmoid(x)
    np.testing.assert_allclose(sig.backward(dout), 2 * s * (1 - s), rtol=1e-14)
    np.testing.assert_allclose(tanh.backward(dout), 2 / np.cosh(x) ** 2, rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_extremes_do_not_overflow(dtype):
    x = np.array([-1e4, -800.0, -50.0, 50.0, 800.0, 1e4], dtype=dtype)
    layer = Sigmoid()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = layer.forward(x)
        dx = layer.backward(np.ones_like(x))
    assert out.dtype == dtype
    np.testing.assert_array_equal(out[[0, 1, 4, 5]], [0, 0, 1, 1])
    np.testing.assert_allclose(out[2], np.exp(-50.0), rtol=1e-6)  # small values keep their precision
    assert np.isfinite(dx).all() and (dx >= 0).all()


def test_activations_keep_nan():
    x = np.array([np.nan, 1.0])
    for layer in ACTIVATIONS:
        assert np.isnan(layer.forward(x)[0]), repr(layer)


def test_activation_errors(rng):
    with pytest.raises(TypeError, match=r"^ReLU\(\): expected a float32 or float64 input, got bool"):
        ReLU().forward(np.ones(3, bool))
    with pytest.raises(TypeError, match=r"^Tanh\(\): expected a float32 or float64 input, got int64"):
        Tanh().forward(np.arange(3))
    layer = Sigmoid()
    with pytest.raises(RuntimeError, match=r"^Sigmoid\(\): backward called before forward"):
        layer.backward(np.ones(3))
    layer.forward(np.ones(3), training=False)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.ones(3))
    layer.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"^Sigmoid\(\): dout must have shape \(2, 3\), got \(3,\)"):
        layer.backward(np.ones(3))
    with pytest.raises(TypeError, match=r"^LeakyReLU: negative_slope must be a number, got '0.1'"):
        LeakyReLU("0.1")
    with pytest.raises(ValueError, match=r"^LeakyReLU: negative_slope must be a finite number, got nan"):
        LeakyReLU(float("nan"))


def test_activation_configs():
    assert repr(LeakyReLU()) == "LeakyReLU()" and repr(LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    for layer in ACTIVATIONS:
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config() and repr(clone) == repr(layer)
        assert layer.macs((3, 4)) == 0 and layer.output_shape((3, 4)) == (3, 4)


# --- Dropout -------------------------------------------------------------------

class SameMask:
    """Reseeds a Dropout's generator before each forward, so gradcheck sees one fixed mask."""

    params, grads = {}, {}

    def __init__(self, layer):
        self.layer = layer

    def forward(self, x, training=True):
        self.layer.rng = np.random.default_rng(7)
        return self.layer.forward(x, training)

    def backward(self, dout):
        return self.layer.backward(dout)


@pytest.mark.parametrize("p", [0.0, 0.3, 0.9])
def test_dropout_gradcheck(p, rng):
    layer = Dropout(p)
    assert minicnn.gradcheck(SameMask(layer), rng.standard_normal((3, 4, 5)))
    # an eval forward keeps no mask: backward refuses, as every layer does (issue 18)
    with pytest.raises(RuntimeError, match=r"Dropout\(.*\): backward called before forward"):
        minicnn.gradcheck(layer, rng.standard_normal((3, 4)), training=False)


def test_dropout_training_and_eval(rng):
    layer = Dropout(0.25, rng=np.random.default_rng(3))
    x = rng.standard_normal((200, 100)) + 5  # never 0, so zeros in out are dropped units
    out = layer.forward(x)
    kept = out != 0
    np.testing.assert_array_equal(out[kept], x[kept] * (1 / 0.75))
    assert abs(kept.mean() - 0.75) < 0.01
    dout = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(layer.backward(dout), dout * (kept / (1 - 0.25)))  # the same mask
    assert layer.forward(x, training=False) is x
    with pytest.raises(RuntimeError, match="backward called before forward"):  # issue 18
        layer.backward(dout)
    assert layer.forward(x, training=True) is not x


def test_dropout_dtype_and_rank(rng):
    layer = Dropout(0.5, rng=0)
    x = np.ones((2, 3, 4, 5), np.float32)
    out = layer.forward(x)
    assert out.dtype == np.float32 and set(np.unique(out)) <= {0.0, 2.0}
    assert layer.backward(np.ones(x.shape)).dtype == np.float32
    with pytest.raises(ValueError, match=r"^Dropout\(\): dout must have shape \(2, 3, 4, 5\), got \(2, 3\)"):
        layer.backward(np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"^Dropout\(p=0.1\): expected a float32 or float64 input, got int64"):
        Dropout(0.1).forward(np.ones(3, np.int64))


def test_dropout_generators():
    minicnn.seed(5)
    a = Dropout(0.5).forward(np.ones((8, 8)))
    minicnn.seed(5)
    np.testing.assert_array_equal(a, Dropout(0.5).forward(np.ones((8, 8))))
    layer = Dropout(0.5, rng=11)  # an int seed is one generator: successive masks differ
    first = layer.forward(np.ones((8, 8)))
    assert not np.array_equal(first, layer.forward(np.ones((8, 8))))
    np.testing.assert_array_equal(first, Dropout(0.5, rng=11).forward(np.ones((8, 8))))
    gen = np.random.default_rng(1)
    model = Sequential(Dropout(0.5), rng=gen)
    assert model.layers[0].rng is model.rng
    own = np.random.default_rng(2)
    assert Sequential(Dropout(0.5, rng=own), rng=gen).layers[0].rng is own


@pytest.mark.parametrize("p,exc,match", [
    (1.0, ValueError, r"^Dropout: p must be a number in \[0, 1\), got 1.0"),
    (-0.1, ValueError, r"^Dropout: p must be a number in \[0, 1\), got -0.1"),
    (float("nan"), ValueError, r"got nan"),
    ("0.5", TypeError, r"^Dropout: p must be a number in \[0, 1\), got '0.5'"),
    (True, TypeError, r"got True"),
])
def test_dropout_bad_p(p, exc, match):
    with pytest.raises(exc, match=match):
        Dropout(p)


def test_dropout_config_and_rng_errors():
    layer = Dropout(0.1, rng=3)
    assert layer.get_config() == {"p": 0.1} and repr(layer) == "Dropout(p=0.1)" and repr(Dropout()) == "Dropout()"
    assert repr(Dropout.from_config(layer.get_config())) == repr(layer)
    with pytest.raises(TypeError, match=r"^Dropout\(\): rng must be None, an int seed or a numpy.random.Generator"):
        Dropout(0.5, rng="x")
    with pytest.raises(RuntimeError, match="backward called before forward"):
        Dropout().backward(np.ones(3))


@pytest.mark.parametrize("size", [10, 300_000])         # one thread, then all threads
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_kernels_match_numpy(size, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(size).astype(dtype)
    x[:4] = [np.nan, -0.0, 0.0, np.inf]
    dout = rng.standard_normal(size).astype(dtype)
    dout[4:6] = np.nan
    out = F.relu(x)
    np.testing.assert_array_equal(out, np.maximum(x, 0))          # NaN in, NaN out
    expected = np.where(out > 0, dout, 0)                          # PyTorch: NaN dout where off -> 0
    np.testing.assert_array_equal(F.relu_backward(dout, out), expected)
    with pytest.raises(ValueError, match="dout must have shape"):
        F.relu_backward(dout[:-1], out)
