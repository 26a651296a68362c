"""MPI collectives that never wait forever, and the rule that one failing rank stops them all.

Every collective is started non-blocking and polled against a deadline (``timeout`` seconds,
``MINICNN_MPI_TIMEOUT``): when another rank has raised, died or hangs, the ranks still waiting
raise DistributedTimeoutError instead of blocking. ``stop_all_on_error`` turns an exception on
one rank into MPI_Abort, which makes the launcher end every rank at once (mpiexec does the
same when a rank is killed). Only mpi4py is imported here, and only when a communicator is
asked for: importing minicnn.distributed initialises no MPI.
"""
import os
import pickle
import stat
import struct
import sys
import time
import traceback
from contextlib import contextmanager

try:
    import fcntl
    import termios
except ImportError:             # not on Windows: a failing rank's report is not waited for
    fcntl = termios = None

import numpy as np

__all__ = ["DEFAULT_TIMEOUT", "INSTALL_HINT", "RAISED_ON_EVERY_RANK", "Communicator",
           "DistributedError", "DistributedTimeoutError", "RankMismatchError", "StoppedByMain",
           "mpi", "stop_all_on_error", "timeout_from"]

#: seconds a collective waits for every rank before the run is stopped
DEFAULT_TIMEOUT = 120.0
#: a collective is polled without sleeping for this long, then with sleeps growing to
#: POLL_MAX_SLEEP. MPI moves a non-blocking collective's data only while it is polled (MPICH
#: has no progress thread by default), so sleeping early stretches a large allreduce: see
#: benchmarks/README.md, "Data-parallel training over MPI".
SPIN_SECONDS = 0.05
POLL_MAX_SLEEP = 0.001
#: at most this long, a failing rank waits for the launcher to take its report out of the
#: pipe before MPI_Abort: the launcher then ends every process at once, and what a rank wrote
#: that it had not yet read (or forwarded) is lost
REPORT_DRAIN_SECONDS = 2.0
#: how to install what is missing, for every error that says it
INSTALL_HINT = "pip install 'minicnn[mpi]' (mpi4py and MPICH)"


class DistributedError(RuntimeError):
    """A data-parallel run cannot go on."""


class DistributedTimeoutError(DistributedError):
    """A collective waited longer than the timeout for the other ranks."""


class RankMismatchError(DistributedError, ValueError):
    """The ranks were given different data, arguments or models (raised on every rank)."""


class StoppedByMain(DistributedError):
    """Raised on the other ranks when rank 0 raised in ``Communicator.from_main``; rank 0's own
    exception says why."""


