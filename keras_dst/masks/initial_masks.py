"""Initial masks with an exact number of active entries."""

import math

import numpy as np


def active_count(size, sparsity):
    """Number of active entries for `size` weights at `sparsity`.

    Exactly `round((1 - sparsity) * size)`, at least 1 for a non-empty
    weight so that no layer is silently cut off.
    """
    if size == 0:
        return 0
    count = int(math.floor((1.0 - sparsity) * size + 0.5))
    return min(size, max(1, count))


def random_mask(shape, sparsity, seed=None):
    """A 0/1 `uint8` mask with exactly `active_count` ones, uniformly placed.

    Args:
        shape: the weight's shape.
        sparsity: float in [0, 1).
        seed: `None` or an int for numpy's generator; `None` draws a seed
            from numpy's global state (seeded by
            `keras.utils.set_random_seed`).
    """
    if seed is None:
        seed = int(np.random.randint(0, 2**31 - 1))
    size = int(np.prod(shape))
    rng = np.random.default_rng(seed)
    flat = np.zeros(size, dtype=np.uint8)
    flat[rng.permutation(size)[: active_count(size, sparsity)]] = 1
    return flat.reshape(shape)


def magnitude_mask(weights, sparsity):
    """Keeps the `active_count` largest |weights| (ties: lowest index)."""
    weights = np.asarray(weights)
    size = weights.size
    keep = active_count(size, sparsity)
    order = np.argsort(-np.abs(weights).reshape(-1), kind="stable")
    flat = np.zeros(size, dtype=np.uint8)
    flat[order[:keep]] = 1
    return flat.reshape(weights.shape)
