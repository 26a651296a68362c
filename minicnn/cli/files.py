"""What the command line reads: checkpoints (and their metadata), image arrays, memory budgets."""
import math
import zipfile

import numpy as np

from .args import UsageError

__all__ = ["MAGIC", "DEFAULT_MAX_MEMORY_MB", "sniff", "load_checkpoint", "check_model_fits",
           "read_images", "PICTURES", "read_picture"]

#: the start of each kind of file a user might hand over by mistake
MAGIC = ((b"\x93NUMPY", "a .npy array"), (b"PK\x03\x04", "an .npz (zip) archive"),
         (b"PK\x05\x06", "an empty zip archive"), (b"\x89PNG\r\n\x1a\n", "a PNG image"),
         (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"), (b"BM", "a BMP image"),
         (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"%PDF", "a PDF document"),
         (b"\x1f\x8b", "a gzip file"))
#: default limit on the activations of one batch in predict/evaluate (--max-memory, MB)
DEFAULT_MAX_MEMORY_MB = 1024


def sniff(path):
    """What ``path`` holds, from its first bytes: 'a PNG image', 'a .npy array', ... or None."""
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        return "an empty file"
    for magic, what in MAGIC:
        if head.startswith(magic):
            return what
    return None


def load_checkpoint(path):
    """The model in ``path`` and its data settings (kind, mean, std, input shape), or UsageError."""
    from .. import load
    from ..checkpoint import CheckpointError
    from ..recipes import NORMALIZATION

    what = sniff(path)
    if what != "an .npz (zip) archive":
        raise UsageError(f"{path} is not a minicnn checkpoint: it is {what or 'not an .npz archive'} "
                         "(checkpoints are the .npz files minicnn train and model.save write)")
    try:
        model = load(path)
    except CheckpointError as e:
        if _is_trainer_state(path):
            raise UsageError(f"{path} is a trainer state (minicnn train --resume reads it), not a "
                             "model checkpoint: give the ARCH.npz or ARCH-last.npz beside it") from e
        raise UsageError(str(e)) from e
    except (ValueError, TypeError, KeyError, IndexError, RecursionError, MemoryError,
            NotImplementedError, RuntimeError, EOFError, zipfile.BadZipFile) as e:
        # a crafted file can fail below the checkpoint reader's own checks
        raise UsageError(f"{path}: not a readable minicnn checkpoint ({type(e).__name__}: {e})") from e
    meta = getattr(model, "metadata", {})
    if not isinstance(meta, dict):
        raise UsageError(f"{path}: its metadata is a {type(meta).__name__}, not a mapping of settings")
    kind = meta.get("kind", "mnist")
    if kind not in NORMALIZATION:
        raise UsageError(f"{path}: its metadata names the data set {kind!r}; known: {sorted(NORMALIZATION)}")
    default_mean, default_std = NORMALIZATION[kind]
    mean, std = meta.get("mean", default_mean), meta.get("std", default_std)
    for name, value in (("mean", mean), ("std", std)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UsageError(f"{path}: its metadata's normalisation {name} is {value!r}, not a finite number")
    if std <= 0:
        raise UsageError(f"{path}: its metadata's normalisation std is {std!r}; it must be > 0")
    return model, kind, float(mean), float(std)


def _is_trainer_state(path):
    try:
        with np.load(path, allow_pickle=False) as npz:
            return "__trainer__" in npz.files
    except Exception:  # unreadable: the checkpoint reader's own message says why
        return False


def check_model_fits(model, path, max_memory_mb, batch_size, num_classes=None):
    """The batch size to run ``model`` on 1 x 28 x 28 images within ``max_memory_mb`` of
    activations, and its number of classes; UsageError when one image alone needs more, the
    model cannot take such images, or gives fewer outputs than ``num_classes``."""
    from ..summary import activation_bytes

    try:
        table = model.summary((1, 28, 28), print_fn=None)
    except (ValueError, TypeError, ArithmeticError) as e:  # a crafted layer's arguments
        raise UsageError(f"the model in {path} cannot take 28 x 28 images: {e}") from e
    itemsize = max([p.value.dtype.itemsize for p in model.parameters()] or [4])
    per_image = activation_bytes(table, itemsize)
    budget = max_memory_mb * 2**20
    if per_image > budget:
        worst = max(table.rows, key=lambda r: math.prod(r["output_shape"]), default=None)
        where = (f" (layer {worst['index']} {worst['layer']} outputs {tuple(worst['output_shape'])})"
                 if worst else "")
        raise UsageError(f"the model in {path} needs {per_image / 2**20:,.0f} MB of activations per "
                         f"image{where}, more than the {max_memory_mb:g} MB allowed; raise the limit "
                         "with --max-memory MB")
    out_shape = table.output_shape if table.rows else (1, 28, 28)
    if len(out_shape) != 1:
        raise UsageError(f"the model in {path} outputs {tuple(out_shape)} per image, not a vector of "
                         "class scores")
    classes = out_shape[0]
    if num_classes is not None and classes < num_classes:
        raise UsageError(f"the model in {path} scores {classes} classes; the data set has {num_classes}")
    return max(1, min(batch_size, int(budget // per_image))), classes


#: what sniff() calls the images predict reads with minicnn.data.load_image (Pillow)
PICTURES = ("a PNG image", "a JPEG image", "a GIF image", "a BMP image", "a TIFF image")


def read_picture(path):
    """One digit from a PNG or JPEG (minicnn.data.load_image): (1, 28, 28) float32 in [0, 1]."""
    from ..data import ImageError, load_image
    from ..extras import MissingExtraError

    try:
        return load_image(path)[None]
    except MissingExtraError as e:
        raise UsageError(f"{path} is {sniff(path)}: {e}") from e
    except ImageError as e:
        raise UsageError(str(e)) from e


def read_images(path):
    """Images from a .npy file: uint8 (0-255) or floats in [0, 1], (N, 28, 28), (28, 28) or
    (N, 1, 28, 28); mapped, not read whole, until their shape and type are known. A PNG or
    JPEG (or GIF, BMP, TIFF) is one digit, made as MNIST's were (read_picture)."""
    what = sniff(path)
    if what in PICTURES:
        return read_picture(path)
    if what != "a .npy array":
        hint = " (a checkpoint? give it as the first argument)" if what and "npz" in what else ""
        raise UsageError(f"{path} is {what or 'not a .npy file'}{hint}; predict reads a .npy array "
                         "of images (N, 28, 28), e.g. written with numpy.save, or a PNG or JPEG "
                         "image of one digit")
    try:
        images = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise UsageError(f"cannot read {path} as a .npy array: {e}") from e
    if images.ndim == 2:
        images = images[None]
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise UsageError(f"{path}: expected images (N, 28, 28), (28, 28) or (N, 1, 28, 28), got shape "
                         f"{tuple(np.shape(images))}")
    if len(images) == 0:
        raise UsageError(f"{path} holds no images (shape {images.shape})")
    if images.dtype != np.uint8 and images.dtype.kind != "f":
        raise UsageError(f"{path}: expected uint8 images (0-255) or floats in [0, 1], got {images.dtype}")
    if images.dtype.kind == "f":
        low, high = float(np.nanmin(images)), float(np.nanmax(images))
        if low < -0.01 or high > 1.01:
            raise UsageError(f"{path}: float images must be in [0, 1], these go from {low:g} to {high:g} "
                             "(for 0-255 values divide by 255 or save them as uint8)")
    return images
