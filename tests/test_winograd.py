"""Winograd F(2x2, 3x3) (minicnn/winograd.py, path 'winograd'): the identity it rests on,
exactly in float64; forward, weight, bias and input gradients against the float64 direct
sum on odd sizes, channel counts off the register tile, padding modes, the fused ReLU and a
flipped kernel; the same bits on any thread count; the redo on the direct kernels when a
value is not finite; the rule that picks it; its argument checks."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minicnn
from minicnn import functional as F
from minicnn import gemm, geometry
from minicnn import reference as R
from minicnn.functional import conv_winograd as W
from minicnn.functional import thresholds

from conftest import fast_kernels_only, always_parallel, assert_same_arrays, on_thread_counts

# batch, in, out, (h, w), padding ((top, bottom), (left, right)), mode
CASES = {
    "convnet-conv2": (8, 32, 64, (26, 26), ((0, 0), (0, 0)), "zeros"),
    "odd-output": (9, 33, 40, (9, 7), ((0, 0), (0, 0)), "zeros"),
    "off-the-tile": (8, 35, 37, (8, 8), ((1, 1), (1, 1)), "zeros"),
    # images whose wide rows are narrower than a register tile: the rule sends them to the
    # batch path (wide() puts them on Winograd, to test it on them)
    "one-tile": (8, 32, 32, (4, 4), ((0, 0), (0, 0)), "zeros"),
    "odd-one-row": (8, 32, 32, (3, 7), ((0, 0), (0, 0)), "zeros"),
    "reflect-uneven": (8, 32, 33, (11, 6), ((1, 0), (2, 1)), "reflect"),
    "many-blocks": (8, 40, 96, (30, 31), ((1, 1), (1, 1)), "zeros"),
}


def wide(monkeypatch):
    """Winograd (and the direct kernels) for images of any width."""
    monkeypatch.setattr(thresholds, "DIRECT_WIDE_TILES", 0)


def data(case, seed=0):
    n, cin, cout, hw, _, _ = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin) + hw).astype(np.float32)
    w = (rng.standard_normal((cout, cin, 3, 3)) / np.sqrt(cin * 9)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    return x, w, b


def poison_scratch():
    """NaN into the per-thread scratch the kernels reuse (transformed planes, weight
    panels): a read of scratch the kernel did not write fails the comparison."""
    for name in ("wino", "wino_w", "wino_wr"):
        flat = getattr(gemm._local, name, None)
        if flat is not None:
            flat.fill(np.nan)


def conv(x, w, b, case, relu=True, flip=False, need_dx=True, dout=None):
    """(out, dx, dw, db, path) of one forward and backward in x's dtype, on poisoned scratch."""
    _, _, _, _, padding, mode = case
    poison_scratch()
    out, cache = F.conv2d_forward(x, w, b, padding=padding, padding_mode=mode,
                                  flip_kernel=flip, activation="relu" if relu else None)
    if dout is None:
        dout = np.random.default_rng(1).standard_normal(out.shape)
    return (out, *F.conv2d_backward(dout.astype(x.dtype), cache, need_dx=need_dx),
            cache["path"])


def assert_close(ours, ref):
    if ref is None:
        assert ours is None
        return
    scale = max(1.0, float(np.abs(ref).max(initial=0)))
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=2e-6 * scale)


def test_identity_in_float64():
    """A^T [(G g G^T) * (B^T d B)] A is the 2 x 2 cross-correlation of d with g, and the
    backward forms are its adjoints (float64, to rounding); with integers, exactly."""
    rng = np.random.default_rng(0)
    d, g, dy = rng.standard_normal((4, 4)), rng.standard_normal((3, 3)), rng.standard_normal((2, 2))
    corr = np.array([[np.sum(d[i:i + 3, j:j + 3] * g) for j in range(2)] for i in range(2)])
    u, v = W.G @ g @ W.G.T, W.BT @ d @ W.BT.T
    np.testing.assert_allclose(W.AT @ (u * v) @ W.AT.T, corr, rtol=1e-12, atol=1e-12)
    # dg = G^T [(A dy A^T) * V] G and dd = B [U * (A dy A^T)] B^T
    dg = np.array([[np.sum(d[a:a + 2, c:c + 2] * dy) for c in range(3)] for a in range(3)])
    dd = np.zeros((4, 4))
    for i in range(2):
        for j in range(2):
            dd[i:i + 3, j:j + 3] += dy[i, j] * g
    ydy = W.AT.T @ dy @ W.AT
    np.testing.assert_allclose(W.G.T @ (ydy * v) @ W.G, dg, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(W.BT.T @ (u * ydy) @ W.BT, dd, rtol=1e-12, atol=1e-12)
    d = np.arange(16.0).reshape(4, 4)          # the worked example: a 3x3 box filter
    y = W.AT @ ((W.G @ np.ones((3, 3)) @ W.G.T) * (W.BT @ d @ W.BT.T)) @ W.AT.T
    np.testing.assert_array_equal(y, [[45, 54], [81, 90]])


def test_against_the_loop_reference(kernel, monkeypatch):
    """The forward pass against the slow loop reference (float64) on a small case."""
    wide(monkeypatch)
    case = (8, 32, 32, (5, 6), ((0, 0), (0, 0)), "zeros")
    x, w, b = data(case)
    out, cache = F.conv2d_forward(x, w, b)
    assert cache["path"] == "winograd"
    assert_close(out, R.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64)))


