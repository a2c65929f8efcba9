"""Initial masks with an exact number of active entries."""

import math

import numpy as np

from keras_dst.masks.blocks import block_size
from keras_dst.masks.blocks import check_block_shape
from keras_dst.masks.blocks import expand_blocks
from keras_dst.masks.blocks import grid_shape
from keras_dst.masks.blocks import to_blocks


def active_count(size, sparsity):
    """Number of active entries for `size` weights at `sparsity`.

    Exactly `round((1 - sparsity) * size)`, at least 1 for a non-empty
    weight so that no layer is silently cut off.
    """
    if size == 0:
        return 0
    count = int(math.floor((1.0 - sparsity) * size + 0.5))
    return min(size, max(1, count))


def target_count(shape, sparsity, block_shape=None):
    """Active entries of a kernel of `shape` at `sparsity`: `active_count`
    of its entries, or of its blocks times the block size."""
    block = check_block_shape(block_shape, shape)
    blocks = int(np.prod(grid_shape(shape, block)))
    return active_count(blocks, sparsity) * block_size(block)


def random_mask(shape, sparsity, seed=None, block_shape=None):
    """A 0/1 `uint8` mask with exactly `target_count` ones, uniformly placed.

    Args:
        shape: the weight's shape.
        sparsity: float in [0, 1).
        seed: `None` or an int for numpy's generator; `None` draws a seed
            from numpy's global state (seeded by
            `keras.utils.set_random_seed`).
        block_shape: None, or whole blocks of this shape are drawn (see
            `keras_dst.masks.blocks`).
    """
    if seed is None:
        seed = int(np.random.randint(0, 2**31 - 1))
    block = check_block_shape(block_shape, shape)
    grid = grid_shape(shape, block)
    size = int(np.prod(grid))
    rng = np.random.default_rng(seed)
    flat = np.zeros(size, dtype=np.uint8)
    flat[rng.permutation(size)[: active_count(size, sparsity)]] = 1
    return expand_blocks(flat.reshape(grid), block)


def magnitude_mask(weights, sparsity, block_shape=None):
    """Keeps the `target_count` largest |weights| (ties: lowest index);
    with `block_shape`, the blocks of largest L1 norm."""
    weights = np.asarray(weights)
    block = check_block_shape(block_shape, weights.shape)
    scores = to_blocks(np.abs(weights), block)
    size = scores.size
    keep = active_count(size, sparsity)
    order = np.argsort(-scores.reshape(-1), kind="stable")
    flat = np.zeros(size, dtype=np.uint8)
    flat[order[:keep]] = 1
    return expand_blocks(flat.reshape(scores.shape), block)
