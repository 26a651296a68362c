"""MNIST and Fashion-MNIST: find, verify, download and parse the four IDX files.

Files are looked for in ``root``, else ``$MINICNN_DATA``, else ``~/.cache/minicnn``,
in a subfolder named after the kind (``mnist/``, ``fashion-mnist/``), as the canonical
``.gz`` archives or uncompressed (the same name without ``.gz``). Every file is
verified by the SHA-256 of its decompressed content, so recompressed and
uncompressed copies are accepted and damaged ones are not.
"""
import hashlib
import os
import urllib.request

from .._atomic import atomic_write
from .idx import IDXError, decompress, parse_idx

__all__ = ["FILES", "DATASETS", "SIZES", "CLASSES", "TIMEOUT", "DatasetNotFoundError",
           "ChecksumError", "data_root", "read_verified", "fetch", "load_mnist"]

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

DATASETS = {
    "mnist": {
        "mirrors": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                    "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        "sha256": {  # of the decompressed IDX files
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
    },
    "fashion-mnist": {
        "mirrors": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"),
        "sha256": {
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
    },
}
SIZES = {"train-images-idx3-ubyte": 47_040_016, "train-labels-idx1-ubyte": 60_008,
         "t10k-images-idx3-ubyte": 7_840_016, "t10k-labels-idx1-ubyte": 10_008}
CLASSES = {
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"],
}
TIMEOUT = 30


class DatasetNotFoundError(FileNotFoundError):
    """The data set is not on disk and could not be downloaded.

    ``kind``, ``folder``, ``missing`` (file names) and ``errors`` (one line per failed
    download) let a caller such as the command line say it in its own terms.
    """

    def __init__(self, message, kind=None, folder=None, missing=(), errors=()):
        super().__init__(message)
        self.kind, self.folder = kind, folder
        self.missing, self.errors = list(missing), list(errors)


class ChecksumError(ValueError):
    """A data file's content differs from the published one."""


def data_root(root=None):
    """The folder data sets live in: ``root``, else $MINICNN_DATA, else ~/.cache/minicnn."""
    return os.path.abspath(os.path.expanduser(
        root or os.environ.get("MINICNN_DATA") or os.path.join("~", ".cache", "minicnn")))


def _dataset(kind):
    if kind not in DATASETS:
        raise ValueError(f"load_mnist: kind must be one of {sorted(DATASETS)}, got {kind!r}")
    return DATASETS[kind]


def _existing(folder, name):
    for candidate in (name + ".gz", name):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def read_verified(path, name, kind):
    """Read ``path`` (gzip or plain), check the SHA-256 of the IDX content, return the bytes."""
    with open(path, "rb") as f:
        raw = f.read(SIZES[name] * 2 + (1 << 20))  # no real copy is bigger, compressed or not
    content = decompress(raw, path, SIZES[name])
    digest = hashlib.sha256(content).hexdigest()
    expected = _dataset(kind)["sha256"][name]
    if digest != expected:
        raise ChecksumError(f"{path}: SHA-256 of its content is {digest}, expected {expected} "
                            f"({kind} {name}). The file is damaged or not the published one: "
                            "delete it and load again to download a fresh copy.")
    return content


def _download(folder, name, kind, mirrors, progress):
    """Try each mirror; keep the file only when it verifies. Returns (path, errors)."""
    errors = []
    target = os.path.join(folder, name + ".gz")
    for base in mirrors:
        url = base + name + ".gz"
        try:
            payload = fetch(url, progress)
            content = decompress(payload, url, SIZES[name])
            digest = hashlib.sha256(content).hexdigest()
            if digest != _dataset(kind)["sha256"][name]:
                raise ChecksumError(f"{url}: SHA-256 {digest} does not match the published file")
        except (OSError, ValueError) as e:
            errors.append(f"{url}: {e}")
            continue
        os.makedirs(folder, exist_ok=True)
        atomic_write(target, lambda f: f.write(payload))
        return target, errors
    return None, errors


def fetch(url, progress=True):
    """Download ``url`` into memory with a tqdm bar (tests replace this function)."""
    from tqdm.auto import tqdm

    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        chunks = []
        with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1],
                  disable=not progress, leave=False) as bar:
            while True:
                chunk = response.read(1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
                bar.update(len(chunk))
    data = b"".join(chunks)
    if total is not None and len(data) != total:
        raise OSError(f"incomplete download: {len(data)} of {total} bytes")
    return data


def load_mnist(root=None, download=True, kind="mnist", progress=True):
    """Load MNIST (or ``kind='fashion-mnist'``): ((x_train, y_train), (x_test, y_test)).

    Images are uint8 (N, 28, 28), labels uint8 (N,). Missing files are downloaded
    from the public mirrors when ``download`` is True.
    """
    spec = _dataset(kind)
    folder = os.path.join(data_root(root), kind)
    paths, missing, errors = {}, [], []
    for name in FILES:
        path = _existing(folder, name)
        if path is None and download:
            path, errs = _download(folder, name, kind, spec["mirrors"], progress)
            errors += errs
        if path is None:
            missing.append(name)
        paths[name] = path
    if missing:
        tried = ("\nDownload attempts failed:\n  " + "\n  ".join(errors)) if errors else (
            "\nDownloading was not tried (download=False)." if not download else "")
        raise DatasetNotFoundError(
            f"{kind}: missing {', '.join(n + '.gz' for n in missing)} in {folder}.{tried}\n"
            f"Provide the files (the .gz archives or uncompressed copies) in {folder}, or point "
            f"root= or the MINICNN_DATA environment variable at a folder holding a '{kind}/' subfolder.",
            kind=kind, folder=folder, missing=[n + ".gz" for n in missing], errors=errors)
    arrays = [parse_idx(read_verified(paths[n], n, kind), paths[n], 3 if "images" in n else 1)
              for n in FILES]
    x_train, y_train, x_test, y_test = arrays
    for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(x) != len(y) or x.shape[1:] != (28, 28):
            raise IDXError(f"{kind} {split}: {x.shape} images do not match {y.shape} labels")
    return (x_train, y_train), (x_test, y_test)
