"""minicnn.distributed: the gradient buffer and the stop rules in this process; real
two-rank runs under ``mpiexec -n 2`` on this machine (skipped without mpi4py and mpiexec)."""
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import minicnn
from minicnn import cli, distributed
from minicnn.distributed import comm as C
from minicnn.distributed.trainer import GradientBuffer

from conftest import fake_dataset
from isolated import TESTS


# --- in this process: no MPI is initialised --------------------------------------------------

def test_without_a_launcher_this_process_is_rank_0_of_1(monkeypatch):
    for name in distributed.LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched_by_mpi()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)


def test_gradient_buffer_weights_each_share_and_divides_by_the_batch():
    model = minicnn.Sequential(minicnn.Dense(3, 2))     # float32 parameters
    params = model.parameters()
    buf = GradientBuffer(params)
    assert buf.flat.dtype == np.float64 and buf.flat.size == 3 * 2 + 2 + GradientBuffer.EXTRA
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(p.grad.shape).astype(np.float32) for p in params]
    for p, g in zip(params, grads):
        p.grad[...] = g
    buf.pack(3, loss_sum=6.0, right=2, interrupt=False)
    mine = buf.flat.copy()
    buf.flat += 2 * mine            # as if two more ranks sent the same: a batch of 9 images
    value, right, images, interrupt = buf.unpack()
    assert (value, right, images, interrupt) == (2.0, 6, 9, False)
    for p, g in zip(params, grads):         # (3 g + 6 g) / 9 = g, summed in float64
        assert p.grad.dtype == np.float32
        np.testing.assert_allclose(p.grad, g, rtol=1e-7)
    buf.pack(0, 0.0, 0, True)               # a rank without an image adds nothing
    assert not buf.flat[:buf.total].any() and list(buf.flat[buf.total:]) == [0, 0, 0, 1]


class _Pending:
    def Test(self):
        return False


def _communicator(timeout=0.2, rank=1, size=2):
    comm = C.Communicator.__new__(C.Communicator)   # no MPI: only wait() and the rules
    comm.rank, comm.size, comm.timeout = rank, size, timeout
    comm.aborted = []
    comm.abort = comm.aborted.append
    return comm


def test_a_collective_that_never_completes_times_out_with_its_name():
    start = time.monotonic()
    with pytest.raises(C.DistributedTimeoutError, match=r"rank 1 of 2 waited 0 s for the "
                       r"gradients of epoch 1, batch 4: another rank has stopped or hangs"):
        _communicator().wait(_Pending(), "the gradients of epoch 1, batch 4")
    assert 0.2 <= time.monotonic() - start < 5


@pytest.mark.parametrize("value, expected", [(None, C.DEFAULT_TIMEOUT), (3, 3.0), ("2.5", 2.5)])
def test_timeout_from_argument_or_default(value, expected, monkeypatch):
    monkeypatch.delenv("MINICNN_MPI_TIMEOUT", raising=False)
    assert C.timeout_from(value) == expected


@pytest.mark.parametrize("value", [0, -1, "soon", float("inf"), float("nan"), True])
def test_timeout_must_be_positive_seconds(value):
    with pytest.raises(ValueError, match="timeout must be a finite number of seconds > 0"):
        C.timeout_from(value)


def test_timeout_from_the_environment(monkeypatch):
    monkeypatch.setenv("MINICNN_MPI_TIMEOUT", "7")
    assert C.timeout_from(None) == 7.0
    monkeypatch.setenv("MINICNN_MPI_TIMEOUT", "x")
    with pytest.raises(ValueError, match="MINICNN_MPI_TIMEOUT must be"):
        C.timeout_from(None)


def test_an_error_on_one_rank_aborts_every_rank(capsys):
    comm = _communicator()
    with pytest.raises(KeyError):
        with C.stop_all_on_error(comm):
            raise KeyError("lost")
    assert comm.aborted == [1]
    assert "rank 1 of 2 stops every rank after KeyError: 'lost'" in capsys.readouterr().err


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="FIONREAD counts a pipe's unread bytes from its write end on Linux")
def test_the_report_before_an_abort_waits_until_the_pipe_is_read(monkeypatch):
    # a launcher reads a rank's stderr through a pipe; MPI_Abort then ends every process,
    # so the report must have left the pipe first
    import threading
    read_end, write_end = os.pipe()
    got = []
    reader = threading.Thread(target=lambda: (time.sleep(0.3), got.append(os.read(read_end,
                                                                                 1 << 16))))
    try:
        with os.fdopen(write_end, "w") as stream:
            start = time.monotonic()
            reader.start()
            C.write_before_abort("Traceback (most recent call last):\n  ...\nValueError: x\n",
                                 stream)
            waited = time.monotonic() - start
            reader.join()
            assert 0.3 <= waited < C.REPORT_DRAIN_SECONDS
            assert got[0].endswith(b"ValueError: x\n")
            # nobody reading: it gives up after REPORT_DRAIN_SECONDS
            monkeypatch.setattr(C, "REPORT_DRAIN_SECONDS", 0.2)
            start = time.monotonic()
            C.write_before_abort("lost\n", stream)
            assert 0.2 <= time.monotonic() - start < 2
    finally:
        os.close(read_end)


