"""Hypothesis fuzz of minicnn.functional's entry points with negative, zero and huge
arguments, run as a child process by test_safety_functional.py (a kernel that reads or
writes outside an array can kill the process instead of raising).

Every call must either raise ValueError, TypeError or MemoryError (the address space is
capped, so a huge but valid size fails to allocate instead of filling the machine) or
return what the readable versions in minicnn.reference compute. The convolution's backward pass
is also fed its own cache with one entry changed. Prints one line per entry point:
how many cases were refused and how many ran.

Usage: python safety_fuzz_worker.py EXAMPLES
"""
import resource
import sys

resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

import numpy as np  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import minicnn  # noqa: E402
import minicnn.functional as F  # noqa: E402
from minicnn import reference as R  # noqa: E402

CLEAN = (ValueError, TypeError, MemoryError)
EXTREMES = [-2**63, -2**31 - 1, -2**31, -50_000_000, -40, -3, -1, 0, 2**31 - 1, 2**31, 2**40,
            10**30]
extreme = st.sampled_from(EXTREMES)
#: an argument gone wrong: an extreme int, alone or beside a plausible one
bad_pair = st.one_of(extreme, st.tuples(extreme, st.integers(1, 2)),
                     st.tuples(st.integers(1, 2), extreme))
bad_padding = st.one_of(extreme, st.tuples(st.integers(0, 1), extreme),
                        st.tuples(st.tuples(st.integers(0, 1), extreme),
                                  st.tuples(extreme, st.integers(0, 1))))
modes = st.sampled_from(["zeros", "constant", "reflect", "symmetric", "replicate", "circular"])
dims = st.integers(0, 5)


def spoil(draw, args, kinds):
    """Half the time, one of ``args`` (named in ``kinds``: name -> strategy) made wrong."""
    name = draw(st.sampled_from([None] * len(kinds) + sorted(kinds)))
    if name is not None:
        args[name] = draw(kinds[name])
    return args


COUNTS = {}
EXAMPLES = int(sys.argv[1]) if len(sys.argv) > 1 else 100


def fuzz(examples_scale=1.0):
    return settings(max_examples=max(1, int(EXAMPLES * examples_scale)), deadline=None,
                    database=None, suppress_health_check=list(HealthCheck))


def outcome(name, call):
    """call() -> its result, or None when it raised one of the CLEAN errors (counted)."""
    counts = COUNTS.setdefault(name, [0, 0])
    try:
        result = call()
    except CLEAN:
        counts[0] += 1
        return None
    counts[1] += 1
    return result


def close(a, b, what, tol=1e-9):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    scale = max(1.0, float(np.abs(b).max(initial=0)))
    assert np.allclose(a, b, atol=tol * scale, rtol=tol), (what, np.abs(a - b).max())


def huge(*arrays):
    """Whether an array has a side too long for the slow references (an empty batch padded by
    2**31 - 1 is a valid, empty, result; the reference would loop over every padded row)."""
    return any(max(a.shape, default=0) > 64 for a in arrays)


def array(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


small = st.integers(1, 3)
small_pair = st.one_of(small, st.tuples(small, small))
small_padding = st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 2)),
                          st.tuples(st.tuples(st.integers(0, 2), st.integers(0, 2)),
                                    st.tuples(st.integers(0, 2), st.integers(0, 2))))


@st.composite
def conv_args(draw):
    args = dict(stride=draw(small_pair), dilation=draw(small_pair), groups=draw(small),
                padding=draw(st.one_of(small_padding, st.sampled_from(["same", "valid"]))))
    return spoil(draw, args, {"stride": bad_pair, "dilation": bad_pair, "groups": extreme,
                              "padding": bad_padding})


@fuzz(2)
@given(st.tuples(dims, small, st.integers(1, 7), st.integers(1, 7)), small,
       st.sampled_from([0, 1, 2, 2, 3, 3]), st.sampled_from([0, 1, 2, 2, 3, 3]),
       conv_args(), modes.filter(lambda m: m != "constant"), st.sampled_from([None, "relu"]),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2**32 - 1))
