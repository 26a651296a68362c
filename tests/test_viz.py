"""minicnn.viz: the arrays each picture draws (no matplotlib needed), the pictures themselves
when matplotlib is installed, and one line naming the extra when it is not."""
import sys

import numpy as np
import pytest

from conftest import fake_dataset
from minicnn import (AvgPool2D, Conv2D, Dense, Flatten, GlobalAvgPool2D, Pad, Sequential,
                     viz)
from minicnn.architectures import lenet5
from minicnn.data import mnist as M
from minicnn.extras import MissingExtraError
from minicnn.recipes import save_plots, train_mnist

PNG = b"\x89PNG\r\n\x1a\n"
HISTORY = {"loss": [0.5, 0.2, 0.1], "accuracy": [0.8, 0.9, 0.95], "val_loss": [0.4, 0.3, 0.25],
           "val_accuracy": [0.85, None, 0.9]}


def test_filters_are_a_copy_of_the_chosen_convolution():
    model = lenet5(rng=0)
    w = viz.filters(model)
    assert w.shape == (6, 1, 5, 5) and w.dtype == np.float64
    np.testing.assert_array_equal(w, model.layers[0].params["weight"])
    w[...] = 0
    assert model.layers[0].params["weight"].any()
    assert viz.filters(model, 2).shape == viz.filters(model, model.layers[2]).shape == (16, 6, 5, 5)
    with pytest.raises(ValueError, match=r"viz.filters: layer 1 is MaxPool2D\(kernel_size=2\), not a "
                                         r"Conv2D; the convolutions are layers \[0, 2\]"):
        viz.filters(model, 1)
    with pytest.raises(ValueError, match=r"viz.filters: layer must be the index of a Conv2D \[0, 2\]"):
        viz.filters(model, 10)
    with pytest.raises(ValueError, match="viz.filters: the model has no Conv2D layer"):
        viz.filters(Sequential(Flatten()))


def test_feature_maps_are_each_layers_output_until_flatten():
    model = lenet5(rng=0)
    image = np.random.default_rng(0).standard_normal((28, 28)).astype(np.float32)
    maps = viz.feature_maps(model, image)
    assert [label for label, _ in maps][:2] == ["input", f"0: {model.layers[0]!r}"]
    assert [m.shape for _, m in maps] == [(1, 28, 28), (6, 28, 28), (6, 14, 14), (16, 10, 10),
                                          (16, 5, 5)]
    np.testing.assert_allclose(maps[-1][1], model[:4].forward(image[None, None], training=False)[0])
    with pytest.raises(ValueError, match=r"viz.feature_maps: image must be one image \(H, W\)"):
        viz.feature_maps(model, np.zeros((2, 1, 28, 28)))


def test_receptive_field_region_of_lenet5():
    model = lenet5(rng=0)
    assert viz.receptive_field_region(model, (1, 28, 28)) == ((6, 22), (6, 22))      # 16, middle
    assert viz.receptive_field_region(model, (1, 28, 28), 2, (0, 0)) == ((-2, 12), (-2, 12))
    assert viz.receptive_field_region(model, (1, 28, 28), 0, (27, 0)) == ((25, 30), (-2, 3))
    with pytest.raises(ValueError, match=r"unit must be \(row, col\) with 0 <= row < 5 and 0 <= col "
                                         r"< 5 \(layer 3 outputs 5 x 5\), got \(5, 0\)"):
        viz.receptive_field_region(model, (1, 28, 28), 3, (5, 0))
    with pytest.raises(ValueError, match=r"layer must be one of \[0, 1, 2, 3\] .* got 5"):
        viz.receptive_field_region(model, (1, 28, 28), 5)


@pytest.mark.parametrize("layer", range(6))
def test_the_region_is_where_the_units_gradient_reaches(layer):
    """Linear layers with random weights: no input pixel outside a unit's region moves it, and
    when the region lies inside the input (no tap in any padding) its edges do."""
    rng = np.random.default_rng(1)
    model = Sequential(
        Conv2D(1, 2, 3, padding="same", dtype=np.float64, rng=rng), AvgPool2D(2),
        Conv2D(2, 2, (3, 2), stride=2, dilation=(2, 1), padding=((1, 0), (2, 1)), dtype=np.float64,
               rng=rng),
        Pad(((2, 0), (0, 1))), Conv2D(2, 2, 2, stride=(1, 2), dtype=np.float64, rng=rng),
        GlobalAvgPool2D(), Flatten(), Dense(2, 2, dtype=np.float64, rng=rng))
    shape = (1, 19, 22)
    part = model[:layer + 1]
    out = part.forward(np.ones((1,) + shape), training=True)
    inside = 0
    for unit in np.ndindex(*out.shape[2:]):
        dout = np.zeros_like(out)
        dout[0, 0][unit] = 1.0
        rows, cols = np.nonzero(part.backward(dout)[0, 0])
        (top, bottom), (left, right) = viz.receptive_field_region(model, shape, layer, unit)
        assert top <= rows.min(initial=top) and rows.max(initial=top) < bottom, unit
        assert left <= cols.min(initial=left) and cols.max(initial=left) < right, unit
        if 0 <= top and bottom <= shape[1] and 0 <= left and right <= shape[2]:
            assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (top, bottom, left,
                                                                                 right), unit
            inside += 1
    assert inside or layer == 5


