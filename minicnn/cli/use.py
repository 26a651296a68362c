"""``minicnn evaluate``, ``predict``, ``summary`` and ``info``: using a network."""
import numpy as np

from . import args as A
from . import files

__all__ = ["run_evaluate", "run_predict", "run_summary", "run_info", "add_use_commands"]


def run_evaluate(args):
    from .. import data, metrics
    from .train import missing_data

    model, kind, mean, std = files.load_checkpoint(args.checkpoint)
    kind = args.kind or kind
    batch, _ = files.check_model_fits(model, args.checkpoint, args.max_memory, args.batch_size,
                                      num_classes=len(data.CLASSES[kind]))
    try:
        _, (x_test, y_test) = data.load_mnist(args.data_dir, kind=kind, progress=False)
    except data.DatasetNotFoundError as e:
        raise A.UsageError(missing_data(e, args.data_dir)) from e
    probs = model.predict(data.normalize(x_test, mean, std), batch_size=batch)
    pred = probs.argmax(axis=1)
    matrix = metrics.confusion_matrix(y_test, pred, num_classes=probs.shape[1])
    print(f"{args.checkpoint}: test accuracy {100 * metrics.accuracy(y_test, pred):.2f}% on "
          f"{len(y_test):,} {kind} images")
    print(metrics.format_confusion_matrix(matrix))
    return 0


def run_predict(args):
    from .. import data

    model, kind, mean, std = files.load_checkpoint(args.checkpoint)
    picture = files.sniff(args.file) in files.PICTURES
    images = files.read_images(args.file)
    batch, classes = files.check_model_fits(model, args.checkpoint, args.max_memory, 256)
    top_k = args.top if args.top is not None else min(3 if picture else 1, classes)
    if top_k > classes:
        raise A.UsageError(f"--top {top_k}: the model in {args.checkpoint} scores only {classes} "
                           "classes")
    names = data.CLASSES.get(kind, [])
    if len(names) != classes:
        names = [str(i) for i in range(classes)]
    for start in range(0, len(images), batch):
        probs = model.predict(data.normalize(np.asarray(images[start:start + batch]), mean, std),
                              batch_size=batch)
        for i, p in enumerate(probs, start):
            top = np.argsort(p)[::-1][:top_k]
            label = args.file if picture else i
            print(f"{label}: " + ", ".join(f"{names[k]} {100 * p[k]:.1f}%" for k in top))
    return 0


def run_summary(args):
    from ..architectures import build

    if args.checkpoint is not None:
        if args.arch is not None:
            raise A.UsageError(f"give a checkpoint ({args.checkpoint}) or --arch {args.arch}, not both")
        model, _, _, _ = files.load_checkpoint(args.checkpoint)
        recorded = model.metadata.get("input_shape")
        shape = args.input_shape or (tuple(recorded) if _is_shape(recorded) else (1, 28, 28))
    else:
        model = build(args.arch or "lenet5")
        shape = args.input_shape or (1, 28, 28)
    try:
        model.summary(shape, print_fn=print)
        if args.explain:
            print()
            print(model.explain(shape))
    except ValueError as e:
        raise A.UsageError(f"input shape {'x'.join(map(str, shape))}: {e}") from e
    return 0


def _is_shape(value):
    return (isinstance(value, list) and 1 <= len(value) <= 3 and
            all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value))


def run_info(args):
    from .. import show_config

    show_config()
    return 0


def add_use_commands(sub):
    from ..architectures import ARCHITECTURES

    ev = sub.add_parser("evaluate", help="test accuracy and confusion matrix of a checkpoint")
    ev.add_argument("checkpoint", type=A.existing_file)
    ev.add_argument("--data-dir", type=A.folder, default=None,
                    help="folder holding mnist/ (default: $MINICNN_DATA, else ~/.cache/minicnn)")
    ev.add_argument("--kind", default=None, choices=["mnist", "fashion-mnist"],
                    help="data set (default: the one the checkpoint was trained on)")
    ev.add_argument("--batch-size", type=A.positive_int, default=256)
    _max_memory(ev)
    ev.set_defaults(run=run_evaluate)

    sm = sub.add_parser("summary", help="a network's layers, shapes, parameters, MACs, receptive field")
    sm.add_argument("checkpoint", nargs="?", type=A.existing_file,
                    help="a checkpoint to describe (default: --arch)")
    sm.add_argument("--arch", default=None, choices=sorted(ARCHITECTURES),
                    help="a named network (default: lenet5)")
    sm.add_argument("--input-shape", type=A.input_shape, default=None,
                    help="C,H,W or CxHxW (default: the checkpoint's, else 1,28,28)")
    sm.add_argument("--explain", action="store_true",
                    help="then each layer's formulas with its numbers: output size, 'same' "
                    "padding, parameters, MACs, receptive field")
    sm.set_defaults(run=run_summary)

    pr = sub.add_parser("predict", help="classify the images in a .npy file, or a PNG/JPEG digit")
    pr.add_argument("checkpoint", type=A.existing_file)
    pr.add_argument("file", type=A.existing_file,
                    help=".npy of uint8 images (N, 28, 28) (0-255) or floats in [0, 1], or a "
                    ".png/.jpg/.jpeg of one digit (needs Pillow: pip install 'minicnn[images]')")
    pr.add_argument("--top", type=A.positive_int, default=None,
                    help="show the k most likely classes (default: 3 for an image, 1 for .npy)")
    _max_memory(pr)
    pr.set_defaults(run=run_predict)

    info = sub.add_parser("info", help="version, NumPy, OpenMP and thread count")
    info.set_defaults(run=run_info)


def _max_memory(parser):
    parser.add_argument("--max-memory", type=A.positive_float, default=files.DEFAULT_MAX_MEMORY_MB,
                        metavar="MB", help="refuse a model whose activations for one image exceed "
                        f"this (default: {files.DEFAULT_MAX_MEMORY_MB})")
