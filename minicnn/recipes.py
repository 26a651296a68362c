"""The MNIST training recipe behind ``minicnn train`` and examples/mnist/train.py.

Read top to bottom, ``train_mnist`` is the whole job: load the data, build the
network, print its summary, train it with a progress bar, report the test accuracy,
per-class accuracy and confusion matrix, and save a checkpoint.
"""
import os
import time

import numpy as np

from . import __version__, data, metrics
from .runtime import get_num_threads, set_num_threads
from .architectures import build
from .callbacks import JSONLinesLogger
from .losses import SoftmaxCrossEntropy
from .optim import SGD
from .random import seed as seed_everything
from .schedules import CosineAnnealingLR
from .trainer import Trainer

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


def train_mnist(arch="lenet5", epochs=None, batch_size=64, lr=None, seed=0, data_dir=None,
                out="runs", kind="mnist", augment=None, threads=None, limit=None, verbose=1,
                plot=True, print_fn=print):
    """Train ``arch`` on MNIST (or Fashion-MNIST) and return a dict of results.

    ``epochs``, ``lr`` and ``augment`` left as None take the architecture's recipe.
    """
    if arch not in RECIPES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(RECIPES)}")
    recipe = RECIPES[arch]
    epochs = recipe["epochs"] if epochs is None else epochs
    lr = recipe["lr"] if lr is None else lr
    augment = recipe["augment"] if augment is None else augment
    if threads is not None:
        set_num_threads(threads)
    seed_everything(seed)

    # 1. Data: uint8 in memory, normalised batch by batch.
    (x_train, y_train), (x_test, y_test) = data.load_mnist(data_dir, kind=kind, progress=bool(verbose))
    if limit is not None:
        x_train, y_train = x_train[:limit], y_train[:limit]
    transform = make_transform(kind)

    # 2. The network and what it costs.
    model = build(arch)
    print_fn(f"minicnn {__version__}: {arch} on {kind}, {len(x_train):,} training images, "
             f"{epochs} epochs, batch {batch_size}, lr {lr}{', shifted images' if augment else ''}, "
             f"{get_num_threads()} threads")
    model.summary((1, 28, 28), print_fn=print_fn)

    # 3. Train: SGD with momentum, the learning rate decaying along a cosine.
    optimizer = SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    trainer = Trainer(model, SoftmaxCrossEntropy(), optimizer, CosineAnnealingLR(optimizer, epochs))
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    history = trainer.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, seed=seed,
                          validation_data=(x_test, y_test), transform=transform, verbose=verbose,
                          augment=data.random_shift if augment else None,
                          callbacks=[JSONLinesLogger(os.path.join(out, f"{arch}-history.jsonl"))])
    train_seconds = time.perf_counter() - start

    # 4. Report on the test set.
    logits = trainer.predict_logits(x_test, transform=transform)
    predictions = logits.argmax(axis=1)
    matrix = metrics.confusion_matrix(y_test, predictions, num_classes=10)
    accuracy = metrics.accuracy(y_test, predictions)
    print_fn(f"\ntest accuracy: {100 * accuracy:.2f}% ({int(np.trace(matrix))}/{len(y_test)}) "
             f"after {trainer.epoch} epochs in {train_seconds:.0f} s")
    print_fn("confusion matrix (rows: true class, columns: predicted):")
    print_fn(metrics.format_confusion_matrix(matrix, data.CLASSES[kind] if kind == "mnist" else None))

    # 5. Save the model (and pictures of training when matplotlib is installed).
    path = os.path.join(out, f"{arch}.npz")
    mean, std = NORMALIZATION[kind]
    model.save(path, metadata={"arch": arch, "kind": kind, "mean": mean, "std": std,
                               "test_accuracy": accuracy, "epochs": trainer.epoch})
    print_fn(f"saved {path}")
    pictures = save_plots(history, model, out, arch) if plot else []
    for p in pictures:
        print_fn(f"saved {p}")
    return {"accuracy": accuracy, "per_class_accuracy": metrics.per_class_accuracy(matrix).tolist(),
            "confusion_matrix": matrix.tolist(), "history": dict(history), "checkpoint": path,
            "seconds": train_seconds, "interrupted": history.interrupted}


def save_plots(history, model, out, arch):
    """Training curves and the first layer's filters as PNG files; [] without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    paths = []
    epochs = np.arange(1, len(history["loss"]) + 1)
    if len(epochs):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
        ax1.plot(epochs, history["loss"], label="train")
        ax1.plot(epochs, history["val_loss"], label="test")
        ax1.set(xlabel="epoch", ylabel="loss", yscale="log")
        ax1.legend()
        ax2.plot(epochs, 100 * np.array(history["accuracy"]), label="train")
        ax2.plot(epochs, 100 * np.array(history["val_accuracy"], dtype=float), label="test")
        ax2.set(xlabel="epoch", ylabel="accuracy (%)")
        ax2.legend()
        fig.tight_layout()
        paths.append(os.path.join(out, f"{arch}-curves.png"))
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    w = model.layers[0].params.get("weight")
    if w is not None:
        n = w.shape[0]
        cols = min(n, 8)
        rows = -(-n // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.2), squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < n:
                ax.imshow(w[i, 0], cmap="gray")
        fig.suptitle("first-layer filters")
        paths.append(os.path.join(out, f"{arch}-filters.png"))
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    return paths
