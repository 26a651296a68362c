"""AdamW, RMSprop and ReduceLROnPlateau against PyTorch step for step (when installed), their
state through state_dict and Trainer.save_state, and the per-batch callback hooks."""
import math

import numpy as np
import pytest

import minicnn
from minicnn import (AdamW, Callback, Dense, ReduceLROnPlateau, RMSprop, Sequential,
                     SoftmaxCrossEntropy, SGD, Trainer)
from minicnn.layers.base import Parameter


class Holder:
    def __init__(self, w):
        self.params = {"w": np.array(w, dtype=np.float64)}
        self.grads = {"w": np.zeros_like(self.params["w"])}


def one_param(w):
    h = Holder(w)
    return h, [Parameter(h, "w")]


OPTIMIZERS = [
    ("AdamW", {}),
    ("AdamW", {"lr": 0.05, "betas": (0.8, 0.9), "eps": 1e-6, "weight_decay": 0.3}),
    ("AdamW", {"lr": 0.02, "weight_decay": 0.0, "amsgrad": True}),
    ("AdamW", {"lr": 0.02, "amsgrad": True}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 0.003, "alpha": 0.9, "eps": 1e-4, "weight_decay": 0.1}),
    ("RMSprop", {"momentum": 0.9}),
    ("RMSprop", {"centered": True}),
    ("RMSprop", {"lr": 0.001, "momentum": 0.5, "centered": True, "weight_decay": 0.01}),
]


