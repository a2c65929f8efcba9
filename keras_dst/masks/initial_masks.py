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


# How the active weights of a freshly drawn random mask are initialised.
WEIGHT_INITS = ("sparse_scaled", "unscaled")


def sparse_init_scale(mask):
    """The factor that gives a kernel's active weights their fan-in's variance.

    Keras's initializers (Glorot, He, LeCun) draw a dense kernel with
    `Var(w) = c / fan_in` (Glorot: `c / fan_avg`), so that a unit's
    pre-activation keeps the variance of its inputs. With a random mask
    of density `d`, a unit has on average `d * fan_in` active inputs (and
    `d * fan_out` outputs) and its pre-activation variance shrinks by `d`,
    layer after layer: a deep MLP at 98% sparsity starts with activations
    ~50x smaller per layer and does not train. Drawing the active weights
    with the variance of their active fan-in,

        Var(w_sparse) = Var(w_dense) / d,    i.e.  w_sparse = w / sqrt(d),

    restores it. `d` is the layer's density (Evci et al., 2022, "Gradient
    Flow in Sparse Neural Networks and How Lottery Tickets Win", scale
    each unit by its own active fan-in; one factor per layer is the same
    on average and treats every layer type alike).

    Args:
        mask: the layer's 0/1 mask.

    Returns:
        `1 / sqrt(density)` as a Python float (1.0 for a dense mask).
    """
    mask = np.asarray(mask)
    active = int(np.count_nonzero(mask))
    if active == 0:
        return 1.0
    return math.sqrt(mask.size / active)