def test_the_abort_runs_even_when_the_report_cannot_be_written(monkeypatch):
    monkeypatch.setattr(sys, "stderr", None)        # pythonw, some daemons
    comm = _communicator()
    with pytest.raises(KeyError):
        with C.stop_all_on_error(comm):
            raise KeyError("lost")
    assert comm.aborted == [1]

    class Broken:
        def write(self, text):
            raise BrokenPipeError("the launcher has gone")

    monkeypatch.setattr(sys, "stderr", Broken())
    comm = _communicator()
    with pytest.raises(BrokenPipeError):        # (MPI_Abort ends the process before this)
        with C.stop_all_on_error(comm):
            raise KeyError("lost")
    assert comm.aborted == [1]


@pytest.mark.parametrize("error", [C.RankMismatchError("differ"), C.StoppedByMain("rank 0"),
                                   minicnn.TrainingDivergedError("nan")])
def test_errors_every_rank_raises_together_do_not_abort(error):
    comm = _communicator()
    with pytest.raises(type(error)):
        with C.stop_all_on_error(comm, (minicnn.TrainingDivergedError,)):
            raise error
    assert comm.aborted == []


def test_an_error_rank_0_told_the_others_or_a_single_rank_does_not_abort():
    told = ValueError("bad file")
    told.minicnn_every_rank_told = True
    for comm, error in ((_communicator(rank=0), told), (_communicator(size=1), ValueError())):
        with pytest.raises(ValueError):
            with C.stop_all_on_error(comm):
                raise error
        assert comm.aborted == []


def test_cli_distributed_without_mpi4py_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", None)
    assert cli.main(["train", "--distributed", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--distributed needs mpi4py" in err and "minicnn[mpi]" in err


# --- two ranks under mpiexec -----------------------------------------------------------------

def _mpiexec():
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install 'minicnn[mpi]')")
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = beside if os.path.exists(beside) else None
    if found is None:
        import shutil

        found = shutil.which("mpiexec")
    if found is None:
        pytest.skip("no mpiexec beside this python or on PATH (pip install 'minicnn[mpi]')")
    version = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=60)
    if "HYDRA" in version.stdout:      # MPICH
        return [found, "-host", "localhost", "-n", "2"], {}
    return [found, "--host", "localhost:2", "-n", "2"], {      # Open MPI
        "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def _child_env(extra):
    return dict(os.environ, PYTHONPATH=TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""),
                MINICNN_NUM_THREADS="1", **extra)


def launch(*argv, timeout, env=None):
    """``mpiexec -n 2 python ARGV`` (on localhost, from tests/, not the checkout); the whole
    process group is killed when it outlives ``timeout``. Returns (returncode, output, s)."""
    launcher, launcher_env = _mpiexec()
    full_env = _child_env({**launcher_env, **(env or {})})
    start = time.monotonic()
    proc = subprocess.Popen([*launcher, sys.executable, *argv], cwd=TESTS, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"mpiexec still ran after {timeout} s: a hang\n{out[-4000:]}")
    return proc.returncode, out, time.monotonic() - start


def worker(mode, folder, timeout=120, env=None):
    return launch(os.path.join(TESTS, "distributed_worker.py"), mode, str(folder),
                  timeout=timeout, env=env)


def test_two_ranks_train_as_one_process_on_the_global_batch(tmp_path):
    code, out, _ = worker("equal", tmp_path)
    assert code == 0, out[-4000:]
    # the ranks' lines share one pipe, and may run into each other
    (found,) = re.findall(r"MAXDIFF (\S+) (\S+) steps (\d+) (\d+)", out)
    weights, logs, steps_alone, steps = found
    assert (steps_alone, steps) == ("20", "20")
    assert float(weights) <= 1e-12 and float(logs) <= 1e-12, found
    digests = dict(re.findall(r"DIGEST (\d) ([0-9a-f]{16})", out))
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"], out[-2000:]


def test_batchnorm_running_statistics_are_the_same_on_every_rank(tmp_path):
    code, out, _ = worker("batchnorm", tmp_path)
    assert code == 0, out[-4000:]
    found = dict((r, (digest, float(v))) for r, digest, v in
                 re.findall(r"BN (\d) ([0-9a-f]{16}) (-?\d+\.\d{6})", out))
    assert set(found) == {"0", "1"} and found["0"] == found["1"], out[-2000:]
    assert found["0"][1] != 0.0         # trained: the running mean moved


