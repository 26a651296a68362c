"""minicnn.gemm: the own float32 GEMM kernels against a float64 product, and the choice of
kernel. Every kernel this CPU and build have is tested, whatever the default is."""
import os
import subprocess
import sys

import numpy as np
import pytest

import minicnn
from minicnn import functional as F
from minicnn import gemm
from minicnn.functional import conv_direct, conv_image, conv_paths, thresholds

from conftest import fast_kernels_only, always_parallel, set_rule

KERNELS = list(gemm.available())
needs_kernel = pytest.mark.skipif(not KERNELS, reason="no own GEMM kernel for this CPU or build")


def module(name):
    return __import__(f"minicnn._kernels.gemm_{name}", fromlist=["tile"])


def operand(rng, shape, layout):
    """A float32 (rows, cols) array laid out as asked: C order, a transposed view, a
    strided view into a larger array, negative strides, a broadcast (zero-stride) row or
    column, or read-only."""
    rows, cols = shape
    if layout == "C":
        return rng.standard_normal(shape).astype(np.float32)
    if layout == "T":
        return rng.standard_normal((cols, rows)).astype(np.float32).T
    if layout == "S":
        return rng.standard_normal((rows * 2, cols * 3)).astype(np.float32)[::2, 1::3]
    if layout == "R":
        return rng.standard_normal(shape).astype(np.float32)[::-1, ::-1]
    if layout == "B0":
        return np.broadcast_to(rng.standard_normal((1, cols)).astype(np.float32), shape)
    if layout == "B1":
        return np.broadcast_to(rng.standard_normal((rows, 1)).astype(np.float32), shape)
    x = rng.standard_normal(shape).astype(np.float32)
    x.flags.writeable = False
    return x


def check(a, b, threads=1):
    out = np.full((a.shape[0], b.shape[1]), np.nan, np.float32)
    got = gemm.matmul(a, b, out, threads)
    assert got is out
    ref = a.astype(np.float64) @ b.astype(np.float64)
    # float32 products summed in any order: error grows with sqrt(K) times the magnitudes
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    assert np.all(np.abs(out - ref) <= 1e-6 * np.sqrt(max(a.shape[1], 1)) * scale + 1e-30)
    return out


def edge_sizes(name):
    mr, nr = module(name).tile()
    return mr, nr


@pytest.mark.parametrize("la", ["C", "T", "S", "R", "B0", "B1", "RO"])
@pytest.mark.parametrize("lb", ["C", "T", "S", "R", "B0", "B1", "RO"])
def test_layouts(kernel, rng, la, lb):
    mr, nr = edge_sizes(kernel)
    m, k, n = 3 * mr + 1, 37, 2 * nr + 5
    check(operand(rng, (m, k), la), operand(rng, (k, n), lb))


@pytest.mark.parametrize("m", [1, 2, 7, 8, 9, 17, 64])
@pytest.mark.parametrize("n", [1, 5, 23, 24, 25, 31, 32, 33, 100])
def test_edge_tiles(kernel, rng, m, n):
    check(operand(rng, (m, 19), "C"), operand(rng, (19, n), "C"))


@pytest.mark.parametrize("k", [1, 2, 383, 384, 385, 700, 5000])
def test_k_blocks_and_slices(kernel, rng, k):
    # K up to KC_ONE is one block, beyond it several; a narrow N with K >= 2 * SLICE_MIN
    # is cut into slices added afterwards (the weight-gradient shape)
    check(operand(rng, (6, k), "C"), operand(rng, (k, 25), "T"), threads=2)
    check(operand(rng, (10, k), "C"), operand(rng, (k, 300), "C"), threads=2)


def test_large_m_spans_a_blocks(kernel, rng):
    # A_BLOCK / K rows per block: 98304 / 384 = 256, so 300 rows take two
    check(operand(rng, (300, 384), "T"), operand(rng, (384, 70), "C"), threads=2)


@pytest.mark.no_kernel
@pytest.mark.parametrize("shape", [(0, 5, 7), (5, 0, 7), (5, 7, 0), (0, 0, 0)])
def test_empty(kernel, shape):
    m, k, n = shape
    out = np.full((m, n), np.nan, np.float32)
    gemm.matmul(np.ones((m, k), np.float32), np.ones((k, n), np.float32), out, 2)
    np.testing.assert_array_equal(out, np.zeros((m, n), np.float32))


