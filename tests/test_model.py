"""Sequential, the summary table, the receptive field and checkpoints."""
import os

import numpy as np
import pytest

import minicnn
from minicnn import (AvgPool2D, CheckpointError, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D,
                     MaxPool2D, ReLU, Sequential)
from minicnn import reference as R
from minicnn.architectures import build, lenet5


def small_net(rng, dtype=np.float32):
    return Sequential(Conv2D(1, 2, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2), Flatten(),
                      Dense(8, 3, rng=rng)).astype(dtype)


def test_forward_backward_chain_the_layers(rng):
    model = small_net(rng, np.float64)
    x = rng.standard_normal((2, 1, 4, 4))
    out = x
    for layer in model.layers:
        out = layer.forward(out)
    np.testing.assert_array_equal(model(x), out)
    dout = rng.standard_normal(out.shape)
    d = dout
    for layer in reversed(model.layers):
        d = layer.backward(d)
    np.testing.assert_array_equal(model.backward(dout), d)


def test_forward_backward_match_the_reference_ops(rng):
    """A network's forward and backward passes are its layers' reference ops composed by
    hand: convolution, ReLU, max pooling, flattening, dense (float64)."""
    model = small_net(rng, np.float64)
    conv, dense = model.layers[0], model.layers[4]
    conv.params["bias"][...] = rng.standard_normal(2)
    x = rng.standard_normal((3, 1, 4, 4))
    h1, conv_cache = R.conv2d_forward(x, conv.params["weight"], conv.params["bias"], padding=1)
    h2 = R.relu(h1)
    h3, argmax = R.max_pool2d(h2, 2)
    h4 = h3.reshape(3, -1)
    out = R.dense(h4, dense.params["weight"], dense.params["bias"])
    np.testing.assert_allclose(model.forward(x, training=True), out, rtol=1e-12, atol=1e-14)
    dout = rng.standard_normal(out.shape)
    d4, dense_dw, dense_db = R.dense_backward(dout, h4, dense.params["weight"])
    d2 = R.max_pool2d_backward(d4.reshape(h3.shape), argmax, h2.shape)
    dx, conv_dw, conv_db = R.conv2d_backward(R.relu_backward(d2, h2), conv_cache)
    np.testing.assert_allclose(model.backward(dout), dx, rtol=1e-12, atol=1e-14)
    for got, want in [(dense.grads["weight"], dense_dw), (dense.grads["bias"], dense_db),
                      (conv.grads["weight"], conv_dw), (conv.grads["bias"], conv_db)]:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_parameters_names_and_container(rng):
    model = small_net(rng)
    assert [p.name for p in model.parameters()] == ["0.weight", "0.bias", "4.weight", "4.bias"]
    assert model.parameters()[2].value is model[4].params["weight"]
    assert len(model) == 5 and isinstance(model[1], ReLU) and list(model)[3] is model.layers[3]
    head = model[:3]
    assert isinstance(head, Sequential) and head.layers == model.layers[:3]
    with pytest.raises(TypeError, match="Sequential: layer 1 must be a minicnn Layer, got function"):
        Sequential(ReLU(), lambda x: x)


def test_train_eval_and_dropout_generator():
    model = Sequential(Dense(4, 4, rng=0), Dropout(0.5), rng=7)
    assert model[1].rng is model.rng
    x = np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(model.eval()(x), model(x))
    assert not model[0].training and not model.training
    model.train()
    assert model[1].training
    a = model(x)
    model2 = Sequential(Dense(4, 4, rng=0), Dropout(0.5), rng=7)
    np.testing.assert_array_equal(a, model2(x))


def test_predict_batches_and_sums_to_one(rng):
    model = small_net(rng)
    x = rng.standard_normal((10, 1, 4, 4)).astype(np.float32)
    p = model.predict(x, batch_size=3)
    assert p.shape == (10, 3)
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-6)
    np.testing.assert_allclose(p, model.predict(x, batch_size=100), rtol=1e-6)


