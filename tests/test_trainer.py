"""The Trainer: learning, history, callbacks, divergence, interruption, determinism, resume."""
import json
import os
import signal

import numpy as np
import pytest

import minicnn
from minicnn import (SGD, Adam, Callback, Conv2D, CSVLogger, Dense, EarlyStopping, Flatten,
                     JSONLinesLogger, MaxPool2D, ModelCheckpoint, ReLU, Sequential,
                     SoftmaxCrossEntropy, StepLR, Trainer, TrainingDivergedError)
from minicnn.metrics import confusion_matrix, format_confusion_matrix, per_class_accuracy


def tiny_cnn(seed=0):
    rng = np.random.default_rng(seed)
    return Sequential(Conv2D(1, 8, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2), Flatten(),
                      Dense(8 * 4 * 4, 32, rng=rng), ReLU(), Dense(32, 4, rng=rng))


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 8, 8)).astype(np.float32), rng.integers(0, 4, n)


def trainer_for(model, lr=0.01, scheduler=None):
    opt = SGD(model.parameters(), lr=lr, momentum=0.9)
    return Trainer(model, SoftmaxCrossEntropy(), opt, scheduler(opt) if scheduler else None)


def test_small_cnn_fits_64_random_samples():
    x, y = data()
    history = trainer_for(tiny_cnn(), lr=0.02).fit(x, y, epochs=40, batch_size=16, seed=0, verbose=0)
    assert history["accuracy"][-1] == 1.0
    assert history["loss"][-1] < history["loss"][0] / 10
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds",
                            "images_per_second"}
    assert len(history["loss"]) == 40 and all(v > 0 for v in history["images_per_second"])


def test_validation_and_evaluate():
    x, y = data()
    t = trainer_for(tiny_cnn())
    h = t.fit(x, y, epochs=2, batch_size=16, validation_data=(x[:20], y[:20]), seed=0, verbose=0)
    loss, acc = t.evaluate(x[:20], y[:20], batch_size=7)
    assert h["val_loss"][-1] == pytest.approx(loss) and h["val_accuracy"][-1] == pytest.approx(acc)
    assert t.model.training  # evaluate restores the mode


def test_transform_and_uint8_input():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (32, 8, 8), dtype=np.uint8)
    y = rng.integers(0, 4, 32)
    seen = []

    def transform(xb):
        seen.append(xb.dtype)
        return (xb.astype(np.float32) / 255)[:, None]

    trainer_for(tiny_cnn()).fit(x, y, epochs=1, batch_size=8, transform=transform, verbose=0)
    assert seen and all(d == np.uint8 for d in seen)


def test_verbose_zero_is_silent(capsys):
    x, y = data(16)
    trainer_for(tiny_cnn()).fit(x, y, epochs=1, batch_size=8, verbose=0)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_verbose_prints_epoch_lines(capsys):
    x, y = data(16)
    trainer_for(tiny_cnn()).fit(x, y, epochs=2, batch_size=8, verbose=1)
    out = capsys.readouterr()
    assert "epoch 2/2" in out.out and "img/s" in out.out and "acc" in out.out


def test_same_seed_same_weights():
    x, y = data()
    weights = []
    for _ in range(2):
        t = trainer_for(tiny_cnn())
        t.fit(x, y, epochs=2, batch_size=16, seed=3, verbose=0)
        weights.append(t.model.state_dict())
    for k in weights[0]:
        np.testing.assert_array_equal(weights[0][k], weights[1][k])


def test_nan_loss_stops_with_epoch_and_batch():
    x, y = data()
    x[40] = np.nan  # sample 40 lands in some batch of epoch 1
    t = trainer_for(tiny_cnn())
    with pytest.raises(TrainingDivergedError, match=r"the loss became nan in epoch 1, batch \d+; .*lower learning rate"):
        t.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    # the batch holding sample 40 is batch 3; the weights are those after batch 2, all finite
    assert all(np.isfinite(p.value).all() for p in t.model.parameters())


def test_ctrl_c_ends_cleanly_after_the_step_in_progress():
    x, y = data()
    model = tiny_cnn()
    t = trainer_for(model)
    calls = {"n": 0}
    real_step = t.optimizer.step

    def step_then_interrupt():
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)  # arrives while this step is in progress
        real_step()

    t.optimizer.step = step_then_interrupt
    h = t.fit(x, y, epochs=5, batch_size=16, verbose=0)
    assert h.interrupted and calls["n"] == 3 and t.epoch == 0
    assert t.optimizer.steps == 3  # the third step completed


