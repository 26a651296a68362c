"""minicnn.export_onnx: the file passes onnx.checker and onnxruntime computes the model (1e-5)."""
import os
import sys

import numpy as np
import pytest
from hypothesis import given, settings

import minicnn
from minicnn import (AvgPool2D, Conv2D, Dense, Dropout, Flatten, Pad, ReLU, Sequential, cli,
                     export_onnx, onnx_export)
from minicnn.architectures import ARCHITECTURES
from stacks import inputs, stacks

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install 'minicnn[onnx]')")
ort = pytest.importorskip("onnxruntime",
                          reason="onnxruntime is not installed (pip install 'minicnn[onnx]')")


def run_onnx(model_or_path, x):
    source = model_or_path if isinstance(model_or_path, str) else model_or_path.SerializeToString()
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def assert_close(theirs, ours):
    np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(ours).max()))


def ops(proto):
    return [node.op_type for node in proto.graph.node]


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_the_example_networks_run_in_onnxruntime(arch, tmp_path):
    model = ARCHITECTURES[arch](rng=np.random.default_rng(0))
    path = export_onnx(model, str(tmp_path / f"{arch}.onnx"), (1, 28, 28))
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == onnx_export.OPSET == 17
    x = inputs((1, 28, 28), np.float32, n=5)
    out = run_onnx(path, x)
    assert_close(out, model.forward(x, training=False))
    probs = np.exp(out - out.max(1, keepdims=True))
    np.testing.assert_allclose(probs / probs.sum(1, keepdims=True), model.predict(x), atol=1e-5)
    assert [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] \
        == ["N", 1, 28, 28]


def test_lenet5_is_the_graph_its_layers_say():
    proto = onnx_export.to_onnx(ARCHITECTURES["lenet5"](rng=0), (1, 28, 28))
    assert ops(proto) == ["Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Flatten",
                          "Gemm", "Relu", "Gemm", "Relu", "Gemm"]
    first = proto.graph.node[0]
    assert {a.name: list(a.ints) for a in first.attribute if a.ints} == {
        "kernel_shape": [5, 5], "strides": [1, 1], "dilations": [1, 1], "pads": [2, 2, 2, 2]}
    assert proto.graph.output[0].name == proto.graph.node[-1].output[0] == "output"


@settings(max_examples=80, deadline=None)
@given(stacks(np.float32))
def test_drawn_stacks_run_in_onnxruntime(drawn):
    shape, model = drawn
    proto = onnx_export.to_onnx(model, shape)
    x = inputs(shape, np.float32, n=3)
    assert_close(run_onnx(proto, x), model.forward(x, training=False))


@pytest.mark.parametrize("layer,expected", [
    (Conv2D(2, 3, 3, padding=(2, 0, 1, 1), padding_mode="symmetric", rng=0),  # W, then H
     ["Slice", "Concat", "Slice", "Slice", "Concat", "Conv"]),
    (Conv2D(2, 3, 3, padding=((1, 0), (0, 0)), padding_mode="circular", rng=0),
     ["Slice", "Concat", "Conv"]),
    (Conv2D(2, 3, 3, padding="same", padding_mode="replicate", flip_kernel=True, rng=0),
     ["Pad", "Conv"]),
    (Pad(((1, 2), (0, 3)), mode="constant", value=-1.5), ["Pad"]),
    (AvgPool2D(3, stride=2, padding=((1, 0), (1, 1)), ceil_mode=True, count_include_pad=False),
     ["AveragePool", "Mul"]),                  # windows hang over the end of 7: rescaled
], ids=repr)
def test_what_onnx_lacks_is_composed(layer, expected):
    model = Sequential(layer)
    proto = onnx_export.to_onnx(model, (2, 7, 6))
    assert ops(proto) == expected
    x = inputs((2, 7, 6), np.float32)
    assert_close(run_onnx(proto, x), model.forward(x, training=False))


def test_dropout_and_float64_models_export(tmp_path):
    model = Sequential(Dropout(0.5))
    assert ops(onnx_export.to_onnx(model, (1, 3, 3))) == ["Identity"]
    x = inputs((1, 3, 3), np.float32)
    np.testing.assert_array_equal(run_onnx(onnx_export.to_onnx(model, (1, 3, 3)), x), x)
    wide = ARCHITECTURES["dwsep"](rng=0).astype(np.float64)
    x = inputs((1, 28, 28), np.float32)
    assert_close(run_onnx(onnx_export.to_onnx(wide, (1, 28, 28)), x), wide.forward(x, False))