def test_astype_and_state_dict(rng):
    model = small_net(rng).astype(np.float64)
    assert all(p.value.dtype == np.float64 for p in model.parameters())
    state = model.state_dict()
    other = small_net(np.random.default_rng(99), np.float64).load_state_dict(state)
    x = rng.standard_normal((2, 1, 4, 4))
    np.testing.assert_array_equal(model(x), other(x))
    with pytest.raises(KeyError, match=r"missing \['4.bias'\]"):
        other.load_state_dict({k: v for k, v in state.items() if k != "4.bias"})
    state["0.bias"] = np.zeros(5)
    with pytest.raises(ValueError, match=r"0.bias has shape \(5,\), the model expects \(2,\)"):
        other.load_state_dict(state)


def test_lenet5_summary_hand_computed():
    table = lenet5().summary((1, 28, 28), print_fn=None)
    shapes = [r["output_shape"] for r in table]
    assert shapes == [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5),   # convolutions with ReLU
                      (400,), (120,), (120,), (84,), (84,), (10,)]
    params = [r["params"] for r in table if r["params"]]
    assert params == [156, 2416, 48120, 10164, 850] and table.total_params == 61706
    macs = [r["macs"] for r in table if r["macs"]]
    assert macs == [28 * 28 * 25 * 6, 10 * 10 * 25 * 6 * 16, 48000, 10080, 840]
    rf = [r["receptive_field"][0] for r in table]
    jumps = [r["jump"][0] for r in table]
    assert rf[:4] == [5, 6, 14, 16] and jumps[:4] == [1, 2, 2, 4]
    assert minicnn.receptive_field(lenet5(), (1, 28, 28)) == (16, 16)
    text = str(table)
    assert "61,706" in text and "Conv2D(1->6, kernel_size=5, padding='same', activation='relu')" in text


def test_receptive_field_closed_form_with_strides_and_dilation():
    model = Sequential(Conv2D(1, 1, 3), Conv2D(1, 1, 3, stride=2), Conv2D(1, 1, 3, dilation=2),
                       MaxPool2D(2), Conv2D(1, 1, (5, 3)), AvgPool2D(3, stride=3))
    k_eff = [(3, 3), (3, 3), (5, 5), (2, 2), (5, 3), (3, 3)]
    strides = [1, 2, 1, 2, 1, 3]
    expected = []
    for axis in range(2):
        r, prod = 1, 1
        for k, s in zip(k_eff, strides):
            r += (k[axis] - 1) * prod
            prod *= s
        expected.append(r)
    # h: k_eff 3 3 5 2 5 3 over jumps 1 1 2 2 4 4; w: the fifth kernel is 3 wide
    assert minicnn.receptive_field(model, (1, 64, 64)) == tuple(expected) == (1 + 2 + 2 + 8 + 2 + 16 + 8,
                                                                                1 + 2 + 2 + 8 + 2 + 8 + 8)


def test_global_pool_sees_the_whole_input():
    model = Sequential(Conv2D(1, 2, 3), GlobalAvgPool2D())
    assert minicnn.receptive_field(model, (1, 10, 12)) == (3 + 7, 3 + 9)


def test_shape_mismatch_names_both_layers():
    model = Sequential(Conv2D(1, 4, 3), Flatten(), Dense(100, 10))
    msg = (r"layer 2 Dense\(100, 10\) cannot take the output of layer 1 Flatten\(\), of shape "
           r"\(N, 144\): Dense\(100, 10\): expected input \(N, 100\), got \(N, 144\)")
    with pytest.raises(ValueError, match=msg):
        model.summary((1, 8, 8), print_fn=None)
    with pytest.raises(ValueError, match=r"layer 2 Dense\(100, 10\) cannot take the output of layer 1 "
                                         r"Flatten\(\), of shape \(2, 144\)"):
        model(np.zeros((2, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"layer 0 Conv2D\(1->4, kernel_size=3\) cannot take the model input"):
        model(np.zeros((2, 3, 8, 8), np.float32))


def test_gradcheck_whole_lenet5():
    model = lenet5(rng=np.random.default_rng(0)).astype(np.float64)
    x = np.random.default_rng(1).standard_normal((2, 1, 28, 28))
    # 61,706 parameters: check 40 random entries of every array (input, each weight, each bias)
    assert minicnn.gradcheck(model, x, samples=40)


# --- checkpoints -----------------------------------------------------------------------

def test_save_load_identical_predictions(tmp_path, rng):
    model = build("dwsep", rng=rng)
    path = tmp_path / "m.npz"
    model.save(path, metadata={"arch": "dwsep"})
    loaded = minicnn.load(path)
    x = rng.standard_normal((3, 1, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x), loaded.predict(x))
    assert loaded.get_config() == model.get_config() and loaded.metadata == {"arch": "dwsep"}
    assert repr(loaded) == repr(model)


def test_save_is_atomic(tmp_path, monkeypatch, rng):
    path = tmp_path / "m.npz"
    model = small_net(rng)
    model.save(path)
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        small_net(np.random.default_rng(5)).save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


def corrupt(path, how):
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "garbage":
        path.write_bytes(b"not a zip at all")
    elif how == "flipped":
        i = data.index(b"param:0.weight") + 400  # inside the first array's data
        data[i] ^= 0xFF
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how,match", [
    ("truncated", "not a minicnn checkpoint|corrupted or truncated"),
    ("garbage", "not a minicnn checkpoint"),
    ("flipped", "corrupted or truncated"),
])
def test_corrupt_files(tmp_path, rng, how, match):
    path = tmp_path / "m.npz"
    small_net(rng).save(path)
    corrupt(path, how)
    with pytest.raises(CheckpointError, match=match):
        minicnn.load(path)


