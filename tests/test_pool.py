"""Pooling: kernels against loop references on every option, gradients, layers, errors."""
import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minicnn
from minicnn import AvgPool2D, GlobalAvgPool2D, MaxPool2D, Pool2D, functional as F
from minicnn.layers import LAYERS
from minicnn import reference as R
from conftest import fast_kernels_only, always_parallel

def pool_windows(n, k, stride, before, after, ceil_mode):
    """The window starts along one axis (input coordinates, may be negative), by definition.

    Windows start at i*stride - before. Floor mode keeps those that end inside the padded
    input; ceil mode also keeps one that hangs over the end, as long as it starts inside
    the input or the leading padding (PyTorch's rule). geometry.pool_output_size must count
    them.
    """
    starts = []
    i = 0
    while True:
        start = i * stride - before
        end = start + k
        if ceil_mode:
            keep = start < n and end - stride < n + after
        else:
            keep = end <= n + after
        if not keep:
            return starts
        starts.append(start)
        i += 1


X4 = np.array([[1, 3, 2, 4],
               [5, 6, 7, 8],
               [9, 2, 1, 0],
               [3, 4, 5, 6]], dtype=np.float32)[None, None]


@st.composite
def pool_case(draw):
    """A random input shape and pooling arguments that PyTorch would accept."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    padding = tuple((draw(st.integers(0, k // 2)), draw(st.integers(0, k // 2))) for k in (kh, kw))
    h = draw(st.integers(max(1, kh - sum(padding[0])), 9))
    w = draw(st.integers(max(1, kw - sum(padding[1])), 9))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w)
    return shape, (kh, kw), (sh, sw), padding


@settings(max_examples=60, deadline=None)
@given(pool_case(), st.booleans(), st.sampled_from([np.float32, np.float64]), st.booleans())
def test_max_pool_matches_reference(case, ceil_mode, dtype, ties):
    shape, k, s, p = case
    rng = np.random.default_rng(0)
    # small integers make ties common, so the first-maximum rule is exercised
    x = (rng.integers(-3, 4, shape) if ties else rng.standard_normal(shape)).astype(dtype)
    out, argmax = F.max_pool2d(x, k, s, p, ceil_mode)
    ref, ref_argmax = R.max_pool2d(x, k, s, p, ceil_mode)
    assert out.dtype == dtype and argmax.dtype == np.intp
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(argmax, ref_argmax)
    assert np.isfinite(out).all()  # no window lies wholly in the padding


@settings(max_examples=60, deadline=None)
@given(pool_case(), st.booleans(), st.booleans(), st.sampled_from([np.float32, np.float64]))
def test_avg_pool_matches_reference(case, ceil_mode, count_include_pad, dtype):
    shape, k, s, p = case
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    out = F.avg_pool2d(x, k, s, p, ceil_mode, count_include_pad)
    assert out.dtype == dtype
    ref = R.avg_pool2d(x.astype(np.float64), k, s, p, ceil_mode, count_include_pad)
    np.testing.assert_allclose(out, ref, rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-7)


@settings(max_examples=40, deadline=None)
@given(pool_case(), st.booleans(), st.booleans())
def test_backward_matches_reference_and_its_adjoint(case, ceil_mode, count_include_pad):
    # <pool(x), g> = <x, pool_backward(g)>: checks every window's divisor and cell set
    shape, k, s, p = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    out = R.avg_pool2d(x, k, s, p, ceil_mode, count_include_pad)
    g = rng.standard_normal(out.shape)
    dx = F.avg_pool2d_backward(g, shape, k, s, p, ceil_mode, count_include_pad)
    assert np.isclose(np.sum(out * g), np.sum(x * dx), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, R.avg_pool2d_backward(g, shape, k, s, p, ceil_mode,
                                                         count_include_pad), rtol=1e-12)
    out, argmax = F.max_pool2d(x, k, s, p, ceil_mode)
    dx = F.max_pool2d_backward(g, argmax, shape)
    assert np.isclose(np.sum(out * g), np.sum(x * dx), rtol=1e-12, atol=1e-12)
    ref_out, ref_argmax = R.max_pool2d(x, k, s, p, ceil_mode)
    np.testing.assert_array_equal(dx, R.max_pool2d_backward(g, ref_argmax, shape))


@pytest.mark.parametrize("n,k,s,before,after,ceil,expected", [
    (4, 2, 2, 0, 0, False, 2), (5, 2, 2, 0, 0, False, 2), (5, 2, 2, 0, 0, True, 3),
    (4, 3, 2, 1, 1, True, 3), (6, 3, 3, 1, 1, True, 3), (1, 2, 1, 1, 1, False, 2),
])
def test_reference_window_counts_follow_geometry(n, k, s, before, after, ceil, expected):
    assert len(pool_windows(n, k, s, before, after, ceil)) == expected
    assert minicnn.geometry.pool_output_size(n, k, s, before, after, ceil) == expected


def test_no_window_lies_in_padding_exhaustive():
    # pad <= k // 2 keeps every window on the input, in floor and ceil mode alike
    for n in range(1, 7):
        for k in range(1, 6):
            for s in range(1, 6):
                for before in range(k // 2 + 1):
                    for after in range(k // 2 + 1):
                        for ceil in (False, True):
                            for start in pool_windows(n, k, s, before, after, ceil):
                                assert start < n and start + k > 0


# --- worked examples ------------------------------------------------------------

def test_max_pool_worked_example():
    layer = MaxPool2D(2)
    np.testing.assert_array_equal(layer.forward(X4)[0, 0], [[6, 8], [9, 6]])
    dx = layer.backward(np.array([[[[1, 2], [3, 4]]]], np.float32))
    np.testing.assert_array_equal(dx[0, 0], [[0, 0, 0, 0], [0, 1, 0, 2], [3, 0, 0, 0],
                                             [0, 0, 0, 4]])


def test_avg_pool_worked_example():
    np.testing.assert_array_equal(AvgPool2D(2).forward(X4)[0, 0], [[3.75, 5.25], [4.5, 3.0]])


def test_avg_pool_padding_divisors():
    # 3x3 windows, stride 2, padding 1 on a 4x4 input of ones: the corner window has
    # 4 real cells of its 9; with ceil_mode a third window starts at row 3 and passes
    # the padding (rows 3, 4, 5: only 3 and 4 lie in the padded input)
    x = np.ones((1, 1, 4, 4))
    inc = F.avg_pool2d(x, 3, 2, 1, ceil_mode=True)
    np.testing.assert_allclose(inc[0, 0], [[4 / 9, 6 / 9, 2 / 6], [6 / 9, 1, 3 / 6],
                                           [2 / 6, 3 / 6, 1 / 4]])
    exc = F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    np.testing.assert_array_equal(exc, np.ones((1, 1, 3, 3)))


def test_max_pool_padding_is_minus_infinity():
    x = -np.arange(1, 5, dtype=np.float64).reshape(1, 1, 2, 2)  # all negative
    out, argmax = F.max_pool2d(x, 2, 1, 1)
    np.testing.assert_array_equal(out[0, 0], [[-1, -1, -2], [-1, -1, -2], [-3, -3, -4]])
    np.testing.assert_array_equal(argmax[0, 0], [[0, 0, 1], [0, 0, 1], [2, 2, 3]])


def test_asymmetric_padding_and_rectangular_kernel():
    x = np.arange(15, dtype=np.float64).reshape(1, 1, 3, 5)
    out = F.avg_pool2d(x, (2, 3), (1, 2), ((1, 0), (0, 1)), count_include_pad=False)
    ref = R.avg_pool2d(x, (2, 3), (1, 2), ((1, 0), (0, 1)), False, False)
    assert out.shape == (1, 1, 3, 2)
    np.testing.assert_allclose(out, ref)
    # first output row: window rows -1 (padding) and 0, columns 0-2 and 2-4
    np.testing.assert_allclose(out[0, 0, 0], [3 / 3, 9 / 3])
    out = F.avg_pool2d(x, (2, 3), (1, 2), ((1, 0), (0, 1)), count_include_pad=True)
    np.testing.assert_allclose(out[0, 0, 0], [3 / 6, 9 / 6])
    np.testing.assert_allclose(out[0, 0, 1], [(0 + 1 + 2 + 5 + 6 + 7) / 6, (2 + 3 + 4 + 7 + 8 + 9) / 6])


def test_ties_go_to_the_first_maximum():
    x = np.array([[[[1, 5], [5, 5]]]], np.float32)
    out, argmax = F.max_pool2d(x, 2)
    assert out[0, 0, 0, 0] == 5 and argmax[0, 0, 0, 0] == 1
    layer = MaxPool2D(2)
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 1, 1)))[0, 0], [[0, 1], [0, 0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_wins_the_window(dtype):
    x = np.array([[[[1, np.nan, 7, 2], [3, np.nan, 0, 1]]]], dtype)
    out, argmax = F.max_pool2d(x, 2)
    assert np.isnan(out[0, 0, 0, 0]) and argmax[0, 0, 0, 0] == 1  # the first NaN
    assert out[0, 0, 0, 1] == 7
    x[0, 0, 0, 0] = np.inf  # a NaN later in the window still wins over +inf
    out, argmax = F.max_pool2d(x, 2)
    assert np.isnan(out[0, 0, 0, 0]) and argmax[0, 0, 0, 0] == 1
    assert np.isnan(F.avg_pool2d(x, 2)[0, 0, 0, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hw,ceil_mode", [((8, 10), False), ((7, 9), False), ((7, 9), True),
                                          ((8, 9), True), ((7, 10), True), ((2, 34), False),
                                          ((3, 5), True)])
def test_max_pool_2x2_fast_path_matches_reference(dtype, hw, ceil_mode):
    """MaxPool2D(2)'s own loop (whole 2x2 windows at stride 2): ties, signed zeros,
    infinities and NaNs give the reference's values, signs and indices (ceil_mode's clipped
    last row and column, and rows holding a NaN, go through the general loop)."""
    rng = np.random.default_rng(3)
    x = rng.choice(np.array([-1.0, -0.0, 0.0, 1.0, 2.0, np.inf, -np.inf], dtype),
                   size=(2, 3) + hw)
    x[0, 0, 0, :3] = np.nan
    x[1, 2, -1, -1] = np.nan
    out, argmax = F.max_pool2d(x, 2, ceil_mode=ceil_mode)
    ref, ref_argmax = R.max_pool2d(x, (2, 2), (2, 2), ((0, 0), (0, 0)), ceil_mode)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(np.signbit(out), np.signbit(ref))
    np.testing.assert_array_equal(argmax, ref_argmax)


def _special_values(shape, dtype, seed):
    """Ties, signed zeros, infinities and NaNs (a NaN row start, a NaN last pixel)."""
    x = np.random.default_rng(seed).choice(
        np.array([-1.0, -0.0, 0.0, 1.0, 2.0, np.inf, -np.inf], dtype), size=shape)
    x[0, 0, 0, :3] = np.nan
    x[-1, -1, -1, -1] = np.nan
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hw", [(2, 2), (8, 10), (7, 9), (2, 34), (3, 530)])
def test_max_pool_2x2_codes_name_the_argmax(dtype, hw):
    """max_pool2d_2x2 (MaxPool2D(2)'s kernels): the same values, signs and chosen pixels as
    max_pool2d's argmax, for ties, signed zeros, infinities, NaNs, odd sizes and rows longer
    than the flat path's run of codes (530 wide: 265 windows)."""
    x = _special_values((2, 3) + hw, dtype, 4)
    out, code = F.max_pool2d_2x2(x)
    ref, argmax = F.max_pool2d(x, 2)
    assert out.dtype == dtype and code.dtype == np.int32 and code.shape == ref.shape
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(np.signbit(out), np.signbit(ref))
    i, j = np.indices(code.shape[2:])
    flat = (2 * i + code // 2) * hw[1] + 2 * j + code % 2
    np.testing.assert_array_equal(flat, argmax)
    ref2, argmax2 = R.max_pool2d(x, (2, 2), (2, 2), ((0, 0), (0, 0)), False)
    np.testing.assert_array_equal(argmax, argmax2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hw", [(2, 2), (8, 10), (7, 9), (5, 2)])
def test_max_pool_2x2_backward_matches_scatter(dtype, hw):
    """max_pool2d_2x2_backward writes every pixel (it allocates without zeroing: garbage
    left there would show) with the bits of max_pool2d_backward's scatter into zeros: -0.0
    lands as +0.0, a NaN or inf gradient only at its window's maximum, zeros in the odd
    last row and column."""
    x = _special_values((2, 3) + hw, dtype, 5)
    out, code = F.max_pool2d_2x2(x)
    _, argmax = F.max_pool2d(x, 2)
    g = np.random.default_rng(6).choice(np.array([-0.0, 0.0, 1.5, -2.0, np.nan, np.inf], dtype),
                                        size=out.shape)
    for _ in range(3):       # leave NaN-filled memory of dx's size behind for it to reuse
        del _
        junk = np.full(x.shape, np.nan, dtype)
        del junk
        dx = F.max_pool2d_2x2_backward(g, code, x.shape)
        ref = F.max_pool2d_backward(g, argmax, x.shape)
        assert dx.dtype == dtype and dx.shape == x.shape
        np.testing.assert_array_equal(dx, ref)
        np.testing.assert_array_equal(np.signbit(dx), np.signbit(ref))


def test_max_pool_2x2_backward_reads_two_bits_of_a_code():
    """A code the forward pass never makes cannot send a gradient outside its window."""
    g = np.arange(1, 7, dtype=np.float32).reshape(1, 1, 2, 3)
    dx = F.max_pool2d_2x2_backward(g, np.full(g.shape, -1, np.int32), (1, 1, 4, 6))
    np.testing.assert_array_equal(dx[0, 0, 1::2, 1::2], g[0, 0])    # -1 & 3 == 3
    assert dx.sum() == g.sum()


def test_max_pool_2x2_errors():
    x = np.zeros((1, 2, 4, 4), np.float32)
    out, code = F.max_pool2d_2x2(x)
    with pytest.raises(ValueError, match=r"max_pool2d_2x2: a 2x2 window needs an input of at "
                                         r"least 2 x 2, got 1 x 4"):
        F.max_pool2d_2x2(np.zeros((1, 2, 1, 4), np.float32))
    with pytest.raises(ValueError, match=r"dout \(1, 2, 2, 1\) and code \(1, 2, 2, 2\) must "
                                         r"both be \(1, 2, 2, 2\)"):
        F.max_pool2d_2x2_backward(out[..., :1], code, x.shape)
    with pytest.raises(ValueError, match=r"must both be \(1, 2, 3, 2\) for an input"):
        F.max_pool2d_2x2_backward(out, code, (1, 2, 6, 4))
    with pytest.raises(TypeError, match="code must be int32 \\(from max_pool2d_2x2\\), got int64"):
        F.max_pool2d_2x2_backward(out, code.astype(np.int64), x.shape)
    with pytest.raises(TypeError, match="expected a float32 or float64 input, got int64"):
        F.max_pool2d_2x2(np.zeros((1, 1, 2, 2), np.int64))


@pytest.mark.parametrize("hw,ceil_mode,own", [((6, 8), False, True), ((7, 9), False, True),
                                              ((6, 8), True, True), ((7, 8), True, False),
                                              ((6, 9), True, False)])
def test_max_pool2d_layer_takes_its_own_kernels_when_they_apply(hw, ceil_mode, own):
    """MaxPool2D(2) caches int32 window codes where every window lies inside the input
    (floor mode, or ceil_mode with even sizes), flat indices otherwise; both give the
    functional results and pass the float64 gradient check."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3) + hw)
    layer = MaxPool2D(2, ceil_mode=ceil_mode)
    out = layer.forward(x)
    assert (layer.cache[2].dtype == np.int32) == own and layer.cache[3] == own
    ref, argmax = F.max_pool2d(x, 2, ceil_mode=ceil_mode)
    np.testing.assert_array_equal(out, ref)
    g = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(layer.backward(g), F.max_pool2d_backward(g, argmax, x.shape))
    assert minicnn.gradcheck(MaxPool2D(2, ceil_mode=ceil_mode), x)


def test_global_avg_pool():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    layer = GlobalAvgPool2D()
    out = layer.forward(x)
    assert out.shape == (2, 3, 1, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out, x.astype(np.float64).mean(axis=(2, 3), keepdims=True),
                               rtol=1e-6)
    dx = layer.backward(np.ones((2, 3, 1, 1), np.float32))
    np.testing.assert_allclose(dx, np.full(x.shape, 1 / 20))
    assert layer.output_shape((3, 5, 4)) == (3, 1, 1)
    assert repr(layer) == "GlobalAvgPool2D()" and layer.receptive_params() is None
    assert minicnn.gradcheck(layer, rng.standard_normal((2, 2, 3, 4)))


# --- gradients --------------------------------------------------------------------

@pytest.mark.parametrize("layer", [
    MaxPool2D(2), MaxPool2D(3, 2, 1), MaxPool2D(3, 2, 1, ceil_mode=True),
    MaxPool2D((2, 3), (1, 2), ((1, 0), (0, 1)), ceil_mode=True),
    AvgPool2D(2), AvgPool2D(3, 2, 1), AvgPool2D(3, 2, 1, ceil_mode=True),
    AvgPool2D(3, 2, 1, ceil_mode=True, count_include_pad=False),
    AvgPool2D((3, 2), (2, 1), ((0, 1), (1, 1)), ceil_mode=True, count_include_pad=False),
    Pool2D(2, 1, mode="avg"),
], ids=repr)
def test_gradcheck(layer):
    # distinct values far apart: finite differences never cross a max-pool tie
    x = np.random.default_rng(4).permutation(2 * 2 * 5 * 6).reshape(2, 2, 5, 6) * 0.1
    assert minicnn.gradcheck(layer, x.astype(np.float64))


def test_overlapping_max_windows_sum_their_gradients():
    x = np.zeros((1, 1, 1, 3))
    x[0, 0, 0, 1] = 1.0  # the max of both windows of size 2, stride 1
    layer = Pool2D((1, 2), 1)
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(np.array([[[[2.0, 3.0]]]]))[0, 0, 0], [0, 5, 0])


# --- layers -----------------------------------------------------------------------

@pytest.mark.parametrize("layer,expected", [
    (MaxPool2D(2), "MaxPool2D(kernel_size=2)"),
    (MaxPool2D(3, 2, 1, ceil_mode=True), "MaxPool2D(kernel_size=3, stride=2, padding=1, ceil_mode=True)"),
    (AvgPool2D(2, count_include_pad=False), "AvgPool2D(kernel_size=2, count_include_pad=False)"),
    (Pool2D((2, 3), mode="avg"), "Pool2D(kernel_size=(2, 3), mode='avg')"),
])
def test_repr_and_config_round_trip(layer, expected):
    assert repr(layer) == expected
    cfg = json.loads(json.dumps(layer.get_config()))
    rebuilt = LAYERS[type(layer).__name__].from_config(cfg)
    assert type(rebuilt) is type(layer) and repr(rebuilt) == expected
    assert rebuilt.get_config() == layer.get_config()
    x = np.random.default_rng(5).standard_normal((1, 2, 7, 8))
    np.testing.assert_array_equal(rebuilt.forward(x), layer.forward(x))


def test_shortcut_configs_hold_their_own_args():
    assert MaxPool2D(2).get_config() == {"kernel_size": 2, "stride": None, "padding": 0,
                                         "ceil_mode": False}
    assert set(AvgPool2D(2).get_config()) == {"kernel_size", "stride", "padding", "ceil_mode",
                                              "count_include_pad"}
    assert Pool2D(2).get_config()["mode"] == "max"


@pytest.mark.parametrize("layer", [MaxPool2D(3, 2, 1, ceil_mode=True),
                                   AvgPool2D((2, 3), (2, 1), ((1, 0), (1, 1))), MaxPool2D(2)])
@pytest.mark.parametrize("shape", [(3, 7, 8), (1, 5, 5), (2, 2, 3)])
def test_output_shape_receptive_and_macs(layer, shape):
    assert layer.output_shape(shape) == layer.forward(np.zeros((1,) + shape))[0].shape
    assert layer.macs(shape) == 0
    kernel, stride, dilation = layer.receptive_params()
    assert kernel == layer.kernel_size and stride == layer.stride and dilation == (1, 1)


def test_stride_defaults_to_kernel():
    assert MaxPool2D((2, 3)).stride == (2, 3)
    assert Pool2D(2, stride=1).stride == (1, 1)


@fast_kernels_only
@pytest.mark.parametrize("layer", [MaxPool2D(2, 1, 1), AvgPool2D(3, 2, 1, ceil_mode=True)])
def test_dtype_follows_input_and_non_contiguous(layer):
    base = np.random.default_rng(6).standard_normal((4, 3, 6, 7))
    x = base.transpose(1, 0, 3, 2)[:, ::2]  # (3, 2, 7, 6), not contiguous
    assert not x.flags.c_contiguous
    for dtype in (np.float32, np.float64):
        xd = x.astype(dtype)
        out = layer.forward(xd)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, layer.forward(np.ascontiguousarray(xd)))
        dx = layer.backward(np.ones(out.shape, np.float64))  # dout cast to the input dtype
        assert dx.dtype == dtype and dx.shape == x.shape


def test_threads_do_not_change_results(monkeypatch):
    always_parallel(monkeypatch)       # small shapes would run on one thread
    x = np.random.default_rng(7).standard_normal((3, 5, 9, 9)).astype(np.float32)
    old = minicnn.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            minicnn.set_num_threads(threads)
            out, argmax = F.max_pool2d(x, 3, 2, 1, ceil_mode=True)
            avg = F.avg_pool2d(x, 3, 2, 1, ceil_mode=True)
            out2, argmax2 = F.max_pool2d(x, 2, ceil_mode=True)     # the 2x2 loop, flat
            out3, code = F.max_pool2d_2x2(x)                        # MaxPool2D(2)'s own
            results.append((out, argmax, avg, F.avg_pool2d_backward(avg, x.shape, 3, 2, 1, True),
                            out2, argmax2, out3, code,
                            F.max_pool2d_2x2_backward(out3, code, x.shape)))
    finally:
        minicnn.set_num_threads(old)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_empty_batch():
    out, argmax = F.max_pool2d(np.zeros((0, 3, 4, 4), np.float32), 2)
    assert out.shape == argmax.shape == (0, 3, 2, 2)
    assert F.max_pool2d_backward(out, argmax, (0, 3, 4, 4)).shape == (0, 3, 4, 4)
    assert F.avg_pool2d_backward(out, (0, 3, 4, 4), 2).shape == (0, 3, 4, 4)


def test_backward_before_forward_raises():
    with pytest.raises(RuntimeError, match="backward called before forward"):
        MaxPool2D(2).backward(np.ones((1, 1, 1, 1)))
    layer = AvgPool2D(2)
    layer.forward(X4, training=False)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.ones((1, 1, 2, 2)))


# --- errors -----------------------------------------------------------------------

@pytest.mark.parametrize("make,exc,match", [
    (lambda: MaxPool2D(0), ValueError, r"MaxPool2D\(kernel_size=0\): kernel_size must be >= 1"),
    (lambda: MaxPool2D((2, -1)), ValueError, r"kernel_size must be >= 1 in each axis, got \(2, -1\)"),
    (lambda: AvgPool2D(2, stride=0), ValueError, r"AvgPool2D\(kernel_size=2\): stride must be >= 1"),
    (lambda: MaxPool2D(2.5), TypeError, r"kernel_size must be an int or a pair of ints"),
    (lambda: MaxPool2D(2, padding=-1), ValueError, r"padding must be >= 0 on every side"),
    (lambda: MaxPool2D(2, padding=2), ValueError,
     r"MaxPool2D\(kernel_size=2\): padding along H must be at most half the kernel size "
     r"\(2 // 2 = 1\) on each side, got \(2, 2\)"),
    (lambda: AvgPool2D((3, 2), padding=((1, 1), (0, 2))), ValueError,
     r"padding along W must be at most half .* got \(0, 2\)"),
    (lambda: MaxPool2D(3, padding="same"), ValueError, r"padding must be .*'valid', got 'same'"),
    (lambda: Pool2D(2, mode="min"), ValueError, r"mode must be one of \['max', 'avg'\], got mode='min'"),
    (lambda: Pool2D(2, ceil_mode=1), TypeError, r"ceil_mode must be True or False, got 1"),
    (lambda: Pool2D(2, count_include_pad=False), ValueError, r"count_include_pad=False needs mode='avg'"),
])
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("layer,x,exc,match", [
    (MaxPool2D(2), np.zeros((28, 28), np.float32), ValueError,
     r"^MaxPool2D\(kernel_size=2\): expected a 4-d input \(N, C, H, W\), got shape \(28, 28\)$"),
    (AvgPool2D(2), np.zeros((1, 1, 4, 4), np.uint8), TypeError,
     r"AvgPool2D\(kernel_size=2\): expected a float32 or float64 input, got uint8"),
    (GlobalAvgPool2D(), np.zeros((1, 4, 4)), ValueError,
     r"GlobalAvgPool2D\(\): expected a 4-d input \(N, C, H, W\), got shape \(1, 4, 4\)"),
    (GlobalAvgPool2D(), np.zeros((1, 2, 0, 4)), ValueError, r"GlobalAvgPool2D\(\): expected an input with H >= 1"),
    (MaxPool2D(5), np.zeros((1, 1, 4, 8)), ValueError,
     r"MaxPool2D\(kernel_size=5\): kernel size 5 along H does not fit the padded input of size 4"),
    (MaxPool2D(3, padding=1), np.zeros((1, 1, 0, 5)), ValueError, r"expected an input with H >= 1"),
])
def test_bad_inputs(layer, x, exc, match):
    with pytest.raises(exc, match=match):
        layer.forward(x)


def test_bad_functional_calls():
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(TypeError, match=r"^max_pool2d: expected a float32 or float64 input, got int64"):
        F.max_pool2d(np.zeros((1, 1, 4, 4), np.int64), 2)
    with pytest.raises(ValueError, match=r"^avg_pool2d: padding along H must be at most half"):
        F.avg_pool2d(x, 2, padding=(2, 0))
    out, argmax = F.max_pool2d(x, 2)
    with pytest.raises(ValueError, match=r"max_pool2d_backward: dout \(1, 1, 3, 3\) and argmax"):
        F.max_pool2d_backward(np.zeros((1, 1, 3, 3), np.float32), argmax, x.shape)
    with pytest.raises(ValueError, match=r"argmax values must lie in \[0, H\*W\) = \[0, 16\)"):
        F.max_pool2d_backward(out, argmax + 16, x.shape)
    with pytest.raises(ValueError, match=r"avg_pool2d_backward: dout must be \(1, 1, 2, 2\), got"):
        F.avg_pool2d_backward(np.zeros((1, 1, 3, 3)), x.shape, 2)
    with pytest.raises(TypeError, match=r"avg_pool2d_backward: expected a float32 or float64 dout"):
        F.avg_pool2d_backward(np.zeros((1, 1, 2, 2), np.int32), x.shape, 2)
    with pytest.raises(ValueError, match=r"^MaxPool2D\(kernel_size=2\): input_shape must be \(C, H, W\), got \(4, 4\)"):
        MaxPool2D(2).output_shape((4, 4))
    with pytest.raises(ValueError, match=r"MaxPool2D\(kernel_size=3\): kernel size 3"):
        MaxPool2D(3).output_shape((1, 2, 9))


# --- PyTorch, when it happens to be installed -----------------------------------------

@pytest.mark.parametrize("k,s,p,ceil,inc", [
    (2, None, 0, False, True), (3, 2, 1, True, True), (3, 2, 1, True, False),
    ((3, 2), (2, 1), (1, 1), True, False), (3, 3, 1, True, True), (2, 1, 1, False, False),
])
def test_matches_torch(k, s, p, ceil, inc):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(8).standard_normal((2, 3, 7, 9))
    t = torch.from_numpy(x)
    out, _ = F.max_pool2d(x, k, s, p, ceil)
    ref = torch.nn.functional.max_pool2d(t, k, s if s is not None else k, p, ceil_mode=ceil)
    np.testing.assert_array_equal(out, ref.numpy())
    out = F.avg_pool2d(x, k, s, p, ceil, inc)
    ref = torch.nn.functional.avg_pool2d(t, k, s if s is not None else k, p, ceil_mode=ceil,
                                         count_include_pad=inc)
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hw", [(2, 2), (7, 9), (14, 14), (3, 2)])
def test_avg_pool_2x2_fast_path_is_the_general_sum(dtype, hw):
    """AvgPool2D(2)'s kernel takes a path without per-window clipping: the same four additions
    in double in the same order, over 4 (forward), and each gradient over 4 added once
    (backward), so the same bits as the definition, odd edges, NaN, inf and -0.0 included."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 2) + hw).astype(dtype)
    if x.size > 8:
        x.flat[[0, 5, 8]] = [np.nan, np.inf, -0.0]
    out = F.avg_pool2d(x, 2)
    oh, ow = hw[0] // 2, hw[1] // 2
    c = x[:, :, :2 * oh, :2 * ow].astype(np.float64)
    want = ((c[:, :, 0::2, 0::2] + c[:, :, 0::2, 1::2]) + c[:, :, 1::2, 0::2]) + c[:, :, 1::2, 1::2]
    np.testing.assert_array_equal(out, (want / 4).astype(dtype))
    dout = rng.standard_normal(out.shape).astype(dtype)
    if dout.size:
        dout.flat[0] = -0.0
    dx = F.avg_pool2d_backward(dout, x.shape, 2)
    expect = np.zeros(x.shape, dtype)
    g = dout / dtype(4)
    for a in (0, 1):
        for b in (0, 1):
            expect[:, :, a:2 * oh:2, b:2 * ow:2] += g
    np.testing.assert_array_equal(dx, expect)
    assert not np.signbit(dx).any() or np.signbit(expect).any()
    # the general kernel (a window that needs clipping elsewhere) still matches the reference
    padded = F.avg_pool2d(x, 2, padding=1)
    np.testing.assert_allclose(padded, R.avg_pool2d(x.astype(np.float64), 2, padding=1),
                               rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("hw", [(3, 3), (4, 7), (9, 8), (28, 28)])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool_3x3_inside_windows_path(stride, padding, hw, ceil_mode):
    """3x3 windows that lie inside the plane go through an unrolled kernel, the others
    through the general one: outputs and argmax equal the reference's, with ties (small
    integers), NaN and -inf in the data."""
    rng = np.random.default_rng(hw[0] * 31 + hw[1] + stride)
    for dtype in (np.float32, np.float64):
        x = rng.integers(-3, 4, (2, 3) + hw).astype(dtype)
        x.flat[rng.integers(0, x.size, 3)] = np.nan
        x.flat[rng.integers(0, x.size, 2)] = -np.inf
        out, argmax = F.max_pool2d(x, 3, stride, padding, ceil_mode)
        ref_out, ref_argmax = R.max_pool2d(x, 3, stride, padding, ceil_mode)
        np.testing.assert_array_equal(out, ref_out)
        np.testing.assert_array_equal(argmax, ref_argmax)


def test_max_pool_2x2_backward_with_no_window_is_all_zero():
    """An input of one column has no 2x2 window: the gradient is zero everywhere, and the
    kernel (which took the address of a row of an empty dout; a bounds-checked build
    raised) is not called. Found by the fuzz of the functional entry points."""
    for shape in [(1, 1, 2, 1), (2, 3, 1, 5)]:
        n, c, h, w = shape
        empty = np.zeros((n, c, h // 2, w // 2), np.float32)
        dx = F.max_pool2d_2x2_backward(empty, empty.astype(np.int32), shape)
        assert dx.shape == shape and not dx.any()
