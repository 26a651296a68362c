"""Your own images: one digit made like MNIST's (load_image), or a folder of classes (ImageFolder).

Reading needs Pillow (``pip install 'minicnn[images]'``). Pixels come back as float32 in
[0, 1], the scale ``minicnn.data.normalize`` takes (it maps [0, 1] to the training data's
mean and spread) and ``minicnn predict`` reads.
"""
import os

import numpy as np

from ..extras import require

__all__ = ["IMAGE_EXTENSIONS", "GRAY_MODES", "ImageError", "open_image", "is_gray", "pixels",
           "load_image", "ImageFolder"]

#: the file names ImageFolder reads (case-insensitive); other files are left alone
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: Pillow modes with one channel of grey levels
GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
#: MNIST's recipe: the digit's box scaled to fit 20 x 20, its centre of mass moved to pixel
#: (14, 14) of 28 x 28 (what MNIST's training images show: their mean centre is (13.99, 14.00))
BOX, SIZE, CENTRE = 20, 28, 14.0


class ImageError(ValueError):
    """A file that is not a readable image, or images that cannot be used as asked."""


def _pil(who):
    return require("PIL.Image", who)


def open_image(path, who):
    """The image in ``path``, loaded (Pillow), or ImageError saying why it cannot be read."""
    Image = _pil(who)
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageError(f"{who}: cannot read {path} as an image: Pillow does not recognise its "
                         "data") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        detail = str(e).replace(repr(os.fspath(path)), "it").replace(os.fspath(path), "it")
        raise ImageError(f"{who}: cannot read {path} as an image: {detail}") from None
    return image


def _opaque(image, Image):
    """The image with any transparency laid over white (a drawing's transparent background
    becomes paper)."""
    if image.mode in ("RGBA", "LA", "La", "PA", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba)
    return image


def is_gray(image):
    """True for one channel of grey levels, including a palette of greys only."""
    if image.mode in GRAY_MODES:
        return True
    if image.mode in ("P", "PA"):
        rgb = np.asarray(image.convert("RGB"))
        return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
    return False


def pixels(image, gray, Image):
    """float64 (C, H, W) in [0, 1]: one channel when ``gray``, else three (RGB)."""
    image = _opaque(image, Image)
    if not gray:
        return np.asarray(image.convert("RGB"), dtype=np.float64).transpose(2, 0, 1) / 255
    if image.mode.startswith("I") or image.mode == "F":
        x = np.asarray(image, dtype=np.float64)     # 16- or 32-bit grey levels
        top = 65535.0 if image.mode.startswith("I;16") or x.max() > 255 else 255.0
        return np.clip(x / (1.0 if image.mode == "F" else top), 0, 1)[None]
    return np.asarray(image.convert("L"), dtype=np.float64)[None] / 255


def _resize(x, hw, Image):
    """Each channel of float (C, H, W) resized to ``hw`` (h, w), antialiased (Pillow)."""
    if x.shape[1:] == tuple(hw):
        return x
    size = (int(hw[1]), int(hw[0]))
    return np.stack([np.asarray(Image.fromarray(c.astype(np.float32), "F").resize(
        size, Image.Resampling.LANCZOS)) for c in x]).clip(0, 1)