def test_training_curves_in_percent_with_gaps():
    curves = viz.training_curves(HISTORY)
    np.testing.assert_array_equal(curves["epoch"], [1, 2, 3])
    np.testing.assert_allclose(curves["val_accuracy"], [85, np.nan, 90])
    np.testing.assert_allclose(curves["accuracy"], [80, 90, 95])
    assert np.isnan(viz.training_curves({"loss": [1.0]})["val_loss"]).all()
    with pytest.raises(ValueError, match="holds no epoch"):
        viz.training_curves({"loss": []})


def test_pictures_are_drawn_and_return_their_arrays(tmp_path):
    pytest.importorskip("matplotlib")
    model = Sequential(Conv2D(1, 3, 3, padding=1, rng=0), AvgPool2D(2), Conv2D(3, 2, 3, rng=0),
                       Flatten())
    image = np.zeros((12, 12), np.float32)
    image[2:10, 5:7] = 2.0
    w = viz.plot_filters(model, tmp_path / "f.png", layer=2)
    maps = viz.plot_feature_maps(model, image, tmp_path / "m.png")
    region = viz.plot_receptive_field(model, image, tmp_path / "r.png", layer=2, unit=(0, 0))
    curves = viz.plot_training_curves(HISTORY, tmp_path / "c.png", "lenet5", accuracy=0.9)
    assert w.shape == (2, 3, 3, 3) and len(maps) == 4 and region == ((-1, 7), (-1, 7))
    assert list(curves["epoch"]) == [1, 2, 3]
    viz.plot_filters(model, tmp_path / "f0.png")
    for name in ("f", "f0", "m", "r", "c"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == PNG


@pytest.fixture
def no_matplotlib(monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)     # import matplotlib fails


def test_without_matplotlib_one_line_names_the_extra(no_matplotlib, tmp_path):
    assert viz.filters(lenet5()).shape == (6, 1, 5, 5)           # the arrays need no matplotlib
    with pytest.raises(MissingExtraError) as e:
        viz.plot_filters(lenet5(), tmp_path / "f.png")
    assert str(e.value) == ("viz.plot_filters needs matplotlib, which is not installed: "
                            "pip install 'minicnn[plot]'")
    assert isinstance(e.value, ImportError) and not (tmp_path / "f.png").exists()
    assert save_plots(HISTORY, lenet5(), str(tmp_path), "lenet5") is None


def test_train_says_when_it_skips_pictures(no_matplotlib, tmp_path, monkeypatch):
    monkeypatch.setattr(M, "fetch", lambda url, progress=True: (_ for _ in ()).throw(OSError("offline")))
    fake_dataset(monkeypatch, n=16, root=tmp_path / "data")
    lines = []
    train_mnist(epochs=1, batch_size=8, data_dir=str(tmp_path / "data"), out=str(tmp_path / "runs"),
                verbose=0, threads=1, print_fn=lines.append)
    skipped = [line for line in lines if "pictures" in line]
    assert skipped == ["pictures skipped: matplotlib is not installed (pip install 'minicnn[plot]' "
                       "draws the training curves and first-layer filters)"]


def test_train_draws_its_pictures_titled_with_the_model(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    calls = []
    monkeypatch.setattr(viz, "plot_training_curves", lambda *a: calls.append(a))
    paths = save_plots(HISTORY, lenet5(), str(tmp_path), "lenet5", 0.875)
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["lenet5-curves.png", "lenet5-filters.png"]
    assert calls[0][2:] == ("lenet5", 0.875)
    assert save_plots(HISTORY, Sequential(Flatten(), Dense(784, 10)), str(tmp_path), "mlp") == [
        str(tmp_path / "mlp-curves.png")]