@pytest.mark.parametrize("name,kwargs", OPTIMIZERS, ids=lambda v: str(v))
def test_matches_pytorch_step_for_step(name, kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal((3, 4))
    h, params = one_param(w0)
    ours = getattr(minicnn, name)(params, **kwargs)
    tw = torch.tensor(w0, requires_grad=True)
    theirs = getattr(torch.optim, name)([tw], **kwargs)
    for _ in range(8):
        g = rng.standard_normal(w0.shape)
        h.grads["w"][...] = g
        tw.grad = torch.tensor(g)
        ours.step()
        theirs.step()
        np.testing.assert_allclose(h.params["w"], tw.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_defaults_are_pytorchs():
    torch = pytest.importorskip("torch")
    _, params = one_param([1.0])
    for name in ("AdamW", "RMSprop"):
        ours = getattr(minicnn, name)(params)
        theirs = getattr(torch.optim, name)([torch.zeros(1, requires_grad=True)]).defaults
        for key in ("lr", "eps", "weight_decay", "betas", "amsgrad", "alpha", "momentum",
                    "centered"):
            if hasattr(ours, key):
                assert getattr(ours, key) == theirs[key], (name, key)


def test_adamw_decay_is_decoupled_by_hand():
    h, params = one_param([2.0])
    opt = AdamW(params, lr=0.1, weight_decay=0.5)
    opt.step()                  # g = 0: w = 2 * (1 - 0.05), the moments stay 0
    assert h.params["w"][0] == pytest.approx(1.9, rel=1e-15)


@pytest.mark.parametrize("name,kwargs", OPTIMIZERS[2:4] + OPTIMIZERS[7:], ids=lambda v: str(v))
def test_state_dict_resumes_the_same_steps(name, kwargs):
    rng = np.random.default_rng(5)
    grads = rng.standard_normal((4, 6))
    h1, p1 = one_param(np.ones(6))
    a = getattr(minicnn, name)(p1, **kwargs)
    for g in grads:
        h1.grads["w"][...] = g
        a.step()
    h2, p2 = one_param(np.ones(6))
    b = getattr(minicnn, name)(p2, **kwargs)
    for g in grads[:2]:
        h2.grads["w"][...] = g
        b.step()
    h3, p3 = one_param(h2.params["w"])
    c = getattr(minicnn, name)(p3, **kwargs)
    c.load_state_dict(b.state_dict())
    for g in grads[2:]:
        h3.grads["w"][...] = g
        c.step()
    np.testing.assert_array_equal(h3.params["w"], h1.params["w"])


@pytest.mark.parametrize("call,match", [
    (lambda p: AdamW(p, lr=-1), "AdamW: lr must be >= 0"),
    (lambda p: AdamW(p, betas=(0.9, 1.0)), r"AdamW: betas\[1\] must be in \[0.0, 1.0\)"),
    (lambda p: AdamW(p, weight_decay=-0.1), "AdamW: weight_decay must be >= 0"),
    (lambda p: AdamW(p, eps=0), "AdamW: eps must be > 0"),
    (lambda p: AdamW(p, amsgrad="yes"), "AdamW: amsgrad must be True or False"),
    (lambda p: RMSprop(p, alpha=1.5), r"RMSprop: alpha must be in \[0.0, 1.0\]"),
    (lambda p: RMSprop(p, momentum=1.0), "RMSprop: momentum must be in"),
    (lambda p: RMSprop(p, eps=-1), "RMSprop: eps must be > 0"),
    (lambda p: RMSprop(p, weight_decay=float("nan")), "RMSprop: weight_decay must be a finite"),
    (lambda p: RMSprop(p, centered=1), "RMSprop: centered must be True or False"),
])
def test_bad_arguments_are_named(call, match):
    _, params = one_param([1.0])
    with pytest.raises((ValueError, TypeError), match=match):
        call(params)


# --- ReduceLROnPlateau -------------------------------------------------------------------
PLATEAU = [{}, {"mode": "max", "factor": 0.5, "patience": 1},
           {"threshold_mode": "abs", "threshold": 0.05, "patience": 0, "cooldown": 2},
           {"patience": 1, "min_lr": 0.02, "factor": 0.3},
           {"mode": "max", "threshold_mode": "abs", "threshold": 0.1, "patience": 2, "cooldown": 1}]


@pytest.mark.parametrize("kwargs", PLATEAU, ids=str)
def test_plateau_matches_pytorch(kwargs):
    torch = pytest.importorskip("torch")
    _, params = one_param([0.0])
    ours = ReduceLROnPlateau(SGD(params, lr=0.1), **kwargs)
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    metrics = np.random.default_rng(1).permutation(np.r_[np.linspace(1, 0.5, 10), [0.6] * 30])
    for m in list(metrics) + [float("nan"), 0.1, 0.1, 0.1]:
        ours.step(m)
        theirs.step(m)
        assert ours.optimizer.lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12)
        assert ours.num_bad_epochs == theirs.num_bad_epochs
        assert ours.cooldown_counter == theirs.cooldown_counter


def test_plateau_by_hand_and_state_resumes():
    _, params = one_param([0.0])
    opt = SGD(params, lr=1.0)
    s = ReduceLROnPlateau(opt, patience=1, factor=0.5)
    assert s.state_dict()["best"] is None
    for m in (1.0, 1.0, 1.0):   # best 1.0, then two bad epochs: more than patience 1
        s.step(m)
    assert opt.lr == 0.5 and s.num_bad_epochs == 0
    s.step(1.0)
    other = ReduceLROnPlateau(SGD(params, lr=1.0), patience=1, factor=0.5)
    other.load_state_dict(s.state_dict())
    for sched in (s, other):
        sched.step(1.0)
    assert opt.lr == other.optimizer.lr == 0.25
    assert other.best == 1.0


@pytest.mark.parametrize("kwargs,match", [
    ({"mode": "down"}, r"mode must be one of \['min', 'max'\], got 'down'"),
    ({"threshold_mode": "pct"}, "threshold_mode must be one of"),
    ({"factor": 1.0}, "factor must be < 1.0"),
    ({"factor": 0}, "factor must be a finite number > 0"),
    ({"patience": -1}, "patience must be an int >= 0"),
    ({"cooldown": 1.5}, "cooldown must be an int >= 0"),
    ({"min_lr": -1}, "min_lr must be a finite number >= 0"),
    ({"monitor": ""}, "monitor must be a History key"),
])
def test_plateau_bad_arguments(kwargs, match):
    _, params = one_param([0.0])
    with pytest.raises(ValueError, match="ReduceLROnPlateau: " + match):
        ReduceLROnPlateau(SGD(params, lr=0.1), **kwargs)
    with pytest.raises(TypeError, match="needs the monitored metric"):
        ReduceLROnPlateau(SGD(params, lr=0.1)).step()


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6))
    return x, (x[:, 0] > 0).astype(np.int64)


def _trainer(opt_cls=SGD, sched=None, **kw):
    model = Sequential(Dense(6, 2, rng=0)).astype(np.float64)
    opt = opt_cls(model.parameters(), **kw)
    return Trainer(model, SoftmaxCrossEntropy(), opt, sched(opt) if sched else None)


