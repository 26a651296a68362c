"""The caching NumPy memory handler: current only inside minicnn's calls, safe, bounded."""
import resource
import subprocess
import sys
import threading

import numpy as np
import pytest

import minicnn
from minicnn import allocator
from minicnn.allocator import HANDLER_NAME, cache_info, cached_allocation
from minicnn.layers.base import Layer

from conftest import fast_kernels_only

try:
    from numpy._core.multiarray import get_handler_name
except ImportError:          # NumPy 1.x
    from numpy.core.multiarray import get_handler_name

DEFAULT = get_handler_name()
LARGE = allocator.LARGE_MIN // 4 + 1000      # float32 elements of a block the handler keeps


@pytest.fixture(autouse=True)
def _default_limit():
    limit = allocator.get_cache_limit()
    yield
    allocator.set_cache_limit(limit)


class Probe(Layer):
    """Records the current handler in forward and backward."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x, training=True):
        self.seen.append(("forward", get_handler_name()))
        return x

    def backward(self, dout, need_dx=True):
        self.seen.append(("backward", get_handler_name()))
        return dout


def small_net(rng):
    return minicnn.Sequential(minicnn.Conv2D(1, 8, 3, padding=1, rng=rng), minicnn.ReLU(),
                              minicnn.MaxPool2D(2), minicnn.Flatten(),
                              minicnn.Dense(8 * 14 * 14, 10, rng=rng))


def test_handler_current_only_inside_minicnn_calls(rng):
    probe = Probe()
    model = minicnn.Sequential(probe, minicnn.Dense(4 * LARGE // 64, 10, rng=rng))
    x = rng.standard_normal((64, 4 * LARGE // 64)).astype(np.float32)
    assert get_handler_name() == DEFAULT
    model.forward(x, training=True)
    model.backward(np.ones((64, 10), np.float32))
    model.forward(x, training=False)
    assert probe.seen == [("forward", HANDLER_NAME), ("backward", HANDLER_NAME),
                          ("forward", HANDLER_NAME)]
    assert get_handler_name() == DEFAULT
    assert get_handler_name(np.empty(LARGE, np.float32)) == DEFAULT


def test_optimizer_step_and_trainer_batches_run_inside(rng, monkeypatch):
    model = small_net(rng)
    seen = []
    real = minicnn.Adam._update

    def update(self, p, state):
        seen.append(("step", get_handler_name()))
        return real(self, p, state)

    monkeypatch.setattr(minicnn.Adam, "_update", update)

    def transform(xb):
        seen.append(("transform", get_handler_name()))
        return xb.astype(np.float32)

    trainer = minicnn.Trainer(model, minicnn.SoftmaxCrossEntropy(), minicnn.Adam(model.parameters()))
    x = rng.standard_normal((8, 1, 28, 28))
    trainer.fit(x, np.arange(8) % 10, epochs=1, batch_size=8, verbose=0, transform=transform)
    trainer.predict_logits(x, transform=transform)
    assert seen and {name for _, name in seen} == {HANDLER_NAME}
    assert {what for what, _ in seen} == {"step", "transform"}
    assert get_handler_name() == DEFAULT


def test_set_enabled_false_leaves_numpys_handler(rng):
    probe = Probe()
    model = minicnn.Sequential(probe)
    with cached_allocation():
        allocator.set_enabled(False)        # a block open before the switch still closes right
        try:
            model.forward(np.ones((2, 3)))
            with cached_allocation():
                assert get_handler_name() == HANDLER_NAME
        finally:
            allocator.set_enabled(True)
        assert get_handler_name() == HANDLER_NAME
    assert get_handler_name() == DEFAULT
    model.forward(np.ones((2, 3)))
    assert probe.seen == [("forward", HANDLER_NAME), ("forward", HANDLER_NAME)]
    allocator.set_enabled(False)
    try:
        model.forward(np.ones((2, 3)))
        assert not allocator.is_enabled()
    finally:
        allocator.set_enabled(True)
    assert probe.seen[-1] == ("forward", DEFAULT)
    with pytest.raises(TypeError, match="set_enabled: enabled must be True or False, got 0"):
        allocator.set_enabled(0)


def test_previous_handler_restored_on_exceptions(rng):
    model = small_net(rng)
    with pytest.raises(ValueError, match="layer 0"):
        model.forward(np.ones((2, 3, 28, 28), np.float32))
    assert get_handler_name() == DEFAULT
    with pytest.raises(RuntimeError):
        with cached_allocation():
            with cached_allocation():
                assert get_handler_name() == HANDLER_NAME
            assert get_handler_name() == HANDLER_NAME      # the inner block gave back the outer's
            raise RuntimeError
    assert get_handler_name() == DEFAULT


def test_other_threads_keep_their_handler():
    inside, other = threading.Event(), []

    def look():
        inside.wait()
        other.append(get_handler_name())

    t = threading.Thread(target=look)
    t.start()
    with cached_allocation():
        inside.set()
        t.join()
    assert other == [DEFAULT]


def test_arrays_outlive_the_block_and_free_anywhere():
    allocator.release_cache()                   # what earlier tests left kept must not count
    with cached_allocation():
        a = np.arange(LARGE, dtype=np.float32)
        small = np.arange(10.0)
    assert get_handler_name(a) == HANDLER_NAME and get_handler_name(small) == HANDLER_NAME
    assert a[-1] == LARGE - 1 and small.sum() == 45
    b = a * 2                                   # made outside: the default handler
    assert get_handler_name(b) == DEFAULT
    kept = cache_info()["kept_blocks"]
    t = threading.Thread(target=lambda arrays: arrays.clear(), args=([a, small],))
    del a, small
    t.start()
    t.join()                                    # the last references die in another thread,
    assert cache_info()["kept_blocks"] == kept  # outside minicnn's calls: back to malloc
    assert b[-1] == 2 * (LARGE - 1)

    def free_inside(arrays):
        with cached_allocation():
            arrays.clear()

    with cached_allocation():
        c = np.ones(LARGE, np.float32)
    t = threading.Thread(target=free_inside, args=([c],))
    del c
    t.start()
    t.join()                                    # inside a call of that thread: kept
    assert cache_info()["kept_blocks"] == kept + 1


def test_calloc_zeroes_a_reused_block():
    with cached_allocation():
        a = np.full(LARGE, 7.0, np.float32)
        del a
        reused = cache_info()["reused"]
        z = np.zeros(LARGE, np.float32)
        assert cache_info()["reused"] == reused + 1    # it did come from the kept block
    assert not z.any()


def test_realloc_keeps_the_contents():
    with cached_allocation():
        a = np.arange(10, dtype=np.float64)
        a.resize(LARGE, refcheck=False)                # small -> large
        assert np.array_equal(a[:10], np.arange(10)) and not a[10:].any()
        a[:] = 3
        a.resize(LARGE + 5, refcheck=False)            # within the block's size class
        a.resize(4 * LARGE, refcheck=False)            # large -> larger
        assert (a[:LARGE] == 3).all() and not a[LARGE + 5:].any()
        a.resize(3, refcheck=False)                    # large -> small
        assert (a == 3).all()


def test_kept_memory_is_bounded():
    allocator.release_cache()
    with cached_allocation():
        arrays = [np.ones(LARGE, np.float32) for _ in range(5)]
        arrays.pop()
        block = cache_info()["kept_bytes"]             # one block's size class
        assert cache_info()["kept_blocks"] == 1 and block >= LARGE * 4
        allocator.set_cache_limit(3 * block)
        evicted = cache_info()["evicted"]
        del arrays
    info = cache_info()
    assert info["kept_blocks"] == 3 and info["kept_bytes"] == 3 * block == info["limit"]
    assert info["evicted"] == evicted + 2              # the longest-kept made room
    allocator.set_cache_limit(block)                   # a lower limit gives back at once
    assert cache_info()["kept_blocks"] == 1
    allocator.set_cache_limit(0)
    assert cache_info()["kept_bytes"] == 0
    with cached_allocation():
        a = np.ones(LARGE, np.float32)
        del a
    assert cache_info()["kept_blocks"] == 0            # nothing is kept at limit 0


def test_kept_memory_never_exceeds_the_largest_working_set():
    allocator.release_cache()
    peak = cache_info()["peak_live_bytes"]
    with cached_allocation():
        for n in range(1, 40):                          # ever larger blocks, one at a time
            np.ones(LARGE * n // 4, np.float32)
        assert cache_info()["kept_blocks"] > 0
    info = cache_info()
    assert info["kept_bytes"] <= max(peak, info["peak_live_bytes"])
    assert allocator.release_cache() == info["kept_bytes"]
    assert cache_info()["kept_bytes"] == 0


def test_set_cache_limit_checks_its_argument():
    for bad in (-1, 1.5, "1", True, None):
        with pytest.raises(ValueError, match="set_cache_limit: nbytes must be an integer >= 0"):
            allocator.set_cache_limit(bad)


def test_threads_allocate_and_free_concurrently():
    errors = []
    handoff = []

    def work(seed):
        try:
            r = np.random.default_rng(seed)
            with cached_allocation():
                for i in range(200):
                    n = int(r.integers(LARGE // 2, 4 * LARGE))
                    a = np.full(n, seed, np.int32)
                    b = np.zeros(n // 3, np.int32)
                    if a[0] != seed or a[-1] != seed or b.any():
                        errors.append((seed, i))
                    handoff.append(a)                  # freed by whichever thread pops it
                    if len(handoff) > 4:
                        try:
                            handoff.pop(0)
                        except IndexError:
                            pass
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    live = cache_info()["live_bytes"]
    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    handoff.clear()
    assert errors == []
    assert cache_info()["live_bytes"] == live


def _batches(rng, batch=16):
    return (rng.standard_normal((4, batch, 1, 28, 28)).astype(np.float32),
            rng.integers(0, 10, (4, batch)))


def _train(model, batches, steps):
    loss = minicnn.SoftmaxCrossEntropy()
    opt = minicnn.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    xs, ys = batches
    for i in range(steps):
        loss.forward(model.forward(xs[i % 4], training=True), ys[i % 4])
        model.backward(loss.backward(), input_grad=False)
        opt.step()


def test_results_are_the_same_with_the_default_handler():
    cached = small_net(np.random.default_rng(5))
    _train(cached, _batches(np.random.default_rng(6)), 6)

    allocator.set_enabled(False)
    try:
        plain = small_net(np.random.default_rng(5))
        _train(plain, _batches(np.random.default_rng(6)), 6)
    finally:
        allocator.set_enabled(True)
    for a, b in zip(cached.parameters(), plain.parameters()):
        assert np.array_equal(a.value, b.value), a.name


@fast_kernels_only      # the readable ops' temporaries are NumPy's (einsum) own business
def test_training_steps_reuse_blocks_and_fault_no_pages(rng):
    model = small_net(rng)
    batches = _batches(rng, batch=32)
    _train(model, batches, 3)                          # warm-up: the cache fills
    fresh = cache_info()["fresh"]
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    _train(model, batches, 6)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    assert cache_info()["fresh"] == fresh               # every large block was a kept one
    # (with NumPy's default handler: over 100 a step; a few may come from elsewhere)
    assert faults < 6 * 8, f"{faults} page faults in 6 steps"


@fast_kernels_only      # the readable ops' temporaries are NumPy's (einsum) own business
def test_trainer_steps_reuse_blocks(rng):
    model = small_net(rng)
    trainer = minicnn.Trainer(model, minicnn.SoftmaxCrossEntropy(),
                              minicnn.SGD(model.parameters(), lr=0.01, momentum=0.9))
    x = rng.integers(0, 256, (4 * 64, 28, 28), dtype=np.uint8)   # batches of 200 KB
    y = rng.integers(0, 10, len(x))
    trainer.fit(x, y, epochs=1, batch_size=64, verbose=0, transform=minicnn.data.normalize)
    fresh = cache_info()["fresh"]
    trainer.fit(x, y, epochs=3, batch_size=64, verbose=0, transform=minicnn.data.normalize)
    # the last batch of an epoch dies as the epoch's loop returns, outside the calls: at
    # most one new block an epoch (a gradient that died outside made one every step)
    assert cache_info()["fresh"] - fresh <= 3


def test_importing_minicnn_leaves_the_handler(tmp_path):
    code = ("import numpy as np, minicnn\n"
            "try:\n    from numpy._core.multiarray import get_handler_name\n"
            "except ImportError:\n    from numpy.core.multiarray import get_handler_name\n"
            "print(get_handler_name(), get_handler_name(np.ones(1 << 20)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path).stdout.split()
    assert out == [DEFAULT, DEFAULT]