@pytest.mark.parametrize("shape", [(64, 288, 900), (6, 3000, 25), (150, 16, 640)])
def test_thread_counts_give_equal_bits(kernel, rng, shape):
    m, k, n = shape
    a, b = operand(rng, (m, k), "C"), operand(rng, (k, n), "T")
    outs = [check(a, b, threads=t) for t in (1, 2, 3, 5)]
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])


def test_stacks(kernel, rng):
    a = rng.standard_normal((3, 9, 20)).astype(np.float32)
    b = rng.standard_normal((3, 30, 20)).astype(np.float32).transpose(0, 2, 1)
    out = gemm.matmul(a, b, np.empty((3, 9, 30), np.float32), 2)
    np.testing.assert_allclose(out, np.matmul(a, b), rtol=1e-5, atol=1e-5)


def test_non_finite_propagate(kernel):
    a = np.ones((9, 4), np.float32)
    a[3, 2] = np.nan
    b = np.ones((4, 40), np.float32)
    b[1, 33] = np.inf
    out = gemm.matmul(a, b, np.empty((9, 40), np.float32))
    assert np.isnan(out[3]).all()
    assert np.isinf(out[[0, 1, 2, 4, 5, 6, 7, 8], 33]).all()
    assert np.isfinite(np.delete(np.delete(out, 3, 0), 33, 1)).all()


@pytest.mark.no_kernel
def test_other_arrays_go_to_numpy(kernel, rng):
    # float64, and an output that is not C-contiguous: np.matmul's numbers exactly
    a, b = rng.standard_normal((5, 6)), rng.standard_normal((6, 7))
    np.testing.assert_array_equal(gemm.matmul(a, b, np.empty((5, 7))), a @ b)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    out = np.empty((7, 5), np.float32).T
    np.testing.assert_array_equal(gemm.matmul(a32, b32, out), np.matmul(a32, b32))


@pytest.mark.no_kernel
@pytest.mark.parametrize("size", [64, 600])
def test_out_overlapping_an_input_gets_numpys_answer(kernel, rng, size):
    # the kernel writes C while it still packs A and B: overlap goes to np.matmul, which copies
    # (on one BLAS thread, as inside every minicnn call: OpenBLAS's sums follow its threads)
    from minicnn.runtime import blas_single_thread
    x = rng.standard_normal((size, size)).astype(np.float32)
    y = rng.standard_normal((size, size)).astype(np.float32)
    with blas_single_thread():
        ref = x @ y
    np.testing.assert_array_equal(gemm.matmul(x, y, x, 2), ref)
    x2 = rng.standard_normal((size, size)).astype(np.float32)
    with blas_single_thread():
        ref = x2 @ x2.T
    np.testing.assert_array_equal(gemm.matmul(x2, x2.T, x2, 2), ref)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2", 4097, 2**31])
def test_bad_thread_count(threads):
    with pytest.raises(ValueError, match="gemm.matmul: num_threads must be an int from 1 to 4096"):
        gemm.matmul(np.ones((6, 3000), np.float32), np.ones((3000, 25), np.float32),
                    np.empty((6, 25), np.float32), threads)


def test_bad_arrays():
    with pytest.raises(ValueError, match="gemm.matmul: out is read-only"):
        out = np.empty((2, 5), np.float32)
        out.flags.writeable = False
        gemm.matmul(np.ones((2, 3), np.float32), np.ones((3, 5), np.float32), out)
    with pytest.raises(TypeError, match="gemm.matmul: a, b and out must be NumPy arrays, got list"):
        gemm.matmul([[1.0]], np.ones((1, 1), np.float32), np.empty((1, 1), np.float32))


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"gemm.matmul: cannot multiply \(2, 3\) by \(4, 5\)"):
        gemm.matmul(np.ones((2, 3), np.float32), np.ones((4, 5), np.float32),
                    np.empty((2, 5), np.float32))
    with pytest.raises(ValueError, match="must all be 2-d or 3-d"):
        gemm.matmul(np.ones(3, np.float32), np.ones((3, 5), np.float32), np.empty(5, np.float32))


CONV_CASES = [  # ksize, stride, padding, dilation, groups, batch
    (3, 1, 1, 1, 1, 9), (1, 1, 0, 1, 1, 9), (3, 2, 0, 1, 2, 9), (5, 1, 2, 1, 1, 12),
    (3, 2, 1, 2, 1, 9), (2, 3, 0, 1, 1, 1), (3, 1, 1, 1, 1, 5),
    pytest.param((3, 1, 0, 1, 1, 0), marks=pytest.mark.no_kernel),   # no image: no product
]


