"""The MNIST training recipe behind ``minicnn train`` and examples/mnist/train.py.

Read top to bottom, ``train_mnist`` is the whole job: load the data, build the
network, print its summary, train it with a progress bar (saving the last epoch's model and
state after each epoch), report the test accuracy, per-class accuracy and confusion matrix,
and save the finished model unless a better one is already there (see run_files.py).
"""
import os
import time
from contextlib import nullcontext

import numpy as np

from . import __version__, data, metrics
from .runtime import get_num_threads, set_num_threads
from .architectures import build
from .callbacks import JSONLinesLogger
from .losses import SoftmaxCrossEntropy
from .optim import SGD
from .rng import seed as seed_everything
from .run_files import (LastCheckpoint, RunPaths, check_start, final_decision, merge_settings,
                        save_last)
from .schedules import CosineAnnealingLR
from .trainer import Trainer
from .distributed.comm import stop_all_on_error

__all__ = ["RECIPES", "NORMALIZATION", "make_transform", "DEFAULTS", "INPUT_SHAPE", "train_mnist",
           "save_plots"]

#: epochs, learning rate and augmentation of each architecture's default recipe (SGD,
#: momentum 0.9, weight decay 5e-4, cosine decay over the run, batch 64). convnet's 1.2M
#: parameters overfit MNIST (training loss 0.005 by epoch 8, test accuracy stuck near 99.0%),
#: so its recipe shifts the images by up to 2 pixels.
RECIPES = {
    "lenet5": {"epochs": 10, "lr": 0.02, "augment": False},
    "convnet": {"epochs": 12, "lr": 0.02, "augment": True},
    "dwsep": {"epochs": 12, "lr": 0.02, "augment": False},
}
NORMALIZATION = {"mnist": (data.MNIST_MEAN, data.MNIST_STD),
                 "fashion-mnist": (data.FASHION_MEAN, data.FASHION_STD)}


def make_transform(kind):
    """uint8 images -> normalised float32 NCHW with the data set's mean and std."""
    mean, std = NORMALIZATION[kind]
    return lambda xb: data.normalize(xb, mean, std)


DEFAULTS = {"kind": "mnist", "batch_size": 64, "seed": 0, "limit": None}
INPUT_SHAPE = (1, 28, 28)


def _settings(arch, given):
    """A new run's settings: what was given, else the recipe's and the defaults; checked."""
    recipe = RECIPES[arch]
    run = {k: (given[k] if given.get(k) is not None else recipe.get(k, DEFAULTS.get(k))) for k in
           ("kind", "epochs", "batch_size", "lr", "seed", "augment", "limit")}
    run["augment"] = bool(run["augment"])
    run["id"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return run


def _check(run):
    def whole(name, low):
        v = run[name]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"train_mnist: {name} must be an int >= {low}, got {v!r}")

    whole("epochs", 1)
    whole("batch_size", 1)
    whole("seed", 0)
    if run["limit"] is not None:
        whole("limit", 1)
    lr = run["lr"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"train_mnist: lr must be a finite number > 0, got {lr!r}")
    if run["kind"] not in NORMALIZATION:
        raise ValueError(f"train_mnist: kind must be one of {sorted(NORMALIZATION)}, got {run['kind']!r}")


def train_mnist(arch="lenet5", epochs=None, batch_size=None, lr=None, seed=None, data_dir=None,
                out="runs", kind=None, augment=None, threads=None, limit=None, verbose=1,
                plot=True, print_fn=print, resume=False, restart=False, overwrite=False,
                flag_names=None, distributed=False):
    """Train ``arch`` on MNIST (or Fashion-MNIST) and return a dict of results.

    Settings left as None take the architecture's recipe (epochs, lr, augment) or the
    defaults (mnist, batch 64, seed 0, every image). The run's files and the rules that keep a
    finished model are in minicnn/run_files.py: ``resume`` continues the unfinished run in
    ``out`` with its own settings, ``restart`` starts over one, ``overwrite`` lets a finished
    model replace one that recorded a better test accuracy.
    """
    ranks = _ranks(distributed)
    with stop_all_on_error(ranks) if ranks is not None else nullcontext():
        return _train(ranks, arch, epochs, batch_size, lr, seed, data_dir, out, kind, augment,
                      threads, limit, verbose, plot, print_fn, resume, restart, overwrite,
                      flag_names)


