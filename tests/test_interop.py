"""minicnn.interop: networks to PyTorch and back, computing the same numbers (float64, 1e-9)."""
import sys

import numpy as np
import pytest
from hypothesis import given, settings

import minicnn
from minicnn import Conv2D, Dense, Flatten, MaxPool2D, Pad, ReLU, Sequential, interop
from minicnn.architectures import ARCHITECTURES
from stacks import inputs, stacks

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch)")
nn = torch.nn


def run_torch(module, x):
    with torch.no_grad():
        return module.eval()(torch.from_numpy(x)).numpy()


def run_minicnn(model, x):
    return model.forward(x, training=False)


def config(model):
    """Each layer's config, without the initialiser (PyTorch has none), its padding in one form."""
    return [{k: getattr(layer, k) if k == "padding" else v
             for k, v in layer.get_config().items() if k != "weight_init"} for layer in model]


def assert_both_ways(model, x):
    """to_torch computes what the model computes, and from_torch of that the same again."""
    ours = run_minicnn(model, x)
    twin = interop.to_torch(model)
    np.testing.assert_allclose(run_torch(twin, x), ours, rtol=1e-9, atol=1e-9)
    back = interop.from_torch(twin)
    np.testing.assert_allclose(run_minicnn(back, x), ours, rtol=1e-9, atol=1e-9)
    return twin, back


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_the_example_networks_go_both_ways(arch):
    model = ARCHITECTURES[arch](rng=np.random.default_rng(0)).astype(np.float64)
    twin, back = assert_both_ways(model, inputs((1, 28, 28), np.float64, n=3))
    assert all(p.dtype == torch.float64 for p in twin.parameters())
    assert config(back) == config(model)             # the same layers, not just the same numbers


@settings(max_examples=80, deadline=None)
@given(stacks(np.float64))
def test_drawn_stacks_go_both_ways(drawn):
    shape, model = drawn
    assert_both_ways(model, inputs(shape, np.float64))


@pytest.mark.parametrize("layer,modules", [
    (Conv2D(2, 3, (2, 3), stride=2, padding="same", padding_mode="symmetric", rng=0),
     ["SamePad2d", "Conv2d"]),
    (Conv2D(2, 3, 2, padding="same", rng=0), ["SamePad2d", "Conv2d"]),     # an odd total
    (Conv2D(2, 3, 3, padding="same", padding_mode="reflect", activation="relu", rng=0),
     ["Conv2d", "ReLU"]),
    (Conv2D(2, 2, 3, padding=((0, 2), (1, 0)), padding_mode="circular", rng=0),
     ["CircularPad2d", "Conv2d"]),
    (Conv2D(2, 2, 3, padding=1, padding_mode="symmetric", rng=0), ["SymmetricPad2d", "Conv2d"]),
    (MaxPool2D(3, stride=2, padding=((1, 0), (0, 1)), ceil_mode=True), ["PerSidePool2d"]),
    (Pad((2, 0, 1, 1), mode="symmetric"), ["SymmetricPad2d"]),
], ids=repr)
def test_what_pytorch_lacks_is_made_of_more_modules(layer, modules):
    layer = layer.astype(np.float64)
    twin, back = assert_both_ways(Sequential(layer), inputs((2, 7, 6), np.float64))
    assert [type(m).__name__ for m in twin] == modules
    assert config(back) == config(Sequential(layer))


def test_flip_kernel_comes_back_as_rotated_weights():
    conv = Conv2D(1, 2, 3, flip_kernel=True, dtype=np.float64, rng=0)
    twin, back = assert_both_ways(Sequential(conv), inputs((1, 6, 6), np.float64))
    assert not back[0].flip_kernel
    np.testing.assert_array_equal(back[0].params["weight"], conv.params["weight"][..., ::-1, ::-1])