def conv_both_ways(rng, kernel, ksize, stride, padding, dilation, groups, batch, relu,
                   channels=4, hw=(11, 12)):
    """Forward and backward of one convolution on ``kernel`` and on NumPy's matmul."""
    x = rng.standard_normal((batch, channels) + hw).astype(np.float32)
    w = rng.standard_normal((8, channels // groups, ksize, ksize)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    results = {}
    for name in (kernel, "numpy"):
        gemm.use(name)
        out, cache = F.conv2d_forward(x, w, b, stride=(stride, stride),
                                      padding=((padding, padding),) * 2,
                                      dilation=(dilation, dilation), groups=groups,
                                      activation="relu" if relu else None)
        results[name] = (out, *F.conv2d_backward(np.cos(out), cache))
    gemm.use(kernel)
    return results[kernel], results["numpy"]


def expected_calls(case, rule):
    """The kernel functions a convolution calls under a path rule (set_rule)."""
    ksize, stride, _, _, groups, batch = case
    eligible = ksize > 1 and groups == 1 and batch >= thresholds.BATCH_MIN
    calls = set()
    if eligible and "direct" in rule and stride == 1:
        # the input gradient from the weight gradient's layout (every case here has wide
        # rows of at least one tile; test_direct_conv covers narrower ones)
        calls = {"direct_forward", "direct_backward"}
    elif eligible and "image" in rule:
        calls = {"conv_forward", "conv_backward_input", "conv_backward_weight"}
    return sorted(calls)


RULES = ["batch", "image", "direct", "direct+image"]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("case", CONV_CASES)
def test_convolutions_match_numpy_path(kernel, rng, monkeypatch, case, relu, rule):
    """Convolution forward and backward on a kernel (direct or image by image when the
    rule allows, batch GEMMs otherwise, the pointwise transpose for 1x1) equal NumPy's
    matmul up to rounding; and the path taken is the one the rule names."""
    set_rule(monkeypatch, rule)
    ran = []
    for fn, module, attr in (("conv_forward", conv_image, "forward"),
                             ("conv_backward_input", conv_image, "backward_input"),
                             ("conv_backward_weight", conv_image, "backward_weight"),
                             ("direct_forward", conv_direct, "forward"),
                             ("direct_backward", conv_direct, "backward")):
        real = getattr(module, attr)
        monkeypatch.setattr(module, attr,
                            lambda *a, real=real, fn=fn: (ran.append(fn), real(*a))[1])
    ours, ref = conv_both_ways(rng, kernel, *case, relu)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=3e-5, atol=3e-5)
    assert sorted(set(ran)) == expected_calls(case, rule)


@pytest.mark.parametrize("case,channels,hw", [
    ((3, 1, 1, 1, 1, 9), 4, (11, 12)),          # direct or image by image when the rule allows
    ((3, 1, 0, 1, 1, 9), 4, (26, 26)),          # P = 576 > KC_ONE: K blocks inside one image
    ((3, 1, 1, 1, 1, 4), 128, (6, 6)),          # batch GEMMs that cut K into slices
])
@pytest.mark.parametrize("rule", RULES)
def test_convolutions_same_bits_for_any_thread_count(kernel, monkeypatch, case, channels, hw,
                                                     rule):
    """The path and the K slices follow the shape, never the thread setting, so 1, 2 and
    3 threads give the same bits (a path chosen by thread count gave 7929 of 9216 outputs
    differing for the sliced case)."""
    always_parallel(monkeypatch)
    set_rule(monkeypatch, rule)
    old = minicnn.get_num_threads()
    runs = []
    try:
        for t in (1, 2, 3):
            minicnn.set_num_threads(t)
            rng = np.random.default_rng(5)
            runs.append(conv_both_ways(rng, kernel, *case, True, channels, hw)[0])
    finally:
        minicnn.set_num_threads(old)
    for run in runs[1:]:
        for a, b in zip(run, runs[0]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("padding,mode", [(((1, 2), (0, 3)), "zeros"), (((2, 2), (1, 1)), "reflect"),
                                          (((0, 0), (0, 0)), "zeros")])
@pytest.mark.parametrize("need_dx", [True, False])
def test_image_by_image_options(kernel, rng, monkeypatch, flip, padding, mode, need_dx):
    """The image path against NumPy's matmul with a flipped kernel, asymmetric and reflect
    padding, stride and dilation, no bias, and without the input gradient."""
    set_rule(monkeypatch, "image")
    x = rng.standard_normal((9, 3, 13, 10)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 2)).astype(np.float32)
    results = {}
    for name in (kernel, "numpy"):
        gemm.use(name)
        out, cache = F.conv2d_forward(x, w, None, stride=(2, 1), padding=padding,
                                      dilation=(1, 2), padding_mode=mode, flip_kernel=flip)
        assert cache["path"] == ("image" if name == kernel else "gemm")
        results[name] = (out, *F.conv2d_backward(np.sin(out), cache, need_dx=need_dx))
    gemm.use(kernel)
    for ours, ref in zip(results[kernel], results["numpy"]):
        if ref is None:
            assert ours is None
        else:
            np.testing.assert_allclose(ours, ref, rtol=3e-5, atol=3e-5)


@pytest.mark.parametrize("hw", [(26, 26), (30, 30)])
def test_image_by_image_large_images(kernel, rng, monkeypatch, hw):
    """Images whose P = OH * OW exceeds one K block of the weight gradient (576, 784)."""
    set_rule(monkeypatch, "image")
    ours, ref = conv_both_ways(rng, kernel, 3, 1, 0, 1, 1, 9, True, 4, hw)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=3e-5, atol=3e-5)