def mpi():
    """The mpi4py.MPI module (initialising MPI), or ImportError saying what to install."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"minicnn.distributed needs mpi4py and an MPI library: {INSTALL_HINT} "
                          f"({e})") from None
    return MPI


def timeout_from(value):
    """``value`` seconds, else MINICNN_MPI_TIMEOUT, else DEFAULT_TIMEOUT; checked."""
    name = "timeout"
    if value is None:
        name, value = "MINICNN_MPI_TIMEOUT", os.environ.get("MINICNN_MPI_TIMEOUT", "").strip()
        if not value:
            return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if isinstance(value, bool) or not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"minicnn.distributed: {name} must be a finite number of seconds > 0, "
                         f"got {value!r}")
    return seconds


class Communicator:
    """An mpi4py intracommunicator's collectives, each waited on with a deadline.

    ``what`` names the exchange in the timeout's message (e.g. 'the gradients of epoch 2,
    batch 17'), so the rank that stopped can be found in the others' output.
    """

    def __init__(self, comm=None, timeout=None):
        self.MPI = mpi()
        self.comm = self.MPI.COMM_WORLD if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.timeout = timeout_from(timeout)

    @property
    def is_main(self):
        return self.rank == 0

    def wait(self, request, what):
        """Poll ``request`` until it completes; DistributedTimeoutError after ``timeout`` s."""
        start = time.monotonic()
        pause = 1e-4
        while not request.Test():
            waited = time.monotonic() - start
            if waited > self.timeout:
                raise DistributedTimeoutError(
                    f"rank {self.rank} of {self.size} waited {waited:.0f} s for {what}: another "
                    f"rank has stopped or hangs (its own output says why). The limit is "
                    f"{self.timeout:g} s (MINICNN_MPI_TIMEOUT or timeout=).")
            if waited > SPIN_SECONDS:
                time.sleep(pause)
                pause = min(2 * pause, POLL_MAX_SLEEP)

    def allreduce_sum(self, buf, what):
        """Sum ``buf`` (a contiguous float64 array) over the ranks, in place."""
        self.wait(self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM), what)
        return buf

    def bcast_array(self, buf, what):
        """Rank 0's ``buf`` (contiguous) into every rank's ``buf``, in place."""
        self.wait(self.comm.Ibcast(buf, root=0), what)
        return buf

    def bcast_object(self, obj, what):
        """Rank 0's ``obj`` on every rank (pickled: between the ranks of one run only)."""
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL) if self.is_main else b""
        size = self.bcast_array(np.array([len(data)], dtype=np.int64), what)
        buf = np.frombuffer(data, dtype=np.uint8).copy() if self.is_main else \
            np.empty(int(size[0]), dtype=np.uint8)
        self.bcast_array(buf, what)
        return obj if self.is_main else pickle.loads(buf.tobytes())

    def allgather(self, values, what):
        """Every rank's 1-d int64 ``values``: an array (size, len(values)), row r from rank r."""
        values = np.ascontiguousarray(values, dtype=np.int64)
        out = np.empty((self.size, len(values)), dtype=np.int64)
        self.wait(self.comm.Iallgather(values, out), what)
        return out

    def barrier(self, what):
        self.wait(self.comm.Ibarrier(), what)

    def from_main(self, fn, *args, what="rank 0", share=True):
        """``fn(*args)`` on rank 0 alone; its result on every rank (``share``) or on rank 0
        alone (None elsewhere). When it raises, rank 0 raises that exception and the other
        ranks StoppedByMain (quietly: rank 0 says why), so no rank is left waiting."""
        if not self.is_main:
            status, payload = self.bcast_object(None, what)
            if status == "raised":
                raise StoppedByMain(f"rank 0 stopped the run: {payload}")
            return payload
        try:
            result = fn(*args)
        except Exception as e:
            self.bcast_object(("raised", f"{type(e).__name__}: {e}"), what)
            e.minicnn_every_rank_told = True  # stop_all_on_error: no abort needed
            raise
        self.bcast_object(("ok", result if share else None), what)
        return result

    def main_first(self, fn, *args, what="rank 0"):
        """``fn(*args)`` on rank 0, then, once it has worked, on the other ranks (a download
        made once, then read by all); each rank's own result."""
        result = self.from_main(fn, *args, what=what, share=False)
        return result if self.is_main else fn(*args)

    def ranks_on_this_machine(self):
        """How many ranks of the run share this machine (a blocking collective)."""
        local = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED)
        try:
            return local.Get_size()
        finally:
            local.Free()

    def abort(self, code=1):
        """MPI_Abort: the launcher ends every rank. This process ends here too (MPI_Abort may
        return before the launcher's signal arrives, and nothing more should run or print)."""
        self.comm.Abort(code)
        os._exit(code)


#: exceptions that every rank raises at the same point, so no rank is left waiting
RAISED_ON_EVERY_RANK = (RankMismatchError, StoppedByMain)


@contextmanager
def stop_all_on_error(comm, also_every_rank=()):
    """Around work with collectives: an exception on this rank alone is printed with its rank
    and turned into MPI_Abort, which ends every rank of the run (the others would otherwise
    wait for this one). Exceptions that every rank raises together (RAISED_ON_EVERY_RANK and
    ``also_every_rank``) pass through, as does everything when there is one rank."""
    try:
        yield
    except RAISED_ON_EVERY_RANK + tuple(also_every_rank):
        raise
    except BaseException as e:
        if comm.size == 1 or getattr(e, "minicnn_every_rank_told", False):
            raise
        try:            # whatever happens to the report (no stderr, Ctrl-C), the abort runs
            if sys.stdout is not None:
                sys.stdout.flush()
            write_before_abort(traceback.format_exc()
                               + f"minicnn.distributed: rank {comm.rank} of {comm.size} stops "
                                 f"every rank after {type(e).__name__}: {e}\n")
        finally:
            comm.abort(1)
        raise


def write_before_abort(text, stream=None):
    """Write ``text`` to ``stream`` (sys.stderr; nothing when there is none) in one piece and,
    when the stream is a pipe (a launcher forwarding this rank's output), wait until its reader
    has taken every byte, for at most REPORT_DRAIN_SECONDS. Written line by line and followed
    at once by MPI_Abort, a traceback could reach the user cut after its first line. The wait
    needs Linux, where FIONREAD on a pipe's write end counts the unread bytes; elsewhere it
    returns after the write."""
    stream = sys.stderr if stream is None else stream
    if stream is None:
        return
    stream.write(text)
    stream.flush()
    try:
        fd = stream.fileno()
        if (fcntl is None or not sys.platform.startswith("linux")
                or not stat.S_ISFIFO(os.fstat(fd).st_mode)):
            return
    except (AttributeError, OSError, ValueError):   # a stream without a file (capture)
        return
    deadline = time.monotonic() + REPORT_DRAIN_SECONDS
    while _unread_bytes(fd) > 0 and time.monotonic() < deadline:
        time.sleep(0.005)


def _unread_bytes(fd):
    """Bytes written into the pipe ``fd`` that its reader has not read yet (FIONREAD)."""
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return 0
