"""minicnn.reference's padding, convolution and pooling: each op against the fast one in
minicnn.functional (float64, shapes and options drawn by hypothesis), each backward
against central differences, the notes' worked examples, the same errors."""
import re

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minicnn.reference as R
from minicnn import functional as F, geometry

from conftest import assert_gradients

MODES = ["zeros", "reflect", "symmetric", "replicate", "circular"]
PAD_LIMIT = {"reflect": 1, "symmetric": 0, "circular": 0}


def padding_forms(limit=2):
    """Every form a padding argument takes: int, (h, w), ((top, bottom), (left, right))."""
    side = st.integers(0, limit)
    return st.one_of(side, st.tuples(side, side),
                     st.tuples(st.tuples(side, side), st.tuples(side, side)))


# --- padding -----------------------------------------------------------------------

@pytest.mark.parametrize("mode,row", [
    ("zeros", [0, 0, 1, 2, 3, 0, 0]), ("reflect", [3, 2, 1, 2, 3, 2, 1]),
    ("symmetric", [2, 1, 1, 2, 3, 3, 2]), ("replicate", [1, 1, 1, 2, 3, 3, 3]),
    ("circular", [2, 3, 1, 2, 3, 1, 2]),
])
def test_pad_modes_on_one_row(mode, row):
    """The table at the top of reference/padding.py: 1 2 3 padded by 2 on each side."""
    x = np.array([[[[1.0, 2.0, 3.0]]]])
    np.testing.assert_array_equal(R.pad(x, ((0, 0), (2, 2)), mode)[0, 0, 0], row)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(MODES + ["constant"]),
       st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 5), st.integers(1, 5)),
       padding_forms(4), st.integers(0, 2**16))
def test_pad_matches_functional(mode, shape, padding, seed):
    sides = geometry.normalize_padding(padding, "test", False)
    assume(all(max(s) + PAD_LIMIT.get(mode, -99) <= n for n, s in zip(shape[2:], sides)))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    value = 1.5 if mode == "constant" else 0.0
    out = R.pad(x, padding, mode, value)
    np.testing.assert_array_equal(out, F.pad(x, padding, mode, value))
    dout = rng.standard_normal(out.shape)
    dx = R.pad_backward(dout, padding, mode, shape[2:])
    np.testing.assert_allclose(dx, F.pad_backward(dout, padding, mode, shape[2:]), rtol=1e-14)
    assert_gradients(lambda: R.pad(x, padding, mode, value), {"x": x}, {"x": dx}, dout)


def test_pad_backward_adds_into_source_pixels():
    # reflect of a b c by 2 on the left reads c b | a b c: b and c are read twice each
    dx = R.pad_backward(np.ones((1, 1, 1, 5)), ((0, 0), (2, 0)), "reflect", (1, 3))
    np.testing.assert_array_equal(dx[0, 0, 0], [1, 2, 2])


@pytest.mark.parametrize("shape,args", [
    ((1, 1, 3, 3), (3, "reflect")), ((1, 1, 3, 3), (((0, 0), (4, 0)), "symmetric")),
    ((1, 1, 3, 3), (1, "mirror")), ((1, 1, 3, 3), (-1,)), ((3, 3), (1,)),
])
def test_pad_errors_match_functional(shape, args):
    x = np.zeros(shape)
    with pytest.raises(ValueError) as ours:
        R.pad(x, *args)
    with pytest.raises(ValueError) as fast:
        F.pad(x, *args)
    assert str(ours.value) == str(fast.value)


# --- convolution -------------------------------------------------------------------

