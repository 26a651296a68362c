"""The direct stride-1 convolution (direct_conv.pxi, path 'direct') against
minicnn.reference in float64: the edges of its tiles, chunked weight gradients, the input
gradient made from the weight gradient's layout (and where it is not), the exact redo for
non-finite inputs, the same bits on any thread count, the rule that picks it, and its
shape checks."""
import functools

import numpy as np
import pytest

from minicnn import functional as F
from minicnn import gemm
from minicnn.functional import conv_direct, conv_paths, thresholds
from minicnn import reference as R

from conftest import always_parallel, assert_same_arrays, on_thread_counts, set_rule

# batch, in, out, (kh, kw), (h, w), padding ((top, bottom), (left, right)), dilation, mode
CASES = {
    "lenet5-conv1": (8, 1, 6, (5, 5), (28, 28), ((2, 2), (2, 2)), (1, 1), "zeros"),
    "lenet5-conv2": (9, 6, 16, (5, 5), (14, 14), ((0, 0), (0, 0)), (1, 1), "zeros"),
    # a wide row narrower than one tile: the rule sends it to the batch path (narrow() puts
    # it on the direct kernels, to test them for direct calls)
    "narrow-image": (8, 3, 5, (3, 3), (5, 5), ((0, 0), (0, 0)), (1, 1), "zeros"),
    "one-tile-row": (8, 2, 8, (3, 3), (3, 34), ((0, 0), (0, 0)), (1, 1), "zeros"),
    "odd-everything": (17, 2, 9, (3, 2), (9, 13), ((1, 2), (0, 3)), (2, 1), "zeros"),
    "reflect-2x2": (8, 4, 8, (2, 2), (10, 9), ((1, 1), (1, 1)), (1, 1), "reflect"),
    "convnet-conv1": (8, 1, 32, (3, 3), (28, 28), ((0, 0), (0, 0)), (1, 1), "zeros"),
    "many-taps": (8, 20, 12, (4, 4), (8, 8), ((1, 2), (2, 1)), (1, 1), "zeros"),
    # wide rows of one tile plus one column (AVX-512's NR = 32; AVX2's 24 + 9); 27 taps:
    # a last panel of 3 rows
    "tile-plus-one": (8, 3, 8, (3, 3), (3, 35), ((0, 0), (0, 0)), (1, 1), "zeros"),
    # a last panel of the short tile's rows (6 under AVX-512, 2 under AVX2), its last tile
    # overlapping the one before
    "short-panel": (8, 2, 6, (3, 3), (6, 70), ((0, 0), (0, 0)), (1, 1), "zeros"),
}


