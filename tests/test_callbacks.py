"""ModelCheckpoint never replaces a better model (across fits and across runs into one path), and
the loggers never truncate an old log before new lines exist."""
import json

import numpy as np
import pytest

import minicnn
from minicnn import (SGD, Callback, CSVLogger, Dense, Flatten, JSONLinesLogger, ModelCheckpoint,
                     Sequential, SoftmaxCrossEntropy, Trainer)


def small_trainer(seed=0):
    rng = np.random.default_rng(seed)
    model = Sequential(Flatten(), Dense(16, 3, rng=rng))
    return Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.05))


def data(n=16):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 1, 4, 4)).astype(np.float32), rng.integers(0, 3, n)


class Feed(Callback):
    """Sets logs[key] to the next of ``values`` at each epoch (a stand-in for validation)."""

    def __init__(self, values, key="val_loss"):
        self.values, self.key = list(values), key

    def on_epoch_end(self, trainer, epoch, logs):
        logs[self.key] = self.values.pop(0)


def fit(trainer, values, *callbacks, key="val_loss"):
    x, y = data()
    trainer.fit(x, y, epochs=len(values), batch_size=8, verbose=0,
                callbacks=[Feed(values, key), *callbacks])


def recorded(path):
    return minicnn.load(path).metadata


def test_best_survives_a_second_fit(tmp_path):
    path = tmp_path / "best.npz"
    ckpt = ModelCheckpoint(path, monitor="val_loss")
    t = small_trainer()
    fit(t, [2.0, 1.0], ckpt)
    assert recorded(path)["value"] == 1.0 and recorded(path)["epoch"] == 2
    before = path.read_bytes()
    fit(t, [3.0, 1.5], ckpt)  # a second fit at, say, a bad learning rate
    assert path.read_bytes() == before and ckpt.best == 1.0
    fit(t, [0.5], ckpt)
    assert recorded(path)["value"] == 0.5 and recorded(path)["epoch"] == 5


def test_a_new_checkpoint_into_the_same_path_reads_the_recorded_best(tmp_path):
    path = tmp_path / "best.npz"
    fit(small_trainer(), [0.9], ModelCheckpoint(path))
    before = path.read_bytes()
    fresh = ModelCheckpoint(path)
    fit(small_trainer(1), [1.2, 0.95], fresh)
    assert path.read_bytes() == before and fresh.best == 0.9
    fit(small_trainer(1), [0.7], ModelCheckpoint(path))
    assert recorded(path)["value"] == 0.7


def test_accuracy_is_maximised_across_runs(tmp_path):
    path = tmp_path / "best.npz"
    fit(small_trainer(), [0.94], ModelCheckpoint(path, monitor="val_accuracy"), key="val_accuracy")
    fit(small_trainer(1), [0.093], ModelCheckpoint(path, monitor="val_accuracy"), key="val_accuracy")
    assert recorded(path)["value"] == 0.94


def test_a_file_without_the_monitored_value_is_kept_unless_overwrite(tmp_path):
    path = tmp_path / "model.npz"
    small_trainer().model.save(path, metadata={"note": "finished by hand"})
    before = path.read_bytes()
    with pytest.raises(ValueError, match="records no val_loss to compare with; pass overwrite=True"):
        fit(small_trainer(1), [0.1], ModelCheckpoint(path))
    assert path.read_bytes() == before
    fit(small_trainer(1), [0.1], ModelCheckpoint(path, overwrite=True))
    assert recorded(path)["value"] == 0.1


def test_files_of_the_old_format_are_compared_through_their_logs(tmp_path):
    path = tmp_path / "best.npz"
    small_trainer().model.save(path, metadata={"epoch": 3, "logs": {"val_loss": 0.4}})
    before = path.read_bytes()
    fit(small_trainer(1), [0.6], ModelCheckpoint(path))
    assert path.read_bytes() == before


def test_initial_value_threshold_and_non_finite_values(tmp_path):
    path = tmp_path / "best.npz"
    ckpt = ModelCheckpoint(path, initial_value_threshold=0.5)
    fit(small_trainer(), [0.8, float("nan")], ckpt)
    assert not path.exists()
    fit(small_trainer(), [0.4], ckpt)
    assert recorded(path)["value"] == 0.4
    with pytest.raises(ValueError, match="initial_value_threshold must be a finite number"):
        ModelCheckpoint(path, initial_value_threshold=float("nan"))


def test_every_epoch_mode_and_templates_still_write(tmp_path):
    fit(small_trainer(), [2.0, 3.0], ModelCheckpoint(tmp_path / "e{epoch}.npz", save_best_only=False))
    assert (tmp_path / "e1.npz").exists() and recorded(tmp_path / "e2.npz")["value"] == 3.0


# --- loggers -----------------------------------------------------------------------------------
def old_log(path, lines=10):
    path.write_text("".join(json.dumps({"epoch": i + 1, "loss": 1.0}) + "\n" for i in range(lines)))
    return path.read_text()


def test_jsonlines_appends_by_default_and_never_truncates_at_start(tmp_path):
    path = tmp_path / "h.jsonl"
    before = old_log(path)
    logger = JSONLinesLogger(path, extra={"run": "b"})
    logger.on_train_begin(small_trainer())  # a run killed here used to leave an empty file
    assert path.read_text() == before
    fit(small_trainer(), [1.0, 2.0], logger)
    lines = [json.loads(s) for s in path.read_text().splitlines()]
    assert len(lines) == 12 and lines[-1]["run"] == "b" and lines[-1]["epoch"] == 2


def test_jsonlines_without_append_rotates_once_new_lines_exist(tmp_path):
    path = tmp_path / "h.jsonl"
    before = old_log(path)
    logger = JSONLinesLogger(path, append=False)
    logger.on_train_begin(small_trainer())
    assert path.read_text() == before and not (tmp_path / "h.jsonl.1").exists()
    fit(small_trainer(), [1.0, 2.0], logger)
    assert (tmp_path / "h.jsonl.1").read_text() == before
    assert len(path.read_text().splitlines()) == 2
    fit(small_trainer(), [1.0], JSONLinesLogger(path, append=False))
    assert (tmp_path / "h.jsonl.2").read_text() == before
    assert len((tmp_path / "h.jsonl.1").read_text().splitlines()) == 2


def test_csv_logger_rotates_or_appends_under_the_same_header(tmp_path):
    path = tmp_path / "h.csv"
    fit(small_trainer(), [1.0, 2.0], CSVLogger(path))
    first = path.read_text()
    logger = CSVLogger(path)
    logger.on_train_begin(small_trainer())
    assert path.read_text() == first  # not truncated before a new row exists
    fit(small_trainer(), [3.0], logger)
    assert (tmp_path / "h.csv.1").read_text() == first and len(path.read_text().splitlines()) == 2
    fit(small_trainer(), [4.0], CSVLogger(path, append=True))
    rows = path.read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("epoch,") and rows.count(rows[0]) == 1
