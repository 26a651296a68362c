"""Every public door checks its arguments (issue 18, item 7): minicnn.functional on every
call, layers whose geometry is fixed once built. What used to crash the interpreter runs
in a child process, so a segfault fails a test instead of ending the run."""
import numpy as np
import pytest

import minicnn.functional as F
from minicnn import AvgPool2D, Conv2D, Dense, Dropout, LeakyReLU, MaxPool2D, Pad, geometry
from isolated import check_alive, run_python, run_script

#: the adversarial review's reproducers; each must end in one clean error
REPRODUCERS = {
    "segfault": "F.conv2d_forward(np.ones((1, 1, 1, 4)), np.ones((1, 1, 1, 2)), "
                "dilation=(1, -50_000_000))",
    "segfault, depthwise float32": "F.conv2d_forward(np.ones((1, 2, 1, 4), np.float32), "
                                   "np.ones((2, 1, 1, 2), np.float32), dilation=(1, -50_000_000), "
                                   "groups=2)",
    "garbage output": "print(F.conv2d_forward(np.ones((1, 1, 6, 6)), np.ones((1, 1, 3, 3)), "
                      "dilation=(-3, -3))[0].shape)",
    "double free": "out, c = F.conv2d_forward(np.ones((1, 1, 4, 64)), np.ones((1, 1, 3, 3)), "
                   "dilation=(-3, -40)); F.conv2d_backward(np.ones_like(out), c)",
    "double free through a changed cache": (
        "out, c = F.conv2d_forward(np.ones((1, 1, 4, 64)), np.ones((1, 1, 3, 3)), training=True)"
        "; c['dilation'] = (-3, -40); F.conv2d_backward(np.ones_like(out), c)"),
    "layer attribute": "m = Conv2D(1, 1, (1, 2)); m.dilation = (1, -50_000_000); "
                       "m(np.ones((1, 1, 1, 4), np.float32))",
    "layer attribute behind the property": (
        "m = Conv2D(1, 1, (1, 2)); m._dilation = (1, -50_000_000); "
        "m(np.ones((1, 1, 1, 4), np.float32))"),
    "dilation 0": "print(F.conv2d_forward(np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2)), "
                  "dilation=(0, 0))[0].shape)",
    "stride 0": "F.conv2d_forward(np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2)), stride=(0, 1))",
}
EXPECTED = {
    "segfault": r"ValueError: conv2d: dilation must be >= 1 in each axis, got \(1, -50000000\)",
    "segfault, depthwise float32": r"ValueError: conv2d: dilation must be >= 1",
    "garbage output": r"ValueError: conv2d: dilation must be >= 1 in each axis, got \(-3, -3\)",
    "double free": r"ValueError: conv2d: dilation must be >= 1 in each axis, got \(-3, -40\)",
    "double free through a changed cache": r"ValueError: conv2d_backward: the cache is not one "
                                           r"conv2d_forward\(training=True\) made: .*dilation",
    "layer attribute": r"AttributeError: Conv2D: dilation is fixed when the layer is built",
    "layer attribute behind the property": r"ValueError: Conv2D\(1->1, kernel_size=\(1, 2\)\): "
                                           r"dilation must be >= 1 in each axis",
    "dilation 0": r"ValueError: conv2d: dilation must be >= 1 in each axis, got \(0, 0\)",
    "stride 0": r"ValueError: conv2d: stride must be >= 1 in each axis, got \(0, 1\)",
}
DRIVER = """
import numpy as np
import minicnn.functional as F
from minicnn import Conv2D
CASES = %r
for name, code in CASES.items():
    print("CASE", name, flush=True)
    try:
        exec(code)
        print("RESULT", name, "\tno error", flush=True)
    except Exception as e:
        print("RESULT", name, "\t" + type(e).__name__ + ": " + str(e).splitlines()[0], flush=True)
"""


@pytest.fixture(scope="module")
def reproducer_results():
    proc = run_python(DRIVER % (REPRODUCERS,))
    started = [ln[5:] for ln in proc.stdout.splitlines() if ln.startswith("CASE ")]
    results = dict(ln[7:].split(" \t", 1) for ln in proc.stdout.splitlines()
                   if ln.startswith("RESULT "))
    return proc, started, results


