"""Dense and Flatten: reference values, gradients, dtypes, initialisation, errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn
from minicnn import Dense, Flatten, functional as F
from minicnn import reference as R


@pytest.mark.parametrize("bias", [True, False])
def test_dense_gradcheck(bias, rng):
    layer = Dense(5, 3, bias=bias, dtype=np.float64, rng=rng)
    if bias:
        layer.params["bias"][...] = rng.standard_normal(3)
    assert minicnn.gradcheck(layer, rng.standard_normal((4, 5)))
    assert set(layer.grads) == ({"weight", "bias"} if bias else {"weight"})


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 5), fin=st.integers(1, 8), fout=st.integers(1, 6), bias=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_dense_matches_loop_reference(n, fin, fout, bias, dtype, seed):
    rng = np.random.default_rng(seed)
    layer = Dense(fin, fout, bias=bias, dtype=dtype, rng=rng)
    if bias:
        layer.params["bias"][...] = rng.standard_normal(fout)
    x = rng.standard_normal((n, fin)).astype(dtype)
    out = layer.forward(x)
    assert out.shape == (n, fout) and out.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    b = layer.params.get("bias")
    ref = R.dense(x.astype(np.float64), layer.params["weight"].astype(np.float64),
                  None if b is None else b.astype(np.float64))
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)


def test_dense_backward_formulas_and_overwrite(rng):
    layer = Dense(4, 3, dtype=np.float64, rng=rng)
    x, dout = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    for _ in range(2):  # a second pass must overwrite, not accumulate
        layer.forward(x)
        dx = layer.backward(dout)
    w = layer.params["weight"]
    np.testing.assert_allclose(dx, dout @ w)
    np.testing.assert_allclose(layer.grads["weight"], dout.T @ x)
    np.testing.assert_allclose(layer.grads["bias"], dout.sum(0))


def test_dense_dtype_rules(rng):
    layer = Dense(4, 2, rng=rng)
    x64 = rng.standard_normal((3, 4))
    out = layer.forward(x64)
    assert out.dtype == np.float32
    assert layer.backward(np.ones((3, 2))).dtype == np.float32
    assert layer.grads["weight"].dtype == layer.grads["bias"].dtype == np.float32
    layer.astype(np.float64)
    assert layer.forward(x64.astype(np.float32)).dtype == np.float64
    with pytest.raises(TypeError, match=r"^Dense\(4, 2, dtype='float64'\): expected a float32 or float64 "
                                        r"input, got int64 \(normalise raw images first"):
        layer.forward(np.ones((3, 4), np.int64))
    with pytest.raises(TypeError, match=r"^Dense\(4, 2\): expected a float32 or float64 input, got float16"):
        Dense(4, 2).forward(np.ones((3, 4), np.float16))


def test_dense_init_statistics():
    he = Dense(1000, 500, rng=0).params["weight"]
    assert he.shape == (500, 1000) and he.dtype == np.float32
    assert abs(he.std() / np.sqrt(2 / 1000) - 1) < 0.01
    assert abs(he.mean()) < 0.001
    glorot = Dense(1000, 500, weight_init="glorot", rng=0).params["weight"]
    limit = np.sqrt(6 / 1500)
    assert 0.999 * limit < np.abs(glorot).max() <= limit
    assert abs(glorot.std() / (limit / np.sqrt(3)) - 1) < 0.01
    assert not Dense(3, 2).params["bias"].any()


def test_dense_seeding():
    np.testing.assert_array_equal(Dense(3, 4, rng=5).params["weight"], Dense(3, 4, rng=5).params["weight"])
    minicnn.seed(9)
    a = Dense(3, 4).params["weight"]
    minicnn.seed(9)
    np.testing.assert_array_equal(a, Dense(3, 4).params["weight"])
    assert not np.array_equal(a, Dense(3, 4).params["weight"])


def test_dense_describes_itself():
    layer = Dense(400, 120)
    assert repr(layer) == "Dense(400, 120)"
    assert layer.macs((400,)) == 48000
    assert layer.output_shape((400,)) == (120,)
    assert layer.get_config() == {"in_features": 400, "out_features": 120, "bias": True,
                                  "weight_init": "he", "dtype": "float32"}
    other = Dense(3, 4, bias=False, weight_init="glorot", dtype="float64")
    assert repr(other) == "Dense(3, 4, bias=False, weight_init='glorot', dtype='float64')"
    clone = Dense.from_config(other.get_config())
    assert clone.get_config() == other.get_config() and repr(clone) == repr(other)
    assert clone.params["weight"].dtype == np.float64 and "bias" not in clone.params


@pytest.mark.parametrize("make,exc,match", [
    (lambda: Dense(0, 3), ValueError, r"^Dense\(0, 3\): in_features must be a positive int, got 0"),
    (lambda: Dense(3, -2), ValueError, r"^Dense\(3, -2\): out_features must be a positive int, got -2"),
    (lambda: Dense(3, 2.5), TypeError, r"^Dense\(3, 2.5\): out_features must be a positive int, got 2.5"),
    (lambda: Dense(True, 2), TypeError, r"^Dense\(True, 2\): in_features must be a positive int"),
    (lambda: Dense(3, 2, weight_init="zeros"), ValueError,
     r"^Dense\(3, 2\): weight_init must be one of \['he', 'glorot'\], got 'zeros'"),
    (lambda: Dense(3, 2, weight_init=None), ValueError, "weight_init must be one of"),
    (lambda: Dense(3, 2, dtype=np.float16), TypeError, r"^Dense\(3, 2\): dtype must be float32 or float64"),
    (lambda: Dense(3, 2, dtype=int), TypeError, "dtype must be float32 or float64"),
    (lambda: Dense(3, 2, bias=1), TypeError, r"^Dense\(3, 2\): bias must be True or False, got 1"),
    (lambda: Dense(3, 2, rng="seed"), TypeError, r"^Dense\(3, 2\): rng must be None, an int seed"),
])
def test_dense_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_dense_bad_inputs(rng):
    layer = Dense(400, 120)
    with pytest.raises(ValueError, match=r"^Dense\(400, 120\): expected input \(N, 400\), got "
                                         r"\(2, 16, 5, 5\) \(put a Flatten\(\) before it\)$"):
        layer.forward(np.zeros((2, 16, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"expected input \(N, 400\), got \(2, 300\)$"):
        layer.forward(np.zeros((2, 300), np.float32))
    with pytest.raises(ValueError, match=r"expected input \(N, 400\), got \(400,\)$"):
        layer.forward(np.zeros(400, np.float32))
    with pytest.raises(ValueError, match=r"expected input \(N, 400\), got \(N, 16, 5, 5\) \(put a Flatten"):
        layer.output_shape((16, 5, 5))
    layer.forward(np.zeros((2, 400), np.float32), training=False)
    with pytest.raises(RuntimeError, match=r"^Dense\(400, 120\): backward called before forward"):
        layer.backward(np.zeros((2, 120), np.float32))
    layer.forward(np.zeros((2, 400), np.float32))
    with pytest.raises(ValueError, match=r"dense_backward: dout must be \(2, 120\), got \(2, 12\)"):
        layer.backward(np.zeros((2, 12), np.float32))


def test_functional_dense_checks(rng):
    w = rng.standard_normal((3, 4))
    with pytest.raises(ValueError, match=r"^dense: expected x \(N, 4\) for weight \(3, 4\), got \(2, 5\)"):
        F.dense(np.zeros((2, 5)), w)
    with pytest.raises(TypeError, match=r"^dense: input dtype float32 differs from weight dtype float64"):
        F.dense(np.zeros((2, 4), np.float32), w)
    with pytest.raises(ValueError, match=r"^dense: bias must be \(3,\) float64, got \(4,\) float64"):
        F.dense(np.zeros((2, 4)), w, np.zeros(4))
    with pytest.raises(TypeError, match=r"^dense: expected a float32 or float64 input, got list"):
        F.dense([[0.0] * 4], w)


def test_flatten_gradcheck(rng):
    assert minicnn.gradcheck(Flatten(), rng.standard_normal((2, 3, 4, 2)))


def test_flatten_shapes_and_non_contiguous(rng):
    base = rng.standard_normal((3, 4, 5, 2))
    x = base.transpose(0, 3, 1, 2)  # (3, 2, 4, 5), not contiguous
    f = Flatten()
    out = f.forward(x)
    assert out.shape == (3, 40)
    np.testing.assert_array_equal(out, np.ascontiguousarray(x).reshape(3, -1))
    np.testing.assert_array_equal(out[1, :20], base[1, :, :, 0].ravel())  # C, H, W order
    dout = rng.standard_normal((3, 40))
    np.testing.assert_array_equal(f.backward(dout), dout.reshape(3, 2, 4, 5))
    assert f.output_shape((16, 5, 5)) == (400,) and f.macs((16, 5, 5)) == 0
    assert f.forward(np.ones((4, 7), np.float32)).shape == (4, 7)
    assert repr(f) == "Flatten()" and f.get_config() == {}


def test_flatten_errors():
    f = Flatten()
    with pytest.raises(ValueError, match=r"^Flatten\(\): expected an input with a batch axis \(N, \.\.\.\), "
                                         r"got shape \(5,\)"):
        f.forward(np.zeros(5))
    with pytest.raises(TypeError, match=r"^Flatten\(\): expected a float32 or float64 input, got uint8"):
        f.forward(np.zeros((2, 3), np.uint8))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        f.backward(np.zeros((2, 3)))
    f.forward(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"^Flatten\(\): dout must have shape \(2, 12\), got \(2, 3, 4\)"):
        f.backward(np.zeros((2, 3, 4)))


@pytest.mark.parametrize("replace", ["strided", "fortran", "float64"])
def test_backward_into_replaced_grads_arrays(replace):
    """Gradients are copied into the grads arrays, whatever their layout or float dtype (a
    version that wrote them in place with np.matmul(out=) refused such arrays)."""
    rng = np.random.default_rng(0)
    layer = Dense(4, 3, rng=1)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    dout = rng.standard_normal((5, 3)).astype(np.float32)
    layer.forward(x)
    layer.backward(dout)
    ref = {k: g.copy() for k, g in layer.grads.items()}
    if replace == "strided":
        layer.grads["weight"] = np.zeros((3, 8), np.float32)[:, :4]
    elif replace == "fortran":
        layer.grads["weight"] = np.zeros((3, 4), np.float32, order="F")
    else:
        layer.grads["weight"] = np.zeros((3, 4), np.float64)
        layer.grads["bias"] = np.zeros(3, np.float64)
    layer.forward(x)
    layer.backward(dout)
    for k in ref:
        np.testing.assert_allclose(layer.grads[k], ref[k], rtol=1e-6)


@pytest.mark.parametrize("need_dx", [True, False])
def test_float32_products_on_the_own_gemm(monkeypatch, need_dx):
    """float32 products of 8 rows or more run on minicnn's GEMM (the OpenMP threads of the
    other kernels, not NumPy's BLAS): the same numbers as float64 up to rounding; float64
    and fewer rows (a batch of 1-7: matrix-vector products) stay on NumPy."""
    from minicnn import gemm
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, 70)).astype(np.float32)
    w = rng.standard_normal((33, 70)).astype(np.float32)
    b = rng.standard_normal(33).astype(np.float32)
    d = rng.standard_normal((9, 33)).astype(np.float32)
    x64, w64, b64, d64 = (a.astype(np.float64) for a in (x, w, b, d))
    ref = (F.dense(x64, w64, b64),) + F.dense_backward(d64, x64, w64, True, need_dx)
    calls = []
    real = gemm.matmul
    monkeypatch.setattr(gemm, "matmul", lambda *a: (calls.append(a[0].shape), real(*a))[1])
    got = (F.dense(x, w, b),) + F.dense_backward(d, x, w, True, need_dx)
    assert len(calls) == (3 if need_dx else 2)
    for a, r in zip(got, ref):
        if r is None:
            assert a is None
            continue
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, r, rtol=2e-5, atol=2e-5)
    F.dense(x64, w64)
    assert len(calls) == (3 if need_dx else 2)
    small = F.dense_backward(d[:7], x[:7], w, True, need_dx)
    assert len(calls) == (3 if need_dx else 2) + 1         # only dw = dout.T @ x (33 rows)
    np.testing.assert_allclose(small[1], ref[2] - d64[7:].T @ x64[7:], rtol=2e-5, atol=2e-5)

