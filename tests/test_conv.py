"""Conv2D and functional.conv2d: reference agreement, gradients, worked examples, errors."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minicnn
from minicnn import Conv2D, Dense, functional as F, geometry
from minicnn import reference as R
from conftest import fast_kernels_only, always_parallel

MODES = ["zeros", "reflect", "symmetric", "replicate", "circular"]


def make_conv(rng, dtype=np.float64, **kw):
    conv = Conv2D(dtype=dtype, rng=rng, **kw)
    if "bias" in conv.params:
        conv.params["bias"][...] = rng.standard_normal(conv.params["bias"].shape)
    return conv


def reference_of(conv, x):
    """The layer's output from minicnn.reference, in float64."""
    b = conv.params.get("bias")
    return R.conv2d(x.astype(np.float64), conv.params["weight"].astype(np.float64),
                    None if b is None else b.astype(np.float64), conv.stride, conv.padding,
                    conv.dilation, conv.groups, conv.padding_mode, conv.flip_kernel,
                    conv.activation)


@st.composite
def conv_configs(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin = groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 2))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    mode = draw(st.sampled_from(MODES))
    h, w = draw(st.integers(3, 7)), draw(st.integers(3, 7))
    padding = draw(st.one_of(
        st.integers(0, 2),
        st.tuples(st.integers(0, 2), st.integers(0, 2)),
        st.tuples(st.tuples(st.integers(0, 2), st.integers(0, 2)),
                  st.tuples(st.integers(0, 2), st.integers(0, 2))),
        st.sampled_from(["same", "valid"]),
    ))
    cfg = dict(in_channels=cin, out_channels=cout, kernel_size=k, stride=stride, padding=padding,
               dilation=dilation, groups=groups, bias=draw(st.booleans()), padding_mode=mode,
               flip_kernel=draw(st.booleans()), activation=draw(st.sampled_from([None, "relu"])))
    return cfg, (draw(st.integers(1, 2)), cin, h, w)


def fits(cfg, shape):
    conv = Conv2D(**cfg)
    try:
        conv.output_shape(shape[1:])
    except ValueError:
        return False
    return True


@settings(max_examples=60, deadline=None)
@given(conv_configs(), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16))
def test_matches_reference(config, dtype, seed):
    cfg, shape = config
    assume(fits(cfg, shape))
    rng = np.random.default_rng(seed)
    conv = make_conv(rng, dtype, **cfg)
    x = rng.standard_normal(shape).astype(dtype)
    out = conv.forward(x)
    assert out.dtype == dtype
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(out, reference_of(conv, x), rtol=tol, atol=tol)


GRAD_CASES = [
    dict(kernel_size=3),
    dict(kernel_size=3, padding=1),
    dict(kernel_size=(2, 3), padding=((0, 2), (1, 0))),
    dict(kernel_size=3, padding="same", stride=2),
    dict(kernel_size=2, padding="same"),
    dict(kernel_size=3, stride=(2, 1)),
    dict(kernel_size=3, dilation=2, padding=2),
    dict(kernel_size=1),
    dict(kernel_size=1, stride=2),
    dict(kernel_size=3, groups=2),
    dict(kernel_size=3, bias=False),
    dict(kernel_size=3, flip_kernel=True, padding=1),
    dict(kernel_size=3, padding=1, activation="relu"),
    dict(kernel_size=1, activation="relu"),
    dict(kernel_size=3, bias=False, activation="relu"),
] + [dict(kernel_size=3, padding=((1, 2), (2, 1)), padding_mode=m) for m in MODES[1:]]


@pytest.mark.parametrize("cfg", GRAD_CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_gradcheck(cfg, rng):
    conv = make_conv(rng, in_channels=2, out_channels=4, **cfg)
    assert minicnn.gradcheck(conv, rng.standard_normal((2, 2, 6, 5)))


@pytest.mark.parametrize("cfg", [dict(), dict(padding=1, stride=2), dict(dilation=2, padding="same"),
                                 dict(padding=1, padding_mode="reflect", bias=False),
                                 dict(padding=1, activation="relu")])
def test_depthwise_gradcheck_and_reference(cfg, rng):
    conv = make_conv(rng, in_channels=3, out_channels=6, kernel_size=3, groups=3, **cfg)
    x = rng.standard_normal((2, 3, 6, 6))
    np.testing.assert_allclose(conv.forward(x), reference_of(conv, x), atol=1e-12)
    assert minicnn.gradcheck(conv, x)


@fast_kernels_only
def test_each_path_is_used():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 5, 5)).astype(np.float32)
    paths = {}
    for name, cfg in {"depthwise": dict(out_channels=4, kernel_size=3, groups=4),
                      "pointwise": dict(out_channels=3, kernel_size=1),
                      "gemm": dict(out_channels=3, kernel_size=3)}.items():
        conv = Conv2D(4, rng=rng, **cfg)
        conv.forward(x)
        paths[name] = conv.cache["path"]
    assert paths == {"depthwise": "depthwise", "pointwise": "pointwise", "gemm": "gemm"}


