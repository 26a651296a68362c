"""``minicnn train`` (and examples/mnist/train.py): its options, checked, and the run."""
import argparse

from . import args as A

__all__ = ["FLAGS", "add_train_arguments", "run_train", "missing_data"]

#: the train_mnist argument behind each option, for messages that name what the user typed
FLAGS = {"kind": "--kind", "epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr",
         "seed": "--seed", "augment": "--augment", "limit": "--limit"}


def add_train_arguments(parser):
    """The options of ``minicnn train`` and examples/mnist/train.py. Options left out take the
    recipe's value (or, with --resume, the run's own)."""
    from ..recipes import RECIPES

    parser.add_argument("--arch", default="lenet5", choices=sorted(RECIPES),
                        help="network to train (default: lenet5)")
    parser.add_argument("--epochs", type=A.positive_int, default=None,
                        help="epochs (default: the recipe's)")
    parser.add_argument("--batch-size", type=A.positive_int, default=None,
                        help="images per step (default: 64)")
    parser.add_argument("--lr", type=A.positive_float, default=None,
                        help="initial learning rate (default: the recipe's)")
    parser.add_argument("--seed", type=A.natural_int, default=None, help="random seed (default: 0)")
    parser.add_argument("--data-dir", type=A.folder, default=None,
                        help="folder holding mnist/ (default: $MINICNN_DATA, else ~/.cache/minicnn)")
    parser.add_argument("--kind", default=None, choices=["mnist", "fashion-mnist"],
                        help="data set (default: mnist)")
    parser.add_argument("--out", type=A.folder, default="runs",
                        help="folder for the checkpoints and logs (default: runs)")
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                        help="random shifts of up to 2 pixels (default: the recipe's; on for convnet)")
    parser.add_argument("--threads", type=A.threads, default=None,
                        help="kernel threads (default: all cores)")
    parser.add_argument("--limit", type=A.positive_int, default=None,
                        help="train on the first N images only")
    parser.add_argument("--resume", action="store_true",
                        help="continue the unfinished run in --out from its last complete epoch")
    parser.add_argument("--restart", action="store_true",
                        help="start a new run over an unfinished one in --out (its state is dropped)")
    parser.add_argument("--overwrite", action="store_true",
                        help="let the finished model replace ARCH.npz even if that one is better")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars (interruptions and files written are still reported)")
    parser.add_argument("--distributed", action="store_true",
                        help="data-parallel over the processes of `mpiexec -n N minicnn train "
                        "--distributed` (needs pip install 'minicnn[mpi]')")
    return parser


def run_train(args):
    """Run ``minicnn train``; returns the exit code (0 finished, 130 interrupted, 2 a mistake)."""
    from ..data import DatasetNotFoundError
    from ..recipes import train_mnist
    from ..run_files import RunFileError
    from ..trainer import TrainingDivergedError

    if args.distributed:
        _check_mpi()
    try:
        result = train_mnist(arch=args.arch, epochs=args.epochs, batch_size=args.batch_size,
                             lr=args.lr, seed=args.seed, data_dir=args.data_dir, out=args.out,
                             kind=args.kind, augment=args.augment, threads=args.threads,
                             limit=args.limit, verbose=0 if args.quiet else 1,
                             resume=args.resume, restart=args.restart, overwrite=args.overwrite,
                             flag_names=FLAGS, distributed=args.distributed)
    except RunFileError as e:
        raise A.UsageError(str(e)) from e
    except DatasetNotFoundError as e:
        raise A.UsageError(missing_data(e, args.data_dir)) from e
    except TrainingDivergedError as e:
        if args.distributed:  # every rank stops at the same step; rank 0 says so
            _raise_unless_main(e)
        raise A.UsageError(f"training diverged: {e}") from e
    return 130 if result["interrupted"] else 0


def _check_mpi():
    from ..distributed.comm import INSTALL_HINT

    try:
        import mpi4py.MPI  # noqa: F401
    except (ImportError, RuntimeError, OSError) as e:  # no mpi4py, or no MPI library for it
        raise A.UsageError(f"--distributed needs mpi4py and an MPI library ({e}): "
                           f"{INSTALL_HINT}") from None


def _raise_unless_main(error):
    from ..distributed import StoppedByMain, is_main

    if not is_main():
        raise StoppedByMain(str(error)) from error


def missing_data(error, data_dir):
    """One line for missing data files that names the option the user has: --data-dir."""
    if error.folder is None:
        return str(error)
    where = f"--data-dir {data_dir}" if data_dir else "$MINICNN_DATA or ~/.cache/minicnn (no --data-dir)"
    why = f"; downloading failed ({A.one_line(error.errors[0])})" if error.errors else ""
    return (f"{error.kind}: missing {', '.join(error.missing)} in {error.folder} (from {where}){why}; "
            f"put the four files there, or pass --data-dir DIR naming a folder that holds "
            f"{error.kind}/")
