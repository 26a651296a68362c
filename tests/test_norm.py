"""BatchNorm1D / BatchNorm2D: running statistics by hand, the kernel against the reference,
gradcheck in training and evaluation, buffers in state_dict and checkpoints, bad arguments;
against PyTorch when it is installed."""
import numpy as np
import pytest

import minicnn
import minicnn.reference as R
from minicnn import BatchNorm1D, BatchNorm2D, functional as F, gradcheck

from conftest import assert_gradients


def test_running_statistics_after_two_steps_by_hand():
    bn = BatchNorm1D(1, dtype=np.float64)
    bn.forward(np.array([[1.0], [2.0], [3.0], [4.0]]))    # mean 2.5, unbiased var 5/3
    np.testing.assert_allclose(bn.buffers["running_mean"], [0.25])
    np.testing.assert_allclose(bn.buffers["running_var"], [0.9 + 0.1 * 5 / 3])
    bn.forward(np.array([[0.0], [0.0], [4.0], [4.0]]))    # mean 2, unbiased var 16/3
    np.testing.assert_allclose(bn.buffers["running_mean"], [0.9 * 0.25 + 0.1 * 2])
    np.testing.assert_allclose(bn.buffers["running_var"], [0.9 * (0.9 + 1 / 6) + 0.1 * 16 / 3])
    assert bn.buffers["num_batches_tracked"] == 2
    assert bn.buffers["num_batches_tracked"].dtype == np.int64
    # eval mode: the running statistics, and nothing moves
    out = bn.forward(np.array([[1.0]]), training=False)
    np.testing.assert_allclose(out, (1 - 0.425) / np.sqrt(1.4933333333333334 + 1e-5))
    assert bn.buffers["num_batches_tracked"] == 2


def test_cumulative_average_when_momentum_is_none():
    bn = BatchNorm1D(1, momentum=None, dtype=np.float64)
    bn.forward(np.array([[1.0], [2.0], [3.0], [4.0]]))
    bn.forward(np.array([[0.0], [0.0], [4.0], [4.0]]))
    np.testing.assert_allclose(bn.buffers["running_mean"], [2.25])
    np.testing.assert_allclose(bn.buffers["running_var"], [(5 / 3 + 16 / 3) / 2])


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 7), (3, 3, 5, 6), (2, 3, 1, 1), (2, 3, 9, 9)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_kernel_matches_reference(shape, training, affine):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape) * 3 + 100     # a large mean beside the spread
    C = shape[1]
    w, b = (rng.standard_normal(C), rng.standard_normal(C)) if affine else (None, None)
    stats = [rng.random(C) + 0.5, rng.random(C) + 0.5]
    ref_stats = [s.copy() for s in stats]
    out, cache = F.batch_norm_forward(x, *stats, w, b, training, 0.3, 1e-3)
    ref, ref_cache = R.batch_norm_forward(x, *ref_stats, w, b, training, 0.3, 1e-3)
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(stats, ref_stats, rtol=1e-12)
    dout = rng.standard_normal(shape)
    for fast, slow in zip(F.batch_norm_backward(dout, cache),
                          R.batch_norm_backward(dout, ref_cache)):
        if slow is None:
            assert fast is None
        else:
            np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-9)
    assert F.batch_norm_backward(dout, cache, need_dx=False)[0] is None


def test_float32_keeps_dtype_and_is_close():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 4, 6, 6)).astype(np.float32)
    bn = BatchNorm2D(4)
    out = bn.forward(x)
    assert out.dtype == np.float32 and bn.backward(np.ones_like(out)).dtype == np.float32
    ref = R.batch_norm(x.astype(np.float64), None, None, training=True)
    np.testing.assert_allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("layer,shape", [(BatchNorm2D, (3, 2, 3, 4)), (BatchNorm1D, (5, 3)),
                                         (BatchNorm1D, (3, 2, 4))])
def test_gradcheck_training(layer, shape):
    rng = np.random.default_rng(5)
    bn = layer(shape[1], dtype=np.float64)
    bn.params["weight"][...] = rng.standard_normal(shape[1])
    bn.params["bias"][...] = rng.standard_normal(shape[1])
    assert gradcheck(bn, rng.standard_normal(shape), training=True, atol=1e-6)


