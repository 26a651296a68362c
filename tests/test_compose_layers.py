"""Dense, Flatten, activations, Dropout and the losses."""
import numpy as np
import pytest

import minicnn
from minicnn import (Dense, Dropout, Flatten, LeakyReLU, MSELoss, ReLU, Sigmoid,
                     SoftmaxCrossEntropy, Tanh)
from reference import cross_entropy_ref, dense_ref


def away_from_kinks(rng, shape):
    x = rng.standard_normal(shape)
    return x + np.sign(x) * 0.05  # finite differences must not straddle 0


@pytest.mark.parametrize("bias", [True, False])
def test_dense_matches_reference_and_gradcheck(bias, rng):
    layer = Dense(5, 3, bias=bias, dtype=np.float64, rng=rng)
    if bias:
        layer.params["bias"][...] = rng.standard_normal(3)
    x = rng.standard_normal((4, 5))
    np.testing.assert_allclose(layer.forward(x), dense_ref(x, layer.params["weight"], layer.params.get("bias")))
    assert minicnn.gradcheck(layer, x)
    assert set(layer.grads) == ({"weight", "bias"} if bias else {"weight"})


@pytest.mark.parametrize("layer", [ReLU(), LeakyReLU(0.2), Sigmoid(), Tanh(), Flatten()], ids=repr)
def test_gradcheck_parameter_free(layer, rng):
    assert minicnn.gradcheck(layer, away_from_kinks(rng, (2, 3, 4, 2)))


def test_activation_values():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    np.testing.assert_array_equal(ReLU().forward(x), [0, 0, 0, 0.5, 3])
    np.testing.assert_allclose(LeakyReLU(0.1).forward(x), [-0.2, -0.05, 0, 0.5, 3])
    np.testing.assert_allclose(Sigmoid().forward(x), 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(Tanh().forward(x), np.tanh(x))


def test_sigmoid_extremes_do_not_overflow():
    x = np.array([-1e4, -800.0, 800.0, 1e4], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = Sigmoid().forward(x)
    np.testing.assert_array_equal(out, [0, 0, 1, 1])
    assert out.dtype == np.float32


def test_flatten_shapes_and_non_contiguous(rng):
    x = rng.standard_normal((3, 4, 5, 2)).transpose(0, 3, 1, 2)
    f = Flatten()
    out = f.forward(x)
    assert out.shape == (3, 40)
    np.testing.assert_array_equal(out, np.ascontiguousarray(x).reshape(3, -1))
    assert f.backward(out).shape == x.shape
    assert f.output_shape((16, 5, 5)) == (400,)


def test_dropout_training_and_eval(rng):
    layer = Dropout(0.25, rng=np.random.default_rng(3))
    x = np.ones((200, 100))
    out = layer.forward(x, training=True)
    kept = out != 0
    assert set(np.unique(out)) <= {0.0, 1 / 0.75}
    assert abs(kept.mean() - 0.75) < 0.01
    dout = rng.standard_normal(x.shape)
    np.testing.assert_allclose(layer.backward(dout), dout * kept / 0.75, rtol=1e-15)
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    np.testing.assert_array_equal(layer.backward(dout), dout)


def test_dropout_uses_seeded_default_generator():
    minicnn.seed(5)
    a = Dropout(0.5).forward(np.ones((4, 4)))
    minicnn.seed(5)
    b = Dropout(0.5).forward(np.ones((4, 4)))
    np.testing.assert_array_equal(a, b)


def test_cross_entropy_matches_reference_and_gradcheck(rng):
    logits = rng.standard_normal((6, 4))
    labels = rng.integers(0, 4, 6)
    loss = SoftmaxCrossEntropy()
    assert loss.forward(logits, labels) == pytest.approx(cross_entropy_ref(logits, labels), rel=1e-12)
    np.testing.assert_allclose(loss.probs.sum(1), 1)
    assert minicnn.gradcheck_loss(loss, logits, labels)


def test_cross_entropy_large_logits_stay_finite():
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4]], dtype=np.float32)
    loss = SoftmaxCrossEntropy()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = loss.forward(logits, np.array([0, 2]))
        grad = loss.backward()
    assert value == pytest.approx(np.log(2) / 2)
    assert np.isfinite(grad).all() and grad.dtype == np.float32


