"""Property-based fuzzing of valid configurations: every layer of the engine, forward and
backward, against minicnn.reference, on inputs of every memory layout.

Forward and backward passes are compared with the reference ops'. Backward passes are
also compared with the reference forwards' adjoints by the dot-product test: for an
operation linear in its input (convolution, average pooling, padding) and random
directions v and dout, <dout, ref(x + v) - ref(x)> = <dx, v> holds exactly, so a wrong
index in a backward kernel shows up as a mismatch. Max pooling is linear once its argmax
is fixed, so a tiny step is used there. Layers see C-ordered, Fortran-ordered, strided and
transposed views, batch size 1 and 1x1 images. The number of cases run is printed
(pytest -s shows it).
"""
import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minicnn import AvgPool2D, Conv2D, MaxPool2D, Pad
from minicnn import reference as R

MODES = ["zeros", "reflect", "symmetric", "replicate", "circular"]
LAYOUTS = ["C", "F", "strided", "transposed"]
COUNTS = {}


def count(name):
    COUNTS[name] = COUNTS.get(name, 0) + 1


def in_layout(x, layout):
    """The same values as x, stored in another memory layout."""
    if layout == "F":
        return np.asfortranarray(x)
    if layout == "strided":
        big = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
        big[..., ::2] = x
        return big[..., ::2]
    if layout == "transposed":
        return np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    return x


def check_adjoint(ref, x, dx, dout, rng, step=1.0):
    """<dout, ref(x + step*v) - ref(x)> / step == <dx, v> for a random direction v."""
    v = rng.standard_normal(x.shape)
    lhs = np.sum(dout * (ref(x + step * v) - ref(x))) / step
    rhs = np.sum(dx * v)
    assert abs(lhs - rhs) <= 1e-7 * max(1.0, abs(lhs)), (lhs, rhs)


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    if draw(st.booleans()):
        cin = cout = groups   # depthwise
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.one_of(
        st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 2)),
        st.tuples(st.tuples(st.integers(0, 2), st.integers(0, 2)),
                  st.tuples(st.integers(0, 2), st.integers(0, 2))),
        st.sampled_from(["same", "valid"])))
    cfg = dict(in_channels=cin, out_channels=cout, kernel_size=k,
               stride=(draw(st.integers(1, 3)), draw(st.integers(1, 2))),
               dilation=(draw(st.integers(1, 2)), draw(st.integers(1, 2))), padding=padding,
               groups=groups, bias=draw(st.booleans()), padding_mode=draw(st.sampled_from(MODES)),
               flip_kernel=draw(st.booleans()))
    shape = (draw(st.integers(1, 2)), cin, draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    return cfg, shape, draw(st.sampled_from(LAYOUTS)), draw(st.integers(0, 2**16))


@settings(max_examples=150, deadline=None)
@given(conv_cases())
def test_conv2d_forward_and_backward(case):
    cfg, shape, layout, seed = case
    count("conv2d drawn")
    conv = Conv2D(dtype=np.float64, rng=np.random.default_rng(seed), **cfg)
    try:
        conv.output_shape(shape[1:])
    except ValueError:
        assume(False)   # the kernel does not fit this input: covered by the invalid fuzz
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)

    def ref(xx, w=conv.params["weight"]):
        return R.conv2d(xx, w, conv.params.get("bias"), conv.stride, conv.padding, conv.dilation,
                        conv.groups, conv.padding_mode, conv.flip_kernel)

    out = conv.forward(in_layout(x, layout))
    np.testing.assert_allclose(out, ref(x), rtol=1e-10, atol=1e-10)
    dout = rng.standard_normal(out.shape)
    dx = conv.backward(in_layout(dout, layout))
    check_adjoint(ref, x, dx, dout, rng)
    check_adjoint(lambda w: ref(x, w), conv.params["weight"], conv.grads["weight"], dout, rng)
    _, cache = R.conv2d_forward(x, conv.params["weight"], conv.params.get("bias"), conv.stride,
                                conv.padding, conv.dilation, conv.groups, conv.padding_mode,
                                conv.flip_kernel)
    ref_dx, ref_dw, ref_db = R.conv2d_backward(dout, cache)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(conv.grads["weight"], ref_dw, rtol=1e-10, atol=1e-10)
    if "bias" in conv.params:
        np.testing.assert_allclose(conv.grads["bias"], ref_db, atol=1e-10)
    count("conv2d ran")