@pytest.mark.parametrize("mode, says", [
    ("raise", "rank 1 of 2 stops every rank after ValueError: worker: rank 1 fails on purpose"),
    ("hang", "rank 0 of 2 waited 3 s for the gradients of epoch 1, batch 4"),
    ("kill", None),                     # the launcher sees the death and ends the other rank
    ("mismatch", "RankMismatchError: DistributedTrainer.fit: every rank must be given the same "
                 "data and arguments, but len(x)"),
    ("drift", "RankMismatchError: DistributedTrainer: after epoch 1 the ranks' weights differ"),
])
def test_a_rank_that_fails_ends_the_run_with_an_error_not_a_hang(mode, says, tmp_path):
    code, out, seconds = worker(mode, tmp_path, timeout=90, env={"MINICNN_MPI_TIMEOUT": "3"})
    assert code != 0 and "FINISHED" not in out, out[-4000:]
    if says:
        assert says in out, out[-4000:]
    assert seconds < 60


def test_cli_train_distributed_matches_one_process(tmp_path, monkeypatch):
    data = tmp_path / "data"
    fake_dataset(monkeypatch, n=90, root=data)          # the children read its hashes
    child = os.path.join(TESTS, "cli_child.py")
    common = ["train", "--epochs", "1", "--batch-size", "10", "--quiet", "--data-dir", str(data)]
    env = {"CHILD_FAKE_DATA": str(data)}
    code, out, _ = launch(child, *common, "--distributed", "--out", str(tmp_path / "two"),
                          timeout=180, env=env)
    assert code == 0, out[-4000:]
    assert "1 threads in each of 2 processes" in out and out.count("test accuracy:") == 1
    alone = subprocess.run([sys.executable, child, *common, "--out", str(tmp_path / "one")],
                           cwd=TESTS, env=_child_env(env), capture_output=True, text=True,
                           timeout=180)
    assert alone.returncode == 0, alone.stderr[-4000:]

    def accuracy(text):
        return re.search(r"test accuracy: ([\d.]+% \(\d+/\d+\))", text).group(1)

    assert accuracy(out) == accuracy(alone.stdout)
    a, b = minicnn.load(tmp_path / "one" / "lenet5.npz"), minicnn.load(tmp_path / "two" / "lenet5.npz")
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(p.value, q.value, rtol=1e-4, atol=1e-6)
    assert not os.path.exists(tmp_path / "two" / "lenet5.npz.tmp")


def test_cli_distributed_user_mistake_is_one_line_from_rank_0(tmp_path):
    code, out, _ = launch("-m", "minicnn", "train", "--distributed", "--resume", "--out",
                          str(tmp_path / "runs"), timeout=120)
    assert code == 2
    # one line from minicnn (Open MPI's launcher adds a box of its own about the exit code)
    assert out.count("minicnn train: error: nothing to resume") == 1, out
    assert out.count("minicnn") == 1 and "Traceback" not in out, out


def _rank_pid(rank, out):
    """The pid of the process of rank ``rank`` whose command line names ``out``."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if out in cmdline and (f"PMI_RANK={rank}" in environ or f"PMIX_RANK={rank}" in environ):
            return int(pid)
    raise AssertionError(f"no process of rank {rank} for {out}")


def test_ctrl_c_on_one_rank_stops_every_rank_after_the_same_step(tmp_path, monkeypatch):
    """Ctrl-C reaches the ranks at different steps (here: rank 1 alone gets it); they agree
    through the next allreduce and stop together (exit 130), rank 0 writes the run's files,
    and --resume ends on the weights of a run never interrupted."""
    data = tmp_path / "data"
    fake_dataset(monkeypatch, n=90, root=data)
    child = os.path.join(TESTS, "cli_child.py")
    common = [child, "train", "--distributed", "--epochs", "3", "--batch-size", "10", "--quiet",
              "--data-dir", str(data)]
    env = {"CHILD_FAKE_DATA": str(data)}
    code, out, _ = launch(*common, "--out", str(tmp_path / "whole"), timeout=180, env=env)
    assert code == 0, out[-4000:]

    launcher, launcher_env = _mpiexec()
    proc = subprocess.Popen([*launcher, sys.executable, *common, "--out", str(tmp_path / "cut")],
                            cwd=TESTS, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env=_child_env({
                                **launcher_env, **env, "CHILD_STEPS": "1",
                                "CHILD_PAUSE_AT": "STEP 12", "CHILD_PAUSE": "1"}))
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "STEP 12" in line:
                os.kill(_rank_pid(1, str(tmp_path / "cut")), signal.SIGINT)
                break
        out = "".join(lines) + proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, out[-4000:]
    assert out.count("interrupted in epoch 2") == 1, out[-4000:]
    assert max(int(n) for n in re.findall(r"STEP (\d+)", out)) <= 14   # both ranks stopped
    code, out, _ = launch(*common, "--out", str(tmp_path / "cut"), "--resume", timeout=180, env=env)
    assert code == 0 and "resuming after epoch 1" in out, out[-4000:]
    whole = minicnn.load(tmp_path / "whole" / "lenet5.npz")
    resumed = minicnn.load(tmp_path / "cut" / "lenet5.npz")
    for p, q in zip(whole.parameters(), resumed.parameters()):
        np.testing.assert_array_equal(p.value, q.value)