def conv(xs, per_group, kh, kw, args, mode, act, dtype, seed):
    rng = np.random.default_rng(seed)
    groups = args["groups"]
    g = groups if 1 <= groups <= 3 else 1
    x = array(rng, (xs[0], xs[1] * g, xs[2], xs[3]), dtype)
    w = array(rng, (per_group * g, xs[1], kh, kw), dtype)
    b = array(rng, (per_group * g,), dtype)
    stride, padding, dilation = args["stride"], args["padding"], args["dilation"]
    res = outcome("conv2d_forward", lambda: F.conv2d_forward(
        x, w, b, stride, padding, dilation, groups, mode, activation=act))
    if res is None:
        return
    out, cache = res
    if huge(out):
        return
    tol = 1e-4 if dtype == np.float32 else 1e-9

    def ref(x, w, b, act=None):
        return R.conv2d_forward(x.astype(np.float64), w.astype(np.float64), b, stride, padding,
                                dilation, groups, mode, activation=act)[0]

    close(out, ref(x, w, b, act), "conv forward", tol)
    dout = array(rng, out.shape, dtype)
    gated = dout * (out > 0) if act else dout
    dx, dw, db = F.conv2d_backward(dout, cache)
    # the convolution is linear in x and in w: <dx, v> = <dout, conv(v)> (bias-free)
    v, u = array(rng, x.shape), array(rng, w.shape)
    close(np.sum(dx * v), np.sum(gated * ref(v, w, None)), "dx", tol)
    close(np.sum(dw * u), np.sum(gated * ref(x, u, None)), "dw", tol)
    close(db, gated.sum(axis=(0, 2, 3)), "db", tol)


shape4 = st.tuples(extreme, extreme, extreme, extreme)
CACHE_EDITS = st.one_of(
    st.tuples(st.sampled_from(["stride", "dilation"]), st.one_of(bad_pair, small_pair)),
    st.tuples(st.just("groups"), st.one_of(extreme, small)),
    st.tuples(st.just("padding"), st.one_of(bad_padding, small_padding)),
    st.tuples(st.sampled_from(["x_shape", "padded_shape"]),
              st.one_of(shape4, st.tuples(small, small, small, small))),
    st.tuples(st.just("out_hw"), st.one_of(st.tuples(extreme, extreme), st.tuples(small, small))),
    st.tuples(st.just("path"), st.sampled_from(["depthwise", "direct", "winograd", "image",
                                                "pointwise", "gemm", "other"])),
    st.tuples(st.just("kernel"), st.sampled_from(["avx512", "avx2", "numpy", "os"])),
    st.tuples(st.sampled_from(["saved", "w", "relu_out"]), st.sampled_from(
        ["transposed", "smaller", "float64", None])),
)


@fuzz(2)
@given(st.sampled_from([(1, 1, 6, 6, 1, 3, 1), (2, 2, 5, 7, 2, 3, 2), (8, 4, 9, 9, 1, 3, 1),
                        (8, 2, 6, 6, 1, 1, 1), (1, 3, 4, 4, 3, 2, 1), (8, 32, 8, 8, 1, 3, 32)]),
       st.sampled_from([0, 1]), CACHE_EDITS, st.integers(0, 2**32 - 1))
