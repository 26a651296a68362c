"""model.summary() without a shape, and clear errors for shapes a model cannot take."""
import numpy as np
import pytest

import minicnn
from minicnn import Conv2D, Dense, Flatten, MaxPool2D, Sequential
from minicnn.summary import activation_bytes


def conv_net(**kwargs):
    return Sequential(Conv2D(1, 4, 3, padding=1, rng=0), MaxPool2D(2), Flatten(), Dense(4 * 14 * 14, 10, rng=0),
                      **kwargs)


def test_summary_uses_the_shape_the_model_last_ran_on():
    model = conv_net()
    model.forward(np.zeros((2, 1, 28, 28), np.float32))
    table = model.summary(print_fn=None)
    assert table.input_shape == (1, 28, 28) and table.rows[-1]["output_shape"] == (10,)


def test_summary_uses_the_shape_given_at_construction():
    table = conv_net(input_shape=(1, 28, 28)).summary(print_fn=None)
    assert table.total_macs > 0 and table.rows[0]["output_shape"] == (4, 28, 28)
    with pytest.raises(ValueError, match=r"Sequential: input_shape must be 1 to 4 positive sizes"):
        conv_net(input_shape=(1, 0, 28))


def test_summary_uses_the_shape_a_checkpoint_records(tmp_path):
    conv_net().save(tmp_path / "m.npz", metadata={"input_shape": [1, 28, 28]})
    assert minicnn.load(tmp_path / "m.npz").summary(print_fn=None).input_shape == (1, 28, 28)


def test_summary_without_any_shape_says_what_is_missing():
    with pytest.raises(ValueError, match=r"no input shape .*model.summary\(\(1, 28, 28\)\).*"
                                         r"input_shape=\(1, 28, 28\).*run it on a batch"):
        conv_net().summary()


def test_a_failed_forward_does_not_become_the_default_shape():
    model = conv_net(input_shape=(1, 28, 28))
    with pytest.raises(ValueError):
        model.forward(np.zeros((1, 3, 28, 28), np.float32))
    assert model.summary(print_fn=None).input_shape == (1, 28, 28)


@pytest.mark.parametrize("shape,match", [
    ((28, 28), r"Conv2D takes images \(N, C, H, W\); give the input shape as \(C, H, W\)"),
    ((1, 8, 8), r"layer 3 Dense.*cannot take"),
    ((1, -28, 28), r"input_shape must be 1 to 4 positive sizes"),
    ("1,28,28", r"input_shape must be a tuple of ints such as \(1, 28, 28\)"),
    ((1.5, 28, 28), r"input_shape must be a tuple of ints"),
    (28, r"input_shape must be a tuple of ints"),
])
def test_shapes_the_model_cannot_take(shape, match):
    with pytest.raises(ValueError, match=match):
        conv_net().summary(shape, print_fn=None)


def test_activation_bytes_counts_input_and_every_output():
    table = conv_net().summary((1, 28, 28), print_fn=None)
    values = 784 + 4 * 784 + 4 * 196 + 4 * 196 + 10
    assert activation_bytes(table) == 4 * values and activation_bytes(table, 8) == 8 * values
    huge = Sequential(minicnn.Pad(((0, 20000), (0, 20000))))
    assert activation_bytes(huge.summary((1, 28, 28), print_fn=None)) > 1.5e9  # computed, not allocated