@pytest.mark.parametrize("need_dx", [True, False])
@pytest.mark.parametrize("relu,bias,flip", [(True, True, False), (False, True, False),
                                           (False, False, True)])
@pytest.mark.parametrize("name", CASES)
def test_winograd_matches_float64(kernel, monkeypatch, name, relu, bias, flip, need_dx):
    wide(monkeypatch)
    case = CASES[name]
    x, w, b = data(case)
    b = b if bias else None
    *ours, path = conv(x, w, b, case, relu, flip, need_dx)
    assert path == "winograd"
    *ref, ref_path = conv(x.astype(np.float64), w.astype(np.float64),
                          None if b is None else b.astype(np.float64), case, relu, flip,
                          need_dx)
    assert ref_path != "winograd"
    for a, r in zip(ours, ref):
        assert_close(a, r)


@pytest.mark.parametrize("name", ["odd-output", "many-blocks"])
def test_winograd_same_bits_for_any_thread_count(kernel, monkeypatch, name):
    always_parallel(monkeypatch)
    case = CASES[name]
    x, w, b = data(case)
    runs = on_thread_counts(lambda: conv(x, w, b, case))
    assert runs[0][-1] == "winograd"
    assert_same_arrays(runs)


def direct_run(monkeypatch, *args, **kwargs):
    """conv() with Winograd switched off: the direct kernels' numbers."""
    with monkeypatch.context() as m:
        m.setattr(W, "ENABLED", False)
        return conv(*args, **kwargs)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_non_finite_input_is_redone_directly(kernel, monkeypatch, bad):
    """An infinite input pixel can turn NaN in the transforms where the direct sum keeps
    the infinity: the forward pass is redone on the direct kernels (and so is backward),
    whose numbers come out exactly."""
    case = CASES["odd-output"]
    x, w, b = data(case)
    x[2, 5, 4, 3] = bad
    *ours, path = conv(x, w, b, case, relu=False)
    *ref, ref_path = direct_run(monkeypatch, x, w, b, case, relu=False)
    assert path == ref_path == "direct"
    for a, r in zip(ours, ref):
        np.testing.assert_array_equal(a, r)


@pytest.mark.parametrize("relu", [True, False])
def test_non_finite_gradient_is_redone_directly(kernel, monkeypatch, relu):
    """An inf or NaN in dout: the backward pass is redone on the direct kernels (the same
    numbers as a direct forward and backward, the forward's own rounding aside)."""
    case = CASES["convnet-conv2"]
    x, w, b = data(case)
    out, cache = F.conv2d_forward(x, w, b, activation="relu" if relu else None)
    assert cache["path"] == "winograd"
    dout = np.random.default_rng(2).standard_normal(out.shape).astype(np.float32)
    on = np.argwhere(out > 0)[0]
    dout[tuple(on)] = np.inf
    dout[1, 2, 3, 4] = np.nan
    ours = F.conv2d_backward(dout, cache)
    cache["path"] = "direct"                   # the same cache through the direct kernels
    ref = F.conv2d_backward(dout, cache)
    for a, r in zip(ours, ref):
        np.testing.assert_array_equal(a, r)


def test_bias_gradient_in_double(kernel):
    """The bias gradient of large planes with a common offset (its sums are long): as close
    to float64 as the direct path's (a float running sum per plane lost ~1e-5)."""
    case = (8, 32, 32, (66, 66), ((0, 0), (0, 0)), "zeros")
    x, w, b = data(case)
    dout = 1 + np.random.default_rng(4).random((8, 32, 64, 64))
    *ours, path = conv(x, w, b, case, relu=False, dout=dout)
    assert path == "winograd"
    ref = dout.sum(axis=(0, 2, 3))
    np.testing.assert_allclose(ours[3], ref, rtol=1e-6)


