"""The command line on a tiny synthetic data set, and one real end-to-end run on an MNIST subset."""
import os
import subprocess
import sys

import numpy as np
import pytest

import minicnn
from conftest import long_training, fake_dataset, mnist_root
from minicnn import cli
from minicnn.data import mnist as M
from minicnn.recipes import RECIPES


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setattr(M, "fetch", lambda url, progress=True: (_ for _ in ()).throw(OSError("offline")))
    arrays, _ = fake_dataset(monkeypatch, n=40, root=tmp_path / "data")
    return tmp_path, arrays


def test_train_evaluate_predict(tiny, capsys):
    tmp, arrays = tiny
    out_dir = tmp / "runs"
    code = cli.main(["train", "--data-dir", str(tmp / "data"), "--epochs", "1", "--batch-size", "8",
                     "--out", str(out_dir), "--quiet", "--threads", "1"])
    text = capsys.readouterr().out
    assert code == 0
    assert "Conv2D(1->6, kernel_size=5, padding='same', activation='relu')" in text and "61,706" in text
    assert "test accuracy:" in text and "true\\pred" in text
    ckpt = out_dir / "lenet5.npz"
    assert ckpt.exists() and (out_dir / "lenet5-history.jsonl").exists()
    model = minicnn.load(ckpt)
    assert model.metadata["arch"] == "lenet5" and model.metadata["epochs"] == 1

    assert cli.main(["evaluate", str(ckpt), "--data-dir", str(tmp / "data")]) == 0
    assert "test accuracy" in capsys.readouterr().out

    images = tmp / "images.npy"
    np.save(images, arrays["t10k-images-idx3-ubyte"][:3])
    assert cli.main(["predict", str(ckpt), str(images), "--top", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("0: ") and lines[0].count("%") == 2


def test_summary_and_info(capsys):
    assert cli.main(["summary", "--arch", "dwsep"]) == 0
    out = capsys.readouterr().out
    assert "groups=16" in out and "padding_mode='reflect'" in out and "receptive field: 15" in out
    assert cli.main(["info"]) == 0
    assert "openmp" in capsys.readouterr().out


def test_missing_data_and_bad_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(M, "fetch", lambda url, progress=True: (_ for _ in ()).throw(OSError("offline")))
    assert cli.main(["train", "--data-dir", str(tmp_path), "--quiet", "--out",
                     str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "minicnn train: error:" in err and "missing" in err and "--data-dir" in err
    bogus = tmp_path / "x.npz"
    bogus.write_bytes(b"junk")
    assert cli.main(["evaluate", str(bogus)]) == 2
    assert "not a minicnn checkpoint" in capsys.readouterr().err


def test_predict_rejects_bad_images(tiny, capsys):
    tmp, _ = tiny
    model = minicnn.architectures.lenet5()
    model.save(tmp / "m.npz")
    np.save(tmp / "bad.npy", np.zeros((2, 5, 5), np.uint8))
    assert cli.main(["predict", str(tmp / "m.npz"), str(tmp / "bad.npy")]) == 2
    assert "expected images (N, 28, 28)" in capsys.readouterr().err


def test_console_script_entry_point(tmp_path):
    # from another folder, so that the installed package is what runs, not the source tree
    out = subprocess.run([sys.executable, "-m", "minicnn", "summary", "--arch", "lenet5"],
                         capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert "receptive field: 16" in out


@long_training
@pytest.mark.skipif(mnist_root() is None, reason="real MNIST not found: set MINICNN_DATA")
def test_end_to_end_on_real_mnist_subset():
    from minicnn.data import load_mnist, normalize

    (x, y), (xt, yt) = load_mnist(download=False)
    minicnn.seed(0)
    model = minicnn.architectures.lenet5()
    opt = minicnn.SGD(model.parameters(), lr=0.02, momentum=0.9)
    # one epoch of 625 steps (about 2 s); a one-cycle schedule gets furthest in so few
    schedule = minicnn.OneCycleLR(opt, max_lr=0.05, total_steps=625)
    trainer = minicnn.Trainer(model, minicnn.SoftmaxCrossEntropy(), opt, schedule)
    trainer.fit(x[:20000], y[:20000], epochs=1, batch_size=32, transform=normalize, seed=0, verbose=0)
    loss, acc = trainer.evaluate(xt[:2000], yt[:2000], transform=normalize)
    assert acc >= 0.95, f"accuracy {acc:.4f} after one epoch on 20,000 images"


@long_training
@pytest.mark.skipif(mnist_root() is None, reason="real MNIST not found: set MINICNN_DATA")
@pytest.mark.parametrize("arch", sorted(RECIPES))
def test_every_recipe_learns_in_its_first_steps(arch):
    """Each architecture at its recipe's learning rate gets going in 150 steps (dwsep once
    blew up there: He-initialised depthwise layers with no ReLU after them)."""
    from minicnn.data import load_mnist, normalize

    (x, y), _ = load_mnist(download=False)
    model = minicnn.architectures.build(arch, rng=np.random.default_rng(0))
    loss = minicnn.SoftmaxCrossEntropy()
    opt = minicnn.SGD(model.parameters(), lr=RECIPES[arch]["lr"], momentum=0.9,
                      weight_decay=5e-4)
    values = []
    for step in range(150):
        xb, yb = normalize(x[step * 64:(step + 1) * 64]), y[step * 64:(step + 1) * 64]
        values.append(loss.forward(model.forward(xb), yb))
        model.backward(loss.backward(), input_grad=False)
        opt.step()
    assert np.mean(values[100:]) < 0.6, f"{arch}: mean loss {np.mean(values[100:]):.3f} at steps 100-150"


def test_plots_when_matplotlib_is_installed(tmp_path):
    pytest.importorskip("matplotlib")
    from minicnn.recipes import save_plots
    from minicnn.trainer import History

    history = History({"loss": [0.5, 0.2], "accuracy": [0.8, 0.9], "val_loss": [0.4, 0.3],
                       "val_accuracy": [0.85, 0.88]})
    paths = save_plots(history, minicnn.architectures.lenet5(), str(tmp_path), "lenet5")
    assert [os.path.basename(p) for p in paths] == ["lenet5-curves.png", "lenet5-filters.png"]
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