@fast_kernels_only
@pytest.mark.parametrize("rule", ["image", "direct"])
def test_kernel_path_cache_deep_copies_and_survives_a_kernel_switch(kernel, rng, monkeypatch,
                                                                     rule):
    """The cache names its kernel (a module object cannot be deep-copied: a layer kept as a
    best-model snapshot failed); switching kernels before backward keeps the forward's."""
    import copy

    set_rule(monkeypatch, rule)
    conv = minicnn.Conv2D(4, 8, 3, rng=np.random.default_rng(0))
    x = rng.standard_normal((9, 4, 12, 12)).astype(np.float32)
    out = conv.forward(x)
    assert conv.cache["path"] == rule
    twin = copy.deepcopy(conv)
    dx = conv.backward(np.ones_like(out))
    gemm.use("numpy")
    dx2 = twin.backward(np.ones_like(out))
    gemm.use(kernel)
    np.testing.assert_array_equal(dx, dx2)
    np.testing.assert_array_equal(conv.grads["weight"], twin.grads["weight"])


@pytest.mark.no_kernel            # refused at the door, before any kernel runs
def test_image_kernels_check_shapes(kernel):
    w = np.ones((8, 36), np.float32)
    xp = np.ones((9, 4, 12, 12), np.float32)
    geometry = (3, 3, 1, 1, 1, 1, 10)
    with pytest.raises(ValueError, match="conv_image.backward_weight: shapes do not agree"):
        conv_image.backward_weight(gemm.float32_kernel(), np.ones((8, 5, 100), np.float32), xp,
                                  np.empty((8, 36), np.float32), geometry, 2)
    with pytest.raises(ValueError, match="conv_image.forward: an output of 144 pixels"):
        conv_image.forward(gemm.float32_kernel(), w, xp, np.zeros(8, np.float32),
                          np.empty((9, 8, 144), np.float32), False, (3, 3, 1, 1, 1, 1, 12), 2)
    with pytest.raises(ValueError, match="conv_image.backward_input: shapes do not agree"):
        conv_image.backward_input(gemm.float32_kernel(), np.ones((8, 27), np.float32),
                                 np.ones((8, 9, 100), np.float32), xp, geometry, 2)
    with pytest.raises(ValueError, match="conv_image.forward: num_threads must be an int from 1"):
        conv_image.forward(gemm.float32_kernel(), w, xp, np.zeros(8, np.float32),
                          np.empty((9, 8, 100), np.float32), False, geometry, 0)


