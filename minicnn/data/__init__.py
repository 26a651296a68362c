"""Data: MNIST / Fashion-MNIST loading (verified, downloadable) and on-the-fly batching."""
from .idx import IDXError, parse_idx, write_idx
from .loader import (FASHION_MEAN, FASHION_STD, MNIST_MEAN, MNIST_STD, DataLoader, batches,
                     normalize, random_shift)
from .mnist import CLASSES, ChecksumError, DatasetNotFoundError, data_root, load_mnist
from .images import IMAGE_EXTENSIONS, ImageError, ImageFolder, load_image

__all__ = ["IDXError", "parse_idx", "write_idx", "FASHION_MEAN", "FASHION_STD", "MNIST_MEAN",
           "MNIST_STD", "DataLoader", "batches", "normalize", "random_shift", "CLASSES",
           "ChecksumError", "DatasetNotFoundError", "data_root", "load_mnist",
           "IMAGE_EXTENSIONS", "ImageError", "ImageFolder", "load_image"]