@pytest.mark.parametrize("running", [True, False])
def test_gradcheck_evaluation(running):
    """Evaluation (the layers keep no cache there, as every layer): the functional op with
    the running statistics, or the batch's when there are none."""
    rng = np.random.default_rng(6)
    x, w, b = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(2), rng.standard_normal(2)
    stats = (rng.standard_normal(2), rng.random(2) + 0.5) if running else (None, None)
    out, cache = F.batch_norm_forward(x, *stats, w, b, training=False)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = F.batch_norm_backward(dout, cache)
    assert_gradients(lambda: F.batch_norm(x, *stats, w, b, training=False),
                     {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db}, dout)


def test_no_affine_no_tracking():
    rng = np.random.default_rng(6)
    bn = BatchNorm2D(2, affine=False, track_running_stats=False, dtype=np.float64)
    assert bn.params == {} and bn.buffers == {}
    x = rng.standard_normal((2, 2, 3, 3))
    np.testing.assert_allclose(bn.forward(x, training=False), R.batch_norm(x, None, None))
    assert gradcheck(bn, x)


def test_buffers_travel_in_state_dict_and_checkpoints(tmp_path):
    rng = np.random.default_rng(7)
    model = minicnn.Sequential(minicnn.Conv2D(1, 3, 3), BatchNorm2D(3), minicnn.ReLU(),
                               minicnn.Flatten(), minicnn.Dense(3 * 4 * 4, 5), BatchNorm1D(5))
    x = rng.standard_normal((6, 1, 6, 6)).astype(np.float32)
    for _ in range(3):
        model.forward(x, training=True)
    state = model.state_dict()
    assert list(state)[:6] == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                               "1.running_var"]
    assert state["1.num_batches_tracked"] == 3 and state["1.num_batches_tracked"].dtype == np.int64
    assert [b.name for b in model.buffers()][-1] == "5.num_batches_tracked"
    assert "1.running_mean" not in {p.name for p in model.parameters()}   # not trained
    model.save(tmp_path / "m.npz")
    loaded = minicnn.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.forward(x, training=False), model.forward(x, training=False))
    for k, v in loaded.state_dict().items():
        np.testing.assert_array_equal(v, state[k])
    fresh = minicnn.Sequential(minicnn.Conv2D(1, 3, 3), BatchNorm2D(3), minicnn.ReLU(),
                               minicnn.Flatten(), minicnn.Dense(48, 5), BatchNorm1D(5))
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.forward(x, training=False), model.forward(x, training=False))
    del state["1.running_var"]
    with pytest.raises(KeyError, match="1.running_var"):
        fresh.load_state_dict(state)


def test_astype_converts_statistics_not_the_counter():
    bn = BatchNorm2D(2).astype(np.float64)
    assert bn.buffers["running_var"].dtype == np.float64
    assert bn.buffers["num_batches_tracked"].dtype == np.int64


@pytest.mark.parametrize("track", [True, False])
def test_astype_without_affine_computes_in_the_new_dtype(track):
    bn = BatchNorm2D(2, affine=False, track_running_stats=track).astype(np.float64)
    x = np.random.default_rng(3).standard_normal((2, 2, 3, 3)) * 1e-4 + 1
    out = bn.forward(x)
    assert out.dtype == np.float64 and bn.get_config()["dtype"] == "float64"
    np.testing.assert_allclose(out, R.batch_norm(x, None, None, training=True), rtol=1e-9)


def test_config_repr_summary_and_fixed_arguments():
    bn = BatchNorm2D(4, momentum=None, affine=False)
    assert repr(bn) == "BatchNorm2D(4, momentum=None, affine=False)"
    assert BatchNorm2D.from_config(bn.get_config()).get_config() == bn.get_config()
    assert bn.output_shape((4, 5, 5)) == (4, 5, 5) and bn.macs((4, 5, 5)) == 100
    with pytest.raises(AttributeError, match="fixed"):
        bn.momentum = 0.2
    model = minicnn.Sequential(minicnn.Conv2D(1, 4, 3), BatchNorm2D(4))
    table = str(model.summary((1, 8, 8), print_fn=None))
    assert "BatchNorm2D" in table