def test_input_gradient_writes_all_of_a_reused_buffer(kernel):
    """With padding, the padded input's gradient is the layer's workspace temporary, not
    zeroed before the kernel writes it: NaN left there must not survive."""
    case = CASES["off-the-tile"]
    x, w, b = data(case)
    ws = {}
    out, cache = F.conv2d_forward(x, w, b, padding=case[4], workspace=ws, activation="relu")
    assert cache["path"] == "winograd"
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    first = F.conv2d_backward(dout, cache)
    ws["dxp"].fill(np.nan)
    again = F.conv2d_backward(dout, cache)
    assert np.isfinite(again[0]).all()
    for a, r in zip(again, first):
        np.testing.assert_array_equal(a, r)


def test_large_finite_values_stay_finite(kernel):
    """Values whose transforms stay in range give finite results close to float64."""
    case = CASES["off-the-tile"]
    x, w, b = data(case)
    x *= 1e30
    *ours, path = conv(x, w, b, case, relu=False)
    assert path == "winograd"
    *ref, _ = conv(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), case,
                   relu=False)
    for a, r in zip(ours, ref):
        assert np.isfinite(a).all()
        assert_close(a, r)


def path_of(shape_x, shape_w, dtype=np.float32, **kwargs):
    x = np.zeros(shape_x, dtype)
    w = np.zeros(shape_w, dtype)
    return F.conv2d_forward(x, w, **kwargs)[1]["path"]


def test_the_rule(kernel, monkeypatch):
    """Winograd for float32 3x3 stride-1 convolutions of at least MIN_CHANNELS channels each
    way, batches of thresholds.BATCH_MIN, no dilation or groups, where the direct kernels
    would run (not on images whose wide rows are narrower than a register tile); off with
    ENABLED."""
    assert path_of((8, 32, 10, 10), (32, 32, 3, 3)) == "winograd"
    assert path_of((8, 32, 10, 10), (32, 32, 3, 3), padding=((1, 1), (1, 1))) == "winograd"
    assert path_of((8, 31, 10, 10), (32, 31, 3, 3)) != "winograd"
    assert path_of((8, 32, 10, 10), (31, 32, 3, 3)) != "winograd"
    assert path_of((7, 32, 10, 10), (32, 32, 3, 3)) != "winograd"
    assert path_of((8, 32, 10, 10), (32, 32, 3, 3), np.float64) != "winograd"
    assert path_of((8, 32, 10, 10), (32, 32, 3, 3), stride=(2, 2)) != "winograd"
    assert path_of((8, 32, 13, 13), (32, 32, 3, 3), dilation=(2, 2)) != "winograd"
    assert path_of((8, 32, 10, 10), (32, 16, 3, 3), groups=2) != "winograd"
    assert path_of((8, 32, 10, 10), (32, 32, 3, 2)) != "winograd"
    assert path_of((8, 32, 6, 6), (32, 32, 3, 3)) == "gemm"      # a 4 x 4 output
    monkeypatch.setattr(W, "ENABLED", False)
    assert path_of((8, 32, 10, 10), (32, 32, 3, 3)) == "direct"


@fast_kernels_only
def test_conv2d_layer_trains_on_it(kernel):
    """A Conv2D layer in float32 with Winograd against its float64 copy: output, input and
    parameter gradients."""
    rng = np.random.default_rng(3)
    layer = minicnn.Conv2D(32, 48, 3, padding="same", activation="relu")
    x = rng.standard_normal((8, 32, 10, 10)).astype(np.float32)
    out = layer.forward(x, training=True)
    assert layer.cache["path"] == "winograd"
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dx = layer.backward(dout)
    ref = minicnn.Conv2D(32, 48, 3, padding="same", activation="relu", dtype=np.float64)
    for k in layer.params:
        ref.params[k] = layer.params[k].astype(np.float64)
    out64 = ref.forward(x.astype(np.float64), training=True)
    dx64 = ref.backward(dout.astype(np.float64))
    assert_close(out, out64)
    assert_close(dx, dx64)
    for k in layer.grads:
        assert_close(layer.grads[k], ref.grads[k])


