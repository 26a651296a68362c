"""Optimizers and schedules against hand-computed steps (and PyTorch when it is installed)."""
import math

import numpy as np
import pytest

import minicnn
from minicnn import SGD, Adam, CosineAnnealingLR, Dense, LinearWarmup, OneCycleLR, StepLR
from minicnn import functional as F
from minicnn.layers.base import Parameter


class Holder:
    """A stand-in layer holding one parameter array."""

    def __init__(self, w, g):
        self.params = {"w": np.array(w, dtype=np.float64)}
        self.grads = {"w": np.array(g, dtype=np.float64)}


def one_param(w, g):
    h = Holder(w, g)
    return h, [Parameter(h, "w")]


def test_sgd_plain_and_weight_decay():
    h, params = one_param([1.0, -2.0], [0.5, 0.5])
    SGD(params, lr=0.1, weight_decay=0.1).step()
    # d = g + 0.1 w = [0.6, 0.3]; w -= 0.1 d
    np.testing.assert_allclose(h.params["w"], [0.94, -2.03])


def test_sgd_momentum_dampening():
    h, params = one_param([1.0], [1.0])
    opt = SGD(params, lr=0.1, momentum=0.9, dampening=0.5)
    opt.step()                       # b = g = 1 (no dampening on the first step); w = 0.9
    h.grads["w"][...] = 2.0
    opt.step()                       # b = 0.9 * 1 + 0.5 * 2 = 1.9; w = 0.9 - 0.19 = 0.71
    np.testing.assert_allclose(h.params["w"], [0.71])


def test_sgd_nesterov():
    h, params = one_param([1.0], [1.0])
    opt = SGD(params, lr=0.1, momentum=0.9, nesterov=True)
    opt.step()                       # b = 1; d = 1 + 0.9 * 1 = 1.9; w = 0.81
    h.grads["w"][...] = 2.0
    opt.step()                       # b = 0.9 + 2 = 2.9; d = 2 + 2.61 = 4.61; w = 0.81 - 0.461
    np.testing.assert_allclose(h.params["w"], [0.349])


def numpy_sgd(w, grads, lr, momentum, dampening, nesterov, weight_decay):
    """The update as NumPy expressions, one pass each: what the fused kernel must equal."""
    buf = None
    for g in grads:
        if weight_decay:
            g = g + weight_decay * w
        if momentum:
            if buf is None:
                buf = g.copy()
            else:
                buf *= momentum
                buf += (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        w -= w.dtype.type(lr) * g
    return w


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("momentum,dampening,nesterov,weight_decay", [
    (0.0, 0.0, False, 0.0), (0.0, 0.0, False, 5e-4), (0.9, 0.0, False, 5e-4),
    (0.9, 0.1, False, 0.0), (0.9, 0.0, True, 1e-2)])
@pytest.mark.parametrize("size", [7, 300_000])      # one thread, and the parallel kernel
def test_sgd_one_pass_kernel_equals_numpy_bit_for_bit(dtype, momentum, dampening, nesterov,
                                                      weight_decay, size, monkeypatch):
    monkeypatch.setattr(minicnn.functional.thresholds, "PARALLEL_MIN", 1 << 10)
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(size).astype(dtype)
    grads = [rng.standard_normal(size).astype(dtype) for _ in range(3)]
    h = Holder(w0, grads[0])
    h.params["w"] = w0.copy()
    h.grads["w"] = grads[0].copy()
    opt = SGD([Parameter(h, "w")], lr=0.03, momentum=momentum, dampening=dampening,
              nesterov=nesterov, weight_decay=weight_decay)
    for g in grads:
        h.grads["w"][...] = g
        opt.step()
    np.testing.assert_array_equal(h.params["w"], numpy_sgd(w0.copy(), grads, 0.03, momentum,
                                                           dampening, nesterov, weight_decay))
    # a parameter the kernel cannot take (a strided view) goes the NumPy way, same numbers
    h2 = Holder(np.zeros(2 * size), np.zeros(2 * size))
    h2.params["w"] = np.repeat(w0, 2)[::2]
    h2.grads["w"] = np.zeros(2 * size, dtype)[::2]
    opt2 = SGD([Parameter(h2, "w")], lr=0.03, momentum=momentum, dampening=dampening,
               nesterov=nesterov, weight_decay=weight_decay)
    for g in grads:
        h2.grads["w"][...] = g
        opt2.step()
    np.testing.assert_array_equal(h2.params["w"], h.params["w"])


def test_sgd_other_float_dtypes_take_the_numpy_lines():
    h = Holder([1.0, 2.0], [0.5, 0.5])
    h.params["w"] = h.params["w"].astype(np.float16)
    h.grads["w"] = h.grads["w"].astype(np.float16)
    opt = SGD([Parameter(h, "w")], lr=0.1, momentum=0.9)
    opt.step()
    opt.step()
    np.testing.assert_allclose(h.params["w"], [1.0 - 0.05 - 0.095, 2.0 - 0.05 - 0.095], rtol=1e-3)
    assert opt.state["w"]["momentum_buffer"].dtype == np.float16


def test_sgd_update_checks_its_arrays():
    w = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"sgd_update: g must be a C-contiguous float32 array of shape \(3,\)"):
        minicnn.functional.sgd_update(w, np.zeros(3), None, 0.1)
    with pytest.raises(ValueError, match="sgd_update: expected float32 or float64 arrays, got float16"):
        minicnn.functional.sgd_update(w.astype(np.float16), np.zeros(3, np.float16), None, 0.1)
    with pytest.raises(ValueError, match=r"buf must be a C-contiguous float32 array of shape \(3,\)"):
        minicnn.functional.sgd_update(w, np.zeros(3, np.float32), np.zeros(6, np.float32)[::2], 0.1,
                                      momentum=0.9)
    with pytest.raises(ValueError, match="momentum needs a buffer"):
        minicnn.functional.sgd_update(w, np.zeros(3, np.float32), None, 0.1, momentum=0.9)