def data(case, seed=0):
    n, cin, cout, (kh, kw), hw, _, _, _ = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin) + hw).astype(np.float32)
    w = (rng.standard_normal((cout, cin, kh, kw)) / np.sqrt(cin * kh * kw)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    return x, w, b


def narrow(monkeypatch, name):
    """The direct kernels for the narrow case too (the rule keeps it off them)."""
    if name == "narrow-image":
        monkeypatch.setattr(thresholds, "DIRECT_WIDE_TILES", 0)


def poison_scratch():
    """NaN into every per-thread scratch buffer the kernels reuse, so that a kernel reading
    scratch it did not write fails the comparison instead of passing by luck."""
    for name in ("wide", "direct", "partial", "cbuf", "work"):
        flat = getattr(gemm._local, name, None)
        if flat is not None:
            flat.fill(np.nan)


def conv(x, w, b, case, relu=True, flip=False, need_dx=True, dout_seed=1):
    """(out, dx, dw, db, path) of one forward and backward in x's dtype, on poisoned scratch."""
    _, _, _, _, _, padding, dilation, mode = case
    poison_scratch()
    out, cache = F.conv2d_forward(x, w, b, padding=padding, dilation=dilation,
                                  padding_mode=mode, flip_kernel=flip,
                                  activation="relu" if relu else None)
    dout = np.random.default_rng(dout_seed).standard_normal(out.shape).astype(x.dtype)
    return (out, *F.conv2d_backward(dout, cache, need_dx=need_dx), cache["path"])


def reference_conv(x, w, b, case, relu=True, flip=False, need_dx=True, dout_seed=1):
    """(out, dx, dw, db) of minicnn.reference in float64 for conv()'s arguments, with the
    same dout as conv() draws for float32 (so both see the same values)."""
    _, _, _, _, _, padding, dilation, mode = case
    x, w = x.astype(np.float64), w.astype(np.float64)
    out, cache = R.conv2d_forward(x, w, None if b is None else b.astype(np.float64),
                                  padding=padding, dilation=dilation, padding_mode=mode,
                                  flip_kernel=flip, activation="relu" if relu else None)
    dout = np.random.default_rng(dout_seed).standard_normal(out.shape).astype(np.float32)
    return (out, *R.conv2d_backward(dout.astype(np.float64), cache, need_dx=need_dx))


@functools.lru_cache(maxsize=None)
def reference(case, relu=True, flip=False, bias=True, need_dx=True):
    """reference_conv of data(case), computed once for all the GEMM kernels."""
    x, w, b = data(case)
    return reference_conv(x, w, b if bias else None, case, relu, flip, need_dx)


def assert_close(ours, ref):
    if ref is None:
        assert ours is None
        return
    scale = max(1.0, float(np.nanmax(np.abs(ref[np.isfinite(ref)]), initial=0)))
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("need_dx", [True, False])
@pytest.mark.parametrize("relu,bias,flip", [(True, True, False), (False, True, False),
                                           (False, False, True)])
@pytest.mark.parametrize("name", CASES)
def test_direct_matches_float64(kernel, monkeypatch, name, relu, bias, flip, need_dx):
    narrow(monkeypatch, name)
    case = CASES[name]
    x, w, b = data(case)
    b = b if bias else None
    *ours, path = conv(x, w, b, case, relu, flip, need_dx)
    assert path == "direct"
    for a, r in zip(ours, reference(case, relu, flip, bias, need_dx)):
        assert_close(a, r)


@pytest.mark.parametrize("chunk", [1, 2])
@pytest.mark.parametrize("name", ["lenet5-conv2", "odd-everything"])
def test_direct_weight_gradient_in_chunks(kernel, monkeypatch, name, chunk):
    """Runs of five images (a batch of 40) laid out a chunk at a time (large images) give
    the same gradient, up to rounding, as each run at once."""
    case = (40,) + CASES[name][1:]
    x, w, b = data(case)
    whole = conv(x, w, b, case)
    xp_shape = F.pad(x[:1], case[5], case[7]).shape
    floats = conv_direct.image_floats(gemm.float32_kernel(), w.shape[0], xp_shape)
    monkeypatch.setattr(thresholds, "DIRECT_CHUNK", floats * chunk)
    chunked = conv(x, w, b, case)
    assert chunked[-1] == "direct"
    for a, r in zip(chunked[:-1], whole[:-1]):
        assert_close(a, r)


@pytest.mark.parametrize("name", ["lenet5-conv2", "odd-everything", "narrow-image",
                                  "short-panel"])
def test_direct_same_bits_for_any_thread_count(kernel, monkeypatch, name):
    always_parallel(monkeypatch)
    narrow(monkeypatch, name)
    case = CASES[name]
    x, w, b = data(case)
    runs = on_thread_counts(lambda: conv(x, w, b, case))
    assert_same_arrays(runs)


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_direct_non_finite_input_taints_only_its_own_taps(kernel, bad):
    """The kernel multiplies the dropped columns' zero gradients by real pixels; an inf or
    NaN there must not reach taps that never read it (the exact redo from columns)."""
    case = (8, 2, 4, (3, 3), (8, 8), ((0, 0), (0, 0)), (1, 1), "zeros")
    x, w, b = data(case)
    x[3, 1, 2, 7] = bad        # the last column: read by taps kj = 2 alone
    *ours, path = conv(x, w, b, case, relu=False)
    assert path == "direct"
    ref = reference_conv(x, w, b, case, relu=False)
    dw, dw_ref = ours[2], ref[2]
    assert np.isfinite(dw[:, :, :, :2]).all()
    np.testing.assert_array_equal(np.isfinite(dw), np.isfinite(dw_ref))
    for a, r in zip(ours, ref):
        finite = np.isfinite(r)
        np.testing.assert_array_equal(np.isfinite(a), finite)
        assert_close(a[finite], r[finite])


@pytest.mark.parametrize("relu", [True, False])
def test_direct_gradient_with_nan_and_inf_in_dout(kernel, relu):
    """A NaN or inf in dout: with the fused ReLU it is dropped where the output is not
    positive and passed on where it is, as the float64 reference with the same gate does;
    dw and db then match it in which entries are finite and in the finite values."""
    case = CASES["lenet5-conv2"]
    x, w, b = data(case)
    out, cache = F.conv2d_forward(x, w, b, activation="relu" if relu else None)
    assert cache["path"] == "direct"
    dout = np.random.default_rng(2).standard_normal(out.shape).astype(np.float32)
    off = np.argwhere(out <= 0)[0] if relu else np.array([1, 2, 3, 4])
    on = np.argwhere(out > 0)[0]
    dout[tuple(off)] = np.nan                 # gated away with the ReLU
    dout[tuple(on)] = np.inf                  # always reaches dw and db
    ours = F.conv2d_backward(dout, cache)
    gate = (out > 0) if relu else np.ones(out.shape, bool)
    d64 = np.where(gate, dout.astype(np.float64), 0.0)
    _, cache64 = R.conv2d_forward(x.astype(np.float64), w.astype(np.float64),
                                  b.astype(np.float64))
    ref = R.conv2d_backward(d64, cache64)
    for a, r in zip(ours, ref):
        finite = np.isfinite(r)
        np.testing.assert_array_equal(np.isfinite(a), finite)
        assert_close(a[finite], r[finite])


def dx_route(monkeypatch):
    """Record, per call of conv_direct.backward, whether it made the input gradient."""
    fused = []
    real = conv_direct.backward

    def spy(kern, *args):
        fused.append(len(args) > 7 and args[7] is not None)
        return real(kern, *args)

    monkeypatch.setattr(conv_direct, "backward", spy)
    return fused


@pytest.mark.parametrize("name,fused", [("lenet5-conv2", True), ("tile-plus-one", True),
                                        ("one-tile-row", True), ("odd-everything", True),
                                        ("narrow-image", False)])
def test_direct_input_gradient_from_the_weight_gradients_layout(kernel, monkeypatch, name,
                                                                fused):
    """The input gradient comes from the weight gradient's pass wherever a wide row holds
    a register tile (narrower images keep the GEMM and col2im), and matches float64."""
    narrow(monkeypatch, name)
    route = dx_route(monkeypatch)
    case = CASES[name]
    x, w, b = data(case)
    *ours, path = conv(x, w, b, case)
    assert path == "direct" and route == [fused]
    for a, r in zip(ours, reference(case)):
        assert_close(a, r)


def test_direct_input_gradient_writes_all_of_a_reused_buffer(kernel, monkeypatch):
    """The padded input's gradient lives in the layer's workspace between steps and is
    not zeroed before the kernel writes it: NaN left there must not survive."""
    route = dx_route(monkeypatch)
    case = CASES["odd-everything"]
    x, w, b = data(case)
    ws = {}
    out, cache = F.conv2d_forward(x, w, b, padding=case[5], dilation=case[6], workspace=ws,
                                  activation="relu")
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    first = F.conv2d_backward(dout, cache)
    ws["dxp"].fill(np.nan)
    again = F.conv2d_backward(dout, cache)
    assert route == [True, True]
    for a, r in zip(again, first):
        np.testing.assert_array_equal(a, r)


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_direct_non_finite_weight_takes_the_gemm_input_gradient(kernel, monkeypatch, bad):
    """A weight with an inf or NaN would turn the dropped columns' zeros into NaN in
    pixels they do not touch: the input gradient then comes from the GEMM and col2im,
    which give the float64 reference's pattern of non-finite pixels."""
    route = dx_route(monkeypatch)
    case = CASES["lenet5-conv2"]
    x, w, b = data(case)
    out, cache = F.conv2d_forward(x, w, b)
    cache["w"] = w.copy()
    cache["w"][3, 2, 0, 4] = bad             # as if the weight had changed since forward
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    dx = F.conv2d_backward(dout, cache)[0]
    assert route == [False]
    _, cache64 = R.conv2d_forward(x.astype(np.float64), w.astype(np.float64),
                                  b.astype(np.float64))
    cache64["w"] = cache["w"].astype(np.float64)
    ref = R.conv2d_backward(dout.astype(np.float64), cache64)[0]
    finite = np.isfinite(ref)
    assert not finite.all() and finite.any()
    np.testing.assert_array_equal(np.isfinite(dx), finite)
    assert_close(dx[finite], ref[finite])


def direct_kernel(dtype, groups, batch, w_shape, padded_shape, out_w, out_h=None):
    """The GEMM kernel module when conv_paths.choose runs this stride-1 convolution on the
    direct kernels (directly or by Winograd), else None; out_h None: the full padded height
    (a wide row long enough for any register tile)."""
    out_h = padded_shape[2] if out_h is None else out_h
    path, name, _ = conv_paths.choose(dtype, batch, w_shape, (1, 1), (1, 1), groups,
                                      padded_shape, (out_h, out_w), True)
    direct = path in (conv_paths.DirectPath, conv_paths.WinogradPath)
    return gemm.kernel_of(name) if direct else None


def test_direct_is_chosen_by_shape_alone(kernel, monkeypatch):
    kern = gemm.float32_kernel()
    assert direct_kernel(np.float32, 1, 8, (6, 1, 5, 5), (8, 1, 32, 32), 28) is kern
    assert direct_kernel(np.float64, 1, 8, (6, 1, 5, 5), (8, 1, 32, 32), 28) is None
    assert direct_kernel(np.float32, 2, 8, (6, 1, 5, 5), (8, 2, 32, 32), 28) is None
    assert direct_kernel(np.float32, 1, 7, (6, 1, 5, 5), (7, 1, 32, 32), 28) is None
    assert direct_kernel(np.float32, 1, 8, (6, 4, 1, 1), (8, 4, 32, 32), 32) is None
    assert direct_kernel(np.float32, 1, 8, (6, 0, 3, 3), (8, 0, 32, 32), 30) is None
    taps = thresholds.DIRECT_TAPS_MAX // 9
    assert direct_kernel(np.float32, 1, 8, (6, taps, 3, 3), (8, taps, 9, 9), 7) is kern
    assert direct_kernel(np.float32, 1, 8, (6, taps + 1, 3, 3), (8, taps + 1, 9, 9),
                              7) is None
    # given the output's height, a wide row of one register tile passes, a narrower not
    nr = kern.tile()[1]
    assert direct_kernel(np.float32, 1, 8, (6, 2, 3, 3), (8, 2, 3, nr + 2), nr, 1) is kern
    assert direct_kernel(np.float32, 1, 8, (6, 2, 3, 3), (8, 2, 3, nr + 1), nr - 1,
                              1) is None
    assert direct_kernel(np.float32, 1, 8, (6, 2, 3, 3), (8, 2, 3, nr + 1), nr - 1) is kern
    # rows that keep half their wide columns pass, fewer do not (a 1x9 kernel, dilation 3)
    assert direct_kernel(np.float32, 1, 8, (6, 1, 1, 9), (8, 1, 28, 32), 16) is kern
    assert direct_kernel(np.float32, 1, 8, (6, 1, 1, 9), (8, 1, 28, 28), 4) is None
    # one image's layout: up to DIRECT_CHUNK floats, not one more
    floats, default = conv_direct.image_floats(kern, 6, (8, 2, 20, 20)), thresholds.DIRECT_CHUNK
    monkeypatch.setattr(thresholds, "DIRECT_CHUNK", floats)
    assert direct_kernel(np.float32, 1, 8, (6, 2, 3, 3), (8, 2, 20, 20), 18) is kern
    monkeypatch.setattr(thresholds, "DIRECT_CHUNK", floats - 1)
    assert direct_kernel(np.float32, 1, 8, (6, 2, 3, 3), (8, 2, 20, 20), 18) is None
    monkeypatch.setattr(thresholds, "DIRECT_CHUNK", default)
    x = np.ones((8, 1, 12, 12), np.float32)
    w = np.ones((4, 1, 3, 3), np.float32)
    assert F.conv2d_forward(x, w, stride=(2, 2))[1]["path"] != "direct"
    assert F.conv2d_forward(x, w, stride=(1, 1))[1]["path"] == "direct"


def test_direct_off_gives_the_old_paths(kernel, monkeypatch):
    set_rule(monkeypatch, "batch")
    x, w, b = data(CASES["lenet5-conv1"])
    assert conv(x, w, b, CASES["lenet5-conv1"])[-1] == "gemm"


@pytest.mark.no_kernel            # refused at the door, before any kernel runs
def test_direct_kernels_check_shapes(kernel):
    kern = gemm.float32_kernel()
    xp = np.ones((8, 2, 10, 10), np.float32)
    w = np.ones((4, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"conv_direct.forward: expected an output \(8, 4, 8, 8\)"):
        conv_direct.forward(kern, w, xp, np.zeros(4, np.float32),
                            np.empty((8, 4, 8, 7), np.float32), False, (1, 1), 2)
    with pytest.raises(ValueError, match=r"conv_direct.forward: expected a weight"):
        conv_direct.forward(kern, np.ones((4, 3, 3, 3), np.float32), xp,
                            np.zeros(4, np.float32), np.empty((8, 4, 8, 8), np.float32), False,
                            (1, 1), 2)
    with pytest.raises(ValueError, match="does not fit the input"):
        conv_direct.forward(kern, w, xp, np.zeros(4, np.float32),
                            np.empty((8, 4, 0, 0), np.float32), False, (6, 6), 2)
    with pytest.raises(ValueError, match=r"conv_direct.backward: expected dout \(and "
                                         r"gate\) \(8, 4, 8, 8\), got \(8, 4, 8, 7\)"):
        conv_direct.backward(kern, np.ones((8, 4, 8, 7), np.float32), None, xp,
                             np.empty_like(w), (1, 1), 2)
    with pytest.raises(ValueError, match=r"and \(8, 4, 8, 7\)"):
        conv_direct.backward(kern, np.ones((8, 4, 8, 8), np.float32),
                             np.ones((8, 4, 8, 7), np.float32), xp, np.empty_like(w),
                             (1, 1), 2)
    with pytest.raises(ValueError, match="dw must be C-contiguous"):
        conv_direct.backward(kern, np.ones((8, 4, 8, 8), np.float32), None, xp,
                             np.empty_like(w, order="F"), (1, 1), 2)
    dout = np.ones((8, 4, 8, 8), np.float32)
    with pytest.raises(ValueError, match="the input gradient needs both w and dxp"):
        conv_direct.backward(kern, dout, None, xp, np.empty_like(w), (1, 1), 2, w)
    with pytest.raises(ValueError, match=r"dxp must be a C-contiguous float32 \(8, 2, 10, 10\), "
                                         r"got \(8, 2, 10, 9\) float32"):
        conv_direct.backward(kern, dout, None, xp, np.empty_like(w), (1, 1), 2, w,
                             np.empty((8, 2, 10, 9), np.float32))
    with pytest.raises(ValueError, match=r"w must be a float32 \(4, 2, 3, 3\), got \(4, 2, 3, 3\) "
                                         r"float64"):
        conv_direct.backward(kern, dout, None, xp, np.empty_like(w), (1, 1), 2,
                             w.astype(np.float64), np.empty_like(xp))
    small = np.ones((8, 2, 4, 4), np.float32)
    with pytest.raises(ValueError, match="an input gradient needs a wide row of at least"):
        conv_direct.backward(kern, np.ones((8, 4, 2, 2), np.float32), None, small,
                             np.empty_like(w), (1, 1), 2, w, np.empty_like(small))
    for threads in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="num_threads must be an int from 1 to 4096"):
            conv_direct.forward(kern, w, xp, np.zeros(4, np.float32),
                                np.empty((8, 4, 8, 8), np.float32), False, (1, 1), threads)
    with pytest.raises(ValueError, match="one C >= 1"):
        conv_direct.forward(kern, w[:, :0], xp[:, :0], np.zeros(4, np.float32),
                            np.empty((8, 4, 8, 8), np.float32), False, (1, 1), 1)
    with pytest.raises(ValueError, match="dilation must be at least 1"):
        conv_direct.forward(kern, w, xp, np.zeros(4, np.float32),
                            np.empty((8, 4, 8, 8), np.float32), False, (0, 1), 1)


def test_narrow_images_go_to_the_batch_path(kernel):
    """A wide row narrower than one register tile (4 x 4 outputs): the batch GEMM path,
    which ran 3-9x faster there than the direct kernels' tile-less loop."""
    case = (8, 3, 5, (3, 3), (6, 6), ((0, 0), (0, 0)), (1, 1), "zeros")
    x, w, b = data(case)
    *ours, path = conv(x, w, b, case)
    assert path == "gemm"
    for a, r in zip(ours, reference(case)):
        assert_close(a, r)