@pytest.mark.parametrize("kwargs,match", [
    ({"num_features": 0}, "num_features must be a positive int"),
    ({"num_features": 2, "eps": 0}, "eps must be a positive number"),
    ({"num_features": 2, "momentum": 1.5}, "momentum must be a number in"),
    ({"num_features": 2, "affine": "yes"}, "affine must be True or False"),
    ({"num_features": 2, "dtype": np.int32}, "dtype must be float32 or float64"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        BatchNorm2D(**kwargs)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"BatchNorm2D\(3\): expected input \(N, 3, H, W\)"):
        BatchNorm2D(3).forward(np.zeros((2, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm1D\(3\): expected input \(N, 3\) or"):
        BatchNorm1D(3).forward(np.zeros((2, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match="at least 2 value"):
        BatchNorm1D(3).forward(np.zeros((1, 3), np.float32))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        BatchNorm1D(3).backward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="running_var must have shape"):
        F.batch_norm(np.zeros((2, 3)), np.zeros(3), np.zeros(2))
    bn = BatchNorm1D(3)
    bn.forward(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"dout must have shape \(2, 3\)"):
        bn.backward(np.zeros((2, 4)))


def test_trainer_state_round_trip_keeps_buffers(tmp_path):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((16, 4)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    model = minicnn.Sequential(minicnn.Dense(4, 3), BatchNorm1D(3))
    trainer = minicnn.Trainer(model, minicnn.SoftmaxCrossEntropy(),
                              minicnn.SGD(model.parameters(), lr=0.1))
    trainer.fit(x, y, epochs=1, batch_size=8, verbose=0)
    trainer.save_state(tmp_path / "s.npz")
    saved = model.state_dict()
    model.forward(x, training=True)
    trainer.load_state(tmp_path / "s.npz")
    np.testing.assert_array_equal(model.state_dict()["1.running_mean"], saved["1.running_mean"])
    assert model.state_dict()["1.num_batches_tracked"] == 2


torch_cases = [(shape, training, affine, track, momentum)
               for shape in [(4, 3, 5, 5), (7, 2), (3, 4, 6), (2, 5, 3, 8)]
               for training in (True, False) for affine in (True, False)
               for track in (True, False) for momentum in (0.1, None)]


@pytest.mark.parametrize("shape,training,affine,track,momentum", torch_cases[::3])
def test_against_pytorch(shape, training, affine, track, momentum):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(len(shape) * 100 + shape[1])
    layer = (BatchNorm2D if len(shape) == 4 else BatchNorm1D)(
        shape[1], 1e-4, momentum, affine, track, dtype=np.float64)
    twin = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(
        shape[1], 1e-4, momentum, affine, track, dtype=torch.float64)
    if affine:
        layer.params["weight"][...] = rng.standard_normal(shape[1])
        layer.params["bias"][...] = rng.standard_normal(shape[1])
        twin.weight.data = torch.tensor(layer.params["weight"])
        twin.bias.data = torch.tensor(layer.params["bias"])
    twin.train(training)
    for step in range(2):
        x = rng.standard_normal(shape) * 2 + step
        dout = rng.standard_normal(shape)
        if training:
            out = layer.forward(x, training)
            dx = layer.backward(dout)
        else:       # the layer keeps no cache in evaluation: its functional op's backward
            out = layer.forward(x, training)
            _, cache = F.batch_norm_forward(x, layer.buffers.get("running_mean"),
                                            layer.buffers.get("running_var"),
                                            layer.params.get("weight"), layer.params.get("bias"),
                                            eps=1e-4)
            dx, dw, db = F.batch_norm_backward(dout, cache)
            if affine:
                layer.grads["weight"][...], layer.grads["bias"][...] = dw, db
        xt = torch.tensor(x, requires_grad=True)
        ot = twin(xt)
        ot.backward(torch.tensor(dout))
        np.testing.assert_allclose(out, ot.detach().numpy(), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-9)
        if affine:
            np.testing.assert_allclose(layer.grads["weight"], twin.weight.grad.numpy(), atol=1e-9)
            np.testing.assert_allclose(layer.grads["bias"], twin.bias.grad.numpy(), atol=1e-9)
            twin.weight.grad = twin.bias.grad = None
    ours = minicnn.Sequential(layer).state_dict()
    theirs = {"0." + k: v.numpy() for k, v in twin.state_dict().items()}
    assert list(ours) == list(theirs)
    for k in ours:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_trainer_evaluates_on_running_statistics_without_moving_them():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    model = minicnn.Sequential(minicnn.Dense(4, 3), BatchNorm1D(3))
    trainer = minicnn.Trainer(model, minicnn.SoftmaxCrossEntropy(),
                              minicnn.SGD(model.parameters(), lr=0.1))
    trainer.fit(x, y, epochs=2, batch_size=16, validation_data=(x[:8], y[:8]), verbose=0)
    assert model.state_dict()["1.num_batches_tracked"] == 4        # training batches only
    before = model.state_dict()
    logits = model.forward(x[:8], training=False)
    hidden = model[0].forward(x[:8], training=False)
    rm, rv = before["1.running_mean"], before["1.running_var"]
    expected = (hidden - rm) / np.sqrt(rv + 1e-5) * before["1.weight"] + before["1.bias"]
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
