"""``minicnn export MODEL.npz --onnx OUT.onnx``: a checkpoint as an ONNX file.

Everything is checked before anything is written: the checkpoint, the input shape, that
OUT.onnx is not a checkpoint (the command never overwrites a model), then that the onnx
package is installed. The file is written atomically (minicnn.onnx_export).
"""
import argparse
import os

from . import args as A
from . import files
from .use import _is_shape

__all__ = ["output_file", "run_export", "add_export_command"]


def output_file(text):
    """A file to write: its folder exists, and it is not a folder itself."""
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a folder, not a file")
    folder = os.path.dirname(text) or "."
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"no such folder: {folder}")
    return text


def run_export(args):
    from ..extras import MissingExtraError, require
    from ..onnx_export import OPSET, export_onnx

    model, kind, mean, std = files.load_checkpoint(args.checkpoint)
    if os.path.exists(args.onnx):
        if os.path.samefile(args.onnx, args.checkpoint):
            raise A.UsageError(f"--onnx {args.onnx} is the checkpoint itself; give another file")
        what = files.sniff(args.onnx)
        if what is not None and ("zip" in what or "npz" in what or "npy" in what):
            raise A.UsageError(f"--onnx {args.onnx} exists and is {what}, not an ONNX file: "
                               "export will not overwrite it; give another file")
    recorded = model.metadata.get("input_shape")
    shape = args.input_shape or (tuple(recorded) if _is_shape(recorded) else (1, 28, 28))
    try:
        table = model.summary(shape, print_fn=None)
    except (ValueError, TypeError) as e:
        raise A.UsageError(f"input shape {'x'.join(map(str, shape))}: {e}") from e
    try:
        require("onnx", "export")
    except MissingExtraError as e:
        raise A.UsageError(str(e)) from e
    try:
        export_onnx(model, args.onnx, shape, metadata={"minicnn.kind": kind, "minicnn.mean": mean,
                                                        "minicnn.std": std})
    except ValueError as e:               # a layer without an exporter
        raise A.UsageError(str(e)) from e
    out = table.rows[-1]["output_shape"] if table.rows else shape
    print(f"wrote {args.onnx}: ONNX opset {OPSET}, input 'input' (N, "
          f"{', '.join(map(str, shape))}) float32, output 'output' (N, "
          f"{', '.join(map(str, out))}), the model's forward pass (no softmax)")
    print(f"it expects images as {kind} training saw them: pixels / 255, minus {mean:g}, "
          f"divided by {std:g}")
    return 0


def add_export_command(sub):
    ex = sub.add_parser("export", help="write a checkpoint as an ONNX file")
    ex.add_argument("checkpoint", type=A.existing_file)
    ex.add_argument("--onnx", type=output_file, required=True, metavar="OUT.onnx",
                    help="the ONNX file to write (needs pip install 'minicnn[onnx]')")
    ex.add_argument("--input-shape", type=A.input_shape, default=None,
                    help="one image's C,H,W (default: the checkpoint's, else 1,28,28)")
    ex.set_defaults(run=run_export)