def test_mse_value_and_gradcheck(rng):
    pred, target = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    loss = MSELoss()
    assert loss.forward(pred, target) == pytest.approx(((pred - target) ** 2).mean())
    assert minicnn.gradcheck_loss(loss, pred, target)


def test_dtype_rules(rng):
    layer = Dense(4, 2)
    assert layer.forward(rng.standard_normal((3, 4))).dtype == np.float32
    layer.astype(np.float64)
    assert layer.forward(rng.standard_normal((3, 4)).astype(np.float32)).dtype == np.float64
    assert ReLU().forward(np.ones(3, np.float32)).dtype == np.float32
    with pytest.raises(TypeError, match=r"Dense\(4, 2, dtype='float64'\): expected a float32 or float64 input, got int64"):
        layer.forward(np.ones((3, 4), np.int64))
    with pytest.raises(TypeError, match="ReLU.*bool"):
        ReLU().forward(np.ones(3, bool))


def test_init_statistics():
    he = Dense(1000, 500, rng=0).params["weight"]
    assert abs(he.std() - np.sqrt(2 / 1000)) < 0.001
    glorot = Dense(1000, 500, weight_init="glorot", rng=0).params["weight"]
    limit = np.sqrt(6 / 1500)
    assert np.abs(glorot).max() <= limit and np.abs(glorot).max() > 0.99 * limit
    assert not Dense(3, 2).params["bias"].any()


@pytest.mark.parametrize("make,exc,match", [
    (lambda: Dense(0, 3), ValueError, r"Dense\(0, 3\): in_features must be a positive int"),
    (lambda: Dense(3, 2.5), ValueError, "out_features must be a positive int"),
    (lambda: Dense(3, 2, weight_init="zeros"), ValueError, "weight_init must be one of"),
    (lambda: Dense(3, 2, dtype=np.float16), TypeError, "dtype must be float32 or float64"),
    (lambda: Dense(3, 2, bias=1), TypeError, "bias must be True or False"),
    (lambda: Dropout(1.0), ValueError, r"Dropout: p must be a number in \[0, 1\), got 1.0"),
    (lambda: Dropout(-0.1), ValueError, "Dropout: p must be"),
    (lambda: LeakyReLU(float("nan")), ValueError, "negative_slope must be a finite number"),
])
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_bad_inputs(rng):
    with pytest.raises(ValueError, match=r"Dense\(400, 120\): expected input \(N, 400\), got \(2, 16, 5, 5\) \(put a Flatten\(\) before it\)"):
        Dense(400, 120).forward(np.zeros((2, 16, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"expected input \(N, 400\), got \(2, 300\)"):
        Dense(400, 120).forward(np.zeros((2, 300), np.float32))
    loss = SoftmaxCrossEntropy()
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), got values from 0 to 3"):
        loss.forward(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(TypeError, match="labels must be integers, got float64"):
        loss.forward(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"expected labels of shape \(2,\)"):
        loss.forward(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"expected logits \(N, C\)"):
        loss.forward(np.zeros(3), np.array([0]))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        MSELoss().backward()
    with pytest.raises(ValueError, match="target shape"):
        MSELoss().forward(np.zeros((2, 2)), np.zeros(2))


def test_config_round_trips():
    for layer in [Dense(3, 4, bias=False, weight_init="glorot", dtype=np.float64), LeakyReLU(0.3),
                  Dropout(0.1), Flatten(), ReLU()]:
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config() and repr(clone) == repr(layer)
