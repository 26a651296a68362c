"""Untrusted trainer states (issue 18, item 9): Trainer.load_state refuses a bad file with one
CheckpointError naming the problem, and a failed load changes nothing."""
import json

import numpy as np
import pytest

import minicnn
from minicnn import CheckpointError, Conv2D, Dense, Flatten, ReLU, Sequential
from test_safety_checkpoint import npy, patch_entries, write_zip


def make_trainer(seed=0, scheduler=False, optimizer="sgd"):
    model = Sequential(Conv2D(1, 2, 3, rng=seed), ReLU(), Flatten(), Dense(8, 3, rng=seed + 1))
    opt = (minicnn.SGD(model.parameters(), lr=0.1, momentum=0.9) if optimizer == "sgd"
           else minicnn.Adam(model.parameters(), lr=0.01))
    sched = minicnn.StepLR(opt, step_size=2) if scheduler else None
    return minicnn.Trainer(model, minicnn.SoftmaxCrossEntropy(), opt, sched)


def trained_state(tmp_path, **kwargs):
    trainer = make_trainer(**kwargs)
    rng = np.random.default_rng(0)
    trainer.fit(rng.standard_normal((16, 1, 4, 4)).astype(np.float32), rng.integers(0, 3, 16),
                epochs=2, batch_size=8, verbose=0, seed=0)
    path = tmp_path / "state.npz"
    trainer.save_state(path)
    return path


def rewrite_state(path, meta_edit=None, arrays_edit=None):
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["__trainer__"][()]))
    if meta_edit:
        meta_edit(meta)
    arrays["__trainer__"] = np.array(json.dumps(meta))
    if arrays_edit:
        arrays_edit(arrays)
    np.savez(path, **arrays)
    return path


def snapshot(trainer):
    return (trainer.model.state_dict(), trainer.optimizer.state_dict(), trainer.optimizer.lr,
            trainer.epoch, trainer.seed, dict(trainer.history),
            trainer.scheduler.state_dict() if trainer.scheduler else None)


def assert_unchanged(trainer, before):
    after = snapshot(trainer)
    for k, v in before[0].items():
        np.testing.assert_array_equal(after[0][k], v)
    assert after[1]["steps"] == before[1]["steps"] and after[1]["lr"] == before[1]["lr"]
    assert after[1]["state"].keys() == before[1]["state"].keys()
    for name, state in before[1]["state"].items():
        for key, value in state.items():
            np.testing.assert_array_equal(after[1]["state"][name][key], value)
    assert after[2:] == before[2:]


def bias_of_wrong_shape(arrays):
    arrays["param:3.bias"] = np.zeros(4, np.float32)


@pytest.mark.parametrize("meta_edit,arrays_edit,match", [
    (lambda m: m["optimizer"].update(lr="nan"), None, "optimizer lr must be a finite number >= 0, got 'nan'"),
    (lambda m: m["optimizer"].update(lr=float("nan")), None, "optimizer lr must be a finite number"),
    (lambda m: m["optimizer"].update(lr=-1), None, "optimizer lr must be a finite number >= 0"),
    (lambda m: m.pop("optimizer"), None, r"trainer state lacks \['optimizer'\]"),
    (lambda m: m.update(epoch=-3), None, "epoch must be an int >= 0, got -3"),
    (lambda m: m.update(epoch="2"), None, "epoch must be an int >= 0, got '2'"),
    (lambda m: m.update(seed=[1]), None, r"seed must be None or an int"),
    (lambda m: m.update(history={"loss": "low"}), None, "history must map names to lists"),
    (lambda m: m.update(history=[1]), None, "history must map names to lists"),
    (lambda m: m.update(scheduler={"last_step": 2, "base_lr": "x"}), None,
     "scheduler state must hold finite numbers"),
    (lambda m: m.update(scheduler={"last_step": -1, "base_lr": 0.1}), None,
     "scheduler last_step must be an int >= 0"),
    (lambda m: m.update(scheduler={"step": 1}), None, "scheduler state must have the keys"),
    (lambda m: m.update(format="other"), None, "has format 'other'"),
    (None, bias_of_wrong_shape, r"param:3.bias is float32 \(4,\), the model's 3.bias is \(3,\)"),
    (None, lambda a: a.pop("param:0.bias"), r"missing \['0.bias'\]"),
    (None, lambda a: a.update({"param:9.weight": np.zeros(2)}), r"unexpected \['9.weight'\]"),
    (None, lambda a: a.update({"opt:9.weight:momentum_buffer": np.zeros(2)}),
     "optimizer state for '9.weight', which the model does not have"),
    (None, lambda a: a.update({"opt:0.weight:velocity": np.zeros((2, 1, 3, 3))}),
     r"optimizer state for '0.weight' has \['momentum_buffer', 'velocity'\]"),
    (None, lambda a: a.update({"stray": np.zeros(2)}), "unexpected entry 'stray'"),
    (None, lambda a: a.update({"param:0.weight": np.zeros((2, 1, 3, 3), np.int32)}),
     r"array 'param:0.weight' is int32, not float32 or float64"),
])
def test_a_bad_trainer_state_is_refused_and_changes_nothing(tmp_path, meta_edit, arrays_edit, match):
    path = rewrite_state(trained_state(tmp_path, scheduler=True), meta_edit, arrays_edit)
    trainer = make_trainer(seed=7, scheduler=True)
    before = snapshot(trainer)
    with pytest.raises(CheckpointError, match=match):
        trainer.load_state(path)
    assert_unchanged(trainer, before)


