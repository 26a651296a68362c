"""Random, often invalid, layer arguments and inputs: a clear ValueError/TypeError or a right-shaped
result, never a crash or a silently wrong shape (run also against the bounds-checked build)."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn import AvgPool2D, Conv2D, MaxPool2D, Pad

small = st.integers(-1, 4)
pair = st.one_of(small, st.tuples(small, small))
padding = st.one_of(small, st.tuples(small, small),
                    st.tuples(st.tuples(small, small), st.tuples(small, small)),
                    st.sampled_from(["same", "valid", "full"]))
shapes = st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, 6), st.integers(0, 6))
dtypes = st.sampled_from([np.float32, np.float64, np.int32, np.complex64])


def run(make, shape, dtype, order):
    try:
        layer = make()
    except (ValueError, TypeError):
        return "rejected"
    x = np.ones(shape, dtype=dtype)
    x = np.asfortranarray(x) if order == "F" else x
    try:
        out = layer.forward(x)
    except (ValueError, TypeError):
        return "rejected"
    assert out.shape == (shape[0],) + layer.output_shape(shape[1:])
    if out.size:
        dx = layer.backward(np.ones_like(out))
        assert dx.shape == shape
    return "ran"


COUNTS = {}


@st.composite
def conv_cases(draw):
    """A plausible Conv2D case with, most of the time, one argument or the input made wrong."""
    groups = draw(st.sampled_from([1, 1, 2]))
    args = dict(in_channels=groups * draw(st.integers(1, 2)), out_channels=groups * draw(st.integers(1, 2)),
                kernel_size=draw(st.integers(1, 3)), stride=draw(st.integers(1, 2)),
                padding=draw(st.one_of(st.integers(0, 2), st.sampled_from(["same", "valid"]))),
                dilation=draw(st.integers(1, 2)), groups=groups,
                padding_mode=draw(st.sampled_from(["zeros", "reflect", "symmetric", "replicate", "circular"])))
    shape = [draw(st.integers(0, 2)), args["in_channels"], draw(st.integers(1, 6)), draw(st.integers(1, 6))]
    dtype = np.float32
    bad = draw(st.sampled_from([None, None, "in_channels", "kernel_size", "stride", "padding", "dilation",
                                "groups", "padding_mode", "channels", "rank", "dtype"]))
    if bad in ("in_channels", "kernel_size", "stride", "dilation", "groups"):
        args[bad] = draw(st.sampled_from([0, -1, 2.5, (1, 2, 3), True, 3]))
    elif bad == "padding":
        args[bad] = draw(st.sampled_from([-1, "full", (1,), ((1, 2), (3,)), 1.5]))
    elif bad == "padding_mode":
        args[bad] = "mirror"
    elif bad == "channels":
        shape[1] += 1
    elif bad == "rank":
        shape = shape[1:]
    elif bad == "dtype":
        dtype = draw(st.sampled_from([np.int32, np.uint8, np.complex64, bool]))
    return args, tuple(shape), dtype


@settings(max_examples=200, deadline=None)
@given(conv_cases(), st.sampled_from("CF"))
def test_conv2d(case, order):
    args, shape, dtype = case
    if len(shape) != 4:
        try:
            Conv2D(**args).forward(np.ones(shape, np.float32))
        except (ValueError, TypeError):
            COUNTS.setdefault("conv", []).append("rejected")
            return
        raise AssertionError("a 3-d input was accepted")
    COUNTS.setdefault("conv", []).append(run(lambda: Conv2D(**args), shape, dtype, order))


@st.composite
def pool_cases(draw):
    """A plausible pooling case with, most of the time, one argument or the input made wrong."""
    k = draw(st.integers(1, 3))
    args = dict(kernel_size=k, stride=draw(st.one_of(st.none(), st.integers(1, 3))),
                padding=draw(st.integers(0, k // 2)), ceil_mode=draw(st.booleans()))
    use_max = draw(st.booleans())
    if not use_max:
        args["count_include_pad"] = draw(st.booleans())
    shape = (draw(st.integers(0, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    dtype = np.float64
    bad = draw(st.sampled_from([None, None, "kernel_size", "stride", "padding", "ceil_mode", "dtype"]))
    if bad in ("kernel_size", "stride"):
        args[bad] = draw(st.sampled_from([0, -2, 1.5, (1, 1, 1), False]))
    elif bad == "padding":
        args[bad] = draw(st.sampled_from([-1, k + 1, "same", ((0, 5), (0, 0))]))
    elif bad == "ceil_mode":
        args[bad] = "yes"
    elif bad == "dtype":
        dtype = np.int64
    return (MaxPool2D if use_max else AvgPool2D), args, shape, dtype


@settings(max_examples=200, deadline=None)
@given(pool_cases(), st.sampled_from("CF"))
def test_pools(case, order):
    cls, args, shape, dtype = case
    COUNTS.setdefault("pool", []).append(run(lambda: cls(**args), shape, dtype, order))


@settings(max_examples=150, deadline=None)
@given(padding, st.sampled_from(["zeros", "constant", "reflect", "symmetric", "replicate",
                                 "circular", "edge"]), shapes, dtypes, st.sampled_from("CF"))
def test_pad(pad, mode, shape, dtype, order):
    COUNTS.setdefault("pad", []).append(run(lambda: Pad(pad, mode=mode), shape, dtype, order))


def test_both_outcomes_were_exercised():
    # the fuzzers above ran first (file order); each must have hit both valid and invalid cases
    for name in ("conv", "pool", "pad"):
        results = COUNTS.get(name, [])
        print(f"{name}: {len(results)} cases, {results.count('ran')} ran, "
              f"{results.count('rejected')} rejected with a message")
        if results:
            assert "ran" in results and "rejected" in results, (name, results.count("ran"))
