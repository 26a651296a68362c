"""Pad and functional.pad: every mode and side, against loops and np.pad, with gradients."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minicnn
from minicnn import Pad, functional as F
from minicnn import reference as R

MODES = ["zeros", "constant", "reflect", "symmetric", "replicate", "circular"]
NP_MODE = {"reflect": "reflect", "symmetric": "symmetric", "replicate": "edge", "circular": "wrap"}
LIMIT = {"reflect": 1, "symmetric": 0, "circular": 0}


def legal(mode, shape, padding):
    return all(max(s) <= n - LIMIT.get(mode, -10**9) for n, s in zip(shape[2:], padding))


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(MODES), st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 6),
                                         st.integers(1, 6)),
       st.tuples(st.tuples(st.integers(0, 5), st.integers(0, 5)),
                 st.tuples(st.integers(0, 5), st.integers(0, 5))),
       st.sampled_from([np.float32, np.float64]))
def test_matches_reference_and_numpy(mode, shape, padding, dtype):
    assume(legal(mode, shape, padding))
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    value = 2.5 if mode == "constant" else 0.0
    out = F.pad(x, padding, mode, value)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, R.pad(x, padding, mode, value))
    if mode in NP_MODE:
        np.testing.assert_array_equal(out, np.pad(x, ((0, 0), (0, 0)) + padding, NP_MODE[mode]))


def test_mirror_worked_example():
    x = np.arange(1, 10, dtype=np.float32).reshape(1, 1, 3, 3)
    expected = [[5, 4, 5, 6, 5], [2, 1, 2, 3, 2], [5, 4, 5, 6, 5], [8, 7, 8, 9, 8], [5, 4, 5, 6, 5]]
    np.testing.assert_array_equal(Pad(1, mode="reflect").forward(x)[0, 0], expected)


@pytest.mark.parametrize("mode,row", [
    ("reflect", [2, 1, 2, 3, 2]), ("symmetric", [1, 1, 2, 3, 3]), ("replicate", [1, 1, 2, 3, 3]),
    ("circular", [3, 1, 2, 3, 1]), ("zeros", [0, 1, 2, 3, 0]),
])
def test_modes_on_one_row(mode, row):
    x = np.array([[[[1, 2, 3]]]], dtype=np.float64)
    np.testing.assert_array_equal(Pad(((0, 0), (1, 1)), mode=mode).forward(x)[0, 0, 0], row)


def test_some_sides_only():
    x = np.ones((1, 1, 2, 2), np.float32)
    out = Pad(((1, 0), (0, 2)), mode="constant", value=-1).forward(x)
    np.testing.assert_array_equal(out[0, 0], [[-1, -1, -1, -1], [1, 1, -1, -1], [1, 1, -1, -1]])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding", [1, (2, 0), ((0, 2), (3, 1))])
def test_gradcheck(mode, padding, rng):
    layer = Pad(padding, mode=mode, value=1.5 if mode == "constant" else 0.0)
    assert minicnn.gradcheck(layer, rng.standard_normal((2, 2, 4, 5)))


def test_backward_adds_into_source_pixels():
    # reflect of [a b c] by 2 on the left reads c b | a b c: b is read twice, c twice
    x = np.zeros((1, 1, 1, 3))
    layer = Pad(((0, 0), (2, 0)), mode="reflect")
    layer.forward(x)
    dx = layer.backward(np.ones((1, 1, 1, 5)))
    np.testing.assert_array_equal(dx[0, 0, 0], [1, 2, 2])


def test_dtype_follows_input_and_non_contiguous(rng):
    x = rng.standard_normal((3, 4, 5, 6)).transpose(1, 0, 3, 2)[:, ::2]
    out = Pad(1, mode="replicate").forward(x.astype(np.float32))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, R.pad(np.ascontiguousarray(x.astype(np.float32)),
                                             ((1, 1), (1, 1)), "replicate"))


@pytest.mark.parametrize("args,shape,exc,match", [
    (dict(padding=1, mode="mirror"), None, ValueError, r"mode must be one of .*got mode='mirror'"),
    (dict(padding=-1), None, ValueError, "padding must be >= 0"),
    (dict(padding="same"), None, ValueError, "padding must be"),
    (dict(padding=1, value=3), None, ValueError, "needs mode='constant'"),
    (dict(padding=1, mode="constant", value="x"), None, TypeError, "value must be a number"),
    (dict(padding=3, mode="reflect"), (1, 1, 3, 3), ValueError,
     r"Pad\(padding=3, mode='reflect'\): reflect padding \(3, 3\) along H needs an input of size at least 4, got 3"),
    (dict(padding=((0, 0), (4, 0)), mode="symmetric"), (1, 1, 3, 3), ValueError, "symmetric padding .* along W"),
    (dict(padding=1), (3, 3), ValueError, "expected a 4-d input"),
    (dict(padding=1), "int", TypeError, "expected a float32 or float64 input, got int64"),
])
def test_errors(args, shape, exc, match):
    with pytest.raises(exc, match=match):
        layer = Pad(**args)
        if shape == "int":
            layer.forward(np.zeros((1, 1, 3, 3), np.int64))
        elif shape is not None:
            layer.forward(np.zeros(shape, np.float32))


@pytest.mark.parametrize("dout,exc,match", [
    (np.ones((1, 1, 30, 9), np.float32), ValueError,
     r"Pad\(padding=1\): expected dout \(N, C, 6, 6\) for an input of 4 x 4 padded by "
     r"\(\(1, 1\), \(1, 1\)\), got \(1, 1, 30, 9\)"),
    (np.ones((6, 6), np.float32), ValueError, r"expected dout \(1, 1, 6, 6\), got \(6, 6\)"),
    (np.ones((1, 1, 6, 6), np.int64), TypeError,
     r"Pad\(padding=1\): expected a float32 or float64 dout, got int64"),
    (np.ones((1, 1, 6)), ValueError, r"expected dout \(N, C, 6, 6\) for an input of 4 x 4"),
    (np.ones((2, 1, 6, 6), np.float32), ValueError,
     r"Pad\(padding=1\): expected dout \(1, 1, 6, 6\), got \(2, 1, 6, 6\)"),
    (np.ones((1, 1, 6, 6), np.complex64), TypeError,
     "expected a float32 or float64 dout, got complex64"),
])
def test_backward_checks_dout(dout, exc, match):
    """A dout of the wrong size once reached the kernel, which reads the index maps at
    every dout position unchecked: a segfault."""
    layer = Pad(1)
    layer.forward(np.zeros((1, 1, 4, 4), np.float32))
    with pytest.raises(exc, match=match):
        layer.backward(dout)
    dx = layer.backward(np.ones((1, 1, 6, 6)))          # float64: cast to the forward's dtype
    assert dx.shape == (1, 1, 4, 4) and dx.dtype == np.float32
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 6, 6)).tolist()), dx)
    layer.forward(np.zeros((1, 1, 4, 4), np.float32), training=False)
    with pytest.raises(RuntimeError, match=r"backward called before forward\(x, training=True\)"):
        layer.backward(np.ones((1, 1, 6, 6), np.float32))


@pytest.mark.parametrize("padding", [((0, 0), (-1, 0)), ((0, 0), (-3, 1)), ((-1, 0), (0, 0)), -1])
def test_functional_pad_refuses_negative_padding(padding):
    """Negative sides once reached the kernels, which copy the input's own columns to
    [left, left + W): writes outside the output (heap corruption)."""
    x = np.ones((1, 1, 2, 3), np.float32)
    with pytest.raises(ValueError, match=r"pad: padding must be >= 0 on every side"):
        F.pad(x, padding)
    with pytest.raises(ValueError, match=r"pad_backward: padding must be >= 0 on every side"):
        F.pad_backward(np.ones((1, 1, 2, 3), np.float32), padding, "zeros", (2, 3))
    with pytest.raises(ValueError, match=r"conv2d: padding must be >= 0 on every side"):
        F.conv2d_forward(np.ones((8, 1, 10, 12), np.float32), np.ones((4, 1, 3, 2), np.float32),
                         padding=padding)


@pytest.mark.parametrize("x,exc,match", [
    (np.ones((1, 2, 3), np.float32), ValueError, r"pad: expected a 4-d input \(N, C, H, W\), "
                                                 r"got shape \(1, 2, 3\)"),
    (np.ones((1, 1, 2, 3), np.int64), TypeError, "pad: expected a float32 or float64 input, "
                                                 "got int64"),
    ([[[[1.0]]]], TypeError, "pad: expected a float32 or float64 input, got list"),
])
def test_functional_pad_checks_its_input(x, exc, match):
    with pytest.raises(exc, match=match):
        F.pad(x, 1)
    assert F.pad(np.ones((1, 1, 2, 3)), 1).shape == (1, 1, 4, 5)    # an int padding


def test_config_round_trip():
    layer = Pad(((1, 2), (3, 0)), mode="constant", value=0.5)
    clone = Pad.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config() and repr(clone) == repr(layer)
    assert clone.output_shape((2, 4, 4)) == (2, 7, 7)


def test_functional_pad_checks_the_mode_of_an_empty_input():
    with pytest.raises(ValueError, match="pad: mode must be one of"):
        F.pad(np.zeros((0, 1, 3, 3), np.float32), 1, mode="mirror")


@pytest.mark.parametrize("mode", ["zeros", "constant"])
def test_pad_of_a_zero_width_input(mode):
    """An empty row is all fill. (The kernel once took the address of its column 0: harmless
    in a release build, a bounds error in the MINICNN_DEBUG build, which the suite's
    filterwarnings turns into a failure.)"""
    value = 2.0 if mode == "constant" else 0.0
    out = F.pad(np.zeros((2, 1, 3, 0), np.float32), 1, mode, value)
    np.testing.assert_array_equal(out, np.full((2, 1, 5, 2), value, np.float32))
    dx = F.pad_backward(np.ones((2, 1, 5, 2), np.float32), 1, mode, (3, 0))
    assert dx.shape == (2, 1, 3, 0)

