"""``minicnn train`` never loses or worsens a finished model: real child processes are
interrupted (SIGINT, as Ctrl-C) and killed (SIGKILL) in the middle of an epoch and of a save.

The folder starts with a finished model that records a better test accuracy than these tiny
runs can reach, and a 10-line history. Whatever the moment of the signal, that model must
come out byte for byte the same and loadable, and the history must not lose a line. A SIGKILL
death of the child is expected; a traceback or a damaged or replaced model fails the test.
"""
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import minicnn
from conftest import mnist_root

CHILD = os.path.join(os.path.dirname(__file__), "cli_child.py")
STEPS_PER_EPOCH = 4  # 64 images, batch 16


def write_fake_mnist(root, n_train=64, n_test=32):
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(root, "mnist"), exist_ok=True)
    for name, n, images in (("train-images-idx3-ubyte", n_train, True), ("train-labels-idx1-ubyte", n_train, False),
                            ("t10k-images-idx3-ubyte", n_test, True), ("t10k-labels-idx1-ubyte", n_test, False)):
        a = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) if images else rng.integers(0, 10, n).astype(np.uint8)
        header = bytes([0, 0, 8, a.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in a.shape)
        with open(os.path.join(root, "mnist", name), "wb") as f:
            f.write(header + a.tobytes())


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Synthetic data, and a run folder holding a finished model (99% recorded) and a history."""
    root = tmp_path_factory.mktemp("rules")
    write_fake_mnist(str(root / "data"))
    runs = root / "base"
    runs.mkdir()
    model = minicnn.architectures.lenet5(rng=np.random.default_rng(1))
    model.save(runs / "lenet5.npz", metadata={"arch": "lenet5", "kind": "mnist", "mean": 0.1307,
                                              "std": 0.3081, "test_accuracy": 0.99, "epochs": 10})
    (runs / "lenet5-history.jsonl").write_text(
        "".join(json.dumps({"epoch": i + 1, "loss": 0.1, "run": "old"}) + "\n" for i in range(10)))
    return root


def fresh_runs(base, name):
    out = base / name
    shutil.copytree(base / "base", out)
    return out


def child(base, out, *extra, marker=None, signals=(), slow_save=None, timeout=120):
    """Run ``minicnn train`` in a child; at the first line equal to ``marker`` send the first of
    ``signals`` (each (signal, the marker for the next one or None)); the child pauses at each
    marker so that the signal lands there. Returns (returncode, stdout, stderr)."""
    markers = [marker] + [m for _, m in signals if m]
    env = dict(os.environ, CHILD_FAKE_DATA=str(base / "data"), CHILD_STEPS="1",
               CHILD_PAUSE_AT=",".join(m for m in markers if m), MINICNN_NUM_THREADS="1")
    if slow_save:
        env["CHILD_SLOW_SAVE"] = slow_save
    args = [sys.executable, CHILD, "train", "--out", str(out), "--data-dir", str(base / "data"),
            "--epochs", "3", "--batch-size", "16", "--threads", "1", "--quiet", *extra]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines, pending = [], list(signals)
    try:
        for line in proc.stdout:
            lines.append(line)
            if pending and marker is not None and line.strip() == marker:
                sig, marker = pending.pop(0)
                proc.send_signal(sig)
                if not pending:
                    break
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, "".join(lines) + out, err


def assert_final_intact(base, out):
    assert (out / "lenet5.npz").read_bytes() == (base / "base" / "lenet5.npz").read_bytes()
    model = minicnn.load(out / "lenet5.npz")
    assert model.metadata["test_accuracy"] == 0.99
    assert model.predict(np.zeros((1, 1, 28, 28), np.float32)).shape == (1, 10)


def history_lines(out):
    return [json.loads(s) for s in (out / "lenet5-history.jsonl").read_text().splitlines()]


def test_ctrl_c_mid_epoch_keeps_the_finished_model_and_resume_finishes_the_run(base):
    out = fresh_runs(base, "sigint")
    code, stdout, err = child(base, out, marker=f"STEP {STEPS_PER_EPOCH + 2}", signals=[(signal.SIGINT, None)])
    assert code == 130, err
    assert "Traceback" not in err
    assert "interrupted in epoch 2" in stdout and "lenet5-last.npz" in stdout  # even with --quiet
    assert_final_intact(base, out)
    last = minicnn.load(out / "lenet5-last.npz").metadata
    assert last["interrupted"] and not last["finished"] and last["epochs"] == 1
    assert len(history_lines(out)) == 11

    code, stdout, err = child(base, out, "--resume")
    assert code == 0, err
    assert "resuming after epoch 1" in stdout and "kept" in stdout and "better than this run's" in stdout
    assert_final_intact(base, out)
    assert minicnn.load(out / "lenet5-last.npz").metadata["finished"]
    assert [d["epoch"] for d in history_lines(out)][10:] == [1, 2, 3]

    # the resumed run ends with the very weights of a run that was never interrupted
    straight = fresh_runs(base, "straight")
    assert child(base, straight)[0] == 0
    resumed, whole = minicnn.load(out / "lenet5-last.npz"), minicnn.load(straight / "lenet5-last.npz")
    for (name, a), b in zip(resumed.state_dict().items(), whole.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("moment", ["mid-epoch", "mid-save of last", "mid-save of state"])
def test_sigkill_never_damages_the_finished_model_or_the_history(base, moment):
    out = fresh_runs(base, "kill-" + moment.replace(" ", "-"))
    marker, slow = {"mid-epoch": (f"STEP {STEPS_PER_EPOCH + 1}", None),
                    "mid-save of last": ("SAVING lenet5-last.npz", "lenet5-last.npz"),
                    "mid-save of state": ("SAVING lenet5-last-state.npz", "lenet5-last-state.npz")}[moment]
    code, stdout, err = child(base, out, marker=marker, signals=[(signal.SIGKILL, None)], slow_save=slow)
    assert code == -signal.SIGKILL
    assert_final_intact(base, out)
    assert len(history_lines(out)) >= 10
    if (out / "lenet5-last.npz").exists():
        minicnn.load(out / "lenet5-last.npz")
    # whatever is left can be resumed, or is refused in one line
    code, stdout, err = child(base, out, "--resume")
    assert "Traceback" not in err
    assert code == 0 or (code == 2 and err.count("\n") == 1 and "nothing to resume" in err), err
    assert_final_intact(base, out)


def test_second_ctrl_c_during_the_interruption_save(base):
    out = fresh_runs(base, "double")
    code, stdout, err = child(base, out, marker=f"STEP {STEPS_PER_EPOCH + 2}", slow_save="lenet5-last.npz",
                              signals=[(signal.SIGINT, "SAVING lenet5-last.npz"), (signal.SIGINT, None)])
    assert code == 130 and "Traceback" not in err and "interrupted" in err
    assert_final_intact(base, out)
    minicnn.load(out / "lenet5-last.npz")  # epoch 1's, or the interrupted weights: whole either way


def test_a_finished_but_worse_run_keeps_the_better_model(base):
    out = fresh_runs(base, "worse")
    code, stdout, err = child(base, out)
    assert code == 0, err
    assert "kept" in stdout and "--overwrite" in stdout
    assert_final_intact(base, out)
    assert minicnn.load(out / "lenet5-last.npz").metadata["finished"]


def test_a_fresh_run_refuses_to_drop_an_unfinished_one(base):
    out = fresh_runs(base, "unfinished")
    assert child(base, out, marker="STEP 6", signals=[(signal.SIGINT, None)])[0] == 130
    code, stdout, err = child(base, out)
    assert code == 2 and err.count("\n") == 1 and "holds an unfinished run" in err and "--restart" in err
    code, stdout, err = child(base, out, "--restart")
    assert code == 0 and "kept" in stdout, err


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_kill_while_replacing_the_final_model_leaves_old_or_new_whole(base, sig):
    out = fresh_runs(base, f"final-{sig.name}")
    code, stdout, err = child(base, out, "--overwrite", marker="SAVING lenet5.npz", slow_save="lenet5.npz",
                              signals=[(sig, None)])
    assert code in (-signal.SIGKILL, 130) and "Traceback" not in err
    final = minicnn.load(out / "lenet5.npz")  # the old one: the rename never happened
    assert final.metadata["test_accuracy"] == 0.99


def test_random_moments(base):
    """Signals at seeded random steps and saves of a run allowed to replace the model."""
    rng = np.random.default_rng(18)
    for i in range(3):
        out = fresh_runs(base, f"random-{i}")
        sig = [signal.SIGINT, signal.SIGKILL][i % 2]
        code, stdout, err = child(base, out, marker=f"STEP {int(rng.integers(1, 3 * STEPS_PER_EPOCH))}",
                                  signals=[(sig, None)])
        assert code in (130, -signal.SIGKILL) and "Traceback" not in err
        assert_final_intact(base, out)
        assert len(history_lines(out)) >= 10


@pytest.mark.skipif(mnist_root() is None, reason="real MNIST not found: set MINICNN_DATA")
def test_real_mnist_interrupted_then_resumed(tmp_path):
    env = dict(os.environ, CHILD_STEPS="1", CHILD_PAUSE_AT="STEP 20", MINICNN_NUM_THREADS="1")
    args = [sys.executable, CHILD, "train", "--out", str(tmp_path), "--epochs", "2", "--limit", "1024",
            "--quiet", "--threads", "1"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:
        if line.strip() == "STEP 20":  # epoch 2 of 16 steps
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err
    assert not (tmp_path / "lenet5.npz").exists()
    done = subprocess.run(args + ["--resume"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    final = minicnn.load(tmp_path / "lenet5.npz").metadata
    assert final["finished"] and final["epochs"] == 2 and final["test_accuracy"] > 0.5