@pytest.mark.parametrize("name", list(REPRODUCERS))
def test_reproducers_of_the_review_fail_cleanly(reproducer_results, name):
    import re
    proc, started, results = reproducer_results
    if name not in results:
        check_alive(proc)          # names the signal that killed it
        raise AssertionError(f"{name}: no result; the last case started was {started[-1:]}\n"
                             f"{proc.stderr[-2000:]}")
    assert re.match(EXPECTED[name], results[name]), results[name]


def test_fuzz_of_the_functional_entry_points_in_a_child_process():
    """Hypothesis, with negative, zero and huge arguments, in a child process whose address
    space is capped (safety_fuzz_worker.py): a crash fails here, as does a wrong result."""
    proc = check_alive(run_script("safety_fuzz_worker.py", "40"))
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    lines = dict(ln.split(": ", 1) for ln in proc.stdout.splitlines() if ": " in ln)
    print(proc.stdout)
    for name in ("conv2d_forward", "conv2d_backward(changed cache)", "pad", "pad_backward",
                 "max_pool2d", "max_pool2d_backward", "max_pool2d_2x2",
                 "max_pool2d_2x2_backward", "avg_pool2d", "avg_pool2d_backward", "dense",
                 "dense_backward"):
        refused, ran = (int(part.split()[0]) for part in lines[name].split(", "))
        assert refused > 0 and ran > 0, (name, lines[name])


# --- the same doors, in process (safe now) ---------------------------------------------------

@pytest.mark.parametrize("layer,attribute,value", [
    (Conv2D(1, 1, 3), "stride", (0, 1)), (Conv2D(1, 1, 3), "kernel_size", 5),
    (Conv2D(2, 2, 3, groups=2), "groups", 1), (Conv2D(1, 1, 3), "padding", 1),
    (MaxPool2D(2), "kernel_size", (1, -5)), (AvgPool2D(2), "stride", 3),
    (Pad(1), "padding", ((0, 20000), (0, 0))), (Dense(3, 2), "in_features", 4),
    # saved as changed, these would make a checkpoint that cannot be rebuilt
    (Conv2D(1, 1, 3), "padding_mode", "mirror"), (Conv2D(1, 1, 3), "activation", "tanh"),
    (Dense(3, 2), "weight_init", "ones"), (MaxPool2D(2), "ceil_mode", "yes"),
    (AvgPool2D(2), "mode", "median"), (Pad(1), "mode", "edge"), (Pad(1), "value", 2.0),
    (LeakyReLU(), "negative_slope", "steep"),
])
def test_layer_arguments_are_read_only(layer, attribute, value):
    before = getattr(layer, attribute)
    with pytest.raises(AttributeError, match=f"{type(layer).__name__}: {attribute} is fixed when "
                                             f"the layer is built"):
        setattr(layer, attribute, value)
    assert getattr(layer, attribute) == before


def test_dropout_checks_p_whenever_it_is_set():
    layer = Dropout(0.5)
    layer.p = 0.25
    assert layer.p == 0.25
    for bad, error in ((1.0, ValueError), (-0.1, ValueError), ("0.3", TypeError)):
        with pytest.raises(error, match=r"Dropout: p must be a number in \[0, 1\)"):
            layer.p = bad
    assert layer.p == 0.25


def test_geometry_values_beyond_the_kernels_int_are_refused():
    x, w = np.ones((1, 1, 4, 4)), np.ones((1, 1, 1, 1))
    for kwargs in (dict(stride=2**31), dict(dilation=(1, 2**40)), dict(padding=((0, 2**31), (0, 0)))):
        with pytest.raises(ValueError, match=r"conv2d: \w+ must be at most 2,147,483,647"):
            F.conv2d_forward(x, w, **kwargs)
    with pytest.raises(ValueError, match=r"max_pool2d: stride must be at most 2,147,483,647"):
        F.max_pool2d(x, 2, stride=10**30)
    # the largest accepted stride runs, one output pixel per axis
    out, _ = F.conv2d_forward(x, w, stride=geometry.MAX_EXTENT)
    assert out.shape == (1, 1, 1, 1)


