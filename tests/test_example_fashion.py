"""examples/fashion_mnist/train.py: its ResNet builds, summarises, trains a step and saves
through the public API (the full run is the README's command, not a test)."""
import importlib.util
import os

import numpy as np

import minicnn as mc

EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "fashion_mnist",
                       "train.py")


def load_example():
    spec = importlib.util.spec_from_file_location("fashion_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_resnet_builds_trains_a_step_and_reloads(tmp_path):
    ex = load_example()
    model = ex.resnet(rng=0)
    table = model.summary(print_fn=None)
    assert table.output_shape == (10,)
    assert any(r["layer"].strip().startswith("BatchNorm2D") for r in table)
    assert sum(r["layer"] == "Residual" for r in table) == 2
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (8, 28, 28), dtype=np.uint8)
    shifted = ex.augment(raw.copy(), rng)
    assert shifted.shape == raw.shape and shifted.dtype == np.uint8
    opt = mc.SGD(model.parameters(), lr=0.1, momentum=0.9)
    trainer = mc.Trainer(model, mc.SoftmaxCrossEntropy(), opt)
    trainer.fit(raw, rng.integers(0, 10, 8), epochs=1, batch_size=4, transform=ex.transform,
                augment=ex.augment, verbose=0)
    model.eval()
    model.save(tmp_path / "r.npz")
    x = ex.transform(raw)
    np.testing.assert_array_equal(mc.load(tmp_path / "r.npz").predict(x), model.predict(x))