def write_npz(path, arch=None, **arrays):
    import json
    if arch is not None:
        arrays["__architecture__"] = np.array(json.dumps(arch) if not isinstance(arch, str) else arch)
    np.savez(path, **arrays)


@pytest.mark.parametrize("arch,arrays,match", [
    (None, {"x": np.zeros(2)}, "no __architecture__ entry"),
    ("{not json", {}, "not valid JSON"),
    ({"format": "other"}, {}, "format 'other'"),
    ({"format": "minicnn-checkpoint", "format_version": 99, "layers": []}, {}, "format version 99"),
    ({"format": "minicnn-checkpoint", "format_version": 1, "layers": [{"class": "Evil", "config": {}}]},
     {}, "unknown class 'Evil'"),
    ({"format": "minicnn-checkpoint", "format_version": 1,
      "layers": [{"class": "Dense", "config": {"in_features": -1, "out_features": 2}}]}, {},
     r"layer 0 \(Dense\) cannot be rebuilt"),
    ({"format": "minicnn-checkpoint", "format_version": 1,
      "layers": [{"class": "Dense", "config": {"in_features": 3, "out_features": 2}}]},
     {"param:0.weight": np.zeros((2, 3), np.float32)}, r"missing \['0.bias'\]"),
    ({"format": "minicnn-checkpoint", "format_version": 1,
      "layers": [{"class": "Dense", "config": {"in_features": 3, "out_features": 2}}]},
     {"param:0.weight": np.zeros((3, 2), np.float32), "param:0.bias": np.zeros(2, np.float32)},
     r"parameter 0.weight is float32 \(3, 2\)"),
])
def test_mismatched_files(tmp_path, arch, arrays, match):
    path = tmp_path / "bad.npz"
    write_npz(path, arch, **arrays)
    with pytest.raises(CheckpointError, match=match):
        minicnn.load(path)


DENSE_ARCH = {"format": "minicnn-checkpoint", "format_version": 1,
              "layers": [{"class": "Dense", "config": {"in_features": 3, "out_features": 2}}]}


def test_crafted_architecture_cannot_allocate_more_than_the_file_stores(tmp_path):
    """Dense(10**6, 10**6) would be 4 TB: refused before any weight is drawn."""
    import copy
    arch = copy.deepcopy(DENSE_ARCH)
    arch["layers"][0]["config"].update(in_features=10**6, out_features=10**6)
    path = tmp_path / "huge.npz"
    write_npz(path, arch, **{"param:0.weight": np.zeros((2, 3), np.float32),
                             "param:0.bias": np.zeros(2, np.float32)})
    with pytest.raises(CheckpointError, match=r"\(1,000,000,000,000 values\) exceeds what the "
                                              r"checkpoint stores \(8 values left\)"):
        minicnn.load(path)


