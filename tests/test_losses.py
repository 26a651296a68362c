"""SoftmaxCrossEntropy, MSELoss, softmax and gradcheck_loss."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn
from minicnn import MSELoss, SoftmaxCrossEntropy, functional as F
from minicnn import reference as R
from conftest import fast_kernels_only


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6), c=st.integers(1, 5), scale=st.sampled_from([0.1, 1.0, 30.0]),
       seed=st.integers(0, 2**16))
def test_cross_entropy_matches_reference_and_gradcheck(n, c, scale, seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, c)) * scale
    labels = rng.integers(0, c, n)
    loss = SoftmaxCrossEntropy()
    value = loss.forward(logits, labels)
    assert isinstance(value, float)
    assert value == pytest.approx(R.softmax_cross_entropy(logits, labels)[0], rel=1e-12,
                                   abs=1e-12)
    np.testing.assert_allclose(loss.probs, R.softmax(logits), rtol=1e-12, atol=1e-300)
    assert minicnn.gradcheck_loss(loss, logits, labels)


def test_cross_entropy_hand_formula():
    logits = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]])
    labels = np.array([2, 0])
    e = np.exp(logits)
    p = e / e.sum(1, keepdims=True)
    loss = SoftmaxCrossEntropy()
    assert loss(logits, labels) == pytest.approx(-(np.log(p[0, 2]) + np.log(p[1, 0])) / 2, rel=1e-14)
    np.testing.assert_allclose(loss.probs, p, rtol=1e-14)
    np.testing.assert_allclose(loss.backward(), (p - np.eye(3)[labels]) / 2, rtol=1e-14, atol=1e-16)
    assert loss.forward(logits, [2, 0]) == pytest.approx(loss(logits, labels))  # a list of labels


@fast_kernels_only
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_large_logits_stay_finite(dtype):
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4], [-1e4, -1e4, -1e4]], dtype=dtype)
    loss = SoftmaxCrossEntropy()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = loss.forward(logits, np.array([0, 2, 1], np.uint8))
        grad = loss.backward()
    assert value == pytest.approx((0 + np.log(2) + np.log(3)) / 3, rel=1e-6)
    assert grad.dtype == loss.probs.dtype == dtype and np.isfinite(grad).all()
    np.testing.assert_allclose(grad, [[0, 0, 0], [0, 0.5 / 3, -0.5 / 3], [1 / 9, -2 / 9, 1 / 9]],
                               atol=1e-7)
    wrong = loss.forward(np.array([[1e4, -1e4]], dtype), np.array([1]))  # confidently wrong: 2e4
    assert wrong == pytest.approx(2e4)


def test_cross_entropy_float32_gradient(rng):
    logits = rng.standard_normal((4, 3)).astype(np.float32)
    loss = SoftmaxCrossEntropy()
    loss.forward(logits, np.array([0, 1, 2, 0]))
    g32 = loss.backward()
    loss.forward(logits.astype(np.float64), np.array([0, 1, 2, 0]))
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, loss.backward(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("logits,labels,exc,match", [
    (np.zeros((2, 3)), np.array([0, 3]), ValueError,
     r"^SoftmaxCrossEntropy\(\): labels must be in \[0, 3\) for logits \(2, 3\), got values from 0 to 3"),
    (np.zeros((2, 3)), np.array([-1, 1]), ValueError, r"got values from -1 to 1"),
    (np.zeros((2, 3)), np.array([0.0, 1.0]), TypeError,
     r"^SoftmaxCrossEntropy\(\): labels must be integers \(class indices\), got float64 labels of "
     r"shape \(2,\) for logits \(2, 3\)"),
    (np.zeros((2, 3)), np.array([True, False]), TypeError, "labels must be integers"),
    (np.zeros((2, 3)), np.array([0, 1, 2]), ValueError,
     r"^SoftmaxCrossEntropy\(\): expected labels of shape \(2,\) for logits \(2, 3\), got \(3,\)$"),
    (np.zeros((2, 3)), np.eye(3, dtype=int)[:2], ValueError, r"got \(2, 3\) \(class indices, not one-hot\)"),
    (np.zeros(3), np.array([0]), ValueError, r"^SoftmaxCrossEntropy\(\): expected logits \(N, C\), got shape \(3,\)"),
    (np.zeros((2, 3), int), np.array([0, 1]), TypeError,
     r"^SoftmaxCrossEntropy\(\): predictions must be float32 or float64, got int64"),
])
def test_cross_entropy_errors(logits, labels, exc, match):
    with pytest.raises(exc, match=match):
        SoftmaxCrossEntropy().forward(logits, labels)


def test_mse_value_gradient_and_dtype(rng):
    pred, target = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    loss = MSELoss()
    value = loss(pred, target)
    assert isinstance(value, float) and value == pytest.approx(((pred - target) ** 2).mean(), rel=1e-14)
    np.testing.assert_allclose(loss.backward(), 2 * (pred - target) / 12, rtol=1e-14)
    assert minicnn.gradcheck_loss(loss, pred, target)
    assert minicnn.gradcheck_loss(loss, rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 3, 2)))
    loss.forward(pred.astype(np.float32), target)  # a float64 target does not change the dtype
    assert loss.backward().dtype == np.float32
    assert loss.forward(np.array([1.0, 3.0]), np.array([1, 1])) == 2.0  # integer targets are fine


def test_mse_errors():
    with pytest.raises(ValueError, match=r"^MSELoss\(\): target shape \(2,\) differs from prediction shape \(2, 2\)"):
        MSELoss().forward(np.zeros((2, 2)), np.zeros(2))
    with pytest.raises(TypeError, match=r"^MSELoss\(\): target must be real numbers, got complex128"):
        MSELoss().forward(np.zeros(2), np.zeros(2, complex))
    with pytest.raises(TypeError, match=r"^MSELoss\(\): predictions must be float32 or float64, got int64"):
        MSELoss().forward(np.zeros(2, int), np.zeros(2))
    for loss in (MSELoss(), SoftmaxCrossEntropy()):
        with pytest.raises(RuntimeError, match=rf"^{type(loss).__name__}\(\): backward called before forward"):
            loss.backward()


def test_softmax_function(rng):
    x = rng.standard_normal((3, 4, 5)) * 10
    for axis in (0, 1, -1):
        s = F.softmax(x, axis=axis)
        np.testing.assert_allclose(s.sum(axis=axis), 1, rtol=1e-14)
        np.testing.assert_allclose(np.moveaxis(s, axis, -1), R.softmax(np.moveaxis(x, axis, -1)), rtol=1e-12)
    big = np.array([[1e4, 1e4 - 1, -1e4]], np.float32)
    with np.errstate(over="raise", invalid="raise"):
        s = F.softmax(big)
        logp = F.log_softmax(big)
    assert s.dtype == np.float32
    np.testing.assert_allclose(s, [[1 / (1 + np.exp(-1)), 1 / (1 + np.e), 0]], rtol=1e-6)
    np.testing.assert_allclose(logp[0, :2], np.log(s[0, :2]), rtol=1e-6)


def test_gradcheck_loss_catches_a_wrong_gradient(rng):
    class HalfGradient(MSELoss):
        def backward(self):
            return super().backward() / 2

    pred, target = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    with pytest.raises(minicnn.GradcheckError, match="gradient of prediction differs"):
        minicnn.gradcheck_loss(HalfGradient(), pred, target)