def test_adam_two_steps_with_weight_decay():
    h, params = one_param([1.0], [0.5])
    opt = Adam(params, lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    opt.step()
    # g = 0.5 + 0.1 = 0.6; m = 0.06; v = 0.0036; mhat = 0.6; vhat = 0.36; w = 1 - 0.1 * 0.6 / 0.6
    w1 = 1 - 0.1 * 0.6 / (0.6 + 1e-8)
    np.testing.assert_allclose(h.params["w"], [w1], rtol=1e-15)
    opt.step()
    g = 0.5 + 0.1 * w1
    m = 0.9 * 0.06 + 0.1 * g
    v = 0.99 * 0.0036 + 0.01 * g * g
    expected = w1 - 0.1 * (m / (1 - 0.9 ** 2)) / (math.sqrt(v / (1 - 0.99 ** 2)) + 1e-8)
    np.testing.assert_allclose(h.params["w"], [expected], rtol=1e-12)


def test_optimizer_keeps_float32():
    layer = Dense(3, 2)
    opt = Adam(layer.parameters(), lr=0.01)
    layer.grads["weight"] = np.ones((2, 3), np.float32)
    layer.grads["bias"] = np.ones(2, np.float32)
    opt.step()
    assert layer.params["weight"].dtype == np.float32


@pytest.mark.parametrize("make", [
    lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2),
    lambda p: SGD(p, lr=0.1, momentum=0.5, dampening=0.3),
    lambda p: Adam(p, lr=0.01, weight_decay=1e-2),
])
def test_matches_pytorch(make):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(5)
    h, params = one_param(w0, np.zeros(5))
    opt = make(params)
    tw = torch.tensor(w0, requires_grad=True)
    name = type(opt).__name__
    kwargs = {"lr": opt.lr, "weight_decay": opt.weight_decay}
    if name == "SGD":
        kwargs.update(momentum=opt.momentum, dampening=opt.dampening, nesterov=opt.nesterov)
        topt = torch.optim.SGD([tw], **kwargs)
    else:
        topt = torch.optim.Adam([tw], betas=opt.betas, eps=opt.eps, **kwargs)
    for _ in range(5):
        g = rng.standard_normal(5)
        h.grads["w"][...] = g
        opt.step()
        tw.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(h.params["w"], tw.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_state_dict_round_trip():
    h, params = one_param([1.0, 2.0], [0.3, -0.1])
    opt = Adam(params, lr=0.1)
    opt.step()
    h2, params2 = one_param(h.params["w"], [0.3, -0.1])
    opt2 = Adam(params2, lr=0.5)
    opt2.load_state_dict(opt.state_dict())
    opt.step()
    opt2.step()
    np.testing.assert_array_equal(h.params["w"], h2.params["w"])


@pytest.mark.parametrize("make,match", [
    (lambda p: SGD(p, lr=-1), r"SGD: lr must be >= 0.0, got -1"),
    (lambda p: SGD(p, lr=0.1, nesterov=True), "nesterov momentum requires momentum > 0"),
    (lambda p: SGD(p, lr=0.1, momentum=float("nan")), "momentum must be a finite number"),
    (lambda p: Adam(p, betas=(0.9, 1.0)), r"betas\[1\] must be in \[0.0, 1.0\)"),
    (lambda p: Adam(p, betas=0.9), "betas must be a pair"),
    (lambda p: SGD([], lr=0.1), "empty parameter list"),
])
def test_bad_arguments(make, match):
    _, params = one_param([1.0], [1.0])
    with pytest.raises(ValueError, match=match):
        make(params)
    with pytest.raises(TypeError, match="params must be Parameters"):
        SGD([np.zeros(3)], lr=0.1)


def lrs(schedule, n):
    out = [schedule.get_last_lr()]
    for _ in range(n):
        schedule.step()
        out.append(schedule.get_last_lr())
    return out


def opt_with_lr(lr):
    return SGD(one_param([1.0], [0.0])[1], lr=lr)


def test_step_lr():
    np.testing.assert_allclose(lrs(StepLR(opt_with_lr(1.0), 2, gamma=0.5), 5), [1, 1, 0.5, 0.5, 0.25, 0.25])


def test_cosine():
    values = lrs(CosineAnnealingLR(opt_with_lr(1.0), T_max=4, eta_min=0.2), 4)
    expected = [0.2 + 0.8 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(5)]
    np.testing.assert_allclose(values, expected)
    assert values[-1] == pytest.approx(0.2)


def test_one_cycle_shape():
    s = OneCycleLR(opt_with_lr(0.0), max_lr=1.0, total_steps=10, pct_start=0.3)
    values = lrs(s, 9)
    assert values[0] == pytest.approx(1 / 25) and max(values) == pytest.approx(1.0)
    assert values.index(max(values)) == 2 and values[-1] == pytest.approx(1 / 25 / 1e4)
    assert s.per_batch


def test_linear_warmup():
    np.testing.assert_allclose(lrs(LinearWarmup(opt_with_lr(1.0), 4, start_factor=0.2), 6),
                               [0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 1.0])


@pytest.mark.parametrize("name,kwargs", [
    ("StepLR", dict(step_size=3, gamma=0.3)),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.01)),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=20)),
])
def test_schedules_match_pytorch(name, kwargs):
    torch = pytest.importorskip("torch")
    ours = getattr(minicnn, name)(opt_with_lr(0.1), **kwargs)
    tw = torch.zeros(1, requires_grad=True)
    topt = torch.optim.SGD([tw], lr=0.1)
    theirs = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    for _ in range(15):
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr()[0], rel=1e-9)
        topt.step()
        theirs.step()
        ours.step()


def test_sgd_update_checked_still_refuses_what_would_leave_the_arrays():
    """The unchecked entry (optim.SGD calls it after sgd_arrays_problem) still refuses in
    O(1) a gradient or buffer of another size (the kernel would read past it) and momentum
    without a buffer."""
    w = np.zeros(10, np.float32)
    with pytest.raises(ValueError, match="w, g \\(and buf\\) must be arrays of one size"):
        F.sgd_update_checked(w, np.arange(3, dtype=np.float32), None, 1.0, 0.0, 0.0, 0.0,
                             False, False)
    with pytest.raises(ValueError, match="must be arrays of one size"):
        F.sgd_update_checked(w, w.copy(), np.zeros(3, np.float32), 1.0, 0.9, 0.0, 0.0, False,
                             False)
    with pytest.raises(ValueError, match="sgd_update_checked: momentum needs a buffer"):
        F.sgd_update_checked(w, w.copy(), None, 0.1, 0.9, 0.0, 0.0, False, True)

