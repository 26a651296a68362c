"""Files behave like files (issue 18, item 10) and IDX sizes do not wrap: checkpoints take
the umask's mode (or keep the existing file's), an interrupted save's temporary is removed
by the next save, and kill -9 in the middle of a save leaves the previous checkpoint."""
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import minicnn
from minicnn import Dense, Sequential
from minicnn._atomic import atomic_write
from minicnn.data import IDXError, parse_idx
from isolated import TESTS


def test_idx_sizes_are_computed_without_wrapping():
    """uint64 wrapped 29700 * 24920845 * 24923011 bytes to 9,884: the header passed the length
    check and failed later with a plain 'cannot reshape'."""
    dims = (29700, 24920845, 24923011)
    payload = b"\x00\x00\x08\x03" + b"".join(d.to_bytes(4, "big") for d in dims) + bytes(9884 - 16)
    with pytest.raises(IDXError, match=r"train-images: truncated: the header declares shape "
                                       r"\(29700, 24920845, 24923011\) \(18,446,744,073,709,561,516 "
                                       r"bytes in all\), the data is 9,884 bytes"):
        parse_idx(payload, "train-images")


def files(folder):
    return sorted(os.listdir(folder))


def temporaries(folder):
    return [n for n in files(folder) if n.endswith(".tmp")]


@pytest.fixture
def umask():
    def set_umask(value):
        os.umask(value)
    old = os.umask(0o022)
    yield set_umask
    os.umask(old)


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_a_new_checkpoint_gets_the_mode_the_umask_gives(tmp_path, umask, mask, mode):
    umask(mask)
    Sequential(Dense(2, 2, rng=0)).save(tmp_path / "m.npz")
    assert os.stat(tmp_path / "m.npz").st_mode & 0o777 == mode


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o664])
def test_an_existing_checkpoint_keeps_its_mode(tmp_path, umask, mode):
    path = tmp_path / "m.npz"
    Sequential(Dense(2, 2, rng=0)).save(path)
    os.chmod(path, mode)
    umask(0o077)
    Sequential(Dense(2, 2, rng=1)).save(path)
    assert os.stat(path).st_mode & 0o777 == mode


def test_the_next_save_removes_an_interrupted_saves_temporary(tmp_path):
    path = tmp_path / "m.npz"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    # a dead process's temporary, one of this process's not being written, an earlier
    # version's old one: stale; a live process's, a recent earlier-version one and other
    # files: kept
    stale = [f".m.npz.minicnn-{dead.pid}-{'a' * 16}.tmp", f".m.npz.minicnn-{os.getpid()}-{'b' * 16}.tmp",
             ".m.npz.k3j_x9a2.tmp"]
    kept = [f".m.npz.minicnn-{os.getppid()}-{'c' * 16}.tmp", ".m.npz.q8w7e6r5.tmp",
            f".other.npz.minicnn-{dead.pid}-{'d' * 16}.tmp", "notes.txt"]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"half a model")
    hour_ago = time.time() - 2 * 3600
    os.utime(tmp_path / ".m.npz.k3j_x9a2.tmp", (hour_ago, hour_ago))
    Sequential(Dense(2, 2, rng=0)).save(path)
    assert files(tmp_path) == sorted(kept + ["m.npz"])


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def fail(f):
        f.write(b"new, half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fail)
    assert path.read_bytes() == b"old" and files(tmp_path) == ["f.bin"]


SAVER = """
import sys
import numpy as np
import minicnn
path = sys.argv[1]
model = minicnn.Sequential(minicnn.Dense(1000, 1000, rng=0))
for i in range(1, 10**9):
    model.layers[0].params["weight"].fill(i)
    model.save(path, metadata={"i": i})
    if i == 1:
        print("SAVED", flush=True)
"""


def test_kill_9_in_the_middle_of_saves_leaves_a_loadable_checkpoint(tmp_path):
    """A child saves a 4 MB model in a loop and is killed with SIGKILL at random moments:
    the checkpoint is always whole (the weights match its metadata), and the next save
    removes what the kill left."""
    path = tmp_path / "m.npz"
    left_behind = 0
    rng = random.Random(0)
    for kill in range(3):
        child = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE,
                                 text=True, env=dict(os.environ, PYTHONPATH=TESTS),
                                 cwd=tmp_path)     # not the checkout: its minicnn is unbuilt
        try:
            assert child.stdout.readline().strip() == "SAVED"
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        assert child.returncode == -signal.SIGKILL
        left_behind += len(temporaries(tmp_path))
        model = minicnn.load(path)
        i = model.metadata["i"]
        assert i >= 1 and np.all(model.layers[0].params["weight"] == i), (kill, i)
    # kill -9 hit a save in progress at least once (else this test proved nothing)
    assert left_behind > 0
    Sequential(Dense(1000, 1000, rng=0)).save(path)
    # (a temporary may stay only if its pid was given to a new process meanwhile: pids wrap)
    left = [n for n in temporaries(tmp_path) if not pid_alive(int(n.split("-")[1]))]
    assert left == [], (left, files(tmp_path))


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