@pytest.mark.parametrize("kwargs,match", [
    (dict(groups=0), "groups must be a positive int, got 0"),
    (dict(groups=1.0), "groups must be a positive int, got 1.0"),
    (dict(w=np.ones((1, 1, 0, 2))), r"kernel must be at least 1 x 1, got shape \(1, 1, 0, 2\)"),
    (dict(w=[[[[1.0]]]]), "expected a float32 or float64 weight, got list"),
    (dict(b=[0.0]), "bias must be None or a NumPy array, got list"),
    (dict(workspace=[]), "workspace must be None or a dict, got list"),
])
def test_conv2d_forward_checks_every_argument(kwargs, match):
    args = dict(x=np.ones((1, 1, 4, 4)), w=np.ones((1, 1, 2, 2)))
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        F.conv2d_forward(**args)


def forward_cache(**kwargs):
    x = np.random.default_rng(0).standard_normal((8, 4, 9, 9)).astype(np.float32)
    w = np.ones((4, 4 // kwargs.get("groups", 1), 3, 3), np.float32)
    return F.conv2d_forward(x, w, **kwargs)


@pytest.mark.parametrize("key,value,match", [
    ("stride", (2, 1), "padded shape .* and output size .* do not follow from its geometry"),
    ("dilation", (0, 1), "dilation must be >= 1"),
    ("x_shape", (8, 4, 90, 9), "do not follow from its geometry"),
    ("groups", 2, "does not take 4 input channels"),
    ("path", "depthwise", "a depthwise cache needs groups == channels > 1"),
    ("path", "somewhere", "path must be one of"),
    ("kernel", "os", "runs float32 on one of this CPU's GEMM kernels"),
    ("saved", np.ones(3, np.float32), "saved array must be a float32 array of shape"),
    ("relu_out", np.ones(3, np.float32), "relu_out must be a float32 array of shape"),
    ("padding", 1, "padding must be per side"),
    ("padding", "same", "padding must be an int"),
    ("w", np.ones((4, 4, 3, 3), np.float32).T, "C-contiguous weight"),
])
@pytest.mark.parametrize("padding", [0, 1])
def test_a_changed_cache_is_refused_before_any_kernel_runs(key, value, match, padding):
    out, cache = forward_cache(padding=padding, activation="relu")
    if key == "kernel" and cache["path"] not in ("direct", "winograd", "image"):
        cache["path"] = "direct"
    if key == "x_shape" and padding:
        value = (8, 4, 90, 9)
    cache[key] = value
    with pytest.raises(ValueError, match="conv2d_backward: the cache is not one "
                                         r"conv2d_forward\(training=True\) made: .*" + match):
        F.conv2d_backward(np.ones(out.shape, np.float32), cache)


def test_an_unchanged_cache_passes_again_and_a_missing_key_is_named():
    out, cache = forward_cache(groups=4)
    dx, dw, db = F.conv2d_backward(np.ones(out.shape, np.float32), cache)
    again = F.conv2d_backward(np.ones(out.shape, np.float32), cache)
    np.testing.assert_array_equal(again[1], dw)
    del cache["saved"]
    with pytest.raises(ValueError, match=r"it lacks \['saved'\]"):
        F.conv2d_backward(np.ones(out.shape, np.float32), cache)
    with pytest.raises(TypeError, match="cache must be the dict conv2d_forward returned"):
        F.conv2d_backward(np.ones(out.shape, np.float32), None)


@pytest.mark.parametrize("call,match", [
    (lambda: F.pad_backward(np.ones((1, 1, 2, 2)), 1, "zeros", (-1, 1)),
     r"pad_backward: in_hw must be a pair of ints \(H, W\) >= 0, got \(-1, 1\)"),
    (lambda: F.pad_backward(np.ones((1, 1, 8, 8)), 3, "reflect", (2, 2)),
     "pad_backward: reflect padding .* needs an input of size at least 4, got 2"),
    (lambda: F.pad(np.ones((1, 1, 0, 3)), 1, "replicate"),
     r"pad: replicate padding \(1, 1\) along H needs an input of size at least 1, got 0"),
    (lambda: F.max_pool2d_backward(np.ones((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), int),
                                   (1, 1, 2.5, 2)), "input_shape must be"),
    (lambda: F.avg_pool2d_backward(np.ones((1, 1, 1, 1)), (1, 1, -2, 2), 2),
     "input_shape must be"),
    (lambda: F.dense(np.ones((2, 3)), [[1.0, 2.0, 3.0]]), "expected a float32 or float64 weight"),
    (lambda: F.dense_backward(np.ones((2, 2)), np.ones((2, 3)), np.ones((2, 4))),
     r"dense_backward: expected x \(N, 4\)"),
])
def test_other_functions_check_their_arguments(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
