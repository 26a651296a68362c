"""The MNIST loader, the IDX parser and batching. Never touches the network."""
import gzip
import hashlib
import os

import numpy as np
import pytest

from conftest import fake_dataset, mnist_root
from minicnn import data
from minicnn.data import mnist as M
from minicnn.data import (ChecksumError, DatasetNotFoundError, IDXError, batches, load_mnist,
                          normalize, parse_idx, random_shift, write_idx)

needs_mnist = pytest.mark.skipif(mnist_root() is None,
                                 reason="real MNIST not found: set MINICNN_DATA to a folder with mnist/")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(url, progress=True):
        raise OSError("network disabled in tests")
    monkeypatch.setattr(M, "fetch", refuse)


# --- real files ---------------------------------------------------------------------

@needs_mnist
def test_real_mnist():
    (x, y), (xt, yt) = load_mnist(download=False)
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28)
    assert x.dtype == y.dtype == np.uint8
    assert list(y[:10]) == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert list(np.bincount(y)) == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert list(np.bincount(yt)) == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@needs_mnist
def test_real_fashion_mnist():
    (x, y), (xt, yt) = load_mnist(kind="fashion-mnist", download=False)
    assert x.shape == (60000, 28, 28) and list(np.bincount(y)) == [6000] * 10
    assert list(y[:5]) == [9, 0, 0, 3, 0]


def copy_kind(tmp_path, transform, names=M.FILES):
    """Copy the real files into tmp_path/mnist, transformed (e.g. decompressed)."""
    folder = tmp_path / "mnist"
    folder.mkdir(parents=True)
    for name in names:
        raw = gzip.decompress(open(os.path.join(mnist_root(), "mnist", name + ".gz"), "rb").read())
        out_name, payload = transform(name, raw)
        (folder / out_name).write_bytes(payload)
    return tmp_path


@needs_mnist
def test_uncompressed_and_recompressed_copies(tmp_path):
    plain = copy_kind(tmp_path / "a", lambda n, raw: (n, raw))
    (x1, y1), (xt1, _) = load_mnist(plain, download=False)
    recompressed = copy_kind(tmp_path / "b", lambda n, raw: (n + ".gz", gzip.compress(raw, 1)))
    (x2, y2), (xt2, _) = load_mnist(recompressed, download=False)
    (x3, y3), (xt3, _) = load_mnist(download=False)
    for a, b, c in ((x1, x2, x3), (y1, y2, y3), (xt1, xt2, xt3)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


@needs_mnist
def test_flipped_byte_fails_the_checksum(tmp_path):
    def flip(name, raw):
        raw = bytearray(raw)
        if name == "t10k-images-idx3-ubyte":
            raw[5000] ^= 1
        return name, bytes(raw)
    root = copy_kind(tmp_path, flip)
    with pytest.raises(ChecksumError, match=r"t10k-images-idx3-ubyte: SHA-256 .* expected 0fa7898d.*delete it"):
        load_mnist(root, download=False)


@needs_mnist
def test_truncated_gzip(tmp_path):
    root = copy_kind(tmp_path, lambda n, raw: (n + ".gz", gzip.compress(raw, 1)[:-1000])
                     if n.startswith("train-labels") else (n, raw))
    with pytest.raises(IDXError, match="train-labels-idx1-ubyte.gz: the gzip stream is truncated"):
        load_mnist(root, download=False)


# --- missing files and downloads ----------------------------------------------------------

def test_offline_error_names_files_folder_and_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist(tmp_path)
    msg = str(info.value)
    assert "train-images-idx3-ubyte.gz" in msg and str(tmp_path / "mnist") in msg
    assert "network disabled" in msg and "MINICNN_DATA" in msg and "ossci-datasets" in msg
    with pytest.raises(DatasetNotFoundError, match="Downloading was not tried"):
        load_mnist(tmp_path, download=False)


def test_env_var_and_kind_validation(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path))
    assert data.data_root() == str(tmp_path)
    with pytest.raises(ValueError, match=r"kind must be one of \['fashion-mnist', 'mnist'\]"):
        load_mnist(kind="cifar")


def test_download_from_second_mirror(tmp_path, monkeypatch):
    arrays, files = fake_dataset(monkeypatch)
    calls = []

    def fetch(url, progress=True):
        calls.append(url)
        if url.startswith("http://mirror-a/"):
            raise OSError("connection refused")
        return gzip.compress(files[url.rsplit("/", 1)[1][:-3]])

    monkeypatch.setattr(M, "fetch", fetch)
    (x, y), _ = load_mnist(tmp_path)
    np.testing.assert_array_equal(x, arrays["train-images-idx3-ubyte"])
    assert sorted(os.listdir(tmp_path / "mnist")) == sorted(n + ".gz" for n in M.FILES)
    assert len(calls) == 8
    (x2, _), _ = load_mnist(tmp_path)  # now from disk, no more fetching
    assert len(calls) == 8 and np.array_equal(x, x2)


