"""The backend switch (minicnn/backend.py): every layer on the fast kernels or on the readable
reference operations, and a learner's own operation in place of one."""
import numpy as np
import pytest

import minicnn
from minicnn import backend, functional, reference
from minicnn.architectures import build

from isolated import run_python


@pytest.fixture(autouse=True)
def same_backend_afterwards():
    """Each test starts on the fast backend and leaves the suite's own (MINICNN_BACKEND may
    run the whole suite on the reference one) with no registered operation."""
    with minicnn.use_backend("fast"):
        yield
    for name in list(backend._overrides):
        minicnn.register_op(name, None)


def train_lenet5(steps=10):
    """LeNet-5 in float64, `steps` SGD steps with momentum from fixed weights and data."""
    model = build("lenet5", rng=np.random.default_rng(0)).astype(np.float64)
    opt = minicnn.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss = minicnn.SoftmaxCrossEntropy()
    rng = np.random.default_rng(1)
    for _ in range(steps):
        x = rng.standard_normal((8, 1, 28, 28))
        y = rng.integers(0, 10, 8)
        loss.forward(model.forward(x, training=True), y)
        model.zero_grad()
        model.backward(loss.backward())
        opt.step()
    return model.state_dict()


def test_lenet5_trains_to_the_same_weights_on_both_backends():
    assert minicnn.get_backend() == "fast"
    fast = train_lenet5()
    with minicnn.use_backend("reference"):
        assert minicnn.get_backend() == "reference"
        slow = train_lenet5()
    assert minicnn.get_backend() == "fast"
    assert fast.keys() == slow.keys()
    for key in fast:
        np.testing.assert_allclose(slow[key], fast[key], rtol=0, atol=1e-9, err_msg=key)
    # and the weights moved: the test compares training, not two untouched copies
    start = build("lenet5", rng=np.random.default_rng(0)).state_dict()
    assert not np.allclose(start["0.weight"], fast["0.weight"])


def test_every_backend_has_every_operation():
    for name, module in backend.BACKENDS.items():
        missing = [op for op in backend.OPS if not callable(getattr(module, op, None))]
        assert not missing, (name, missing)


def test_use_backend_routes_the_layers(monkeypatch):
    seen = []
    real = reference.conv2d_forward
    monkeypatch.setattr(reference, "conv2d_forward",
                        lambda *a, **k: (seen.append(1), real(*a, **k))[1])
    layer = minicnn.Conv2D(1, 2, 3)
    x = np.ones((1, 1, 5, 5), np.float32)
    layer.forward(x)
    assert not seen
    minicnn.use_backend("reference")          # without `with`: for the rest of the program
    assert backend.ops.conv2d_forward is reference.conv2d_forward
    layer.forward(x)
    assert seen
    minicnn.use_backend("fast")
    assert backend.ops.conv2d_forward is functional.conv2d_forward


def test_the_block_restores_the_backend_on_an_error():
    with pytest.raises(RuntimeError):
        with minicnn.use_backend("reference"):
            raise RuntimeError("inside")
    assert minicnn.get_backend() == "fast"


def test_bad_names_are_refused():
    with pytest.raises(ValueError, match=r"use_backend: name must be one of \['fast', "
                                         r"'reference'\], got 'slow'"):
        minicnn.use_backend("slow")
    with pytest.raises(ValueError, match="register_op: name must be one of the operations"):
        minicnn.register_op("convolve", lambda x: x)
    with pytest.raises(TypeError, match="register_op: function must be callable or None"):
        minicnn.register_op("relu", 3)


def test_a_learner_registers_their_own_relu_and_gradchecks_it():
    calls = []

    def my_relu(x):
        calls.append("forward")
        return np.where(x > 0, x, 0.0)

    def my_relu_backward(dout, out):
        calls.append("backward")
        return dout * (out > 0)

    x = np.random.default_rng(0).standard_normal((4, 5)) + 0.05
    with minicnn.register_op("relu", my_relu), \
            minicnn.register_op("relu_backward", my_relu_backward):
        minicnn.gradcheck(minicnn.ReLU(), x)
        assert {"forward", "backward"} <= set(calls)
    assert backend.ops.relu is functional.relu


def test_a_wrong_registered_backward_fails_gradcheck():
    x = np.random.default_rng(0).standard_normal((4, 5)) + 0.05
    with minicnn.register_op("relu_backward", lambda dout, out: dout):   # forgets the gate
        with pytest.raises(minicnn.GradcheckError):
            minicnn.gradcheck(minicnn.ReLU(), x)


def test_a_registered_op_overrides_both_backends():
    with minicnn.register_op("tanh", np.tanh):
        assert backend.ops.tanh is np.tanh
        with minicnn.use_backend("reference"):
            assert backend.ops.tanh is np.tanh
    assert backend.ops.tanh is functional.tanh


@pytest.mark.parametrize("value,expected,warns", [("reference", "reference", False),
                                                  (" Reference ", "reference", False),
                                                  ("fast", "fast", False),
                                                  ("refernce", "fast", True)])
def test_environment_variable_picks_the_backend(value, expected, warns):
    code = ("import warnings; warnings.simplefilter('always'); import minicnn; "
            "print(minicnn.get_backend())")
    proc = run_python(code, timeout=120, env={"MINICNN_BACKEND": value})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected
    assert ("MINICNN_BACKEND must be one of" in proc.stderr) == warns


@pytest.mark.parametrize("layer,shape", [
    (lambda: minicnn.Conv2D(2, 3, 3, padding="same", padding_mode="reflect", dtype=np.float64),
     (2, 2, 5, 6)),
    (lambda: minicnn.MaxPool2D(2), (2, 2, 6, 4)),
    (lambda: minicnn.AvgPool2D(3, stride=2, padding=1), (2, 2, 7, 7)),
    (lambda: minicnn.Dense(6, 4, dtype=np.float64), (3, 6)),
    (lambda: minicnn.Pad(((1, 0), (2, 1)), mode="symmetric"), (2, 1, 4, 4)),
])
def test_layers_pass_gradcheck_on_the_reference_backend(layer, shape):
    x = np.random.default_rng(3).standard_normal(shape)
    with minicnn.use_backend("reference"):
        minicnn.gradcheck(layer(), x)
