"""Data-parallel training over MPI: one process per rank, on one machine or many.

    mpiexec -n 2 minicnn train --distributed            # the MNIST recipe on 2 processes
    mpiexec -n 4 python my_script.py                     # a script using DistributedTrainer

``rank()``, ``world_size()`` and ``is_main()`` say where a process stands (0, 1 and True when
it was not started by an MPI launcher); ``DistributedTrainer`` is the Trainer's data-parallel
mode (see minicnn/distributed/trainer.py for how batches are dealt and gradients summed).
Needs mpi4py and an MPI library: ``pip install 'minicnn[mpi]'`` installs mpi4py and MPICH,
whose ``mpiexec`` lands beside the environment's python. Importing this module initialises
no MPI; the first call that needs it does.
"""
import os

from .comm import (DEFAULT_TIMEOUT, Communicator, DistributedError, DistributedTimeoutError,
                   RankMismatchError, StoppedByMain, stop_all_on_error)
from .trainer import DistributedTrainer

__all__ = ["DEFAULT_TIMEOUT", "Communicator", "DistributedError", "DistributedTimeoutError",
           "DistributedTrainer", "RankMismatchError", "StoppedByMain", "is_main",
           "launched_by_mpi", "rank", "stop_all_on_error", "world_size"]

#: variables an MPI launcher sets in each process it starts (MPICH/Hydra and Intel MPI,
#: PMIx launchers such as Open MPI 5's, Open MPI 4, MVAPICH)
LAUNCHER_VARIABLES = ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")


def launched_by_mpi():
    """True when an MPI launcher (mpiexec, mpirun, srun with PMI) started this process."""
    return any(name in os.environ for name in LAUNCHER_VARIABLES)


def _world():
    if not launched_by_mpi():
        return None
    from .comm import mpi

    return mpi().COMM_WORLD


def rank():
    """This process's rank in MPI's COMM_WORLD; 0 when not started by an MPI launcher."""
    comm = _world()
    return 0 if comm is None else comm.Get_rank()


def world_size():
    """The number of processes of the run; 1 when not started by an MPI launcher."""
    comm = _world()
    return 1 if comm is None else comm.Get_size()


def is_main():
    """True on rank 0, the process that writes files and prints (and in a plain run)."""
    return rank() == 0