def _ranks(distributed):
    """None for a run in one process; with ``distributed``, the Communicator of the processes
    mpiexec started (one, when it did not)."""
    if not distributed:
        return None
    from .distributed import Communicator

    return Communicator()


def _start(paths, resume, restart, arch, given, flag_names):
    """The run's settings, and whether it resumes one (its files checked before any work)."""
    stored = check_start(paths, resume, restart)
    run = merge_settings(stored, given, flag_names) if stored else _settings(arch, given)
    _check(run)
    return run, stored is not None


def _train(ranks, arch, epochs, batch_size, lr, seed, data_dir, out, kind, augment, threads,
           limit, verbose, plot, print_fn, resume, restart, overwrite, flag_names):
    if arch not in RECIPES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(RECIPES)}")
    main = ranks is None or ranks.is_main  # rank 0 alone reads and writes the run's files
    if not main:
        verbose, plot, print_fn = 0, False, _silent
    paths = RunPaths(out, arch)
    given = {"kind": kind, "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
             "augment": augment, "limit": limit}
    start_args = (paths, resume, restart, arch, given, flag_names)  # checked before any work
    run, stored = _start(*start_args) if ranks is None else ranks.from_main(_start, *start_args)
    kind, epochs, batch_size = run["kind"], run["epochs"], run["batch_size"]
    if threads is None and ranks is not None:  # the machine's cores, shared between its ranks
        threads = _threads_per_rank(ranks)
    if threads is not None:
        set_num_threads(threads)
    seed_everything(run["seed"])

    # 1. Data: uint8 in memory, normalised batch by batch (a download made by rank 0 alone).
    def load():
        return data.load_mnist(data_dir, kind=kind, progress=bool(verbose))

    (x_train, y_train), (x_test, y_test) = load() if ranks is None else ranks.main_first(load)
    os.makedirs(out, exist_ok=True)
    if run["limit"] is not None:
        x_train, y_train = x_train[:run["limit"]], y_train[:run["limit"]]
    transform = make_transform(kind)

    # 2. The network and what it costs.
    model = build(arch)
    optimizer = SGD(model.parameters(), lr=run["lr"], momentum=0.9, weight_decay=5e-4)
    schedule = CosineAnnealingLR(optimizer, epochs)
    if ranks is None:
        trainer = Trainer(model, SoftmaxCrossEntropy(), optimizer, schedule)
    else:
        from .distributed import DistributedTrainer

        trainer = DistributedTrainer(model, SoftmaxCrossEntropy(), optimizer, schedule, comm=ranks)
    if stored and ranks is None:
        trainer.load_state(paths.state)
    elif stored:  # rank 0 reads the state, and every rank gets it
        ranks.from_main(trainer.load_state, paths.state, share=False)
        trainer.sync()
    print_fn(f"minicnn {__version__}: {arch} on {kind}, {len(x_train):,} training images, "
             f"{epochs} epochs, batch {batch_size}, lr {run['lr']}"
             f"{', shifted images' if run['augment'] else ''}, {get_num_threads()} threads"
             f"{_processes(ranks)}"
             f"{f'; resuming after epoch {trainer.epoch}' if stored else ''}")
    print_fn(f"writes {paths.last} after every epoch and {paths.final} when the run finishes")
    model.summary(INPUT_SHAPE, print_fn=print_fn)

    # 3. Train: SGD with momentum, the learning rate decaying along a cosine; the last epoch's
    #    model and state saved after each epoch.
    mean, std = NORMALIZATION[kind]

    def metadata(t, interrupted):
        val = [v for v in t.history["val_accuracy"] if v is not None]
        return {"arch": arch, "kind": kind, "mean": mean, "std": std, "input_shape": list(INPUT_SHAPE),
                "epochs": t.epoch, "finished": t.epoch >= epochs and not interrupted,
                "interrupted": interrupted, "val_accuracy": val[-1] if val else None, "run": run}

    start = time.perf_counter()
    history = trainer.fit(x_train, y_train, epochs=epochs, initial_epoch=trainer.epoch,
                          batch_size=batch_size, seed=run["seed"], validation_data=(x_test, y_test),
                          transform=transform, verbose=verbose,
                          augment=data.random_shift if run["augment"] else None,
                          callbacks=[JSONLinesLogger(paths.history, extra={"run": run["id"]}),
                                     LastCheckpoint(paths, metadata)])
    train_seconds = time.perf_counter() - start
    result = {"history": dict(history), "seconds": train_seconds, "interrupted": history.interrupted,
              "epochs": trainer.epoch, "last": paths.last}
    if not main:  # rank 0 reports and writes the files
        return {**result, "checkpoint": None, "accuracy": None}
    if history.interrupted:
        save_last(trainer, paths, metadata(trainer, interrupted=True))
        print_fn(f"interrupted in epoch {trainer.epoch + 1}: wrote {paths.last} (the weights when it "
                 f"stopped, not a finished model); {paths.final} was not touched; --resume continues "
                 f"from the end of epoch {trainer.epoch}")
        return {**result, "checkpoint": paths.last, "accuracy": None}

    # 4. Report on the test set.
    logits = trainer.predict_logits(x_test, transform=transform)
    predictions = logits.argmax(axis=1)
    matrix = metrics.confusion_matrix(y_test, predictions, num_classes=10)
    accuracy = metrics.accuracy(y_test, predictions)
    print_fn(f"\ntest accuracy: {100 * accuracy:.2f}% ({int(np.trace(matrix))}/{len(y_test)}) "
             f"after {trainer.epoch} epochs in {train_seconds:.0f} s")
    print_fn("confusion matrix (rows: true class, columns: predicted):")
    print_fn(metrics.format_confusion_matrix(matrix, data.CLASSES[kind] if kind == "mnist" else None))

    # 5. Save the finished model, unless a better one is there (and pictures of training).
    write, why = final_decision(paths.final, accuracy, kind, overwrite)
    if write:
        model.save(paths.final, metadata={**metadata(trainer, False), "test_accuracy": accuracy})
    print_fn(why)
    print_fn(f"wrote {paths.last} (this run's model) and {paths.history} (one line per epoch)")
    pictures = save_plots(history, model, out, arch, accuracy) if plot else None
    if pictures is None and plot:
        print_fn("pictures skipped: matplotlib is not installed (pip install 'minicnn[plot]' "
                 "draws the training curves and first-layer filters)")
    for p in pictures or []:
        print_fn(f"wrote {p}")
    return {**result, "accuracy": accuracy, "checkpoint": paths.final if write else paths.last,
            "final_written": write, "per_class_accuracy": metrics.per_class_accuracy(matrix).tolist(),
            "confusion_matrix": matrix.tolist()}


