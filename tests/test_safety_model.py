"""Shared layers, threads and Dropout (issue 18, item 8): what gave silently wrong gradients
is refused with a clear error."""
import threading

import numpy as np
import pytest

import minicnn
from minicnn import Conv2D, Dense, Dropout, Flatten, ReLU, Sequential, Tanh
from minicnn.layers import Layer
from minicnn.model import ConcurrentUseError


@pytest.mark.parametrize("make", [
    lambda d: Sequential(d, Tanh(), d),
    lambda d: Sequential(d, Tanh()).add(d),
    lambda d: Sequential(*Sequential(d, Tanh()).layers, d),
], ids=["built", "added", "from another model's layers"])
def test_a_layer_used_twice_in_one_model_is_refused(make):
    with pytest.raises(ValueError, match=r"Sequential: layer 2 Dense\(6, 6\) is layer 0 already; "
                                         r".* can appear only once in a model"):
        make(Dense(6, 6))


def test_a_shared_conv_is_refused_and_one_slipped_in_through_layers_too():
    conv = Conv2D(2, 2, 3, padding=1)
    with pytest.raises(ValueError, match=r"Conv2D\(2->2.*is layer 0 already"):
        Sequential(conv, ReLU(), conv)
    model = Sequential(conv, ReLU())
    model.layers.append(conv)
    x = np.ones((1, 2, 4, 4), np.float32)
    with pytest.raises(ValueError, match="a layer appears twice"):
        model(x)
    model.layers.pop()
    assert model(x).shape == (1, 2, 4, 4)          # the model is usable again
    model.backward(np.ones((1, 2, 4, 4)))


def test_the_same_layer_in_two_models_is_allowed():
    d = Dense(3, 3)
    a, b = Sequential(d, ReLU()), Sequential(Tanh(), d)
    x = np.ones((2, 3), np.float32)
    assert a(x).shape == b(x).shape == (2, 3)


def test_dropout_refuses_a_backward_after_an_eval_forward():
    layer = Dropout(0.5, rng=0)
    x = np.ones((4, 3), np.float32)
    layer.forward(x, training=True)
    layer.forward(x, training=False)
    with pytest.raises(RuntimeError, match=r"Dropout\(\): backward called before forward\(x, "
                                           r"training=True\)"):
        layer.backward(np.ones_like(x))


class Gate(Layer):
    """The identity, whose forward waits at an event (to hold a pass open in one thread)."""

    def __init__(self):
        super().__init__()
        self.entered, self.go = threading.Event(), threading.Event()

    def forward(self, x, training=True):
        self.entered.set()
        assert self.go.wait(30)
        return x

    def backward(self, dout):
        return dout


def test_a_training_pass_of_another_thread_is_refused_not_waited_for():
    gate = Gate()
    model = Sequential(gate, Dense(3, 2, rng=0))
    x = np.ones((2, 3), np.float32)
    worker = threading.Thread(target=model.forward, args=(x, True), name="trainer-1")
    worker.start()
    assert gate.entered.wait(30)
    gate.go.clear()
    try:
        for call in (lambda: model.forward(x, True), lambda: model.backward(np.ones((2, 2))),
                     lambda: model.forward(x, False)):
            with pytest.raises(ConcurrentUseError, match=r"Sequential: .* from thread "
                                                         r"'MainThread' while another thread "
                                                         r"trains it"):
                call()
    finally:
        gate.go.set()
        worker.join()
    # the other thread's forward finished: this thread's backward of it is refused too
    with pytest.raises(ConcurrentUseError, match="whose last training forward ran in another "
                                                 "thread"):
        model.backward(np.ones((2, 2)))
    model.forward(x, True)                  # this thread's own pass is fine
    model.backward(np.ones((2, 2)))


def test_two_threads_training_one_model_are_detected():
    """Two Trainers fit one model at once: one of them stops with ConcurrentUseError (the
    review saw 494 of 600 gradients match neither thread's)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2048, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 4, 2048)
    model = Sequential(Conv2D(1, 8, 3, padding=1, rng=0), ReLU(), Flatten(), Dense(512, 4, rng=1))
    errors, start = [], threading.Barrier(2)

    def train():
        trainer = minicnn.Trainer(model, minicnn.SoftmaxCrossEntropy(),
                                  minicnn.SGD(model.parameters(), lr=0.01))
        start.wait()
        try:
            trainer.fit(x, y, epochs=3, batch_size=16, verbose=0, seed=0)
        except ConcurrentUseError as e:
            errors.append(e)

    threads = [threading.Thread(target=train) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors, "two threads trained one model and nothing noticed"
    assert "training one model from two threads at once" in str(errors[0])


def test_inference_from_two_threads_at_once_is_allowed():
    model = Sequential(Conv2D(1, 4, 3, rng=0), ReLU(), Flatten(), Dense(144, 3, rng=1))
    x = np.random.default_rng(1).standard_normal((64, 1, 8, 8)).astype(np.float32)
    expected = model.predict(x)
    results = []

    def run():
        results.append([model.predict(x, batch_size=8) for _ in range(20)])

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in sum(results, []):
        np.testing.assert_array_equal(got, expected)


def test_a_model_copies_and_pickles_with_its_guard():
    import copy
    import pickle
    model = Sequential(Dense(3, 2, rng=0))
    x = np.ones((1, 3), np.float32)
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        np.testing.assert_array_equal(other(x), model(x))
        other.backward(np.ones((1, 2)))