def image_path_chosen(dtype=np.float32, groups=1, batch=64, channels=4):
    """Whether conv_paths.choose runs a 3x3 stride-2 convolution (never direct) of this
    many images image by image; each image's product has 8 * channels * 9 * 100
    multiply-adds."""
    w_shape = (8, channels // groups, 3, 3)
    path = conv_paths.choose(dtype, batch, w_shape, (2, 2), (1, 1), groups,
                             (batch, channels, 21, 21), (10, 10), False)[0]
    return path is conv_paths.ImagePath


def test_image_by_image_needs_a_batch_and_work_for_each_image(monkeypatch):
    if gemm.float32_kernel() is None:
        pytest.skip("no own GEMM kernel for this CPU or build")
    macs = 8 * 4 * 9 * 100
    monkeypatch.setattr(thresholds, "IMAGE_MIN", macs)
    assert not image_path_chosen(np.float64)
    assert not image_path_chosen(groups=2)
    assert not image_path_chosen(batch=thresholds.BATCH_MIN - 1)
    assert image_path_chosen(batch=thresholds.BATCH_MIN)
    monkeypatch.setattr(thresholds, "IMAGE_MIN", macs + 1)
    assert not image_path_chosen()


def test_image_by_image_skips_empty_products(monkeypatch):
    # zero input channels: no multiply-adds, so never the image path (whose GEMM needs K > 0)
    monkeypatch.setattr(thresholds, "IMAGE_MIN", 0)
    assert not image_path_chosen(channels=0)


def run_with(env_value, cwd, code="import minicnn.gemm as g; print(g.kernel_name())"):
    # run outside the checkout, so that the installed package is imported, not the sources
    env = dict(os.environ, MINICNN_GEMM=env_value)
    return subprocess.run([sys.executable, "-W", "always", "-c", code], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_environment_picks_kernel(tmp_path):
    assert run_with("numpy", tmp_path).stdout.strip() == "numpy"
    auto = run_with("auto", tmp_path).stdout.strip()
    assert auto == (KERNELS[0] if KERNELS else "numpy")
    for name in KERNELS:
        assert run_with(name.upper(), tmp_path).stdout.strip() == name


def test_environment_bad_value_warns_and_keeps_auto(tmp_path):
    res = run_with("mkl", tmp_path)
    assert res.returncode == 0
    expected = "MINICNN_GEMM must be one of auto, avx512, avx2, numpy, got 'mkl'; using auto"
    assert expected in res.stderr
    assert res.stdout.strip() == (KERNELS[0] if KERNELS else "numpy")


def test_unavailable_kernel_warns_and_falls_back(monkeypatch):
    monkeypatch.setattr(gemm, "available", lambda: ())
    with pytest.warns(RuntimeWarning, match="MINICNN_GEMM=avx512: this CPU or build has no "
                                            "avx512 kernel; using numpy"):
        assert gemm._select("avx512") is None
    with pytest.warns(RuntimeWarning, match="gemm.use=avx2: this CPU or build has no avx2"):
        gemm.use("avx2")
    assert gemm.kernel_name() == "numpy"
    monkeypatch.undo()
    gemm.use("auto")


def test_cpu_without_features_gets_no_kernel(monkeypatch):
    # the kernels may hold instructions this CPU lacks: never chosen without the flags
    loaded = []
    gemm.available.cache_clear()
    monkeypatch.setattr(gemm, "cpu_features", lambda: {"AVX2": True, "FMA3": False})
    monkeypatch.setattr(gemm, "_load", lambda name: loaded.append(name))
    try:
        assert gemm.available() == ()
        assert gemm._select("auto") is None
        assert loaded == []          # not even imported: its import could hold the ISA too
    finally:
        gemm.available.cache_clear()


def test_info_names_the_kernel(tmp_path):
    res = subprocess.run([sys.executable, "-m", "minicnn", "info"], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    line = next(line for line in res.stdout.splitlines() if line.startswith("gemm"))
    name = gemm.kernel_name()
    assert (f"on minicnn's {name} kernel" if name != "numpy" else "on NumPy's matmul") in line
    for name in KERNELS:
        assert name in line


@needs_kernel
def test_training_step_same_bits_with_one_or_two_threads(rng, monkeypatch):
    from minicnn.architectures import build

    always_parallel(monkeypatch)       # else batch 8 would run on one thread
    x = rng.standard_normal((8, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 8)
    grads = []
    old = minicnn.get_num_threads()
    try:
        for t in (1, 2):
            minicnn.set_num_threads(t)
            model = build("lenet5", rng=np.random.default_rng(0))
            loss = minicnn.SoftmaxCrossEntropy()
            loss.forward(model.forward(x), y)
            model.backward(loss.backward())
            grads.append([layer.grads[k].copy() for layer in model.layers for k in layer.grads])
    finally:
        minicnn.set_num_threads(old)
    for g1, g2 in zip(*grads):
        np.testing.assert_array_equal(g1, g2)