def test_crafted_array_header_is_checked_before_allocating(tmp_path):
    """An .npy header claiming 10**12 floats over 24 bytes of data is refused from its sizes."""
    import io
    import json
    import zipfile
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (10**6, 10**6)})
    path = tmp_path / "liar.npz"
    with zipfile.ZipFile(path, "w") as z:
        buf = io.BytesIO()
        np.save(buf, np.array(json.dumps(DENSE_ARCH)))
        z.writestr("__architecture__.npy", buf.getvalue())
        z.writestr("param:0.weight.npy", header.getvalue() + bytes(24))
        buf = io.BytesIO()
        np.save(buf, np.zeros(2, np.float32))
        z.writestr("param:0.bias.npy", buf.getvalue())
    with pytest.raises(CheckpointError, match=r"declares shape \(1000000, 1000000\) "
                                              r"\(4,000,000,000,000 bytes\) but its entry holds 24"):
        minicnn.load(path)


def test_overlapping_zip_entries_are_refused(tmp_path, rng):
    """Entries whose compressed ranges overlap could each claim the whole file and inflate the
    allocation budget: the central directory of one entry is patched to claim almost all of it."""
    import struct
    path = tmp_path / "overlap.npz"
    small_net(rng).save(path)
    data = bytearray(path.read_bytes())
    record = data.index(b"PK\x01\x02")  # the first central-directory record
    while data[record + 46:record + 46 + len(b"param:0.weight.npy")] != b"param:0.weight.npy":
        record = data.index(b"PK\x01\x02", record + 4)
    struct.pack_into("<I", data, record + 20, len(data) - 200)   # its compressed size
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="overlapping entries"):
        minicnn.load(path)


def test_compressed_checkpoints_load(tmp_path, rng):
    model = small_net(rng)
    path = tmp_path / "small.npz"
    arrays = {"__architecture__": np.array(__import__("json").dumps(
        {"format": "minicnn-checkpoint", "format_version": 1, "minicnn_version": "x",
         "layers": model.get_config(), "metadata": {}}))}
    arrays.update({"param:" + k: v for k, v in model.state_dict().items()})
    np.savez_compressed(path, **arrays)
    x = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(minicnn.load(path).predict(x), model.predict(x))


def test_pickled_object_arrays_are_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, __architecture__=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError):
        minicnn.load(path)


def test_gradcheck_catches_a_wrong_backward(rng):
    layer = Dense(3, 2, dtype=np.float64, rng=rng)
    real = layer.backward

    def wrong(dout):
        dx = real(dout)
        layer.grads["weight"] = layer.grads["weight"] * 1.01
        return dx

    layer.backward = wrong
    with pytest.raises(minicnn.GradcheckError, match="gradient of weight differs"):
        minicnn.gradcheck(layer, rng.standard_normal((2, 3)))
    with pytest.raises(minicnn.GradcheckError, match="gradient of weight differs"):
        minicnn.gradcheck(layer, rng.standard_normal((2, 3)), samples=6)


@pytest.mark.parametrize("first", [Conv2D(1, 3, 3, padding=1, rng=0), Conv2D(1, 3, 1, rng=0),
                                   Conv2D(1, 2, 3, groups=1, padding="same", padding_mode="reflect", rng=0)],
                         ids=["gemm", "pointwise", "reflect"])
def test_backward_without_input_grad_gives_the_same_weight_grads(first, rng):
    model = Sequential(first, ReLU(), Flatten(), Dense(first.out_channels * 16, 3, rng=rng))
    x = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
    dout = rng.standard_normal((2, 3)).astype(np.float32)
    model(x)
    assert model.backward(dout) is not None
    full = {p.name: p.grad.copy() for p in model.parameters()}
    grad_arrays = [p.grad for p in model.parameters()]
    model(x)
    assert model.backward(dout, input_grad=False) is None
    for p, same in zip(model.parameters(), grad_arrays):
        np.testing.assert_array_equal(p.grad, full[p.name])
        assert p.grad is same  # gradients are written in place: references stay valid


def test_depthwise_and_dense_first_layers_skip_input_grad(rng):
    for model in (Sequential(Conv2D(2, 4, 3, groups=2, rng=rng), Flatten()),
                  Sequential(Dense(4, 2, rng=rng))):
        x = rng.standard_normal((3, 2, 3, 3) if isinstance(model[0], Conv2D) else (3, 4)).astype(np.float32)
        out = model(x)
        model.backward(np.ones_like(out))
        g = [p.grad.copy() for p in model.parameters()]
        assert model.backward(np.ones_like(out), input_grad=False) is None
        for a, p in zip(g, model.parameters()):
            np.testing.assert_array_equal(a, p.grad)