@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    if draw(st.booleans()):                                  # depthwise, channel multiplier m
        cin, cout = groups, groups * draw(st.integers(1, 2))
    else:
        cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    args = dict(stride=(draw(st.integers(1, 3)), draw(st.integers(1, 2))),
                padding=draw(st.one_of(padding_forms(), st.sampled_from(["same", "valid"]))),
                dilation=(draw(st.integers(1, 2)), draw(st.integers(1, 2))), groups=groups,
                padding_mode=draw(st.sampled_from(MODES)), flip_kernel=draw(st.booleans()),
                activation=draw(st.sampled_from([None, "relu"])))
    x_shape = (draw(st.integers(1, 2)), cin, draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    w_shape = (cout, cin // groups) + kernel
    return x_shape, w_shape, draw(st.booleans()), args, draw(st.integers(0, 2**16))


@settings(max_examples=80, deadline=None)
@given(conv_cases())
def test_conv2d_matches_functional(case):
    x_shape, w_shape, bias, args, seed = case
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0]) if bias else None
    try:
        out, cache = R.conv2d_forward(x, w, b, **args)
    except ValueError as e:                   # the kernel does not fit: the same refusal
        with pytest.raises(ValueError) as fast:
            F.conv2d_forward(x, w, b, **args)
        assert str(fast.value) == str(e)
        assume(False)
    fast_out, fast_cache = F.conv2d_forward(x, w, b, **args)
    np.testing.assert_allclose(out, fast_out, rtol=1e-10, atol=1e-10)
    dout = rng.standard_normal(out.shape)
    for ours, fast in zip(R.conv2d_backward(dout, cache), F.conv2d_backward(dout, fast_cache)):
        if fast is None:
            assert ours is None
        else:
            np.testing.assert_allclose(ours, fast, rtol=1e-10, atol=1e-10)


CONV_GRAD_CASES = [
    dict(),
    dict(stride=2, padding=1),
    dict(padding="same", dilation=2),
    dict(padding=((0, 2), (1, 0)), padding_mode="reflect"),
    dict(padding=((2, 1), (1, 2)), padding_mode="symmetric", stride=(2, 1)),
    dict(padding=2, padding_mode="replicate"),
    dict(padding=(1, 2), padding_mode="circular", flip_kernel=True),
    dict(groups=2),
    dict(groups=4, padding=1),                                # depthwise
    dict(padding=1, activation="relu"),
]


