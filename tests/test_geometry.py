"""The geometry formulas, checked on hand-computed values."""
import pytest

from minicnn import geometry as g


@pytest.mark.parametrize("n,k,s,p,d,expected", [
    (4, 2, 1, 0, 1, 3), (4, 2, 2, 0, 1, 2), (28, 5, 1, 2, 1, 28), (32, 3, 2, 1, 1, 16),
    (7, 3, 1, 0, 2, 3), (5, 7, 1, 0, 1, 0), (6, 3, 3, 0, 1, 2),
])
def test_conv_output_size(n, k, s, p, d, expected):
    # the notes' (X + 2P - K) / S + 1, with dilation widening K
    assert g.conv_output_size(n, k, s, p, p, d) == expected


@pytest.mark.parametrize("n,k,s,d,pads", [
    (28, 3, 1, 1, (1, 1)), (28, 5, 1, 1, (2, 2)), (28, 2, 1, 1, (0, 1)), (5, 3, 2, 1, (1, 1)),
    (6, 3, 2, 1, (0, 1)), (7, 3, 1, 2, (2, 2)), (1, 5, 1, 1, (2, 2)),
])
def test_same_padding(n, k, s, d, pads):
    assert g.same_padding(n, k, s, d) == pads
    out = g.conv_output_size(n, k, s, *pads, dilation=d)
    assert out == -(-n // s)


@pytest.mark.parametrize("n,k,s,p,ceil,expected", [
    (5, 2, 2, 0, False, 2), (5, 2, 2, 0, True, 3), (4, 2, 2, 0, True, 2), (6, 3, 2, 1, True, 4),
    (5, 3, 2, 1, True, 3),
])
def test_pool_output_size(n, k, s, p, ceil, expected):
    assert g.pool_output_size(n, k, s, p, p, ceil) == expected


def test_receptive_field_recurrence_matches_closed_form():
    layers = [(3, 1), (3, 2), (5, 1), (2, 2), (3, 3)]  # (k, s)
    r, j = 1, 1
    for k, s in layers:
        r, j = g.receptive_field_step(r, j, k, s)
    closed = 1
    prod = 1
    for k, s in layers:
        closed += (k - 1) * prod
        prod *= s
    assert r == closed == 1 + 2 * 1 + 2 * 1 + 4 * 2 + 1 * 2 + 2 * 4
    assert j == 12


def test_normalize_padding_forms():
    assert g.normalize_padding(2, "x") == ((2, 2), (2, 2))
    assert g.normalize_padding((1, 3), "x") == ((1, 1), (3, 3))
    assert g.normalize_padding(((0, 1), (2, 3)), "x") == ((0, 1), (2, 3))
    assert g.normalize_padding("valid", "x") == ((0, 0), (0, 0))
    assert g.normalize_padding("SAME", "x") == "same"
    with pytest.raises(ValueError, match="Pool: padding must be"):
        g.normalize_padding("same", "Pool", allow_same=False)
    with pytest.raises(TypeError, match="x: padding must be"):
        g.normalize_padding((1, 2, 3), "x")


def test_flat_four_numbers_are_pytorch_pad_order():
    # torch.nn.functional.pad(x, (left, right, top, bottom)) pads W by (left, right), H by the rest
    assert g.normalize_padding((1, 2, 3, 4), "x") == ((3, 4), (1, 2))
    assert g.normalize_padding([0, 0, 5, 0], "x", allow_same=False) == ((5, 0), (0, 0))
    with pytest.raises(ValueError, match=r"x: padding must be >= 0 on every side, got \(1, -2, 0, 0\)"):
        g.normalize_padding((1, -2, 0, 0), "x")


@pytest.mark.parametrize("padding,count", [((1, 2, 3), 3), ((1,) * 5, 5), ([1, 2, 3, 4, 5, 6], 6),
                                           ((), 0)])
def test_a_wrong_count_of_numbers_names_the_forms(padding, count):
    with pytest.raises(TypeError) as e:
        g.normalize_padding(padding, "Pad")
    message = str(e.value)
    assert message.startswith("Pad: padding must be an int, (h, w), ((top, bottom), (left, right)), "
                              "(left, right, top, bottom) as torch.nn.functional.pad orders it")
    assert f"({count} numbers: give one int, 2 (h, w) or 4 (left, right, top, bottom))" in message


def test_layers_take_the_flat_form_and_save_it():
    import numpy as np

    import minicnn
    from minicnn import Conv2D, Pad, Sequential

    x = np.random.default_rng(0).standard_normal((2, 1, 5, 6))
    flat = Sequential(Pad((1, 2, 3, 0), mode="reflect"), Conv2D(1, 2, 3, padding=(0, 1, 1, 0),
                                                                 dtype=np.float64, rng=0))
    nested = Sequential(Pad(((3, 0), (1, 2)), mode="reflect"),
                        Conv2D(1, 2, 3, padding=((1, 0), (0, 1)), dtype=np.float64, rng=0))
    assert flat[0].padding == ((3, 0), (1, 2)) and flat[1].padding == ((1, 0), (0, 1))
    np.testing.assert_array_equal(flat(x), nested(x))
    assert minicnn.layers.MaxPool2D(3, padding=(1, 0, 0, 1)).padding == ((0, 1), (1, 0))
    assert Pad.from_config(flat[0].get_config()).padding == ((3, 0), (1, 2))
    assert repr(flat[0]) == "Pad(padding=(1, 2, 3, 0), mode='reflect')"


def test_pair():
    assert g.pair(3, "k", "o") == (3, 3) and g.pair([2, 4], "k", "o") == (2, 4)
    with pytest.raises(TypeError, match="o: k must be an int or a pair"):
        g.pair(True, "k", "o")
    with pytest.raises(ValueError, match=r"o: k must be >= 1 in each axis, got \(1, 0\)"):
        g.pair((1, 0), "k", "o")