def _processes(ranks):
    if ranks is None:
        return ""
    if ranks.size == 1:
        return " in 1 process (mpiexec -n N minicnn train --distributed starts N)"
    return f" in each of {ranks.size} processes"


def _silent(*args, **kwargs):
    pass


def _threads_per_rank(ranks):
    """The kernel threads of each rank: the thread count it would have alone (the machine's
    cores, or MINICNN_NUM_THREADS / OMP_NUM_THREADS when set), split between the ranks on this
    machine."""
    here = ranks.ranks_on_this_machine()  # a collective: every rank takes part
    if os.environ.get("MINICNN_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS"):
        return None
    return max(1, get_num_threads() // here)


def save_plots(history, model, out, arch, accuracy=None):
    """Training curves (titled with ``arch`` and its final ``accuracy``) and the first
    convolution's filters as PNG files (see minicnn.viz); None without matplotlib."""
    from . import viz
    from .extras import MissingExtraError
    from .layers import Conv2D

    paths = []
    try:
        if len(history["loss"]):
            paths.append(os.path.join(out, f"{arch}-curves.png"))
            viz.plot_training_curves(history, paths[-1], arch, accuracy)
        if any(isinstance(layer, Conv2D) for layer in model.layers):
            paths.append(os.path.join(out, f"{arch}-filters.png"))
            viz.plot_filters(model, paths[-1])
    except MissingExtraError:
        return None
    return paths
