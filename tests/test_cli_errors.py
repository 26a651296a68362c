"""Every subcommand given wrong input: exit code 2, exactly one line on stderr naming the
problem, nothing on stdout, never a traceback (and no work done first)."""
import json
import os
import resource
import subprocess
import sys

import numpy as np
import pytest

import minicnn
from conftest import fake_dataset
from minicnn import Dense, Flatten, Pad, Sequential, cli
from minicnn.data import mnist as M

META = {"arch": "lenet5", "kind": "mnist", "mean": 0.1307, "std": 0.3081}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Checkpoints, crafted checkpoints and image files, by name."""
    d = tmp_path_factory.mktemp("cli-errors")
    f = {"tmp": str(d), "missing": str(d / "missing.npz"), "folder": str(d)}

    def save(name, model, metadata=META):
        model.save(d / name, metadata=metadata)
        f[name.split(".")[0]] = str(d / name)

    save("ckpt.npz", minicnn.architectures.lenet5(rng=np.random.default_rng(0)))
    save("meta_list.npz", Sequential(Flatten(), Dense(784, 10, rng=0)), metadata=[1, 2])
    save("std0.npz", Sequential(Flatten(), Dense(784, 10, rng=0)), metadata={**META, "std": 0})
    save("kind_bad.npz", Sequential(Flatten(), Dense(784, 10, rng=0)), metadata={"kind": "cifar"})
    save("classes20.npz", Sequential(Flatten(), Dense(784, 20, rng=0)))
    save("classes5.npz", Sequential(Flatten(), Dense(784, 5, rng=0)))
    save("rgb.npz", Sequential(minicnn.Conv2D(3, 4, 3, rng=0), Flatten(), Dense(4 * 26 * 26, 10, rng=0)))
    save("huge_pad.npz", Sequential(Pad(((0, 20000), (0, 20000))), Flatten()))
    for name, data in {"junk.npz": b"junk", "seven.png": b"\x89PNG\r\n\x1a\n" + bytes(64),
                       "notes.txt": b"hello\n", "empty.npy": b""}.items():
        (d / name).write_bytes(data)
        f[name.split(".")[0]] = str(d / name)
    arrays = {"images.npy": np.zeros((3, 28, 28), np.uint8), "bad_shape.npy": np.zeros((2, 5, 5), np.uint8),
              "int64.npy": np.zeros((2, 28, 28), np.int64), "float255.npy": np.full((2, 28, 28), 255.0),
              "no_images.npy": np.zeros((0, 28, 28), np.uint8)}
    for name, a in arrays.items():
        np.save(d / name, a)
        f[name.split(".")[0]] = str(d / name)
    np.save(d / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    f["objects"] = str(d / "objects.npy")
    raw = (d / "images.npy").read_bytes()
    (d / "truncated.npy").write_bytes(raw[:200])
    f["truncated"] = str(d / "truncated.npy")
    (d / "emptydata").mkdir()
    f["emptydata"] = str(d / "emptydata")
    # an unfinished run, to resume with other settings
    runs = d / "unfinished"
    runs.mkdir()
    model = minicnn.architectures.lenet5(rng=np.random.default_rng(0))
    opt = minicnn.SGD(model.parameters(), lr=0.02, momentum=0.9)
    trainer = minicnn.Trainer(model, minicnn.SoftmaxCrossEntropy(), opt, minicnn.CosineAnnealingLR(opt, 10))
    trainer.epoch = 1
    trainer.save_state(runs / "lenet5-last-state.npz")
    run = {"kind": "mnist", "epochs": 10, "batch_size": 64, "lr": 0.02, "seed": 0, "augment": False,
           "limit": None, "id": "x"}
    model.save(runs / "lenet5-last.npz", metadata={**META, "epochs": 1, "finished": False, "run": run})
    f["unfinished"] = str(runs)
    f["state"] = str(runs / "lenet5-last-state.npz")
    return f


@pytest.fixture
def offline(files, monkeypatch):
    monkeypatch.setattr(M, "fetch", lambda url, progress=True: (_ for _ in ()).throw(OSError("offline")))
    fake_dataset(monkeypatch, n=8, root=os.path.join(files["tmp"], "data"))
    return os.path.join(files["tmp"], "data")


CASES = [
    # train: every option checked before any work
    ("train --lr -0.1", "argument --lr: must be a finite number > 0, got -0.1"),
    ("train --lr nan", "argument --lr: must be a finite number > 0"),
    ("train --lr fast", "argument --lr: expected a number, got 'fast'"),
    ("train --threads 0", "argument --threads: must be >= 1, got 0"),
    ("train --threads 100000000", "argument --threads: must be at most"),
    ("train --epochs 0", "argument --epochs: must be >= 1, got 0"),
    ("train --epochs 1.5", "argument --epochs: expected a whole number, got '1.5'"),
    ("train --batch-size -8", "argument --batch-size: must be >= 1, got -8"),
    ("train --limit -59990", "argument --limit: must be >= 1, got -59990"),
    ("train --seed -1", "argument --seed: must be >= 0, got -1"),
    ("train --arch resnet", "argument --arch: invalid choice: 'resnet'"),
    ("train --kind cifar", "argument --kind: invalid choice: 'cifar'"),
    ("train --out {junk}", "argument --out: {junk} is a file, not a folder"),
    ("train --data-dir {junk}", "argument --data-dir: {junk} is a file, not a folder"),
    ("train --data-dir {emptydata} --out {tmp}/r1", "missing train-images-idx3-ubyte.gz"),
    ("train --resume --out {tmp}/none", "nothing to resume: no {tmp}/none/lenet5-last-state.npz"),
    ("train --resume --restart --out {unfinished}", "--resume continues the last run and --restart"),
    ("train --out {unfinished}", "holds an unfinished run (1 of 10 epochs done): continue it with --resume"),
    ("train --resume --lr 0.5 --out {unfinished}", "started with --lr 0.02, not 0.5: leave --lr out"),
    ("train --frobnicate", "unrecognized arguments: --frobnicate"),
    # evaluate
    ("evaluate {missing}", "argument checkpoint: no such file: {missing}"),
    ("evaluate {folder}", "argument checkpoint: {folder} is a folder, not a file"),
    ("evaluate {junk}", "{junk} is not a minicnn checkpoint: it is not an .npz archive"),
    ("evaluate {seven}", "{seven} is not a minicnn checkpoint: it is a PNG image"),
    ("evaluate {images}", "{images} is not a minicnn checkpoint: it is a .npy array"),
    ("evaluate {meta_list}", "{meta_list}: its metadata is a list, not a mapping"),
    ("evaluate {std0}", "{std0}: its metadata's normalisation std is 0; it must be > 0"),
    ("evaluate {kind_bad}", "{kind_bad}: its metadata names the data set 'cifar'"),
    ("evaluate {state}", "{state} is a trainer state (minicnn train --resume reads it), not a model"),
    ("evaluate {ckpt} --batch-size 0", "argument --batch-size: must be >= 1, got 0"),
    ("evaluate {ckpt} --max-memory 0", "argument --max-memory: must be a finite number > 0"),
    ("evaluate {rgb}", "the model in {rgb} cannot take 28 x 28 images"),
    ("evaluate {classes5}", "the model in {classes5} scores 5 classes; the data set has 10"),
    ("evaluate {huge_pad}", "MB of activations per image (layer 0 Pad(padding=((0, 20000), (0, 20000)))"),
    ("evaluate {ckpt} --data-dir {emptydata}", "(from --data-dir {emptydata})"),
    # summary
    ("summary --input-shape 28,28", "argument --input-shape: expected one image's shape C,H,W such as 1,28,28"),
    ("summary --input-shape 1,8,8", "input shape 1x8x8: layer 2 Conv2D(6->16"),
    ("summary --input-shape 0,28,28", "argument --input-shape: sizes must be >= 1"),
    ("summary --input-shape a,b,c", "argument --input-shape: expected one image's shape"),
    ("summary --input-shape 1,28,28,28", "argument --input-shape: expected one image's shape"),
    ("summary {ckpt} --arch lenet5", "give a checkpoint ({ckpt}) or --arch lenet5, not both"),
    ("summary {junk}", "{junk} is not a minicnn checkpoint"),
    ("summary {missing}", "argument checkpoint: no such file"),
    ("summary --arch vgg", "argument --arch: invalid choice: 'vgg'"),
    # predict
    ("predict {ckpt} {images} --top 0", "argument --top: must be >= 1, got 0"),
    ("predict {classes20} {images} --top 25", "--top 25: the model in {classes20} scores only 20 classes"),
    ("predict {ckpt} {images} --top 15", "--top 15: the model in {ckpt} scores only 10 classes"),
    ("predict {ckpt} {ckpt}", "{ckpt} is an .npz (zip) archive (a checkpoint? give it as the first argument)"),
    ("predict {ckpt} {notes}", "{notes} is not a .npy file; predict reads a .npy array"),
    ("predict {ckpt} {empty}", "{empty} is an empty file"),
    ("predict {images} {ckpt}", "{images} is not a minicnn checkpoint: it is a .npy array"),
    ("predict {ckpt} {bad_shape}", "expected images (N, 28, 28), (28, 28) or (N, 1, 28, 28), got shape (2, 5, 5)"),
    ("predict {ckpt} {int64}", "expected uint8 images (0-255) or floats in [0, 1], got int64"),
    ("predict {ckpt} {float255}", "float images must be in [0, 1], these go from 255 to 255"),
    ("predict {ckpt} {no_images}", "{no_images} holds no images"),
    ("predict {ckpt} {objects}", "cannot read {objects} as a .npy array"),
    ("predict {ckpt} {truncated}", "cannot read {truncated} as a .npy array"),
    ("predict {huge_pad} {images}", "raise the limit with --max-memory MB"),
    ("predict {ckpt} {missing}", "argument file: no such file"),
    # export: nothing written, and never over a checkpoint
    ("export {missing} --onnx {tmp}/a.onnx", "argument checkpoint: no such file: {missing}"),
    ("export {ckpt}", "the following arguments are required: --onnx"),
    ("export {ckpt} --onnx {folder}", "argument --onnx: {folder} is a folder, not a file"),
    ("export {ckpt} --onnx {tmp}/nowhere/a.onnx", "argument --onnx: no such folder: {tmp}/nowhere"),
    ("export {junk} --onnx {tmp}/a.onnx", "{junk} is not a minicnn checkpoint: it is not an .npz"),
    ("export {state} --onnx {tmp}/a.onnx", "{state} is a trainer state"),
    ("export {ckpt} --onnx {ckpt}", "--onnx {ckpt} is the checkpoint itself; give another file"),
    ("export {ckpt} --onnx {classes20}", "--onnx {classes20} exists and is an .npz (zip) archive, "
                                         "not an ONNX file: export will not overwrite it"),
    ("export {ckpt} --onnx {tmp}/a.onnx --input-shape 1,8,8", "input shape 1x8x8: layer 2 Conv2D(6->16"),
    ("export {ckpt} --onnx {tmp}/a.onnx --input-shape 0,28,28", "argument --input-shape: sizes must be >= 1"),
    # the command itself
    ("", "the following arguments are required: COMMAND"),
    ("frobnicate", "argument COMMAND: invalid choice: 'frobnicate'"),
    ("info --verbose", "unrecognized arguments: --verbose"),
]


def run_cli(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("line,expected", CASES, ids=[c[0] or "(nothing)" for c in CASES])
def test_wrong_input_is_one_line_and_exit_2(line, expected, files, offline, capsys):
    argv = [a.format(**files) for a in line.split()]
    code, out, err = run_cli(argv, capsys)
    command = argv[0] if argv and argv[0] in ("train", "evaluate", "summary", "predict", "export",
                                              "info") else None
    assert code == 2, (code, err)
    assert out == "", "work was done before the mistake was reported"
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith(f"minicnn {command}: error: " if command else "minicnn: error: "), err
    assert expected.format(**files) in err, err
    assert "Traceback" not in err


def test_there_are_at_least_thirty_cases_over_every_subcommand():
    assert len(CASES) >= 30
    assert {c[0].split()[0] for c in CASES if c[0]} >= {"train", "evaluate", "summary", "predict",
                                                        "export", "info"}


def test_right_input_still_works(files, offline, capsys):
    assert run_cli(["predict", files["classes20"], files["images"], "--top", "15"], capsys)[0] == 0
    assert run_cli(["summary", files["ckpt"]], capsys)[1].count("Conv2D") == 2
    for shape in ("1x28x28", "(1, 28, 28)", "1 28 28"):
        code, out, _ = run_cli(["summary", "--input-shape", shape], capsys)
        assert code == 0 and "receptive field: 16" in out
    assert run_cli(["evaluate", files["ckpt"], "--data-dir", offline], capsys)[0] == 0


def child_env():
    return dict(os.environ, MINICNN_NUM_THREADS="1")


def test_real_processes_show_no_traceback(files):
    for argv, expected in [(["train", "--lr", "-0.1"], "--lr"), (["predict", files["ckpt"], files["seven"]], "seven.png"),
                           (["evaluate", files["std0"]], "std")]:
        done = subprocess.run([sys.executable, "-m", "minicnn", *argv], capture_output=True, text=True,
                              env=child_env(), cwd=files["tmp"], timeout=60)
        assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
        assert expected in done.stderr


def test_a_closed_pipe_exits_quietly(files, tmp_path):
    np.save(tmp_path / "many.npy", np.zeros((20000, 28, 28), np.uint8))
    small = tmp_path / "small.npz"
    Sequential(Flatten(), Dense(784, 10, rng=0)).save(small, metadata=META)
    # the reader goes away after one line (| head -1) or before anything (| true)
    for read_first in (True, False):
        proc = subprocess.Popen([sys.executable, "-m", "minicnn", "predict", str(small),
                                 str(tmp_path / "many.npy"), "--top", "3"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=child_env(), cwd=tmp_path)
        if read_first:
            assert proc.stdout.readline().startswith(b"0: ")
        proc.stdout.close()
        err = proc.stderr.read().decode()
        proc.wait(timeout=60)
        assert err == "" and proc.returncode == 141


def test_a_crafted_padding_checkpoint_is_refused_before_it_allocates(files):
    """A 2 KB checkpoint whose one layer pads to 20028 x 20028 used to take 1.57 GB in predict."""
    assert os.path.getsize(files["huge_pad"]) < 4096
    script = ("import resource, subprocess, sys; "
              "p = subprocess.run([sys.executable, '-m', 'minicnn', 'predict', sys.argv[1], sys.argv[2]], "
              "capture_output=True, text=True); "
              "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
              "repr(p.stderr))")
    done = subprocess.run([sys.executable, "-c", script, files["huge_pad"], files["images"]],
                          capture_output=True, text=True, env=child_env(), timeout=60,
                          cwd=files["tmp"])     # not the checkout: its minicnn is unbuilt
    code, peak_kb, err = done.stdout.split(" ", 2)
    assert code == "2" and "--max-memory" in err
    assert int(peak_kb) < 300 * 1024, f"peak RSS {int(peak_kb) // 1024} MB"


def test_evaluate_names_the_data_dir_flag_and_quiet_train_reports_files(files, offline, capsys):
    code, _, err = run_cli(["evaluate", files["ckpt"], "--data-dir", files["emptydata"]], capsys)
    assert "pass --data-dir DIR" in err
    out_dir = os.path.join(files["tmp"], "quiet-run")
    code, out, err = run_cli(["train", "--data-dir", offline, "--out", out_dir, "--epochs", "1",
                              "--batch-size", "4", "--quiet", "--threads", "1"], capsys)
    assert code == 0, err
    assert f"wrote {out_dir}/lenet5.npz" in out
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "pip install 'minicnn[plot]'" in out
    lines = [json.loads(s) for s in open(os.path.join(out_dir, "lenet5-history.jsonl"))]
    assert len(lines) == 1 and lines[0]["epoch"] == 1
