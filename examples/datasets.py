"""Data for the examples: real datasets, offline where possible."""

import gzip
import os

import numpy as np

FASHION_MNIST_DIRS = (
    os.environ.get("FASHION_MNIST_DIR", ""),
    "/usr/share/datasets/fashion-mnist",  # Debian: dataset-fashion-mnist
)


def _read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = [
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    ]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def random_subset(x, y, size, seed):
    """`size` random examples of `(x, y)` in their original order.

    The same `(size, seed)` picks the same examples in every process and
    backend (numpy only), so runs compared with each other, the tfmot
    baseline's included, train on identical images.
    """
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.permutation(len(x))[:size])
    return x[keep], y[keep]


def load_fashion_mnist():
    """((x_train, y_train), (x_test, y_test)), uint8 images 28x28.

    Reads the standard idx files from `$FASHION_MNIST_DIR` or the Debian
    package `dataset-fashion-mnist` (offline); otherwise downloads with
    `keras.datasets.fashion_mnist`.
    """
    for folder in FASHION_MNIST_DIRS:
        files = [
            os.path.join(folder, f"{name}-ubyte.gz")
            for name in (
                "train-images-idx3",
                "train-labels-idx1",
                "t10k-images-idx3",
                "t10k-labels-idx1",
            )
        ]
        if folder and all(os.path.exists(f) for f in files):
            xtr, ytr, xte, yte = (_read_idx(f) for f in files)
            return (xtr, ytr), (xte, yte)
    import keras

    return keras.datasets.fashion_mnist.load_data()
