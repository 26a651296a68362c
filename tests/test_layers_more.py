"""GlobalMaxPool2D, Softmax and LogSoftmax: the reference ops, the layers' gradients
(gradcheck in float64), PyTorch's values when installed, configs and errors."""
import numpy as np
import pytest

import minicnn as m
import minicnn.reference as R
from minicnn import functional as F
from minicnn import GlobalMaxPool2D, LogSoftmax, Softmax


def test_global_max_pool_matches_reference_and_max_pool2d():
    rng = np.random.default_rng(0)
    x = rng.integers(-2, 3, (3, 4, 5, 6)).astype(np.float64)    # many ties
    x[0, 1, 2, 3] = np.nan
    out, arg = F.global_max_pool2d(x)
    rout, rarg = R.global_max_pool2d(x)
    pout, parg = R.max_pool2d(x, (5, 6))
    np.testing.assert_array_equal(out, rout)
    np.testing.assert_array_equal(arg, rarg)
    np.testing.assert_array_equal(arg, parg)
    assert np.isnan(out[0, 1, 0, 0]) and arg[0, 1, 0, 0] == 2 * 6 + 3
    dout = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(F.global_max_pool2d_backward(dout, arg, x.shape),
                                  R.global_max_pool2d_backward(dout, rarg, x.shape))


def test_global_max_pool_ties_send_the_gradient_to_the_first_maximum():
    x = np.array([[[[1.0, 3.0], [3.0, 2.0]]]])
    layer = GlobalMaxPool2D()
    assert layer(x)[0, 0, 0, 0] == 3.0
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 1, 1))),
                                  [[[[0.0, 1.0], [0.0, 0.0]]]])


@pytest.mark.parametrize("layer,shape", [
    (GlobalMaxPool2D(), (2, 3, 4, 5)),
    (Softmax(), (3, 5)), (Softmax(), (2, 4, 3, 3)), (Softmax(dim=-1), (2, 3, 4)),
    (LogSoftmax(), (3, 5)), (LogSoftmax(), (2, 4, 3)), (LogSoftmax(dim=2), (2, 3, 4, 2)),
], ids=str)
def test_gradcheck(layer, shape):
    x = np.random.default_rng(1).standard_normal(shape)
    assert m.gradcheck(layer, x)


@pytest.mark.parametrize("dim,shape", [(1, (4, 7)), (1, (2, 3, 4, 5)), (-1, (2, 3, 4)), (0, (3, 2))])
def test_softmax_layers_match_pytorch(dim, shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape) * 5
    dout = rng.standard_normal(shape)
    for ours, theirs in ((Softmax(dim), torch.nn.Softmax(dim)),
                         (LogSoftmax(dim), torch.nn.LogSoftmax(dim))):
        tx = torch.tensor(x, requires_grad=True)
        tout = theirs(tx)
        tout.backward(torch.tensor(dout))
        np.testing.assert_allclose(ours(x), tout.detach().numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(ours.backward(dout), tx.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_global_max_pool_matches_pytorch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 6))
    tx = torch.tensor(x, requires_grad=True)
    tout = torch.nn.AdaptiveMaxPool2d(1)(tx)
    dout = np.random.default_rng(4).standard_normal(tout.shape)
    tout.backward(torch.tensor(dout))
    layer = GlobalMaxPool2D()
    np.testing.assert_array_equal(layer(x), tout.detach().numpy())
    np.testing.assert_array_equal(layer.backward(dout), tx.grad.numpy())


def test_huge_logits_stay_finite():
    x = np.array([[1000.0, 0.0, -1000.0]])
    assert np.isfinite(LogSoftmax()(x)).all()
    np.testing.assert_allclose(Softmax()(x), [[1.0, 0.0, 0.0]])


def test_config_repr_shapes_and_exports():
    assert repr(Softmax()) == "Softmax()" and repr(LogSoftmax(dim=-1)) == "LogSoftmax(dim=-1)"
    assert Softmax(2).get_config() == {"dim": 2}
    assert LogSoftmax.from_config({"dim": 1}).dim == 1
    assert GlobalMaxPool2D().output_shape((3, 7, 5)) == (3, 1, 1)
    assert GlobalMaxPool2D().receptive_params_for((3, 7, 5)) == ((7, 5), (1, 1), (1, 1))
    assert Softmax().output_shape((10,)) == (10,) and Softmax().macs((10,)) == 0
    for name in ("GlobalMaxPool2D", "Softmax", "LogSoftmax", "Identity", "Residual", "Concat"):
        assert getattr(m, name) is m.layers.LAYERS[name]


def test_models_with_the_new_layers_save_and_load(tmp_path):
    net = m.Sequential(m.Conv2D(1, 3, 3), GlobalMaxPool2D(), m.Flatten(), m.Dense(3, 4),
                       LogSoftmax(), Softmax(dim=-1))
    net.save(tmp_path / "n.npz")
    x = np.random.default_rng(5).standard_normal((2, 1, 5, 5)).astype(np.float32)
    np.testing.assert_array_equal(m.load(tmp_path / "n.npz")(x), net(x))


@pytest.mark.parametrize("make,x,exc,match", [
    (lambda: Softmax(dim=1.0), None, TypeError, r"Softmax: dim must be an int .*got 1.0"),
    (lambda: LogSoftmax(dim=True), None, TypeError, "LogSoftmax: dim must be an int"),
    (lambda: Softmax(), np.zeros(3), ValueError,
     r"Softmax\(\): expected an input \(N, C, ...\) of rank >= 2 with an axis dim=1, got rank 1"),
    (lambda: LogSoftmax(dim=3), np.zeros((2, 3)), ValueError, "dim=3, got rank 2"),
    (lambda: GlobalMaxPool2D(), np.zeros((2, 3)), ValueError,
     r"GlobalMaxPool2D\(\): expected a 4-d input \(N, C, H, W\), got shape \(2, 3\)"),
    (lambda: GlobalMaxPool2D(), np.zeros((2, 3, 4, 4), np.int32), TypeError,
     "GlobalMaxPool2D.*expected a float32 or float64 input, got int32"),
])
def test_bad_arguments_are_named(make, x, exc, match):
    with pytest.raises(exc, match=match):
        layer = make()
        layer(x)


def test_backward_before_forward_is_named():
    with pytest.raises(RuntimeError, match=r"GlobalMaxPool2D\(\): backward called before forward"):
        GlobalMaxPool2D().backward(np.zeros((1, 1, 1, 1)))
    with pytest.raises(ValueError, match=r"global_max_pool2d_backward: dout must be \(1, 2, 1, 1\)"):
        F.global_max_pool2d_backward(np.zeros((1, 3, 1, 1)), np.zeros((1, 3, 1, 1), np.intp),
                                     (1, 2, 4, 4))