@st.composite
def pool_cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    padding = tuple((draw(st.integers(0, k // 2)), draw(st.integers(0, k // 2))) for k in (kh, kw))
    h = draw(st.integers(max(1, kh - sum(padding[0])), 7))
    w = draw(st.integers(max(1, kw - sum(padding[1])), 7))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w)
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return (shape, (kh, kw), stride, padding, draw(st.booleans()), draw(st.booleans()),
            draw(st.sampled_from(LAYOUTS)), draw(st.integers(0, 2**16)))


@settings(max_examples=150, deadline=None)
@given(pool_cases(), st.sampled_from(["max", "avg"]))
def test_pools_forward_and_backward(case, mode):
    shape, k, s, p, ceil_mode, count_include_pad, layout, seed = case
    count(f"{mode}_pool2d ran")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    if mode == "max":
        layer = MaxPool2D(k, s, p, ceil_mode=ceil_mode)
        ref = lambda xx: R.max_pool2d(xx, k, s, p, ceil_mode)[0]  # noqa: E731
        step = 1e-6      # small enough that no window's maximum changes place
    else:
        layer = AvgPool2D(k, s, p, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
        ref = lambda xx: R.avg_pool2d(xx, k, s, p, ceil_mode, count_include_pad)  # noqa: E731
        step = 1.0
    out = layer.forward(in_layout(x, layout))
    np.testing.assert_allclose(out, ref(x), rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(in_layout(dout, layout))
    v = rng.standard_normal(x.shape)
    lhs = np.sum(dout * (ref(x + step * v) - ref(x))) / step
    assert abs(lhs - np.sum(dx * v)) <= 1e-5 * max(1.0, abs(lhs))
    if mode == "max":
        ref_dx = R.max_pool2d_backward(dout, R.max_pool2d(x, k, s, p, ceil_mode)[1], shape)
    else:
        ref_dx = R.avg_pool2d_backward(dout, shape, k, s, p, ceil_mode, count_include_pad)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-12, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(MODES + ["constant"]),
       st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 5), st.integers(1, 5)),
       st.tuples(st.tuples(st.integers(0, 4), st.integers(0, 4)),
                 st.tuples(st.integers(0, 4), st.integers(0, 4))),
       st.sampled_from(LAYOUTS), st.integers(0, 2**16))
def test_pad_forward_and_backward(mode, shape, padding, layout, seed):
    count("pad drawn")
    limit = {"reflect": 1, "symmetric": 0, "circular": 0}.get(mode)
    assume(limit is None or all(max(s) <= n - limit for n, s in zip(shape[2:], padding)))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    layer = Pad(padding, mode=mode, value=1.5 if mode == "constant" else 0.0)
    out = layer.forward(in_layout(x, layout))
    ref = lambda xx: R.pad(xx, padding, mode, 1.5 if mode == "constant" else 0.0)  # noqa: E731
    np.testing.assert_array_equal(out, ref(x))
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(in_layout(dout, layout))
    check_adjoint(ref, x, dx, dout, rng)
    np.testing.assert_allclose(dx, R.pad_backward(dout, padding, mode, shape[2:]), rtol=1e-14)
    count("pad ran")


def test_report_counts():
    """Runs last in this file: how many fuzzed cases each test tried and ran."""
    print("\nvalid-configuration fuzzing: " + ", ".join(f"{k} {v}" for k, v in sorted(COUNTS.items())))