def conv_cache(case, pad, edit, seed):
    """A valid forward (each path: batch GEMM, depthwise, direct, pointwise, Winograd),
    then one entry of its cache changed before the backward pass."""
    n, c, h, wd, groups, k, o_per = case
    rng = np.random.default_rng(seed)
    x = array(rng, (n, c, h, wd), np.float32)
    w = array(rng, (o_per * groups, c // groups, k, k), np.float32)
    out, cache = F.conv2d_forward(x, w, None, 1, pad, 1, groups, activation="relu")
    key, value = edit
    if key in ("saved", "w", "relu_out"):
        a = cache[key]
        value = {"transposed": a.T, "smaller": a[..., :-1], "float64": a.astype(np.float64),
                 None: None}[value] if a is not None else value
    cache[key] = value
    outcome("conv2d_backward(changed cache)",
            lambda: F.conv2d_backward(np.ones(out.shape, np.float32), cache))


@fuzz()
@given(st.tuples(dims, dims, dims, dims), st.one_of(small_padding, bad_padding), modes,
       st.sampled_from([0.0, 1.5]), st.integers(0, 2**32 - 1))
def pad(shape, padding, mode, value, seed):
    x = array(np.random.default_rng(seed), shape)
    value = value if mode == "constant" else 0.0
    out = outcome("pad", lambda: F.pad(x, padding, mode, value))
    if out is not None and not huge(out):
        close(out, R.pad(x, padding, mode, value), "pad")


@fuzz()
@given(st.tuples(dims, dims, dims, dims), st.one_of(small_padding, bad_padding), modes,
       st.one_of(st.tuples(dims, dims), st.tuples(extreme, dims)), st.integers(0, 2**32 - 1))
def pad_backward(in_shape, padding, mode, in_hw, seed):
    rng = np.random.default_rng(seed)
    try:
        (t, b), (l, r) = minicnn.geometry.normalize_padding(padding, "t", False)
        shape = in_shape[:2] + (in_hw[0] + t + b, in_hw[1] + l + r)
        dout = array(rng, shape if max(shape) < 100 else in_shape)
    except CLEAN:
        dout = array(rng, in_shape)
    dx = outcome("pad_backward", lambda: F.pad_backward(dout, padding, mode, in_hw))
    if dx is not None and not huge(dx):
        # the adjoint of pad: <pad(v), dout> = <v, dx>
        v = array(rng, dx.shape)
        close(np.sum(F.pad(v, padding, mode) * dout), np.sum(v * dx), "pad_backward")


@st.composite
def pool_args(draw):
    k = draw(small_pair)
    kk = k if isinstance(k, tuple) else (k, k)
    pad = draw(st.tuples(st.tuples(st.integers(0, kk[0] // 2), st.integers(0, kk[0] // 2)),
                         st.tuples(st.integers(0, kk[1] // 2), st.integers(0, kk[1] // 2))))
    args = dict(k=k, stride=draw(st.one_of(st.none(), small_pair)), padding=pad)
    return spoil(draw, args, {"k": bad_pair, "stride": bad_pair, "padding": bad_padding})


POOL_SHAPES = st.tuples(dims, dims, st.integers(0, 7), st.integers(0, 7))


@fuzz()
@given(POOL_SHAPES, pool_args(), st.booleans(), st.integers(0, 2**32 - 1))
def max_pool(shape, args, ceil, seed):
    rng = np.random.default_rng(seed)
    x = array(rng, shape)
    k, stride, padding = args["k"], args["stride"], args["padding"]
    res = outcome("max_pool2d", lambda: F.max_pool2d(x, k, stride, padding, ceil))
    if res is None:
        return
    out, argmax = res
    ref, ref_arg = R.max_pool2d(x, k, stride, padding, ceil)
    close(out, ref, "max_pool2d")
    assert np.array_equal(argmax, ref_arg)
    dout = array(rng, out.shape)
    dx = outcome("max_pool2d_backward", lambda: F.max_pool2d_backward(dout, argmax, shape))
    close(dx.sum(), dout.sum(), "max_pool2d_backward keeps the total")


@fuzz()
@given(POOL_SHAPES, st.one_of(st.tuples(dims, dims, dims, dims), shape4),
       st.one_of(st.integers(-2, 40), extreme), st.integers(0, 2**32 - 1))
def max_pool_backward(shape, input_shape, index, seed):
    rng = np.random.default_rng(seed)
    dshape = shape[:2] + (shape[2] // 2, shape[3] // 2)
    dout = array(rng, dshape)
    argmax = np.full(dshape, index if -2**63 <= index < 2**63 else 0, np.int64)
    outcome("max_pool2d_backward", lambda: F.max_pool2d_backward(dout, argmax, input_shape))
    code = np.full(dshape, index % 2**31, np.int32)
    for in_shape in (input_shape, shape):
        outcome("max_pool2d_2x2_backward", lambda: F.max_pool2d_2x2_backward(dout, code, in_shape))


@fuzz()
@given(POOL_SHAPES, st.integers(0, 2**32 - 1))
def max_pool_2x2(shape, seed):
    rng = np.random.default_rng(seed)
    x = array(rng, shape)
    res = outcome("max_pool2d_2x2", lambda: F.max_pool2d_2x2(x))
    if res is not None:
        out, code = res
        close(out, R.max_pool2d(x, 2)[0], "max_pool2d_2x2")
        dx = F.max_pool2d_2x2_backward(np.ones(out.shape), code, shape)
        close(dx.sum(), out.size, "max_pool2d_2x2_backward")


@fuzz(3.0)     # few drawn cases make a valid backward (its shape must fit): enough to hit some
@given(POOL_SHAPES, pool_args(), st.booleans(), st.booleans(),
       st.one_of(st.none(), st.tuples(dims, dims, dims, dims), shape4), st.integers(0, 2**32 - 1))
def avg_pool(shape, args, ceil, include, other_shape, seed):
    rng = np.random.default_rng(seed)
    x = array(rng, shape)
    k, stride, padding = args["k"], args["stride"], args["padding"]
    out = outcome("avg_pool2d", lambda: F.avg_pool2d(x, k, stride, padding, ceil, include))
    if out is not None:
        close(out, R.avg_pool2d(x, k, stride, padding, ceil, include), "avg_pool2d")
    dout = array(rng, out.shape if out is not None else shape)
    in_shape = shape if other_shape is None else other_shape
    dx = outcome("avg_pool2d_backward", lambda: F.avg_pool2d_backward(
        dout, in_shape, k, stride, padding, ceil, include))
    if dx is not None and out is not None and other_shape is None:
        # the adjoint of avg_pool2d: <avg_pool2d(v), dout> = <v, dx>
        v = array(rng, shape)
        close(np.sum(R.avg_pool2d(v, k, stride, padding, ceil, include) * dout), np.sum(v * dx),
              "avg_pool2d_backward")
    outcome("global_avg_pool2d", lambda: F.global_avg_pool2d(x))
    g = array(rng, shape[:2] + (1, 1))
    outcome("global_avg_pool2d_backward", lambda: F.global_avg_pool2d_backward(g, in_shape))


@fuzz()
@given(st.tuples(dims, dims), st.tuples(dims, dims), st.tuples(dims, dims), st.booleans(),
       st.integers(0, 2**32 - 1))
def dense(xs, ws, ds, bias, seed):
    rng = np.random.default_rng(seed)
    x, w, dout = array(rng, xs, np.float32), array(rng, ws, np.float32), array(rng, ds)
    b = array(rng, ws[:1], np.float32) if bias else None
    out = outcome("dense", lambda: F.dense(x, w, b))
    if out is not None:
        close(out, x.astype(np.float64) @ w.T + (0 if b is None else b), "dense", 1e-4)
    outcome("dense_backward", lambda: F.dense_backward(dout, x, w, bias))


if __name__ == "__main__":
    for fuzz_one in (conv, conv_cache, pad, pad_backward, max_pool, max_pool_backward,
                     max_pool_2x2, avg_pool, dense):
        fuzz_one()
    for name, (refused, ran) in sorted(COUNTS.items()):
        print(f"{name}: {refused} refused, {ran} ran")