def test_metadata_and_the_input_shape_the_model_knows():
    model = Sequential(Flatten(), Dense(12, 3, rng=0), input_shape=(3, 2, 2))
    proto = onnx_export.to_onnx(model, metadata={"minicnn.mean": 0.5})
    assert {p.key: p.value for p in proto.metadata_props} == {"minicnn.mean": "0.5"}
    assert "Flatten() -> Dense(12, 3)" in proto.doc_string
    with pytest.raises(ValueError, match=r"layer 1 Dense\(12, 3\) cannot take the output of "
                                         r"layer 0 Flatten\(\), of shape \(N, 27\)"):
        onnx_export.to_onnx(model, (3, 3, 3))


def test_a_failed_export_leaves_the_earlier_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"the earlier export")

    class Custom(ReLU):
        pass

    with pytest.raises(ValueError, match=r"export_onnx: layer 1 Custom\(\) has no ONNX exporter; "
                                         "export_onnx knows AvgPool2D, BatchNorm1D, "
                                         "BatchNorm2D, Concat, Conv2D"):
        export_onnx(Sequential(ReLU(), Custom()), path, (1, 2, 2))

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(minicnn._atomic.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        export_onnx(Sequential(ReLU()), path, (1, 2, 2))
    assert path.read_bytes() == b"the earlier export" and os.listdir(tmp_path) == ["model.onnx"]


def test_a_missing_onnx_is_one_line_naming_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)        # as if it were not installed
    with pytest.raises(minicnn.extras.MissingExtraError) as e:
        export_onnx(Sequential(ReLU()), tmp_path / "x.onnx", (1, 2, 2))
    assert str(e.value) == ("export_onnx needs onnx, which is not installed: "
                            "pip install 'minicnn[onnx]'")
    ckpt = tmp_path / "m.npz"
    Sequential(Flatten(), Dense(784, 10, rng=0)).save(ckpt)
    assert cli.main(["export", str(ckpt), "--onnx", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err == ("minicnn export: error: export needs onnx, which is not installed: "
                   "pip install 'minicnn[onnx]'\n")
    assert not (tmp_path / "m.onnx").exists()


def test_the_export_command_writes_what_onnxruntime_runs(tmp_path, capsys):
    ckpt, out = tmp_path / "lenet5.npz", tmp_path / "lenet5.onnx"
    model = ARCHITECTURES["lenet5"](rng=0)
    model.save(ckpt, metadata={"kind": "mnist", "mean": 0.1307, "std": 0.3081})
    assert cli.main(["export", str(ckpt), "--onnx", str(out)]) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"wrote {out}: ONNX opset 17, input 'input' (N, 1, 28, 28) float32, "
                           "output 'output' (N, 10)")
    assert "pixels / 255, minus 0.1307, divided by 0.3081" in said
    x = minicnn.data.normalize(np.arange(2 * 784).reshape(2, 28, 28) % 256 / 255.0)
    assert_close(run_onnx(str(out), x), model.forward(x, training=False))
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props == {"minicnn.kind": "mnist", "minicnn.mean": "0.1307", "minicnn.std": "0.3081"}
    assert cli.main(["export", str(ckpt), "--onnx", str(out)]) == 0     # again, over it


def trained_norms(model, shape, rng=0):
    """The model with random affine parameters and running statistics after three batches."""
    rng = np.random.default_rng(rng)
    for layer in model:
        for value in layer.params.values():
            value[...] = rng.normal(size=value.shape)
    for _ in range(3):
        model.forward(rng.normal(2.0, 3.0, size=(4, *shape)).astype(np.float32), training=True)
    return model


@pytest.mark.parametrize("layers,shape,expected", [
    (lambda: [Conv2D(2, 3, 3, rng=0), minicnn.BatchNorm2D(3), ReLU()], (2, 6, 5),
     ["Conv", "BatchNormalization", "Relu"]),
    (lambda: [minicnn.BatchNorm2D(2, affine=False, momentum=None)], (2, 4, 3),
     ["BatchNormalization"]),
    (lambda: [minicnn.BatchNorm2D(2, track_running_stats=False)], (2, 4, 3),
     ["ReduceMean", "Sub", "Mul", "ReduceMean", "Add", "Sqrt", "Div", "Mul", "Add"]),
    (lambda: [Flatten(), Dense(12, 5, rng=0), minicnn.BatchNorm1D(5, eps=1e-3)], (3, 2, 2),
     ["Flatten", "Gemm", "BatchNormalization"]),
    (lambda: [Flatten(), minicnn.BatchNorm1D(12, affine=False, track_running_stats=False)],
     (3, 2, 2), ["Flatten", "ReduceMean", "Sub", "Mul", "ReduceMean", "Add", "Sqrt", "Div"]),
    (lambda: [minicnn.BatchNorm1D(3)], (3, 5), ["BatchNormalization"]),
    (lambda: [minicnn.BatchNorm1D(3, track_running_stats=False)], (3, 5),
     ["ReduceMean", "Sub", "Mul", "ReduceMean", "Add", "Sqrt", "Div", "Mul", "Add"]),
], ids=["bn2d", "bn2d-no-affine", "bn2d-batch-stats", "bn1d", "bn1d-batch-stats", "bn1d-seq",
        "bn1d-seq-batch-stats"])
def test_batch_norm_runs_in_onnxruntime(layers, shape, expected):
    model = trained_norms(Sequential(*layers()), shape)
    norm = [layer for layer in model if "BatchNorm" in type(layer).__name__][0]
    if norm.track_running_stats:          # the statistics are the trained ones, not 0 and 1
        assert int(norm.buffers["num_batches_tracked"]) == 3
        assert np.abs(norm.buffers["running_var"] - 1).max() > 0.1
    proto = onnx_export.to_onnx(model, shape)
    assert ops(proto) == expected
    x = inputs(shape, np.float32, n=4)
    assert_close(run_onnx(proto, x), model.forward(x, training=False))


@pytest.mark.parametrize("layer", [
    minicnn.ConvTranspose2D(2, 3, 3, rng=0),
    minicnn.ConvTranspose2D(4, 6, (3, 2), stride=(2, 3), padding=(1, 0), output_padding=(1, 2),
                            groups=2, dilation=1, rng=1),
    minicnn.ConvTranspose2D(2, 2, 2, stride=2, dilation=(2, 1), output_padding=(1, 0), bias=False,
                            rng=2),
    minicnn.Upsample(2),
    minicnn.Upsample((3, 2), mode="nearest"),
    minicnn.Upsample(2, mode="bilinear"),
    minicnn.Upsample((2, 3), mode="bilinear", align_corners=False),
    minicnn.Upsample((3, 2), mode="bilinear", align_corners=True),
], ids=repr)
def test_layers_that_enlarge_run_in_onnxruntime(layer):
    c = getattr(layer, "in_channels", 2)
    rng = np.random.default_rng(0)
    for value in layer.params.values():
        value[...] = rng.normal(size=value.shape)
    model = Sequential(layer)
    proto = onnx_export.to_onnx(model, (c, 5, 4))
    assert ops(proto) == ["ConvTranspose" if "in_channels" in dir(layer) else "Resize"]
    x = inputs((c, 5, 4), np.float32, n=2)
    assert_close(run_onnx(proto, x), model.forward(x, training=False))


def blocks():
    """A small network of every container shape: identity and projection shortcuts, and a
    Concat of an identity, a layer, a Sequential and a Residual."""
    from minicnn import BatchNorm2D, Concat, GlobalMaxPool2D, Identity, LogSoftmax, Residual

    return Sequential(
        Conv2D(2, 4, 3, padding=1, rng=0),
        Residual(Sequential(Conv2D(4, 4, 3, padding=1, rng=1), BatchNorm2D(4), ReLU())),
        Residual(Sequential(Conv2D(4, 6, 3, stride=2, padding=1, rng=2), BatchNorm2D(6)),
                 shortcut=Conv2D(4, 6, 1, stride=2, rng=3)),
        Concat(Identity(), Conv2D(6, 2, 1, rng=4),
               Sequential(AvgPool2D(3, stride=1, padding=1), Conv2D(6, 3, 1, rng=5)),
               Residual(Identity())),
        GlobalMaxPool2D(), Flatten(), Dense(17, 5, rng=6), LogSoftmax())


def test_blocks_run_in_onnxruntime():
    model = trained_norms(blocks(), (2, 7, 6))
    proto = onnx_export.to_onnx(model, (2, 7, 6))
    assert ops(proto).count("Add") == 3 and ops(proto).count("Concat") == 1
    assert ops(proto)[-3:] == ["Flatten", "Gemm", "LogSoftmax"]
    x = inputs((2, 7, 6), np.float32, n=3)
    assert_close(run_onnx(proto, x), model.forward(x, training=False))


@pytest.mark.parametrize("dim", [1, -1])
def test_softmax_runs_in_onnxruntime(dim):
    model = Sequential(Conv2D(2, 3, 1, rng=0), minicnn.Softmax(dim=dim))
    proto = onnx_export.to_onnx(model, (2, 3, 4))
    assert ops(proto) == ["Conv", "Softmax"]
    x = inputs((2, 3, 4), np.float32, n=2)
    assert_close(run_onnx(proto, x), model.forward(x, training=False))


def test_a_layer_inside_a_block_without_exporter_is_named_by_its_path():
    class Custom(ReLU):
        pass

    model = Sequential(ReLU(), minicnn.Residual(Sequential(ReLU(), Custom())))
    with pytest.raises(ValueError, match=r"export_onnx: layer 1\.block\.1 Custom\(\) has no ONNX "
                                         "exporter"):
        onnx_export.to_onnx(model, (1, 2, 2))