def test_argument_checks(kernel):
    k = gemm.float32_kernel()
    x = np.zeros((8, 32, 6, 6), np.float32)
    w = np.zeros((16, 32, 3, 3), np.float32)
    b = np.zeros(16, np.float32)
    out = np.zeros((8, 16, 4, 4), np.float32)
    assert W.forward(k, w, x, b, out, False, 2)
    with pytest.raises(ValueError, match="conv_winograd.forward: expected a float32 weight"):
        W.forward(k, w.astype(np.float64), x, b, out, False, 2)
    with pytest.raises(ValueError, match="conv_winograd.forward: expected a float32 weight"):
        W.forward(k, w[:, :, :2], x, b, out, False, 2)
    with pytest.raises(ValueError, match="conv_winograd.forward: expected a float32 output"):
        W.forward(k, w, x, b, out[:, :, :3], False, 2)
    with pytest.raises(ValueError, match="conv_winograd.forward: expected a float32 output"):
        W.forward(k, w, x, b[:3], out, False, 2)
    with pytest.raises(ValueError, match="C-contiguous float32"):
        W.forward(k, w, x[:, :, :, ::-1], b, out, False, 2)
    with pytest.raises(ValueError, match="does not fit"):
        W.forward(k, w, np.zeros((8, 32, 2, 6), np.float32), b, out, False, 2)
    with pytest.raises(ValueError, match="conv_winograd.forward: num_threads"):
        W.forward(k, w, x, b, out, False, 0)
    with pytest.raises(ValueError, match="with O and C at least 1"):
        W.forward(k, w[:0], x, b[:0], out[:, :0], False, 2)
    with pytest.raises(ValueError, match="with O and C at least 1"):
        W.forward(k, w[:, :0], x[:, :0], b, out, False, 2)
    with pytest.raises(ValueError, match="weight as a NumPy array"):
        W.forward(k, w.tolist(), x, b, out, False, 2)
    with pytest.raises(ValueError, match="expected a float32 output"):
        W.forward(k, w, x, None, out, False, 2)
    dout = np.zeros((8, 16, 4, 4), np.float32)
    with pytest.raises(ValueError, match="with O and C at least 1"):
        W.backward(k, dout[:, :0], None, x, w[:0], None, 2)
    with pytest.raises(ValueError, match="conv_winograd.backward: dout must be"):
        W.backward(k, dout[:, :8], None, x, w, None, 2)
    with pytest.raises(ValueError, match="conv_winograd.backward: gate must be"):
        W.backward(k, dout, dout[:1], x, w, None, 2)
    for dxp in (np.zeros((8, 32, 6, 5), np.float32), np.zeros(x.shape),
                np.zeros(x.shape[::-1], np.float32).T, x.tolist()):
        with pytest.raises(ValueError, match="conv_winograd.backward: dxp must be"):
            W.backward(k, dout, None, x, w, dxp, 2)
    dw, db, finite = W.backward(k, dout, None, x, w, None, 2)
    assert finite and not dw.any() and not db.any()


def test_environment_switch():
    assert W._enabled(None) and W._enabled("") and W._enabled(" On ") and W._enabled("1")
    for off in ("0", "false", "No", "OFF"):
        assert not W._enabled(off)
    with pytest.warns(RuntimeWarning, match="MINICNN_WINOGRAD must be 0 or 1"):
        assert W._enabled("of")
    from minicnn.info import config
    assert config()["winograd"] is W.ENABLED


@settings(max_examples=40, deadline=None)
@given(n=st.integers(8, 10), cin=st.integers(32, 56), cout=st.integers(32, 70),
       h=st.integers(3, 17), w=st.integers(6, 17),
       padding=st.one_of(st.integers(0, 1), st.sampled_from(["same", "valid"]),
                         st.tuples(st.tuples(st.integers(0, 2), st.integers(0, 2)),
                                   st.tuples(st.integers(0, 2), st.integers(0, 2)))),
       mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]),
       relu=st.booleans(), bias=st.booleans(), flip=st.booleans(), need_dx=st.booleans(),
       seed=st.integers(0, 2**16))
def test_fuzz_against_float64(n, cin, cout, h, w, padding, mode, relu, bias, flip, need_dx,
                              seed):
    """Random shapes that take the Winograd path (others are skipped): forward and the three
    gradients against the same call in float64 (another path)."""
    padding = geometry.normalize_padding(padding, "test")
    if isinstance(padding, str):
        padding = geometry.resolve_padding(padding, (h, w), (3, 3), (1, 1), (1, 1))
    (top, bottom), (left, right) = padding
    assume(h + top + bottom >= 3 and w + left + right >= 3)
    assume(mode == "zeros" or max(top, bottom) < h and max(left, right) < w)
    case = (n, cin, cout, (h, w), padding, mode)
    x, wt, b = data(case, seed)
    b = b if bias else None
    try:
        *ours, path = conv(x, wt, b, case, relu, flip, need_dx)
    except ValueError:
        assume(False)             # a padding the mode refuses for this size
    assume(path == "winograd")
    *ref, _ = conv(x.astype(np.float64), wt.astype(np.float64),
                   None if b is None else b.astype(np.float64), case, relu, flip, need_dx)
    if relu:    # an output within rounding of zero may fall on the other side of the ReLU
        gate = (ours[0] > 0) == (ref[0] > 0)
        assume(gate.all())
    for a, r in zip(ours, ref):
        assert_close(a, r)