def test_a_failure_while_applying_a_state_puts_everything_back(tmp_path, monkeypatch):
    path = trained_state(tmp_path, optimizer="adam", scheduler=True)
    trainer = make_trainer(seed=7, optimizer="adam", scheduler=True)
    trainer.fit(np.zeros((4, 1, 4, 4), np.float32), np.zeros(4, int), epochs=1, verbose=0)
    before = snapshot(trainer)

    def broken(state):
        raise ValueError("disk on fire")

    monkeypatch.setattr(trainer.scheduler, "load_state_dict", broken)
    with pytest.raises(CheckpointError, match=r"cannot be applied \(ValueError: disk on fire\); "
                                              r"the trainer is as it was"):
        trainer.load_state(path)
    monkeypatch.undo()
    assert_unchanged(trainer, before)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_good_state_still_resumes(tmp_path, optimizer):
    path = trained_state(tmp_path, optimizer=optimizer, scheduler=True)
    trainer = make_trainer(seed=7, optimizer=optimizer, scheduler=True).load_state(path)
    assert trainer.epoch == 2 and trainer.seed == 0 and len(trainer.history["loss"]) == 2
    assert trainer.optimizer.steps == 4 and trainer.scheduler.last_step == 2
    with np.load(path) as npz:
        np.testing.assert_array_equal(trainer.model.state_dict()["0.weight"], npz["param:0.weight"])
        for key in ("momentum_buffer",) if optimizer == "sgd" else ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(trainer.optimizer.state["3.bias"][key],
                                          npz[f"opt:3.bias:{key}"])


def test_states_of_the_earlier_format_still_load(tmp_path):
    path = rewrite_state(trained_state(tmp_path), lambda m: [m.pop("format"),
                                                             m.pop("format_version")])
    assert make_trainer(seed=7).load_state(path).epoch == 2


@pytest.mark.parametrize("kind,match", [
    ("model", r"a model checkpoint \(model.save\), not a trainer state; load it with minicnn.load"),
    ("nested", "__trainer__ is JSON nested too deeply"),
    ("npy", r"not a minicnn trainer state: it is a single NumPy array"),
    ("compressed 99", r"entry '__trainer__.npy' uses compression method 99"),
])
def test_load_state_names_files_that_are_not_trainer_states(tmp_path, kind, match):
    path = tmp_path / "x.npz"
    if kind == "model":
        make_trainer().model.save(path)
    elif kind == "nested":
        write_zip(path, {"__trainer__": npy(np.array("[" * 100_000 + "]" * 100_000))})
    elif kind == "npy":
        path = tmp_path / "x.npy"
        np.save(path, np.zeros(3))
    else:
        patch_entries(write_zip(path, {"__trainer__": npy(np.array("{}"))}), 8, 10, 99)
    with pytest.raises(CheckpointError, match=match):
        make_trainer().load_state(path)