@fast_kernels_only
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", [dict(out_channels=4, kernel_size=3, groups=4, padding=1),
                                 dict(out_channels=3, kernel_size=1),
                                 dict(out_channels=3, kernel_size=3, padding="same"),
                                 dict(out_channels=3, kernel_size=3, bias=False)],
                         ids=["depthwise", "pointwise", "gemm", "gemm-no-bias"])
def test_relu_activation_is_conv_then_relu(cfg, dtype, rng):
    """Conv2D(activation='relu') gives what Conv2D followed by ReLU gives, forward and back."""
    fused = make_conv(rng, dtype, in_channels=4, activation="relu", **cfg)
    plain = Conv2D(4, dtype=dtype, **cfg)
    for k in plain.params:
        plain.params[k][...] = fused.params[k]
    relu = minicnn.ReLU()
    x = rng.standard_normal((3, 4, 6, 7)).astype(dtype)
    x[0, 0, 0, :3] = np.nan                       # NaN stays NaN through both
    out = fused.forward(x)
    np.testing.assert_array_equal(out, relu.forward(plain.forward(x)))
    assert fused.cache["path"] == plain.cache["path"]
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = fused.backward(dout)
    np.testing.assert_array_equal(dx, plain.backward(relu.backward(dout)))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for k in plain.grads:
        np.testing.assert_allclose(fused.grads[k], plain.grads[k], rtol=tol, atol=tol)


@pytest.mark.parametrize("cfg", [dict(out_channels=4, kernel_size=3, groups=4, padding=1),
                                 dict(out_channels=3, kernel_size=1, activation="relu"),
                                 dict(out_channels=4, kernel_size=1, groups=2),
                                 dict(out_channels=3, kernel_size=3, padding="same")])
def test_empty_batch(cfg, rng):
    conv = make_conv(rng, np.float32, in_channels=4, **cfg)
    out = conv.forward(np.zeros((0, 4, 5, 5), np.float32))
    assert out.shape == (0, conv.out_channels, 5, 5)
    dx = conv.backward(np.zeros(out.shape, np.float32))
    assert dx.shape == (0, 4, 5, 5) and not conv.grads["weight"].any()


# --- worked examples from the convolution notes ------------------------------

def test_edge_detector():
    x = np.array([[0, 1, 2, 2], [0, 0, 1, 2], [0, 0, 0, 1]], dtype=np.float64)[None, None]
    k = np.array([[1, -1]], dtype=np.float64)[None, None]
    expected = [[-1, -1, 0], [0, -1, -1], [0, 0, -1]]
    np.testing.assert_array_equal(F.conv2d(x, k)[0, 0], expected)


def test_three_channels_give_14():
    x = np.array([[[1, 2], [3, 4]], [[5, 6], [7, 8]], [[9, 10], [11, 12]]], dtype=np.float32)[None]
    k = np.array([[[-1, -1], [1, 1]], [[-2, 2], [-2, 2]], [[-3, 3], [-3, 3]]], dtype=np.float32)[None]
    out = F.conv2d(x, k)
    assert out.shape == (1, 1, 1, 1) and out.item() == 14


@pytest.mark.parametrize("stride,size", [(1, 3), (2, 2)])
def test_output_size_4x4_2x2(stride, size):
    conv = Conv2D(1, 1, 2, stride=stride)
    assert conv.forward(np.ones((1, 1, 4, 4), np.float32)).shape == (1, 1, size, size)
    assert geometry.conv_output_size(4, 2, stride) == size


@pytest.mark.parametrize("k", [3, 5])
def test_same_keeps_28x28(k):
    conv = Conv2D(1, 2, k, padding="same")
    assert conv.forward(np.zeros((1, 1, 28, 28), np.float32)).shape == (1, 2, 28, 28)