def test_per_layer_twins_line_up_with_the_layers():
    model = ARCHITECTURES["lenet5"](rng=np.random.default_rng(0)).astype(np.float64)
    twin = interop.to_torch(model, per_layer=True)
    assert len(twin) == len(model) and len(interop.to_torch(model)) == len(model) + 2
    x = inputs((1, 28, 28), np.float64)
    for i in range(len(model)):
        np.testing.assert_allclose(run_torch(twin[:i + 1], x), run_minicnn(model[:i + 1], x),
                                   rtol=1e-9, atol=1e-9)
    assert config(interop.from_torch(twin)) == config(model)


def test_one_layer_weights_are_copies_and_modes_follow():
    dense = Dense(4, 3, rng=0)
    twin = interop.to_torch(dense)
    assert twin.training and twin[0].weight.dtype == torch.float32
    with torch.no_grad():
        twin[0].weight.fill_(7)
    assert not (dense.params["weight"] == 7).any()
    model = Sequential(Dense(4, 3, rng=0)).eval()
    assert not interop.to_torch(model).training
    assert not interop.from_torch(nn.Sequential(nn.Linear(4, 3)).eval()).training


def test_neither_direction_draws_from_a_random_generator():
    model = ARCHITECTURES["lenet5"](rng=np.random.default_rng(0))
    torch_state = torch.random.get_rng_state()
    ours = minicnn.rng.get_rng().bit_generator.state
    interop.from_torch(interop.to_torch(model))
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert minicnn.rng.get_rng().bit_generator.state == ours


def test_pytorch_written_stacks_are_read():
    """What PyTorch users write, not only what to_torch makes: nested Sequentials, 'valid',
    nn.Identity, a padding module before a convolution, a stride-less pool."""
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Sequential(nn.ReflectionPad2d((1, 0, 2, 1)), nn.Conv2d(2, 4, 3, padding="valid")),
        nn.ReLU(), nn.Identity(), nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False),
        nn.ConstantPad2d(1, 0.5), nn.Conv2d(4, 4, 2, groups=2, bias=False), nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Dropout(0.3), nn.Linear(4, 3), nn.Tanh(),
        nn.Linear(3, 2), nn.Sigmoid()).double()
    model = interop.from_torch(module, input_shape=(2, 9, 8))
    assert [type(layer).__name__ for layer in model] == [
        "Conv2D", "AvgPool2D", "Pad", "Conv2D", "LeakyReLU", "GlobalAvgPool2D", "Flatten",
        "Dropout", "Dense", "Tanh", "Dense", "Sigmoid"]
    assert model[0].padding == ((2, 1), (1, 0)) and model[0].padding_mode == "reflect"
    assert model[0].activation == "relu" and model[2].value == 0.5
    assert repr(model[1]) == "AvgPool2D(kernel_size=2, ceil_mode=True, count_include_pad=False)"
    x = inputs((2, 9, 8), np.float64)
    np.testing.assert_allclose(run_minicnn(model, x), run_torch(module, x), rtol=1e-9, atol=1e-9)
    assert model.summary(print_fn=None).rows[-1]["output_shape"] == (2,)