@pytest.mark.parametrize("args", CONV_GRAD_CASES, ids=str)
def test_conv2d_backward_gradcheck(args):
    rng = np.random.default_rng(3)
    groups = args.get("groups", 1)
    x = rng.standard_normal((2, 4, 5, 6))
    w = rng.standard_normal((4, 4 // groups, 3, 2))
    b = rng.standard_normal(4)
    out, cache = R.conv2d_forward(x, w, b, **args)
    if args.get("activation"):             # no sum so near 0 that a step crosses the kink
        assert np.abs(R.conv2d(x, w, b, **dict(args, activation=None))).min() > 1e-4
    dout = rng.standard_normal(out.shape)
    dx, dw, db = R.conv2d_backward(dout, cache)
    assert_gradients(lambda: R.conv2d_forward(x, w, b, **args)[0], {"x": x, "w": w, "b": b},
                     {"x": dx, "w": dw, "b": db}, dout)


def test_conv2d_backward_without_bias_or_dx():
    x, w = np.ones((1, 1, 3, 3)), np.ones((2, 1, 2, 2))
    out, cache = R.conv2d_forward(x, w)
    dx, dw, db = R.conv2d_backward(np.ones(out.shape), cache, need_dx=False)
    assert dx is None and db is None
    np.testing.assert_array_equal(dw, np.full((2, 1, 2, 2), 4.0))
    assert R.conv2d_forward(x, w, training=False)[1] is None


def test_cross_correlation_and_true_convolution_of_an_impulse():
    """An impulse cross-correlated with w gives w turned by 180 degrees; a true
    convolution (flip_kernel) gives w itself: the notes' definition of the two."""
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1
    w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    np.testing.assert_array_equal(R.conv2d(x, w, padding=0), w[:, :, ::-1, ::-1])
    np.testing.assert_array_equal(R.conv2d(x, w, padding=0, flip_kernel=True), w)


@pytest.mark.parametrize("X,K,P,S,expected", [(7, 3, 1, 2, 4), (28, 5, 0, 1, 24), (32, 5, 2, 1, 32),
                                              (6, 2, 0, 2, 3), (5, 3, 0, 3, 1)])
def test_output_size_worked_examples(X, K, P, S, expected):
    """(X + 2P - K) / S + 1, rounded down."""
    out = R.conv2d(np.zeros((1, 1, X, X)), np.zeros((1, 1, K, K)), stride=S, padding=P)
    assert out.shape == (1, 1, expected, expected)


def test_depthwise_filters_each_channel_alone_and_1x1_mixes_channels():
    x = np.arange(2 * 3 * 3, dtype=np.float64).reshape(1, 2, 3, 3)
    w = np.stack([np.full((1, 2, 2), 1.0), np.full((1, 2, 2), 10.0)])        # (2, 1, 2, 2)
    out = R.conv2d(x, w, groups=2)
    np.testing.assert_array_equal(out[0, 0], [[8, 12], [20, 24]])
    np.testing.assert_array_equal(out[0, 1], 10 * (np.array([[8, 12], [20, 24]]) + 4 * 9))
    mix = R.conv2d(x, np.array([2.0, -1.0]).reshape(1, 2, 1, 1))
    np.testing.assert_array_equal(mix[0, 0], 2 * x[0, 0] - x[0, 1])


def test_same_padding_puts_the_extra_row_at_the_bottom():
    """An even kernel under 'same': total padding 1, on the bottom/right (as TensorFlow)."""
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    w = np.ones((1, 1, 2, 2))
    np.testing.assert_array_equal(R.conv2d(x, w, padding="same"),
                                  R.conv2d(x, w, padding=((0, 1), (0, 1))))
    assert R.conv2d(x, w, padding="same", stride=2).shape == (1, 1, 2, 2)


# --- pooling -----------------------------------------------------------------------

@st.composite
def pool_cases(draw):
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    padding = tuple((draw(st.integers(0, k // 2)), draw(st.integers(0, k // 2))) for k in (KH, KW))
    H = draw(st.integers(max(1, KH - sum(padding[0])), 7))
    W = draw(st.integers(max(1, KW - sum(padding[1])), 7))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), H, W)
    stride = draw(st.one_of(st.none(), st.integers(1, 3), st.tuples(st.integers(1, 3),
                                                                    st.integers(1, 3))))
    if padding[0] == padding[1] and draw(st.booleans()):
        padding = padding[0] if padding[0][0] == padding[0][1] else padding
    return shape, (KH, KW), stride, padding, draw(st.booleans()), draw(st.integers(0, 2**16))


@settings(max_examples=60, deadline=None)
@given(pool_cases(), st.sampled_from(["normal", "ties", "nan", "inf"]))
def test_max_pool2d_matches_functional(case, values):
    shape, kernel, stride, padding, ceil_mode, seed = case
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, shape).astype(float) if values == "ties" else rng.standard_normal(shape)
    if values in ("nan", "inf"):
        x[rng.random(shape) < 0.3] = np.nan if values == "nan" else -np.inf
    out, argmax = R.max_pool2d(x, kernel, stride, padding, ceil_mode)
    fast_out, fast_argmax = F.max_pool2d(x, kernel, stride, padding, ceil_mode)
    np.testing.assert_array_equal(out, fast_out)
    np.testing.assert_array_equal(argmax, fast_argmax)
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(R.max_pool2d_backward(dout, argmax, shape),
                               F.max_pool2d_backward(dout, argmax, shape), rtol=1e-14)


@settings(max_examples=60, deadline=None)
@given(pool_cases(), st.booleans())
def test_avg_pool2d_matches_functional(case, count_include_pad):
    shape, kernel, stride, padding, ceil_mode, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    args = (kernel, stride, padding, ceil_mode, count_include_pad)
    out = R.avg_pool2d(x, *args)
    np.testing.assert_allclose(out, F.avg_pool2d(x, *args), rtol=1e-13, atol=1e-15)
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(R.avg_pool2d_backward(dout, shape, *args),
                               F.avg_pool2d_backward(dout, shape, *args), rtol=1e-13)


@pytest.mark.parametrize("args", [
    dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=(1, 2), padding=((1, 0), (0, 1))),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
])
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pool_backward_gradcheck(args, mode):
    rng = np.random.default_rng(4)
    x = rng.permutation(2 * 2 * 5 * 6).reshape(2, 2, 5, 6) / 7.0   # no ties: max is smooth
    if mode == "max":
        args = {k: v for k, v in args.items() if k != "count_include_pad"}
        out, argmax = R.max_pool2d(x, **args)
        dout = rng.standard_normal(out.shape)
        dx = R.max_pool2d_backward(dout, argmax, x.shape)
        forward = lambda: R.max_pool2d(x, **args)[0]  # noqa: E731
    else:
        out = R.avg_pool2d(x, **args)
        dout = rng.standard_normal(out.shape)
        dx = R.avg_pool2d_backward(dout, x.shape, **args)
        forward = lambda: R.avg_pool2d(x, **args)  # noqa: E731
    assert_gradients(forward, {"x": x}, {"x": dx}, dout)


def test_global_avg_pool2d_matches_functional_and_gradcheck():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4, 5))
    out = R.global_avg_pool2d(x)
    np.testing.assert_allclose(out, F.global_avg_pool2d(x), rtol=1e-14)
    dout = rng.standard_normal(out.shape)
    dx = R.global_avg_pool2d_backward(dout, x.shape)
    np.testing.assert_allclose(dx, F.global_avg_pool2d_backward(dout, x.shape), rtol=1e-14)
    assert_gradients(lambda: R.global_avg_pool2d(x), {"x": x}, {"x": dx}, dout)