def test_true_convolution_is_rotated_cross_correlation(rng):
    x = rng.standard_normal((2, 3, 6, 7))
    w = rng.standard_normal((4, 3, 3, 2))
    conv = F.conv2d(x, w, flip_kernel=True)
    np.testing.assert_allclose(conv, F.conv2d(x, np.rot90(w, 2, axes=(2, 3)).copy()), atol=1e-12)
    # and it is the textbook sum x[i - m, j - n] * k[m, n] for one channel
    x1, k1 = x[:1, :1], w[:1, :1]
    full = F.conv2d(x1, k1, flip_kernel=True, padding=((2, 2), (1, 1)))[0, 0]
    for i in range(full.shape[0]):
        for j in range(full.shape[1]):
            s = sum(x1[0, 0, i - m, j - n] * k1[0, 0, m, n]
                    for m in range(3) for n in range(2)
                    if 0 <= i - m < 6 and 0 <= j - n < 7)
            assert full[i, j] == pytest.approx(s)


def test_1x1_is_weighted_channel_sum(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    w = rng.standard_normal((2, 3, 1, 1))
    out = F.conv2d(x, w)
    for o in range(2):
        np.testing.assert_allclose(out[:, o], sum(w[o, c, 0, 0] * x[:, c] for c in range(3)))


def test_mirror_padding_in_conv_uses_reflect_values():
    x = np.arange(1, 10, dtype=np.float64).reshape(1, 1, 3, 3)
    identity = np.zeros((1, 1, 3, 3))
    identity[0, 0, 0, 0] = 1.0  # picks the top-left pixel of each window of the padded input
    out = F.conv2d(x, identity, padding=1, padding_mode="reflect")
    np.testing.assert_array_equal(out[0, 0], [[5, 4, 5], [2, 1, 2], [5, 4, 5]])


# --- dtype, layout, config -------------------------------------------------------

def test_dtype_rules(rng):
    conv = Conv2D(1, 2, 3)
    assert conv.params["weight"].dtype == np.float32
    assert conv.forward(rng.standard_normal((1, 1, 5, 5))).dtype == np.float32
    conv.astype(np.float64)
    assert conv.forward(rng.standard_normal((1, 1, 5, 5)).astype(np.float32)).dtype == np.float64
    with pytest.raises(TypeError, match=r"Conv2D\(1->2.*uint8.*normalise"):
        conv.forward(np.zeros((1, 1, 5, 5), np.uint8))
    with pytest.raises(TypeError, match="complex"):
        conv.forward(np.zeros((1, 1, 5, 5), np.complex64))


def test_non_contiguous_input(rng):
    conv = make_conv(rng, in_channels=3, out_channels=2, kernel_size=3, padding=1)
    x = rng.standard_normal((5, 6, 3, 2)).transpose(0, 2, 1, 3)[::2]  # (3, 3, 6, 2) strided
    xf = np.asfortranarray(rng.standard_normal((2, 3, 5, 5)))
    np.testing.assert_allclose(conv.forward(x), reference_of(conv, np.ascontiguousarray(x)), atol=1e-12)
    np.testing.assert_allclose(conv.forward(xf), reference_of(conv, np.ascontiguousarray(xf)), atol=1e-12)


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="before forward"):
        Conv2D(1, 1, 3).backward(np.zeros((1, 1, 1, 1), np.float32))


def test_eval_forward_keeps_no_cache(rng):
    conv = Conv2D(1, 1, 3)
    conv.forward(rng.standard_normal((1, 1, 5, 5)), training=False)
    assert conv.cache is None


def test_config_round_trip(rng):
    conv = Conv2D(4, 6, (3, 2), stride=2, padding=((1, 0), (0, 1)), dilation=(1, 2), groups=2,
                  bias=False, padding_mode="circular", flip_kernel=True, activation="relu",
                  dtype=np.float64)
    clone = Conv2D.from_config(conv.get_config())
    assert clone.get_config() == conv.get_config()
    assert repr(clone) == repr(conv)
    assert "padding_mode='circular'" in repr(conv) and "stride" in repr(conv)
    assert "activation='relu'" in repr(conv) and "activation" not in repr(Conv2D(1, 1, 3))


def test_weight_init(rng):
    conv = Conv2D(64, 64, 3, rng=rng)
    assert abs(conv.params["weight"].std() - np.sqrt(2 / (64 * 9))) < 0.005
    assert not conv.params["bias"].any()
    glorot = Conv2D(64, 64, 3, weight_init="glorot", rng=rng)
    assert np.abs(glorot.params["weight"]).max() <= np.sqrt(6 / (2 * 64 * 9))