@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
def test_bad_download_leaves_nothing_and_keeps_good_files(tmp_path, monkeypatch, damage):
    arrays, files = fake_dataset(monkeypatch)
    folder = tmp_path / "mnist"
    folder.mkdir()
    good = gzip.compress(files["train-images-idx3-ubyte"])
    (folder / "train-images-idx3-ubyte.gz").write_bytes(good)

    def fetch(url, progress=True):
        payload = gzip.compress(files[url.rsplit("/", 1)[1][:-3]])
        if damage == "truncated":
            return payload[: len(payload) // 2]
        payload = bytearray(gzip.decompress(payload))
        payload[-1] ^= 0xFF
        return gzip.compress(bytes(payload))

    monkeypatch.setattr(M, "fetch", fetch)
    with pytest.raises(DatasetNotFoundError, match="mirror-b"):
        load_mnist(tmp_path)
    assert os.listdir(folder) == ["train-images-idx3-ubyte.gz"]
    assert (folder / "train-images-idx3-ubyte.gz").read_bytes() == good


# --- the IDX parser -----------------------------------------------------------------------

def test_idx_round_trip(tmp_path):
    for a in (np.arange(24, dtype=np.uint8).reshape(2, 3, 4), np.arange(5, dtype=np.int32) - 2,
              np.linspace(0, 1, 6).reshape(2, 3)):
        write_idx(tmp_path / "a.idx.gz", a)
        back = parse_idx(bytearray(gzip.decompress((tmp_path / "a.idx.gz").read_bytes())))
        np.testing.assert_array_equal(back, a)
        assert back.dtype == a.dtype


@pytest.mark.parametrize("payload,match", [
    (b"\x00\x00", "too short for an IDX header"),
    (b"\x12\x34\x08\x01" + bytes(8), "bad magic number 0x12340801"),
    (b"\x00\x00\x07\x01" + bytes(8), "bad magic number 0x00000701"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated header"),
    (b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + bytes(5), r"truncated: the header declares shape \(10,\)"),
    (b"\x00\x00\x08\x01" + (2).to_bytes(4, "big") + bytes(5), "has trailing bytes"),
    (b"\x00\x00\x08\x03" + (10**9).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + bytes(84),
     r"declares shape \(1000000000, 28, 28\) \(784,000,000,016 bytes in all\), the data is 100 bytes"),
])
def test_bad_idx(payload, match):
    with pytest.raises(IDXError, match=match):
        parse_idx(payload, "f")


def test_wrong_rank_for_images():
    with pytest.raises(IDXError, match="has 1 dimensions, expected 3"):
        parse_idx(b"\x00\x00\x08\x01" + (1).to_bytes(4, "big") + b"\x00", "f", expect_ndim=3)


def test_gzip_bomb_is_refused():
    bomb = gzip.compress(bytes(10_000_000))
    with pytest.raises(IDXError, match="decompresses to more than the expected 1,000 bytes"):
        data.idx.decompress(bomb, "bomb", 1000)


# --- batching -------------------------------------------------------------------------------

def test_normalize_values():
    x = np.array([[[0, 255]]], dtype=np.uint8)
    out = normalize(x)
    assert out.shape == (1, 1, 1, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0, 0], [-0.1307 / 0.3081, (1 - 0.1307) / 0.3081], rtol=1e-6)
    np.testing.assert_allclose(normalize(np.array([[[0.0, 1.0]]])), out, rtol=1e-6)
    with pytest.raises(TypeError, match="expected uint8 or float images, got int64"):
        normalize(np.zeros((1, 2, 2), np.int64))


def test_batches_cover_every_sample_once():
    x = np.arange(10, dtype=np.uint8).reshape(10, 1, 1).repeat(2, 1).repeat(2, 2)
    y = np.arange(10)
    seen = []
    for xb, yb in batches(x, y, 3, rng=np.random.default_rng(0)):
        assert xb.dtype == np.float32 and xb.shape[1:] == (1, 2, 2) and yb.dtype == np.int64
        np.testing.assert_allclose(xb[:, 0, 0, 0], normalize(x[yb])[:, 0, 0, 0])
        seen += list(yb)
    assert sorted(seen) == list(range(10)) and seen != list(range(10))
    again = [yb for _, yb in batches(x, y, 3, rng=np.random.default_rng(0))]
    assert list(np.concatenate(again)) == seen
    assert [len(yb) for _, yb in batches(x, y, 3, shuffle=False, drop_last=True)] == [3, 3, 3]
    loader = data.DataLoader(x, y, batch_size=4, rng=1)
    assert len(loader) == 3 and sum(len(yb) for _, yb in loader) == 10


def test_random_shift_moves_a_pixel_at_most_two():
    x = np.zeros((500, 9, 9), np.uint8)
    x[:, 4, 4] = 200
    out = random_shift(x, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == np.uint8
    ys, xs = np.nonzero(out.reshape(500, 81) == 200)[1] // 9, np.nonzero(out.reshape(500, 81) == 200)[1] % 9
    assert len(ys) == 500 and set(ys) == set(range(2, 7)) and set(xs) == set(range(2, 7))
    assert (out.sum(axis=(1, 2)) == 200).all()
