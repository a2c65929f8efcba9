"""Block-structured masks: a mask made of whole blocks of entries.

A `block_shape` has one entry per kernel axis, each dividing that axis:
`(4, 1)` on a Dense kernel `(inputs, units)` groups 4 consecutive input
rows of one output column, the 1x4 block LiteRT's sparse fully-connected
kernel runs fast. A block mask is decided on the grid of blocks
(`kernel.shape / block_shape`) and expanded, so every count is a whole
number of blocks. A block's score is the sum of its entries' scores (for
magnitudes: the L1 norm of the block).
"""

import math
import numbers

import numpy as np
from keras import ops


def check_block_shape(block_shape, shape=None, name="block_shape"):
    """None, or a tuple of ints >= 1 (one per axis of `shape`, each
    dividing it, when `shape` is given). Returns it as a tuple."""
    if block_shape is None:
        return None
    if isinstance(block_shape, (str, bytes)) or not hasattr(
        block_shape, "__len__"
    ):
        raise TypeError(
            f"`{name}` must be None or a tuple of ints, e.g. (4, 1). "
            f"Received: {name}={block_shape!r}."
        )
    block = tuple(block_shape)
    if not block or any(
        isinstance(b, bool) or not isinstance(b, numbers.Integral) or b < 1
        for b in block
    ):
        raise ValueError(
            f"`{name}` must be a tuple of ints >= 1, e.g. (4, 1). "
            f"Received: {name}={block_shape!r}."
        )
    block = tuple(int(b) for b in block)
    if shape is not None:
        shape = tuple(int(d) for d in shape)
        if len(block) != len(shape) or any(
            d % b for d, b in zip(shape, block, strict=True)
        ):
            raise ValueError(
                f"`{name}`={block} must have one entry per kernel axis, "
                f"each dividing the kernel's shape {shape} (e.g. (4, 1) on "
                "a Dense kernel whose input size is a multiple of 4)."
            )
    return block


def block_size(block_shape):
    """Entries per block (1 without blocks)."""
    return 1 if block_shape is None else math.prod(block_shape)


def grid_shape(shape, block_shape):
    """The shape of the grid of blocks."""
    if block_shape is None:
        return tuple(shape)
    return tuple(d // b for d, b in zip(shape, block_shape, strict=True))


def to_blocks(array, block_shape):
    """Sums `array` over each block (numpy): the grid of block scores."""
    if block_shape is None:
        return np.asarray(array)
    array = np.asarray(array)
    split = []
    for d, b in zip(array.shape, block_shape, strict=True):
        split += [d // b, b]
    return array.reshape(split).sum(axis=tuple(range(1, 2 * array.ndim, 2)))


def expand_blocks(grid, block_shape):
    """Each grid entry repeated over its block (numpy)."""
    if block_shape is None:
        return np.asarray(grid)
    out = np.asarray(grid)
    for axis, b in enumerate(block_shape):
        out = np.repeat(out, b, axis=axis)
    return out


def is_block_mask(mask, block_shape):
    """Whether `mask` is constant over every block."""
    if block_shape is None:
        return True
    mask = np.asarray(mask)
    sums = to_blocks(mask.astype(np.int64), block_shape)
    return bool(np.all((sums == 0) | (sums == block_size(block_shape))))


def block_totals(x, block):
    """Tensor `x` summed over each block of `block` (None: `x` itself);
    the `keras.ops` twin of `to_blocks`, for compiled functions."""
    if block is None:
        return x
    split = []
    for d, b in zip(x.shape, block, strict=True):
        split += [d // b, b]
    axes = tuple(range(1, 2 * len(block), 2))
    return ops.sum(ops.reshape(x, split), axis=axes)


def repeat_blocks(x, block):
    """Each entry of a block-grid tensor repeated over its block (None:
    `x` itself); the `keras.ops` twin of `expand_blocks`."""
    if block is None:
        return x
    for axis, b in enumerate(block):
        x = ops.repeat(x, b, axis=axis)
    return x