def test_training_matches_after_the_exchange():
    """Gradients too: one SGD step on each side from the same weights lands on the same weights."""
    model = ARCHITECTURES["dwsep"](rng=np.random.default_rng(0)).astype(np.float64)
    twin = interop.to_torch(model)
    x, y = inputs((1, 28, 28), np.float64, n=4), np.array([1, 2, 3, 4])
    loss = minicnn.SoftmaxCrossEntropy()
    loss.forward(model.forward(x), y)
    model.backward(loss.backward())
    minicnn.SGD(model.parameters(), lr=0.1).step()
    nn.functional.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    torch.optim.SGD(twin.parameters(), lr=0.1).step()
    back = interop.from_torch(twin)
    for ours, theirs in zip(model.parameters(), back.parameters()):
        np.testing.assert_allclose(theirs.value, ours.value, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("module,message", [
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.GroupNorm(1, 2)),
     r"from_torch: module 1 \(GroupNorm\(1, 2, .*\) has no minicnn layer; from_torch knows "
     r".*Conv2d"),
    (nn.Sequential(nn.Upsample(size=4)), r"module 0 .*: minicnn's Upsample takes a scale_factor"),
    (nn.Sequential(nn.Upsample(scale_factor=1.5)), r"scales each axis by a positive int, not "
                                                  r"scale_factor=1.5"),
    (nn.Sequential(nn.Upsample(scale_factor=2, mode="bicubic")), "not mode='bicubic'"),
    (nn.Sequential(nn.Flatten(), nn.Sequential(nn.Linear(4, 2), nn.GELU())),
     r"from_torch: module 1\.1 \(GELU\(approximate='none'\)\) has no minicnn layer"),
    (nn.Sequential(nn.Flatten(2)), r"module 0 \(Flatten\(start_dim=2, end_dim=-1\)\): minicnn's "
                                   r"Flatten keeps axis 0 and flattens the rest"),
    (nn.Sequential(nn.MaxPool2d(2, dilation=2)), r"module 0 .*: minicnn's max pooling has no "
                                                 "dilation"),
    (nn.Sequential(nn.Linear(3, 2).half()), r"module 0 .*: its weight is torch.float16; minicnn "
                                            r"keeps float32 or float64 \(call module.float\(\)"),
    (nn.Sequential(nn.AdaptiveAvgPool2d(2)), "GlobalAvgPool2D is output_size=1, not 2"),
    (nn.Sequential(nn.ReLU(), nn.MaxPool2d(3, padding=2)),
     r"from_torch: module 1: MaxPool2D\(kernel_size=3\): padding along H must be at most half"),
    (nn.Sequential(nn.ConstantPad2d((1, -1, 0, 0), 0.0)),
     r"from_torch: module 0: Pad\(.*\): padding must be >= 0 on every side"),
    (nn.Sequential(nn.Conv2d(2, 2, 3), nn.ReLU(), nn.Dropout(1.0)),
     r"from_torch: module 2: Dropout: p must be a number in \[0, 1\), got 1.0"),
    (nn.Linear(2, 2), "from_torch: expected a torch.nn.Sequential, got Linear"),
])
def test_from_torch_names_what_it_cannot_read(module, message):
    with pytest.raises((ValueError, TypeError), match=message):
        interop.from_torch(module)


def test_a_same_pad_needs_its_convolution():
    from minicnn.torch_modules import SamePad2d

    lone = nn.Sequential(nn.ReLU(), SamePad2d((3, 3), (2, 2)), nn.ReLU())
    with pytest.raises(ValueError, match=r"module 1 \(SamePad2d\) pads for the nn.Conv2d right "
                                         "after it"):
        interop.from_torch(lone)
    with pytest.raises(ValueError, match="module 0 "):
        interop.from_torch(nn.Sequential(SamePad2d((3, 3), (2, 2)), nn.Conv2d(1, 1, 2, 2)))


def test_to_torch_names_what_it_cannot_write():
    class Custom(minicnn.layers.ReLU):
        pass

    with pytest.raises(ValueError, match=r"to_torch: layer 1 Custom\(\) has no PyTorch "
                                         "counterpart here; to_torch knows AvgPool2D, "
                                         "BatchNorm1D, BatchNorm2D, Concat, Conv2D"):
        interop.to_torch(Sequential(ReLU(), Custom()))
    mixed = Sequential(Flatten(), Dense(4, 3, rng=0), Dense(3, 2, dtype=np.float64, rng=0))
    with pytest.raises(ValueError, match=r"the model's parameters are \['float32', 'float64'\]; "
                                         r"a PyTorch module computes in one dtype"):
        interop.to_torch(mixed)