def test_same_seed_same_weights():
    a = Conv2D(3, 4, 3, rng=7).params["weight"]
    b = Conv2D(3, 4, 3, rng=7).params["weight"]
    np.testing.assert_array_equal(a, b)


def test_thread_counts_agree(rng, monkeypatch):
    always_parallel(monkeypatch)       # small shapes would run on one thread
    conv = make_conv(rng, np.float32, in_channels=3, out_channels=8, kernel_size=3, padding=1)
    x = rng.standard_normal((4, 3, 9, 9)).astype(np.float32)
    old = minicnn.get_num_threads()
    try:
        results = []
        for t in (1, 2, 3):
            minicnn.set_num_threads(t)
            out = conv.forward(x)
            dx = conv.backward(np.ones_like(out))
            results.append((out, dx, conv.grads["weight"].copy()))
    finally:
        minicnn.set_num_threads(old)
    for r in results[1:]:
        for a, b in zip(results[0], r):
            np.testing.assert_array_equal(a, b)


# --- bad input ----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(in_channels=0, out_channels=1, kernel_size=3), ValueError, "in_channels must be a positive int"),
    (dict(in_channels=1, out_channels=-2, kernel_size=3), ValueError, "out_channels"),
    (dict(in_channels=1, out_channels=1, kernel_size=0), ValueError, "kernel_size must be >= 1"),
    (dict(in_channels=1, out_channels=1, kernel_size=(3, 3, 3)), TypeError, "kernel_size must be an int or a pair"),
    (dict(in_channels=1, out_channels=1, kernel_size=3, stride=0), ValueError, "stride must be >= 1"),
    (dict(in_channels=1, out_channels=1, kernel_size=3, dilation=(1, 0)), ValueError, "dilation"),
    (dict(in_channels=1, out_channels=1, kernel_size=3, padding=-1), ValueError, "padding must be >= 0"),
    (dict(in_channels=1, out_channels=1, kernel_size=3, padding="full"), ValueError, "padding must be"),
    (dict(in_channels=1, out_channels=1, kernel_size=3, padding=1.5), TypeError, "padding must be"),
    (dict(in_channels=4, out_channels=6, kernel_size=3, groups=4), ValueError, "groups=4 must divide"),
    (dict(in_channels=3, out_channels=6, kernel_size=3, groups=2), ValueError, "groups=2 must divide"),
    (dict(in_channels=1, out_channels=1, kernel_size=3, padding_mode="mirror"), ValueError,
     r"padding_mode must be one of .*got padding_mode='mirror'"),
    (dict(in_channels=1, out_channels=1, kernel_size=3, weight_init="lecun"), ValueError, "weight_init"),
    (dict(in_channels=1, out_channels=1, kernel_size=3, dtype=np.int32), TypeError, "dtype must be float32 or float64"),
    (dict(in_channels=1, out_channels=1, kernel_size=3, bias="yes"), TypeError, "bias must be True or False"),
    (dict(in_channels=1, out_channels=1, kernel_size=3, activation="tanh"), ValueError,
     r"Conv2D\(1->1, kernel_size=3\): activation must be None or 'relu', got 'tanh'"),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        Conv2D(**kwargs)


@pytest.mark.parametrize("conv_kwargs,shape,match", [
    (dict(kernel_size=3), (1, 2, 5, 5), r"Conv2D\(1->2, kernel_size=3\): expected input \(N, 1, H, W\), got \(1, 2, 5, 5\)"),
    (dict(kernel_size=3), (1, 5, 5), r"expected a 4-d input"),
    (dict(kernel_size=7), (1, 1, 5, 5), r"kernel size 7 along H does not fit the padded input of size 5 \+ 0 \+ 0"),
    (dict(kernel_size=3, dilation=3), (1, 1, 6, 6), r"kernel size 7 \(dilated\)"),
    (dict(kernel_size=3, padding=3, padding_mode="reflect"), (1, 1, 3, 3), r"reflect padding \(3, 3\) along H"),
    (dict(kernel_size=3, padding=4, padding_mode="circular"), (1, 1, 3, 8), r"circular padding"),
])
def test_bad_input(conv_kwargs, shape, match):
    conv = Conv2D(1, 2, **conv_kwargs)
    with pytest.raises(ValueError, match=match):
        conv.forward(np.zeros(shape, np.float32))


