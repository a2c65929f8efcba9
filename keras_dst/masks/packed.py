"""0/1 arrays stored as packed bits: 8 entries per `uint8`, along one axis.

A sparse layer's explored union (`kernel_explored`, the union of all its
masks so far) and the entries the last update grew are read only by the
compiled update, the counts and the reports, never by the train step. So
they are kept packed: the kernel's shape with one axis `a` of size `n`
replaced by `ceil(n / 8)`; entry `i` along `a` is bit `i % 8` (least
significant first, numpy's `bitorder="little"`) of byte `i // 8`, and the
padding bits of the last byte are 0. That is 1/8 of a byte per entry
instead of one. (The mask itself stays one byte per entry: every forward
and backward pass reads it, and unpacking it there would slow the step.)

The axis is chosen from the kernel's shape and layout (`pack_axis`): one
that the kernel's layout does not shard, so each device packs its own
shard of the mask without any communication, or a sharded one whose size
is a multiple of 8 times its shard count (each device's bytes then hold
exactly its own entries); among those, the one giving the fewest bytes
(lowest axis on ties). When no axis qualifies the array keeps one byte
per entry, in the kernel's shape, which every function below reads too.

A packed array names its axis by its shape: the one axis where it differs
from the kernel's shape (`packed_axis`). The same shape as the kernel means
one byte per entry, which is also what packing along an axis of size 1
stores, so either reading is the same.
"""

import math

import numpy as np
from keras import ops

_BITS = 8


def pack_axis(shape, shards=None):
    """The axis to pack a kernel-shaped 0/1 array along, or None.

    Args:
        shape: the kernel's shape.
        shards: None, or per axis the number of shards the kernel's
            layout splits it into (1: not sharded).

    Returns:
        The axis (int) that gives the fewest bytes among the axes that
        can be packed without communication (see the module docstring),
        lowest on ties; None if no axis saves anything.
    """
    shape = tuple(int(d) for d in shape)
    shards = (1,) * len(shape) if shards is None else tuple(shards)
    best, best_size = None, math.prod(shape)
    for axis, (n, k) in enumerate(zip(shape, shards, strict=True)):
        if k > 1 and n % (_BITS * k):
            continue
        size = math.prod(packed_shape(shape, axis))
        if size < best_size:
            best, best_size = axis, size
    return best


def packed_shape(shape, axis):
    """The shape of `shape` packed along `axis` (None: unchanged)."""
    shape = tuple(int(d) for d in shape)
    if axis is None:
        return shape
    return shape[:axis] + (-(-shape[axis] // _BITS),) + shape[axis + 1 :]


def packed_axis(shape, stored_shape):
    """The axis along which an array of `stored_shape` packs `shape`.

    Returns:
        The axis, or None if `stored_shape` is `shape` (one byte per
        entry).

    Raises:
        ValueError: if `stored_shape` is neither `shape` nor `shape`
            packed along one axis.
    """
    shape = tuple(int(d) for d in shape)
    stored_shape = tuple(int(d) for d in stored_shape)
    if stored_shape == shape:
        return None
    if len(stored_shape) == len(shape):
        pairs = zip(shape, stored_shape, strict=True)
        differ = [i for i, (a, b) in enumerate(pairs) if a != b]
        if len(differ) == 1 and packed_shape(shape, differ[0]) == stored_shape:
            return differ[0]
    raise ValueError(
        f"An array of shape {stored_shape} is not a 0/1 array of shape "
        f"{shape}, one byte per entry or packed as 8 bits per byte along "
        "one axis."
    )


def _weights(rank, axis):
    """The bit values 1, 2, ..., 128 on the axis after `axis`."""
    # Built from ops, not a numpy constant: PyTorch's Dynamo (which the
    # torch.compile experiment traces the update with) cannot trace one.
    shifts = ops.cast(ops.arange(_BITS, dtype="int32"), "uint8")
    weights = ops.left_shift(ops.ones((_BITS,), "uint8"), shifts)
    return ops.reshape(weights, (_BITS,) + (1,) * (rank - axis - 1))


def pack(bits, stored_shape):
    """`bits` (bool or 0/1, kernel-shaped) as a `uint8` array of
    `stored_shape` (`keras.ops`; see `packed_axis`)."""
    shape = tuple(bits.shape)
    x = ops.cast(bits, "uint8")
    axis = packed_axis(shape, stored_shape)
    if axis is None:
        return x
    n, m = shape[axis], tuple(stored_shape)[axis]
    if _BITS * m != n:
        padding = [(0, 0)] * len(shape)
        padding[axis] = (0, _BITS * m - n)
        x = ops.pad(x, padding)
    x = ops.reshape(x, shape[:axis] + (m, _BITS) + shape[axis + 1 :])
    x = ops.multiply(x, _weights(len(shape), axis))
    # Distinct powers of two: the sum is their bitwise or, at most 255.
    return ops.cast(ops.sum(x, axis=axis + 1), "uint8")


def _bit_planes(packed, axis):
    """Bool, `packed` with a new axis of 8 after `axis`: bit i of each
    byte at position i."""
    x = ops.expand_dims(packed, axis + 1)
    planes = ops.bitwise_and(x, _weights(len(packed.shape) + 1, axis + 1))
    return ops.not_equal(planes, ops.zeros((), "uint8"))


def unpack(packed, shape):
    """The bool array of `shape` that `packed` (`uint8`, see `pack`)
    stores (`keras.ops`)."""
    shape = tuple(int(d) for d in shape)
    axis = packed_axis(shape, packed.shape)
    if axis is None:
        return ops.cast(packed, "bool")
    bits = _bit_planes(packed, axis)
    m = tuple(packed.shape)[axis]
    bits = ops.reshape(bits, shape[:axis] + (_BITS * m,) + shape[axis + 1 :])
    if _BITS * m != shape[axis]:
        bits = ops.slice(bits, (0,) * len(shape), shape)
    return bits


def pack_numpy(bits, stored_shape):
    """`pack` in numpy: a `uint8` array of `stored_shape`."""
    bits = np.asarray(bits) != 0
    axis = packed_axis(bits.shape, stored_shape)
    if axis is None:
        return bits.astype(np.uint8)
    return np.packbits(bits, axis=axis, bitorder="little")


def unpack_numpy(packed, shape):
    """`unpack` in numpy: a 0/1 `uint8` array of `shape`."""
    packed = np.asarray(packed, np.uint8)
    axis = packed_axis(shape, packed.shape)
    if axis is None:
        return (packed != 0).astype(np.uint8)
    return np.unpackbits(
        packed, axis=axis, count=int(shape[axis]), bitorder="little"
    )


def convert_stored(array, shape, stored_shape):
    """A stored union `array` of any accepted format, as `stored_shape`.

    Reads one byte per entry (files saved before unions were packed) or
    a packing along any axis (e.g. saved under another layout), and packs
    it the way `stored_shape` says.

    Raises:
        ValueError: naming both shapes, if `array` is neither.
    """
    array = np.asarray(array)
    if tuple(array.shape) == tuple(stored_shape):
        return array.astype(np.uint8)
    bits = unpack_numpy(array, shape)
    return pack_numpy(bits, stored_shape)