X4 = np.array([[1, 3, 2, 4], [5, 6, 7, 8], [9, 2, 1, 0], [3, 4, 5, 6]], np.float64)[None, None]


def test_pool_worked_examples():
    out, argmax = R.max_pool2d(X4, 2)
    np.testing.assert_array_equal(out[0, 0], [[6, 8], [9, 6]])
    dx = R.max_pool2d_backward(np.array([[[[1.0, 2], [3, 4]]]]), argmax, X4.shape)
    np.testing.assert_array_equal(dx[0, 0], [[0, 0, 0, 0], [0, 1, 0, 2], [3, 0, 0, 0],
                                             [0, 0, 0, 4]])
    np.testing.assert_array_equal(R.avg_pool2d(X4, 2)[0, 0], [[3.75, 5.25], [4.5, 3.0]])
    # 3x3 windows, stride 2, padding 1 on ones: the corner window has 4 real cells of 9;
    # with ceil_mode a third window starts at row 3 and passes the padding (rows 3, 4, 5:
    # only 3 and 4 lie in the padded input)
    ones = np.ones((1, 1, 4, 4))
    np.testing.assert_allclose(R.avg_pool2d(ones, 3, 2, 1, ceil_mode=True)[0, 0],
                               [[4 / 9, 6 / 9, 2 / 6], [6 / 9, 1, 3 / 6], [2 / 6, 3 / 6, 1 / 4]])
    np.testing.assert_array_equal(R.avg_pool2d(ones, 3, 2, 1, True, False), np.ones((1, 1, 3, 3)))


def test_max_pool_padding_is_minus_infinity_and_nan_wins():
    x = -np.arange(1.0, 5.0).reshape(1, 1, 2, 2)                  # all negative
    out, argmax = R.max_pool2d(x, 2, 1, 1)
    np.testing.assert_array_equal(out[0, 0], [[-1, -1, -2], [-1, -1, -2], [-3, -3, -4]])
    np.testing.assert_array_equal(argmax[0, 0], [[0, 0, 1], [0, 0, 1], [2, 2, 3]])
    x[0, 0, 1, 0] = np.nan
    out, argmax = R.max_pool2d(x, 2)
    assert np.isnan(out[0, 0, 0, 0]) and argmax[0, 0, 0, 0] == 2


@pytest.mark.parametrize("call", ["max", "avg"])
@pytest.mark.parametrize("args", [dict(kernel_size=2, padding=2), dict(kernel_size=0),
                                  dict(kernel_size=2, padding="same"),
                                  dict(kernel_size=(5, 1), stride=1)])
def test_pool_errors_match_functional(call, args):
    x = np.zeros((1, 1, 3, 3))
    ours, fast = (R.max_pool2d, F.max_pool2d) if call == "max" else (R.avg_pool2d, F.avg_pool2d)
    with pytest.raises(ValueError) as expected:
        fast(x, **args)
    with pytest.raises(ValueError, match="^" + re.escape(str(expected.value)) + "$"):
        ours(x, **args)
