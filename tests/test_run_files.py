"""The rules of a training run's files (minicnn/run_files.py), through train_mnist in-process:
the finished model is written only by a finished run, never over a better or unknown one."""
import os

import numpy as np
import pytest

import minicnn
from conftest import fake_dataset
from minicnn.data import mnist as M
from minicnn.recipes import train_mnist
from minicnn.run_files import RunFileError, RunPaths, final_decision, merge_settings


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(M, "fetch", lambda url, progress=True: (_ for _ in ()).throw(OSError("offline")))
    fake_dataset(monkeypatch, n=16, root=tmp_path / "data")
    return str(tmp_path / "data")


def train(data_dir, out, **kwargs):
    lines = []
    options = dict(epochs=1, batch_size=8, data_dir=data_dir, out=str(out), verbose=0, threads=1,
                   print_fn=lines.append, plot=False)
    options.update(kwargs)
    result = train_mnist(**options)
    return result, "\n".join(lines)


def finished_model(path, accuracy, kind="mnist", **meta):
    minicnn.architectures.lenet5(rng=np.random.default_rng(3)).save(
        path, metadata={"kind": kind, "test_accuracy": accuracy, **meta})
    return path.read_bytes()


def test_a_fresh_folder_gets_the_final_model_with_its_accuracy(data_dir, tmp_path):
    result, text = train(data_dir, tmp_path / "runs")
    paths = RunPaths(tmp_path / "runs", "lenet5")
    meta = minicnn.load(paths.final).metadata
    assert result["final_written"] and meta["test_accuracy"] == result["accuracy"] and meta["finished"]
    assert meta["input_shape"] == [1, 28, 28] and meta["run"]["epochs"] == 1
    assert f"wrote {paths.final}" in text and os.path.exists(paths.state) and os.path.exists(paths.last)


@pytest.mark.parametrize("recorded,kind,replaced", [
    (1.0, "mnist", False),      # better: kept
    (0.0, "mnist", True),       # worse: replaced
    (0.0, "fashion-mnist", False),  # another data set: not comparable, kept
])
def test_the_final_model_is_replaced_only_by_a_better_one(data_dir, tmp_path, recorded, kind, replaced):
    out = tmp_path / "runs"
    out.mkdir()
    before = finished_model(out / "lenet5.npz", recorded, kind)
    result, text = train(data_dir, out)
    assert ((out / "lenet5.npz").read_bytes() != before) == replaced
    assert result["final_written"] == replaced
    assert ("replaced" if replaced else "kept") in text


def test_unknown_or_unreadable_files_are_kept_unless_overwrite(data_dir, tmp_path):
    out = tmp_path / "runs"
    out.mkdir()
    (out / "lenet5.npz").write_bytes(b"my own notes")
    _, text = train(data_dir, out)
    assert (out / "lenet5.npz").read_bytes() == b"my own notes" and "not a readable minicnn checkpoint" in text
    before = finished_model(out / "lenet5.npz", None)
    _, text = train(data_dir, out)
    assert (out / "lenet5.npz").read_bytes() == before and "records no test accuracy" in text
    result, text = train(data_dir, out, overwrite=True)
    assert result["final_written"] and "(--overwrite)" in text


def test_final_decision_wording(tmp_path):
    path = tmp_path / "m.npz"
    assert final_decision(path, 0.5, "mnist") == (True, f"wrote {path}")
    finished_model(path, 0.9916)
    ok, why = final_decision(path, 0.9317, "mnist")
    assert not ok and why == (f"kept {path} (test accuracy 99.16%): better than this run's 93.17%; "
                              "pass --overwrite to replace it")
    assert final_decision(path, 0.9916, "mnist")[0]  # as good: a finished run may replace it


def test_resume_uses_the_stored_settings_and_refuses_others(data_dir, tmp_path):
    out = tmp_path / "runs"
    train(data_dir, out, epochs=2, lr=0.01)
    with pytest.raises(RunFileError, match="nothing to resume: the run in .* finished all its 2 epochs"):
        train(data_dir, out, resume=True)
    # make it look unfinished: the state of epoch 1 under the settings of a 3-epoch run
    paths = RunPaths(out, "lenet5")
    meta = minicnn.load(paths.last).metadata
    model = minicnn.load(paths.last)
    model.save(paths.last, metadata={**meta, "finished": False, "run": {**meta["run"], "epochs": 3}})
    with pytest.raises(RunFileError, match=r"started with lr 0.01, not 0.02: leave lr out"):
        train(data_dir, out, resume=True, lr=0.02, epochs=None)
    result, text = train(data_dir, out, resume=True, epochs=None)
    assert "resuming after epoch 2" in text and result["epochs"] == 3


def test_merge_settings_names_the_flag():
    with pytest.raises(RunFileError, match="started with --batch-size 64, not 32"):
        merge_settings({"batch_size": 64}, {"batch_size": 32}, {"batch_size": "--batch-size"})
    assert merge_settings({"lr": 0.1, "seed": 0}, {"lr": None, "seed": 0}) == {"lr": 0.1, "seed": 0}


def test_library_arguments_are_checked_before_the_data_is_read(tmp_path):
    for bad, match in [(dict(epochs=0), "epochs must be an int >= 1"), (dict(lr=-1.0), "lr must be a finite"),
                       (dict(limit=-5), "limit must be an int >= 1"), (dict(kind="cifar"), "kind must be one of")]:
        with pytest.raises(ValueError, match=match):
            train(str(tmp_path / "nowhere"), tmp_path / "runs", **bad)
    assert not (tmp_path / "nowhere").exists()