def load_image(path):
    """One handwritten digit from a PNG or JPEG (any image Pillow reads), made as MNIST's
    images were: float32 (28, 28) in [0, 1], bright ink on black.

    The image becomes grey levels (transparency laid over white); it is inverted when the
    digit is dark on light (its border brighter than its centre); the background (the
    border's median) becomes 0 and the brightest ink 1, with specks under a tenth of that
    cleared; the digit's bounding box is scaled to fit 20 x 20, keeping its aspect, and its
    centre of mass moved to pixel (14, 14) of 28 x 28, as far as the box stays inside.
    ``normalize(load_image(path)[None])`` is the network's input.
    """
    Image = _pil("load_image")
    x = pixels(open_image(path, "load_image"), True, Image)[0]
    h, w = x.shape
    ring = max(1, min(h, w) // 10)
    border = np.concatenate([x[:ring].ravel(), x[-ring:].ravel(), x[:, :ring].ravel(),
                             x[:, -ring:].ravel()])
    centre = x[h // 4:h - h // 4, w // 4:w - w // 4]
    if border.mean() > centre.mean():
        x, border = 1 - x, 1 - border
    x = np.clip(x - np.median(border), 0, None)
    if x.max() < 0.05:
        raise ImageError(f"load_image: {path} shows no digit: its pixels are all about the "
                         "same grey")
    x /= x.max()
    x[x < 0.1] = 0
    rows, cols = np.nonzero(x.any(axis=1))[0], np.nonzero(x.any(axis=0))[0]
    digit = x[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    scale = BOX / max(digit.shape)
    hw = tuple(max(1, round(n * scale)) for n in digit.shape)
    digit = _resize(digit[None], hw, Image)[0]
    out = np.zeros((SIZE, SIZE))
    top, left = (SIZE - hw[0]) // 2, (SIZE - hw[1]) // 2
    out[top:top + hw[0], left:left + hw[1]] = digit
    mass = out.sum()
    com = [(out.sum(axis=1 - a) * np.arange(SIZE)).sum() / mass for a in (0, 1)]
    shift = [int(np.clip(round(CENTRE - c), -start, SIZE - n - start))
             for c, start, n in zip(com, (top, left), hw)]
    out = np.roll(out, shift, axis=(0, 1))          # the box stays inside: nothing wraps
    return out.astype(np.float32)


class ImageFolder:
    """A folder with one subfolder per class, loaded into arrays for ``Trainer.fit``.

    ``x``: float32 (N, C, H, W) in [0, 1]; ``y``: int64 labels, the classes' indices in
    ``classes`` (the subfolder names, sorted); ``paths``: each image's file. Files are read in
    sorted order; files with other extensions than IMAGE_EXTENSIONS, and hidden ones, are left
    alone. ``size``: (h, w) or one int for a square, else the first image's size; every
    image is resized to it. ``grayscale``: True gives 1 channel, False 3 (RGB), None what the
    images are (an error for a mix of grey and colour images). Needs Pillow.
    """

    def __init__(self, root, size=None, grayscale=None):
        Image = _pil("ImageFolder")
        root = os.fspath(root)
        if not os.path.isdir(root):
            raise (NotADirectoryError if os.path.exists(root) else FileNotFoundError)(
                f"ImageFolder: {root} is not a folder")
        self.root = root
        self.classes = sorted(d for d in os.listdir(root)
                              if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
        if not self.classes:
            raise ImageError(f"ImageFolder: {root} has no class folders (give it one subfolder "
                             "per class, each holding that class's images)")
        self.paths, labels = [], []
        for label, name in enumerate(self.classes):
            folder = os.path.join(root, name)
            files = sorted(f for f in os.listdir(folder) if not f.startswith(".")
                           and f.lower().endswith(IMAGE_EXTENSIONS)
                           and os.path.isfile(os.path.join(folder, f)))
            if not files:
                raise ImageError(f"ImageFolder: class folder {folder} holds no images "
                                 f"({', '.join(IMAGE_EXTENSIONS)})")
            self.paths += [os.path.join(folder, f) for f in files]
            labels += [label] * len(files)
        self.y = np.asarray(labels, dtype=np.int64)
        if grayscale is not None and not isinstance(grayscale, bool):
            raise TypeError(f"ImageFolder: grayscale must be None, True or False, got {grayscale!r}")
        self.size = _check_size(size)
        arrays, modes = [], []
        for path in self.paths:                # each image read once, kept only at self.size
            with open_image(path, "ImageFolder") as image:
                gray = is_gray(image)
                self.size = self.size or (image.height, image.width)
                arrays.append(_resize(pixels(image, gray, Image), self.size, Image))
                modes.append(image.mode)
        gray = [len(a) == 1 for a in arrays]
        if grayscale is None:
            if len(set(gray)) > 1:
                g, c = gray.index(True), gray.index(False)
                raise ImageError(
                    f"ImageFolder: mixed modes: {self.paths[g]} is grey ({modes[g]}) and "
                    f"{self.paths[c]} is colour ({modes[c]}); pass grayscale=True for one "
                    "channel or grayscale=False for RGB")
            grayscale = gray[0]
        self.x = np.empty((len(arrays), 1 if grayscale else 3) + self.size, np.float32)
        for i, a in enumerate(arrays):
            if grayscale and len(a) == 3:      # ITU-R 601-2 luma, as Pillow's convert("L")
                a = np.tensordot([0.299, 0.587, 0.114], a, axes=1)[None]
            self.x[i] = a

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]

    def __repr__(self):
        n, c, h, w = self.x.shape
        return (f"ImageFolder({self.root!r}: {n} images of {len(self.classes)} classes "
                f"{self.classes}, {c} x {h} x {w})")


def _check_size(size):
    if size is None:
        return None
    pair = (size, size) if isinstance(size, (int, np.integer)) else size
    if (isinstance(size, bool) or not isinstance(pair, (tuple, list)) or len(pair) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                       for v in pair)):
        raise ValueError(f"ImageFolder: size must be an int or (h, w) of positive ints, got {size!r}")
    return int(pair[0]), int(pair[1])