def test_step_lr_per_epoch_and_history_lr():
    x, y = data(16)
    t = trainer_for(tiny_cnn(), lr=0.1, scheduler=lambda o: StepLR(o, 1, gamma=0.5))
    h = t.fit(x, y, epochs=3, batch_size=8, verbose=0)
    np.testing.assert_allclose(h["lr"], [0.1, 0.05, 0.025])


def test_save_and_resume_gives_identical_weights(tmp_path):
    x, y = data()
    straight = trainer_for(tiny_cnn(), scheduler=lambda o: StepLR(o, 1, 0.5))
    straight.fit(x, y, epochs=2, batch_size=16, seed=5, verbose=0)

    first = trainer_for(tiny_cnn(), scheduler=lambda o: StepLR(o, 1, 0.5))
    first.fit(x, y, epochs=1, batch_size=16, seed=5, verbose=0)
    first.save_state(tmp_path / "state.npz")
    resumed = trainer_for(tiny_cnn(seed=9), scheduler=lambda o: StepLR(o, 1, 0.5))
    resumed.load_state(tmp_path / "state.npz")
    assert resumed.epoch == 1 and resumed.optimizer.lr == pytest.approx(0.005)
    resumed.fit(x, y, epochs=2, initial_epoch=resumed.epoch, batch_size=16, verbose=0)
    for k, v in straight.model.state_dict().items():
        np.testing.assert_array_equal(v, resumed.model.state_dict()[k])
    assert len(resumed.history["loss"]) == 2


def test_early_stopping_and_checkpoint(tmp_path):
    x, y = data()

    class Fake(Callback):
        """Feeds EarlyStopping a val_loss that stops improving after epoch 2."""
        def on_epoch_end(self, trainer, epoch, logs):
            logs["val_loss"] = [3.0, 2.0, 2.5, 2.4, 2.6, 1.0][epoch - 1]

    stop = EarlyStopping(monitor="val_loss", patience=2)
    ckpt = ModelCheckpoint(tmp_path / "best.npz", monitor="val_loss")
    t = trainer_for(tiny_cnn())
    t.fit(x, y, epochs=6, batch_size=32, callbacks=[Fake(), stop, ckpt], verbose=0)
    assert t.epoch == 4 and stop.stopped_epoch == 4 and ckpt.best == 2.0
    saved = minicnn.load(tmp_path / "best.npz")
    assert saved.metadata["epoch"] == 2
    with pytest.raises(KeyError, match="monitor='val_acc' is not in the epoch logs"):
        trainer_for(tiny_cnn()).fit(x, y, epochs=1, callbacks=[EarlyStopping("val_acc")], verbose=0)


def test_loggers(tmp_path):
    x, y = data(16)
    t = trainer_for(tiny_cnn())
    t.fit(x, y, epochs=2, batch_size=8, verbose=0,
          callbacks=[JSONLinesLogger(tmp_path / "h.jsonl"), CSVLogger(tmp_path / "h.csv")])
    lines = [json.loads(s) for s in (tmp_path / "h.jsonl").read_text().splitlines()]
    assert [d["epoch"] for d in lines] == [1, 2] and lines[1]["loss"] == pytest.approx(t.history["loss"][1])
    csv_lines = (tmp_path / "h.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,loss,accuracy") and len(csv_lines) == 3


def test_adam_trainer_and_bad_fit_arguments():
    x, y = data(16)
    model = tiny_cnn()
    t = Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters()))
    with pytest.raises(ValueError, match="x has 16 samples but y has 3"):
        t.fit(x, y[:3], epochs=1)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        t.fit(x, y, epochs=1, batch_size=0)


def test_confusion_matrix_by_hand():
    m = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], num_classes=3)
    np.testing.assert_array_equal(m, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    np.testing.assert_allclose(per_class_accuracy(m), [0.5, 1.0, 2 / 3])
    text = format_confusion_matrix(m)
    assert "66.67%" in text and text.splitlines()[0].startswith("true\\pred")
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        confusion_matrix([0, 2], [0, 1], num_classes=2)
