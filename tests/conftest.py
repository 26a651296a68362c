import os

import numpy as np
import pytest

import minicnn
from minicnn import gemm
from minicnn.functional import conv_direct, conv_image, conv_winograd, thresholds


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _seed():
    minicnn.rng.seed(0)
    yield


@pytest.fixture(params=list(gemm.available()) or [None], ids=lambda k: str(k))
def kernel(request, monkeypatch):
    """Select each own GEMM kernel in turn; afterwards, assert that it really ran (not
    np.matmul's fallback), unless the test is marked no_kernel."""
    if request.param is None:
        pytest.skip("no own GEMM kernel for this CPU or build")
    before = gemm.kernel_name()
    gemm.use(request.param)
    calls = []
    # every way into a kernel module takes it as the first argument
    for module, name in [(gemm, "_product"), (conv_image, "forward"),
                         (conv_image, "backward_input"), (conv_image, "backward_weight"),
                         (conv_direct, "forward"), (conv_direct, "backward"),
                         (conv_winograd, "forward"), (conv_winograd, "backward")]:
        def counted(kern, *args, real=getattr(module, name), **kwargs):
            calls.append(kern.__name__)
            return real(kern, *args, **kwargs)

        monkeypatch.setattr(module, name, counted)
    yield request.param
    gemm.use(before)
    if not request.node.get_closest_marker("no_kernel"):
        assert calls and set(calls) == {f"minicnn._kernels.gemm_{request.param}"}


def always_parallel(monkeypatch):
    """Every kernel on minicnn's thread count, however small its work (tests of thread
    independence use small shapes)."""
    monkeypatch.setattr(thresholds, "PARALLEL_MIN", 1)
    monkeypatch.setattr(thresholds, "PARALLEL_MIN_MACS", 1)


def on_thread_counts(run, counts=(1, 2, 3)):
    """run() under each of minicnn's thread counts in turn (the count restored after)."""
    old = minicnn.get_num_threads()
    results = []
    try:
        for t in counts:
            minicnn.set_num_threads(t)
            results.append(run())
    finally:
        minicnn.set_num_threads(old)
    return results


def assert_same_arrays(runs):
    """Every run's arrays (all but the last item, the path) equal the first run's, bit for
    bit."""
    for run in runs[1:]:
        for a, r in zip(run[:-1], runs[0][:-1]):
            np.testing.assert_array_equal(a, r)


def set_rule(monkeypatch, rule):
    """Steer the float32 convolutions' path choice: 'batch' (batch GEMMs only), 'image'
    (image by image wherever allowed), 'direct' (stride-1 direct kernels, the image path
    off) or 'direct+image' (both)."""
    monkeypatch.setattr(thresholds, "IMAGE_MIN", 0 if "image" in rule else 1 << 40)
    if "direct" not in rule:
        monkeypatch.setattr(thresholds, "DIRECT_TAPS_MAX", 0)


def assert_gradients(forward, arrays, analytic, dout, rtol=1e-6, atol=1e-8):
    """Each analytic gradient of sum(forward() * dout) against central differences with
    respect to the array it names (``arrays``: name -> a contiguous float64 array, changed
    in place and restored; ``analytic``: name -> its gradient from a backward)."""
    from minicnn.gradcheck import numerical_gradient

    for name, v in arrays.items():
        numeric = numerical_gradient(lambda: float(np.sum(forward() * dout)), v)
        np.testing.assert_allclose(analytic[name], numeric, rtol=rtol, atol=atol, err_msg=name)


def mnist_root():
    """The MINICNN_DATA folder when it holds MNIST, else None."""
    root = os.environ.get("MINICNN_DATA")
    if root and os.path.isdir(os.path.join(root, "mnist")):
        return root
    return None


def fake_dataset(monkeypatch, n=5, root=None):
    """A tiny synthetic MNIST: the loader's published hashes and sizes are swapped for its own.

    Returns (arrays, files): the arrays and their IDX bytes by file name; with ``root``,
    the files are also written to root/mnist/ (uncompressed).
    """
    import hashlib

    from minicnn.data import mnist as M

    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n).astype(np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n).astype(np.uint8)}
    files = {}
    for name, a in arrays.items():
        header = bytes([0, 0, 8, a.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in a.shape)
        files[name] = header + a.tobytes()
        if root is not None:
            os.makedirs(os.path.join(root, "mnist"), exist_ok=True)
            with open(os.path.join(root, "mnist", name), "wb") as f:
                f.write(files[name])
    monkeypatch.setitem(M.DATASETS, "mnist", {
        "mirrors": ("http://mirror-a/", "http://mirror-b/"),
        "sha256": {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}})
    monkeypatch.setattr(M, "SIZES", {k: len(v) for k, v in files.items()})
    return arrays, files


#: a test that trains on real MNIST for hundreds of steps: the same training runs on the fast
#: backend, and on the readable one (MINICNN_BACKEND=reference) it would take minutes
long_training = pytest.mark.skipif(minicnn.get_backend() == "reference",
                                   reason="long training; run on the fast backend")
#: a test of the fast kernels' own behaviour (the path a convolution takes, bit-exact results
#: across strides, BLAS threads): it does not apply to the reference backend
fast_kernels_only = pytest.mark.skipif(minicnn.get_backend() == "reference",
                                       reason="tests the fast kernels themselves")