def test_functional_checks_weight_and_bias(rng):
    x = rng.standard_normal((1, 2, 5, 5))
    with pytest.raises(ValueError, match=r"expected input \(N, 3, H, W\)"):
        F.conv2d(x, rng.standard_normal((1, 3, 3, 3)))
    with pytest.raises(ValueError, match="bias must be"):
        F.conv2d(x, rng.standard_normal((4, 2, 3, 3)), rng.standard_normal(3))
    with pytest.raises(TypeError, match="differs from weight dtype"):
        F.conv2d(x.astype(np.float32), rng.standard_normal((4, 2, 3, 3)))
    with pytest.raises(ValueError, match="padding_mode"):
        F.conv2d(x, rng.standard_normal((4, 2, 3, 3)), padding_mode="constant")


def test_backward_checks_dout_shape(rng):
    conv = Conv2D(1, 2, 3)
    conv.forward(rng.standard_normal((1, 1, 5, 5)))
    with pytest.raises(ValueError, match=r"dout must be \(1, 2, 3, 3\)"):
        conv.backward(np.zeros((1, 2, 4, 4), np.float32))


@pytest.mark.parametrize("dtype", [np.complex64, bool, object])
def test_backward_refuses_a_dout_that_is_not_real(dtype):
    """Cast quietly before (a complex gradient lost its imaginary part)."""
    layer = Conv2D(1, 2, 3)
    out = layer.forward(np.ones((1, 1, 5, 5), np.float32))
    with pytest.raises(TypeError, match="conv2d_backward: expected a real .* dout, got"):
        layer.backward(np.ones(out.shape, dtype))
    assert layer.backward(np.ones(out.shape, np.int32)).dtype == np.float32
    dense = Dense(3, 2)
    dense.forward(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match="dense_backward: expected a real .* dout, got"):
        dense.backward(np.ones((2, 2), dtype))


@pytest.mark.parametrize("cfg", [dict(kernel_size=3), dict(kernel_size=3, padding=1, groups=2),
                                 dict(kernel_size=3, padding=1, padding_mode="reflect", groups=4),
                                 dict(kernel_size=1, activation="relu"), dict(kernel_size=1, groups=2),
                                 dict(kernel_size=3, padding="same", activation="relu")])
def test_workspace_reuse_never_changes_results(cfg, rng):
    """The layer reuses its im2col buffers between steps: evaluations, other input shapes
    and earlier steps must not leak into outputs or gradients."""
    conv = make_conv(rng, np.float64, in_channels=4, out_channels=4, **cfg)
    fresh = make_conv(rng, np.float64, in_channels=4, out_channels=4, **cfg)
    fresh.params["weight"][...] = conv.params["weight"]
    fresh.params["bias"][...] = conv.params["bias"]
    for shape in [(2, 4, 6, 6), (3, 4, 7, 5), (1, 4, 6, 6), (2, 4, 6, 6)]:
        x = rng.standard_normal(shape)
        conv.forward(rng.standard_normal(shape), training=False)     # an evaluation first
        conv.forward(rng.standard_normal(shape), training=True)      # a forward replaced by
        out = conv.forward(x, training=True)                         # the one backward uses
        dout = rng.standard_normal(out.shape)
        dx = conv.backward(dout)
        fresh._workspace = {}
        np.testing.assert_array_equal(out, fresh.forward(x, training=True))
        np.testing.assert_array_equal(dx, fresh.backward(dout))
        np.testing.assert_array_equal(conv.grads["weight"], fresh.grads["weight"])
        np.testing.assert_allclose(reference_of(conv, x), out, atol=1e-12)


@pytest.mark.parametrize("cfg", [dict(kernel_size=3, padding=1), dict(kernel_size=1, activation="relu")],
                         ids=["gemm", "pointwise-relu"])
def test_inference_from_two_threads_on_one_layer(cfg, rng):
    """A model serving requests from several threads: inference keeps no shared buffers."""
    import threading
    conv = make_conv(rng, np.float32, in_channels=16, out_channels=32, **cfg)
    inputs = [rng.standard_normal((8, 16, 16, 16)).astype(np.float32) for _ in range(2)]
    expected = [conv.forward(x, training=False) for x in inputs]
    bad = []

    def serve(k):
        for _ in range(100):
            if not np.array_equal(conv.forward(inputs[k], training=False), expected[k]):
                bad.append(k)

    threads = [threading.Thread(target=serve, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad, f"{len(bad)} of 200 outputs differed from the single-threaded ones"
