"""The ``minicnn`` command line: train, evaluate, summary, predict, info."""
import argparse
import sys

import numpy as np


def add_train_arguments(parser):
    """The options of ``minicnn train`` and examples/mnist/train.py."""
    from .recipes import RECIPES

    parser.add_argument("--arch", default="lenet5", choices=sorted(RECIPES),
                        help="network to train (default: lenet5)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the recipe's)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (default: 64)")
    parser.add_argument("--lr", type=float, default=None, help="initial learning rate (default: the recipe's)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--data-dir", default=None,
                        help="folder holding mnist/ (default: $MINICNN_DATA, else ~/.cache/minicnn)")
    parser.add_argument("--kind", default="mnist", choices=["mnist", "fashion-mnist"])
    parser.add_argument("--out", default="runs", help="folder for the checkpoint and logs (default: runs)")
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                        help="random shifts of up to 2 pixels (default: the recipe's; on for convnet)")
    parser.add_argument("--threads", type=int, default=None, help="kernel threads (default: all cores)")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def run_train(args):
    from .recipes import train_mnist

    if args.epochs is not None and args.epochs < 1:
        raise SystemExit("minicnn train: --epochs must be >= 1")
    if args.batch_size < 1:
        raise SystemExit("minicnn train: --batch-size must be >= 1")
    result = train_mnist(arch=args.arch, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         seed=args.seed, data_dir=args.data_dir, out=args.out, kind=args.kind,
                         augment=args.augment, threads=args.threads, limit=args.limit,
                         verbose=0 if args.quiet else 1)
    return 130 if result["interrupted"] else 0


def _load_checkpoint(path):
    from . import load

    model = load(path)
    meta = getattr(model, "metadata", {})
    return model, meta.get("kind", "mnist"), meta.get("mean", 0.1307), meta.get("std", 0.3081)


def run_evaluate(args):
    from . import data, metrics

    model, kind, mean, std = _load_checkpoint(args.checkpoint)
    kind = args.kind or kind
    _, (x_test, y_test) = data.load_mnist(args.data_dir, kind=kind, progress=False)
    probs = model.predict(data.normalize(x_test, mean, std), batch_size=args.batch_size)
    pred = probs.argmax(axis=1)
    matrix = metrics.confusion_matrix(y_test, pred, num_classes=probs.shape[1])
    print(f"{args.checkpoint}: test accuracy {100 * metrics.accuracy(y_test, pred):.2f}% on {len(y_test):,} "
          f"{kind} images")
    print(metrics.format_confusion_matrix(matrix))
    return 0


def run_summary(args):
    from .architectures import build

    shape = tuple(int(v) for v in args.input_shape.split(","))
    build(args.arch).summary(shape)
    return 0


def run_predict(args):
    from . import data

    model, kind, mean, std = _load_checkpoint(args.checkpoint)
    try:
        images = np.load(args.file, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise SystemExit(f"minicnn predict: cannot read {args.file} as a .npy array: {e}")
    if images.ndim == 2:
        images = images[None]
    if images.ndim not in (3, 4) or images.shape[-2:] != (28, 28):
        raise SystemExit(f"minicnn predict: expected images (N, 28, 28), (28, 28) or (N, 1, 28, 28), "
                         f"got shape {images.shape}")
    if images.dtype != np.uint8 and images.dtype.kind != "f":
        raise SystemExit(f"minicnn predict: expected uint8 images (0-255) or floats in [0, 1], "
                         f"got {images.dtype}")
    probs = model.predict(data.normalize(images, mean, std))
    names = data.CLASSES.get(kind, [str(i) for i in range(probs.shape[1])])
    for i, p in enumerate(probs):
        top = np.argsort(p)[::-1][:args.top]
        print(f"{i}: " + ", ".join(f"{names[k]} {100 * p[k]:.1f}%" for k in top))
    return 0


def run_info(args):
    from . import show_config

    show_config()
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="minicnn", description="minicnn: train and use small CNNs.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a network on MNIST and save it")
    add_train_arguments(train).set_defaults(run=run_train)
    ev = sub.add_parser("evaluate", help="test accuracy and confusion matrix of a checkpoint")
    ev.add_argument("checkpoint")
    ev.add_argument("--data-dir", default=None)
    ev.add_argument("--kind", default=None, choices=["mnist", "fashion-mnist"],
                    help="data set (default: the one the checkpoint was trained on)")
    ev.add_argument("--batch-size", type=int, default=256)
    ev.set_defaults(run=run_evaluate)
    sm = sub.add_parser("summary", help="print a network's layers, shapes, parameters, MACs, receptive field")
    sm.add_argument("--arch", default="lenet5", choices=["lenet5", "convnet", "dwsep"])
    sm.add_argument("--input-shape", default="1,28,28", help="C,H,W (default: 1,28,28)")
    sm.set_defaults(run=run_summary)
    pr = sub.add_parser("predict", help="classify the images in a .npy file")
    pr.add_argument("checkpoint")
    pr.add_argument("file", help=".npy of uint8 images (N, 28, 28) (0-255) or floats in [0, 1]")
    pr.add_argument("--top", type=int, default=1, help="show the k most likely classes")
    pr.set_defaults(run=run_predict)
    info = sub.add_parser("info", help="version, NumPy, OpenMP and thread count")
    info.set_defaults(run=run_info)
    return parser


def main(argv=None):
    from .checkpoint import CheckpointError
    from .data import ChecksumError, IDXError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (FileNotFoundError, CheckpointError, ChecksumError, IDXError) as e:
        # a missing or damaged file is the user's to fix: say what, without a traceback
        print(f"minicnn {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
