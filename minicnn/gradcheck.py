"""Finite-difference gradient checks, in float64.

``gradcheck(layer, x)`` projects the output on a fixed random direction R (the
scalar loss is sum(out * R), so dout = R), then compares ``backward`` with
central differences (f(v + eps) - f(v - eps)) / 2 eps for every element of the
input and of every parameter, as ``torch.autograd.gradcheck`` does.
"""
import numpy as np

__all__ = ["GradcheckError", "numerical_gradient", "gradcheck", "gradcheck_loss"]


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with the numerical one."""


def _named_params(obj):
    if hasattr(obj, "parameters"):
        return [(p.name, p.value) for p in obj.parameters()]
    return list(getattr(obj, "params", {}).items())


def _named_grads(obj):
    if hasattr(obj, "parameters"):
        return {p.name: p.grad for p in obj.parameters()}
    return dict(getattr(obj, "grads", {}))


def numerical_gradient(f, v, eps=1e-6, indices=None):
    """Central differences of the scalar function ``f()`` with respect to array ``v`` (in place).

    ``indices`` (flat) limits the entries computed; the others stay 0.
    """
    grad = np.zeros_like(v)
    flat = v.reshape(-1)  # a view: v must be contiguous
    gflat = grad.reshape(-1)
    for i in (range(flat.size) if indices is None else indices):
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return grad


def _compare(name, analytic, numeric, atol, rtol, indices=None):
    if analytic.shape != numeric.shape:
        raise GradcheckError(f"gradient of {name}: shape {analytic.shape}, expected {numeric.shape}")
    if indices is not None:
        keep = np.zeros(analytic.size, dtype=bool)
        keep[indices] = True
        keep = keep.reshape(analytic.shape)
        analytic, numeric = np.where(keep, analytic, 0), np.where(keep, numeric, 0)
    err = np.abs(analytic - numeric)
    bound = atol + rtol * np.abs(numeric)
    if not np.all(err <= bound):
        i = np.unravel_index(np.argmax(err - bound), err.shape)
        raise GradcheckError(
            f"gradient of {name} differs at index {tuple(int(j) for j in i)}: "
            f"backward gave {analytic[i]!r}, finite differences {numeric[i]!r} "
            f"(max abs error {err.max():.3g}, atol={atol}, rtol={rtol})"
        )


def gradcheck(layer, x, eps=1e-6, atol=1e-5, rtol=1e-4, check_input=True, seed=0, training=True,
              samples=None):
    """Check ``layer.backward`` against central differences for the input and every parameter.

    ``layer`` (a layer or a Sequential) must hold float64 parameters (call
    ``layer.astype(np.float64)``) and ``x`` must be float64. ``samples=k`` checks k
    random entries of each array instead of all of them (for big models). Returns
    True, or raises GradcheckError naming the array and the index that disagrees.
    """
    x = np.asarray(x)
    if x.dtype != np.float64:
        raise TypeError(f"gradcheck: x must be float64, got {x.dtype}")
    for name, p in _named_params(layer):
        if p.dtype != np.float64:
            raise TypeError(
                f"gradcheck: parameter {name} of {layer!r} is {p.dtype}; "
                "call layer.astype(np.float64) first"
            )
    x = np.array(x, dtype=np.float64, order="C")
    out = layer.forward(x, training)
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal(out.shape)

    def loss():
        return float(np.sum(layer.forward(x, training) * direction))

    layer.forward(x, training)
    dx = layer.backward(direction.copy())
    grads = {k: np.array(g, copy=True) for k, g in _named_grads(layer).items()}

    def check(name, analytic, v):
        idx = None
        if samples is not None and samples < v.size:
            idx = rng.choice(v.size, size=samples, replace=False)
        _compare(name, analytic, numerical_gradient(loss, v, eps, idx), atol, rtol, idx)

    if check_input:
        check("input", np.asarray(dx), x)
    for name, p in _named_params(layer):
        check(name, grads[name], p)
    return True


def gradcheck_loss(loss, pred, target, eps=1e-6, atol=1e-6, rtol=1e-4):
    """Check ``loss.backward()`` against central differences of ``loss.forward(pred, target)``."""
    pred = np.array(pred, dtype=np.float64, order="C")
    loss.forward(pred, target)
    analytic = np.asarray(loss.backward())
    numeric = numerical_gradient(lambda: loss.forward(pred, target), pred, eps)
    _compare("prediction", analytic, numeric, atol, rtol)
    return True