def test_trainer_feeds_the_validation_metric():
    seen = []

    class Spy(ReduceLROnPlateau):
        def step(self, metric=None):
            seen.append(metric)
            super().step(metric)

    x, y = _data()
    t = _trainer(sched=lambda o: Spy(o, patience=0), lr=0.1)
    history = t.fit(x, y, epochs=3, batch_size=8, validation_data=(x[:10], y[:10]), verbose=0)
    assert seen == history["val_loss"]
    with pytest.raises(ValueError, match="monitors 'val_loss': pass validation_data"):
        t.fit(x, y, epochs=1, verbose=0)
    t2 = _trainer(sched=lambda o: ReduceLROnPlateau(o, monitor="val_acc"), lr=0.1)
    with pytest.raises(ValueError, match="monitors 'val_acc'; the Trainer feeds it one of"):
        t2.fit(x, y, epochs=1, verbose=0, validation_data=(x, y))


@pytest.mark.parametrize("opt_cls,kw,sched", [
    (AdamW, {"amsgrad": True}, lambda o: ReduceLROnPlateau(o, patience=0, monitor="loss")),
    (RMSprop, {"momentum": 0.9, "centered": True}, None),
])
def test_trainer_state_resumes_exactly(tmp_path, opt_cls, kw, sched):
    x, y = _data()
    full = _trainer(opt_cls, sched, **kw)
    full.fit(x, y, epochs=4, batch_size=8, seed=1, verbose=0)
    half = _trainer(opt_cls, sched, **kw)
    half.fit(x, y, epochs=2, batch_size=8, seed=1, verbose=0)
    half.save_state(tmp_path / "state.npz")
    resumed = _trainer(opt_cls, sched, **kw)
    resumed.load_state(tmp_path / "state.npz")
    resumed.fit(x, y, epochs=4, batch_size=8, initial_epoch=2, verbose=0)
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        np.testing.assert_array_equal(a.value, b.value)
    assert resumed.optimizer.lr == full.optimizer.lr
    if sched is not None:
        assert resumed.scheduler.state_dict() == full.scheduler.state_dict()


# --- per-batch hooks ----------------------------------------------------------------------
class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_batch_begin(self, trainer, batch_index, logs):
        self.events.append(("begin", trainer.epoch, batch_index, dict(logs)))

    def on_batch_end(self, trainer, batch_index, logs):
        self.events.append(("end", trainer.epoch, batch_index, dict(logs)))

    def on_epoch_end(self, trainer, epoch, logs):
        self.events.append(("epoch", epoch))


def test_batch_hooks_fire_in_order_with_their_logs():
    x, y = _data(n=20)
    rec = Recorder()
    t = _trainer(lr=0.1)
    history = t.fit(x, y, epochs=2, batch_size=8, callbacks=[rec], verbose=0)
    kinds = [e[0] for e in rec.events]
    assert kinds == ["begin", "end"] * 3 + ["epoch"] + ["begin", "end"] * 3 + ["epoch"]
    ends = [e for e in rec.events if e[0] == "end"]
    assert [(e[1], e[2], e[3]["size"]) for e in ends] == [
        (0, 0, 8), (0, 1, 8), (0, 2, 4), (1, 0, 8), (1, 1, 8), (1, 2, 4)]
    for epoch in (0, 1):       # the epoch's loss is the size-weighted mean of its batches'
        batches = [e[3] for e in ends if e[1] == epoch]
        mean = sum(b["loss"] * b["size"] for b in batches) / 20
        assert history["loss"][epoch] == pytest.approx(mean, rel=1e-12)
        acc = sum(b["accuracy"] * b["size"] for b in batches) / 20
        assert history["accuracy"][epoch] == pytest.approx(acc, rel=1e-12)
    begins = [e[3] for e in rec.events if e[0] == "begin"]
    assert all(set(b) == {"batch", "size", "lr"} and b["lr"] == 0.1 for b in begins)


def test_a_callback_without_batch_hooks_still_works():
    class EpochOnly:
        def on_train_begin(self, trainer):
            pass

        def on_epoch_end(self, trainer, epoch, logs):
            self.last = epoch

        def on_train_end(self, trainer):
            pass

    cb = EpochOnly()
    x, y = _data(n=16)
    _trainer(lr=0.1).fit(x, y, epochs=1, batch_size=8, callbacks=[cb], verbose=0)
    assert cb.last == 1