def test_flat_padding_is_pytorchs_order():
    x = inputs((1, 4, 5), np.float64)
    ours = run_minicnn(Sequential(Pad((1, 2, 3, 0), mode="reflect")), x)
    theirs = nn.functional.pad(torch.from_numpy(x), (1, 2, 3, 0), mode="reflect").numpy()
    np.testing.assert_array_equal(ours, theirs)


def test_a_missing_pytorch_is_one_line_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)       # as if it were not installed
    for who, call in (("to_torch", lambda: interop.to_torch(Sequential(ReLU()))),
                      ("from_torch", lambda: interop.from_torch(None))):
        with pytest.raises(ImportError) as e:
            call()
        assert str(e.value) == f"{who} needs PyTorch, which is not installed: pip install torch"


def with_statistics(model, shape, rng=0):
    """The model with random weights and running statistics after three training batches."""
    rng = np.random.default_rng(rng)
    for layer in model:
        for value in layer.params.values():
            value[...] = rng.normal(size=value.shape)
    for _ in range(3):
        model.forward(rng.normal(2.0, 3.0, size=(4, *shape)), training=True)
    return model


@pytest.mark.parametrize("layers,shape", [
    (lambda: [Conv2D(2, 3, 3, rng=0), minicnn.BatchNorm2D(3)], (2, 6, 5)),
    (lambda: [minicnn.BatchNorm2D(2, eps=1e-3, momentum=None)], (2, 4, 3)),
    (lambda: [minicnn.BatchNorm2D(2, affine=False)], (2, 4, 3)),
    (lambda: [minicnn.BatchNorm2D(2, track_running_stats=False)], (2, 4, 3)),
    (lambda: [Flatten(), Dense(12, 5, rng=0), minicnn.BatchNorm1D(5, momentum=0.3)], (3, 2, 2)),
    (lambda: [minicnn.ConvTranspose2D(2, 3, 3, rng=0)], (2, 5, 4)),
    (lambda: [minicnn.ConvTranspose2D(4, 6, (3, 2), stride=(2, 3), padding=(1, 0),
                                      output_padding=(1, 2), groups=2, rng=0)], (4, 5, 4)),
    (lambda: [minicnn.ConvTranspose2D(2, 2, 2, stride=2, dilation=(2, 1), output_padding=(1, 0),
                                      bias=False, rng=0)], (2, 5, 4)),
    (lambda: [minicnn.Upsample(2)], (2, 5, 4)),
    (lambda: [minicnn.Upsample((3, 2))], (2, 5, 4)),
    (lambda: [minicnn.Upsample((2, 3), mode="bilinear", align_corners=False)], (2, 5, 4)),
    (lambda: [minicnn.Upsample(3, mode="bilinear", align_corners=True)], (2, 5, 4)),
], ids=lambda v: "" if callable(v) else "x".join(map(str, v)))
def test_norm_and_enlarging_layers_go_both_ways(layers, shape):
    model = with_statistics(Sequential(*[layer.astype(np.float64) for layer in layers()]), shape)
    x = inputs(shape, np.float64, n=4)
    twin, back = assert_both_ways(model, x)
    assert config(back) == config(model)
    for ours, theirs in zip(model, back):
        for name, value in ours.buffers.items():      # BatchNorm's statistics, copied over
            np.testing.assert_array_equal(theirs.buffers[name], value)
    assert all(p.dtype == torch.float64 for p in twin.parameters())


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_trains_the_same_both_ways(momentum):
    """In training mode: normalised by the batch's statistics, which update the running ones
    the same way on both sides."""
    model = with_statistics(Sequential(minicnn.BatchNorm2D(3, momentum=momentum,
                                                           dtype=np.float64)), (3, 4, 5))
    twin = interop.to_torch(model).train()
    assert int(twin[0].num_batches_tracked) == 3
    x = inputs((3, 4, 5), np.float64, n=6) * 2 + 1
    ours = model.forward(x, training=True)
    with torch.no_grad():
        theirs = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(theirs, ours, rtol=1e-9, atol=1e-9)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_allclose(getattr(twin[0], name).numpy(), model[0].buffers[name],
                                   rtol=1e-12, atol=1e-12)
    back = interop.from_torch(twin)
    assert back.training
    np.testing.assert_allclose(back.forward(x, training=True), twin(torch.from_numpy(x))
                               .detach().numpy(), rtol=1e-9, atol=1e-9)


