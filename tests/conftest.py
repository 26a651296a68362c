import os

import numpy as np
import pytest

import minicnn


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _seed():
    minicnn.random.seed(0)
    yield


def mnist_root():
    """The MINICNN_DATA folder when it holds MNIST, else None."""
    root = os.environ.get("MINICNN_DATA")
    if root and os.path.isdir(os.path.join(root, "mnist")):
        return root
    return None
