"""Residual and Concat: forward, gradients (gradcheck on whole blocks), nesting, names,
modes, dtype, summary, checkpoints, the refusal of shared layers, and clear errors."""
import numpy as np
import pytest

import minicnn as m
from minicnn import (Concat, Conv2D, Dense, Flatten, GlobalAvgPool2D, Identity, MaxPool2D,
                     ReLU, Residual, Sequential)


def small_net(rng=0):
    return Sequential(
        Conv2D(1, 4, 3, padding=1, rng=rng), ReLU(),
        Residual(Sequential(Conv2D(4, 4, 3, padding=1, rng=rng), ReLU(),
                            Conv2D(4, 4, 3, padding=1, rng=rng))),
        Residual(Conv2D(4, 6, 3, stride=2, padding=1, rng=rng), Conv2D(4, 6, 1, stride=2, rng=rng)),
        Concat(Conv2D(6, 2, 1, rng=rng),
               Sequential(MaxPool2D(3, 1, 1), Conv2D(6, 3, 3, padding=1, rng=rng)),
               Residual(Identity())),
        GlobalAvgPool2D(), Flatten(), Dense(11, 3, rng=rng))


def test_forward_is_the_sum_and_the_concatenation():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 5))
    conv, short = Conv2D(3, 3, 3, padding=1, rng=1), Conv2D(3, 3, 1, rng=2)
    conv.astype(np.float64), short.astype(np.float64)
    np.testing.assert_array_equal(Residual(conv)(x), conv(x) + x)
    np.testing.assert_array_equal(Residual(conv, short)(x), conv(x) + short(x))
    out = Concat(conv, Identity(), short)(x)
    np.testing.assert_array_equal(out, np.concatenate([conv(x), x, short(x)], axis=1))


@pytest.mark.parametrize("block", [
    lambda: Residual(Conv2D(3, 3, 3, padding=1, rng=0)),
    lambda: Residual(Sequential(Conv2D(3, 4, 3, padding=1, rng=0), m.Tanh()),
                     Conv2D(3, 4, 1, rng=1)),
    lambda: Concat(Conv2D(3, 2, 1, rng=0), Sequential(m.AvgPool2D(3, 1, 1), m.Sigmoid()),
                   Identity()),
    lambda: Residual(Concat(Conv2D(3, 1, 3, padding=1, rng=0), Conv2D(3, 2, 1, rng=1))),
    lambda: Concat(Residual(Identity()), Residual(m.Tanh(), Identity())),
], ids=["residual", "projection", "concat", "residual-of-concat", "concat-of-residuals"])
def test_gradcheck_whole_blocks(block):
    b = block().astype(np.float64)
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 4))
    assert m.gradcheck(b, x)


def test_gradcheck_a_network_of_nested_blocks():
    net = small_net().astype(np.float64)
    x = np.random.default_rng(2).standard_normal((2, 1, 6, 6))
    assert m.gradcheck(net, x, samples=12)


def test_parameter_names_are_pytorch_paths():
    names = [p.name for p in small_net().parameters()]
    assert names == ["0.weight", "0.bias", "2.block.0.weight", "2.block.0.bias",
                     "2.block.2.weight", "2.block.2.bias", "3.block.weight", "3.block.bias",
                     "3.shortcut.weight", "3.shortcut.bias", "4.branches.0.weight",
                     "4.branches.0.bias", "4.branches.1.1.weight", "4.branches.1.1.bias",
                     "7.weight", "7.bias"]
    assert list(small_net().state_dict()) == names


def torch_twin_of_small_net(torch):
    """small_net() in PyTorch, with Residual and Concat written as nn.Modules of the same
    attribute names (so the state_dict keys match)."""
    nn = torch.nn

    class TResidual(nn.Module):
        def __init__(self, block, shortcut=None):
            super().__init__()
            self.block, self.shortcut = block, shortcut

        def forward(self, x):
            return self.block(x) + (x if self.shortcut is None else self.shortcut(x))

    class TConcat(nn.Module):
        def __init__(self, *branches):
            super().__init__()
            self.branches = nn.ModuleList(branches)

        def forward(self, x):
            return torch.cat([b(x) for b in self.branches], dim=1)

    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
        TResidual(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                                nn.Conv2d(4, 4, 3, padding=1))),
        TResidual(nn.Conv2d(4, 6, 3, 2, 1), nn.Conv2d(4, 6, 1, 2)),
        TConcat(nn.Conv2d(6, 2, 1), nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(6, 3, 3, 1, 1)),
                TResidual(nn.Identity())),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(11, 3))