def blocks():
    """Identity and projection shortcuts, a Concat of an identity, a layer, a Sequential and a
    Residual, and the new heads."""
    from minicnn import BatchNorm2D, Concat, GlobalMaxPool2D, Identity, LogSoftmax, Residual

    return Sequential(
        Conv2D(2, 4, 3, padding=1, activation="relu", rng=0),
        Residual(Sequential(Conv2D(4, 4, 3, padding=1, rng=1), BatchNorm2D(4), ReLU())),
        Residual(Sequential(Conv2D(4, 6, 3, stride=2, padding=1, rng=2), BatchNorm2D(6)),
                 shortcut=Conv2D(4, 6, 1, stride=2, rng=3)),
        Concat(Identity(), Conv2D(6, 2, 1, activation="relu", rng=4),
               Sequential(MaxPool2D(3, stride=1, padding=1), Conv2D(6, 3, 1, rng=5)),
               Residual(Identity())),
        GlobalMaxPool2D(), Flatten(), Dense(17, 5, rng=6), LogSoftmax())


def test_blocks_go_both_ways():
    model = with_statistics(blocks().astype(np.float64), (2, 7, 6))
    twin, back = assert_both_ways(model, inputs((2, 7, 6), np.float64, n=3))
    assert [type(m).__name__ for m in twin][2:6] == ["Residual", "Residual", "Concat",
                                                     "AdaptiveMaxPool2d"]
    assert [type(m).__name__ for m in twin[4].branches] == [
        "Identity", "Sequential", "Sequential", "Residual"]
    assert all(p.dtype == torch.float64 for p in twin.parameters())
    assert [type(layer).__name__ for layer in back] == [type(layer).__name__ for layer in model]
    assert back[3].branches[0].__class__.__name__ == "Identity"
    for ours, theirs in zip(model.parameters(), back.parameters()):
        assert theirs.name == ours.name
        np.testing.assert_array_equal(theirs.value, ours.value)
    for ours, theirs in zip(model.named_buffers(), back.named_buffers()):
        np.testing.assert_array_equal(theirs.value, ours.value)
    assert not back.training and not back[1].block[1].training


@pytest.mark.parametrize("dim", [1, -1])
def test_softmax_goes_both_ways(dim):
    model = Sequential(Conv2D(2, 3, 1, dtype=np.float64, rng=0), minicnn.Softmax(dim=dim),
                       Conv2D(3, 2, 1, dtype=np.float64, rng=1), minicnn.LogSoftmax(dim=dim))
    twin, back = assert_both_ways(model, inputs((2, 3, 4), np.float64))
    assert config(back) == config(model)


def test_a_layer_inside_a_block_without_twin_is_named():
    class Custom(minicnn.layers.ReLU):
        pass

    with pytest.raises(ValueError, match=r"to_torch: a block's layer Custom\(\) has no PyTorch "
                                         "counterpart"):
        interop.to_torch(Sequential(minicnn.Residual(Sequential(ReLU(), Custom()))))
    with pytest.raises(ValueError, match=r"from_torch: module 0 \(Concat.*\): from_torch: module 0 "
                                         r"\(GELU.*\) has no minicnn layer"):
        interop.from_torch(nn.Sequential(minicnn.torch_modules.Concat(nn.GELU())))
    with pytest.raises(ValueError, match="Softmax needs dim"):
        interop.from_torch(nn.Sequential(nn.Softmax()))