def test_pytorch_twin_has_the_same_keys():
    twin = torch_twin_of_small_net(pytest.importorskip("torch"))
    ours = small_net().state_dict()
    theirs = twin.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == tuple(theirs[k].shape) for k in ours)


def test_modes_zero_grad_and_dtype_reach_every_layer():
    net = small_net()
    leaves = [p.layer for p in net.parameters()]
    net.eval()
    assert not any(layer.training for layer in leaves)
    net.train()
    assert all(layer.training for layer in leaves)
    net.astype(np.float64)
    assert all(p.value.dtype == np.float64 for p in net.parameters())
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6))
    net.backward(np.ones_like(net(x)))
    assert any(np.any(p.grad) for p in net.parameters())
    net.zero_grad()
    assert not any(np.any(p.grad) for p in net.parameters())


def test_float32_model_keeps_float32_through_the_blocks():
    net = small_net()
    out = net(np.random.default_rng(0).standard_normal((2, 1, 6, 6)).astype(np.float32))
    assert out.dtype == np.float32


def test_save_and_load_rebuild_the_nested_model(tmp_path):
    net = small_net()
    path = tmp_path / "nested.npz"
    net.save(path)
    back = m.load(path)
    assert repr(back) == repr(net)
    assert list(back.state_dict()) == list(net.state_dict())
    x = np.random.default_rng(3).standard_normal((4, 1, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(back.predict(x), net.predict(x))


@pytest.mark.parametrize("entry,match", [
    ({"class": "Residual", "config": {"shortcut": None}}, "has the keys 'block' and 'shortcut'"),
    ({"class": "Residual", "config": {"block": {"class": "Nope", "config": {}}}},
     r"layer 0 \(Residual\) cannot be rebuilt: Residual.block: unknown class 'Nope'"),
    ({"class": "Concat", "config": {"branches": {}}}, "a Concat's config is"),
    ({"class": "Concat", "config": {"branches": [{"class": "Sequential", "config": {}}]}},
     "a Sequential's config needs a list 'layers'"),
    ({"class": "Concat", "config": {"branches": [7]}}, r"Concat.branches.0: expected"),
])
def test_damaged_nested_configs_are_checkpoint_errors(tmp_path, entry, match):
    import json

    from minicnn import checkpoint

    arch = {"format": checkpoint.FORMAT, "format_version": checkpoint.FORMAT_VERSION,
            "layers": [entry], "metadata": {}}
    path = tmp_path / "bad.npz"
    np.savez(path, **{checkpoint.ARCH_KEY: np.array(json.dumps(arch))})
    with pytest.raises(m.CheckpointError, match=match):
        m.load(path)


def test_deep_nesting_in_a_checkpoint_is_refused_not_a_crash(tmp_path):
    import json

    from minicnn import checkpoint

    entry = {"class": "Identity", "config": {}}
    for _ in range(200):
        entry = {"class": "Residual", "config": {"block": entry, "shortcut": None}}
    arch = {"format": checkpoint.FORMAT, "format_version": checkpoint.FORMAT_VERSION,
            "layers": [entry], "metadata": {}}
    path = tmp_path / "deep.npz"
    np.savez(path, **{checkpoint.ARCH_KEY: np.array(json.dumps(arch))})
    with pytest.raises(m.CheckpointError, match="nested more than 64 deep"):
        m.load(path)
    for _ in range(200 - 40):        # rebuilt from a config directly: the containers' own limit
        entry = entry["config"]["block"]
    with pytest.raises(ValueError, match="Residual.block.block.*: containers nest deeper than 32"):
        Residual.from_config(entry["config"])


def test_summary_shows_nested_rows_and_top_level_totals():
    net = small_net()
    table = net.summary((1, 6, 6), print_fn=None)
    indices = [r["index"] for r in table]
    assert indices[:4] == [0, 1, 2, "2.block"]
    assert "4.branches.1.0" in indices
    assert table.total_params == sum(p.value.size for p in net.parameters())
    assert table.total_macs == net.macs((1, 6, 6))
    rows = {r["index"]: r for r in table}
    assert rows["2.block.0"]["layer"].startswith("    Conv2D")
    # conv 3 -> 3; the block's two 3x3 convs -> 7; its identity path keeps 3: the largest, 7
    assert rows[2]["receptive_field"] == (7, 7)
    # branch 1: pool 3 and conv 3 at jump 2 after the strided block: 9 + 2*2 + 2*2 = 17
    assert rows[4]["receptive_field"] == (17, 17)
    assert rows[4]["output_shape"] == (11, 3, 3)
    assert table.output_shape == (3,)
    assert "2.block.0" in str(table)


def test_residual_shapes_that_differ_are_named():
    block = Residual(Conv2D(3, 4, 3, rng=0))
    with pytest.raises(ValueError, match=r"Residual: the block's output \(N, 4, 3, 3\) and the "
                                         r"identity shortcut \(its input\)'s output "
                                         r"\(N, 3, 5, 5\) differ"):
        block(np.zeros((2, 3, 5, 5), np.float32))
    net = Sequential(Conv2D(1, 3, 1), block)
    with pytest.raises(ValueError, match=r"layer 1 .* \(N, 4, 3, 3\) and .*\(N, 3, 5, 5\)"):
        net.summary((1, 5, 5), print_fn=None)


def test_concat_shapes_that_differ_are_named():
    c = Concat(Conv2D(3, 2, 1), Conv2D(3, 2, 3))
    with pytest.raises(ValueError, match=r"agree on every axis but the channels \(axis 1\), "
                                         r"got branch 0 \(N, 2, 5, 5\), branch 1 \(N, 2, 3, 3\)"):
        c(np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match="branch 1"):
        c.output_shape((3, 5, 5))


def test_errors_inside_a_block_say_where():
    net = Sequential(Residual(Sequential(Conv2D(2, 2, 1), Dense(4, 4))))
    with pytest.raises(ValueError, match=r"layer 0 .*Residual.block: layer 1 Dense"):
        net(np.zeros((1, 2, 3, 3), np.float32))


@pytest.mark.parametrize("make,match,exc", [
    (lambda: Residual("conv"), "Residual: block must be a minicnn Layer or a Sequential, got str",
     TypeError),
    (lambda: Residual(ReLU(), [ReLU()]), "Residual: shortcut must be a minicnn Layer", TypeError),
    (lambda: Concat(), "Concat: needs at least one branch", ValueError),
    (lambda: Concat(ReLU(), None), "Concat: branch 1 must be a minicnn Layer", TypeError),
])
def test_bad_arguments_are_named(make, match, exc):
    with pytest.raises(exc, match=match):
        make()


def test_a_layer_used_twice_is_refused_at_any_depth():
    conv = Conv2D(2, 2, 1)
    with pytest.raises(ValueError, match="appears in block and again in shortcut"):
        Residual(conv, conv)
    with pytest.raises(ValueError, match="appears in branches.0 and again in branches.1"):
        Concat(conv, Sequential(ReLU(), conv))
    with pytest.raises(ValueError, match=r"layer 1 Residual\(.*\) holds Conv2D\(2->2, kernel_size=1\), which is layer 0 already"):
        Sequential(conv, Residual(Sequential(conv)))
    inner = Sequential(ReLU())
    net = Sequential(conv, Residual(inner))
    inner.add(conv)                 # behind the model's back: the training forward refuses
    with pytest.raises(ValueError, match="a layer appears twice"):
        net(np.zeros((1, 2, 3, 3), np.float32))


def test_backward_before_forward_and_wrong_dout_are_named():
    r = Residual(ReLU())
    with pytest.raises(RuntimeError, match="backward called before forward"):
        r.backward(np.zeros((1, 2)))
    r(np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match=r"Residual: dout must have shape \(1, 2\), got \(3,\)"):
        r.backward(np.zeros(3))


def test_dropout_inside_a_block_draws_from_the_models_generator():
    drop = m.Dropout(0.5)
    net = Sequential(Residual(Sequential(ReLU(), drop)), rng=7)
    assert drop.rng is net.rng


def test_identity_layer():
    i = Identity()
    x = np.arange(6.0).reshape(2, 3)
    assert i(x) is x and i.backward(x) is x and i.output_shape((3,)) == (3,)
    assert repr(i) == "Identity()" and i.get_config() == {}
    with pytest.raises(ValueError, match=r"Identity\(\): dout must have shape \(2, 3\)"):
        i.backward(np.zeros(3))


def test_five_sgd_steps_beside_the_pytorch_twin():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    twin = torch_twin_of_small_net(torch).double()
    ours = small_net().astype(np.float64)
    twin.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    opt = m.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    loss = m.SoftmaxCrossEntropy()
    rng = np.random.default_rng(4)
    for _ in range(5):
        x, y = rng.standard_normal((6, 1, 6, 6)), rng.integers(0, 3, 6)
        value = loss.forward(ours(x), y)
        ours.zero_grad()
        ours.backward(loss.backward())
        opt.step()
        topt.zero_grad()
        tvalue = nn.functional.cross_entropy(twin(torch.tensor(x)), torch.tensor(y))
        tvalue.backward()
        topt.step()
        assert value == pytest.approx(tvalue.item(), rel=1e-9)
    theirs = twin.state_dict()
    for name, value in ours.state_dict().items():
        np.testing.assert_allclose(value, theirs[name].numpy(), rtol=1e-9, atol=1e-9)


def test_trainer_state_of_a_nested_model_resumes_exactly(tmp_path):
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((24, 1, 6, 6)), rng.integers(0, 3, 24)

    def trainer():
        net = small_net().astype(np.float64)
        return m.Trainer(net, m.SoftmaxCrossEntropy(), m.SGD(net.parameters(), lr=0.05,
                                                            momentum=0.9))
    full = trainer()
    full.fit(x, y, epochs=2, batch_size=8, seed=3, verbose=0)
    half = trainer()
    half.fit(x, y, epochs=1, batch_size=8, seed=3, verbose=0)
    half.save_state(tmp_path / "s.npz")
    resumed = trainer()
    resumed.load_state(tmp_path / "s.npz")
    resumed.fit(x, y, epochs=2, initial_epoch=1, batch_size=8, verbose=0)
    for name, value in full.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[name], value)


def bn_net():
    return Sequential(
        Conv2D(1, 4, 3, padding=1, bias=False, rng=0), m.BatchNorm2D(4), ReLU(),
        Residual(Sequential(Conv2D(4, 4, 3, padding=1, bias=False, rng=1), m.BatchNorm2D(4))),
        Residual(Conv2D(4, 6, 3, 2, 1, rng=2),
                 Sequential(Conv2D(4, 6, 1, 2, bias=False, rng=3), m.BatchNorm2D(6))),
        GlobalAvgPool2D(), Flatten(), Dense(6, 3, rng=4))


def test_buffers_in_blocks_follow_pytorchs_keys_and_order():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class TResidual(nn.Module):
        def __init__(self, block, shortcut=None):
            super().__init__()
            self.block, self.shortcut = block, shortcut

    twin = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        TResidual(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))),
        TResidual(nn.Conv2d(4, 6, 3, 2, 1),
                  nn.Sequential(nn.Conv2d(4, 6, 1, 2, bias=False), nn.BatchNorm2d(6))),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))
    assert list(bn_net().state_dict()) == list(twin.state_dict())


def test_gradcheck_and_save_load_of_blocks_with_batchnorm(tmp_path):
    net = bn_net().astype(np.float64)
    x = np.random.default_rng(7).standard_normal((4, 1, 6, 6))
    assert m.gradcheck(net, x, samples=10)
    for _ in range(3):
        net(x)                  # moves the running statistics away from their start
    net.eval()
    net.save(tmp_path / "bn.npz")
    back = m.load(tmp_path / "bn.npz")
    assert back.state_dict()["3.block.1.num_batches_tracked"] == \
        net.state_dict()["3.block.1.num_batches_tracked"] > 0
    np.testing.assert_array_equal(back.predict(x), net.predict(x))


def test_notebook_tables_keep_nesting_and_count_a_blocks_parameters():
    from minicnn.notebook import model_html, summary_html

    net = small_net()
    html = summary_html(net.summary((1, 6, 6), print_fn=None))
    assert "\u00a0" * 4 + "Conv2D(4-&gt;4" in html
    block_params = sum(p.value.size for p in net[2].parameters())
    assert f"{block_params:,}" in model_html(Sequential(*small_net().layers[2:4]))
