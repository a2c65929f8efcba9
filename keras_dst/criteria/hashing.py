"""Stateless random numbers keyed by (seed, step, layer), in `keras.ops`.

Random growth must draw the same positions on every replica and after a
resume, without any generator state to save. A counter-based generator
does that: the score of entry `i` is a hash of `i` and a key made from
`(seed, step, layer)`. The hash is Wellons's "lowbias32" integer mixer
(two rounds of xor-shift-multiply on uint32), a bijection with full
avalanche; it is computed with the same uint32 arithmetic on every
backend, so TensorFlow, JAX and PyTorch draw identical masks.

Keras maps `"uint32"` to `torch.int64` on PyTorch, where products and
sums therefore do not wrap at 2^32 by themselves: every product and sum
is masked to its low 32 bits (`_wrap`), a no-op on the uint32 backends
and exactly uint32 arithmetic on int64 (the low 32 bits of an int64
product are those of the uint32 product, wrap-around included).
"""

from keras import ops

_MULTIPLIER_1 = 0x7FEB352D
_MULTIPLIER_2 = 0x846CA68B
_GOLDEN = 0x9E3779B9
_MASK32 = 0xFFFFFFFF


def _wrap(x):
    """`x` modulo 2^32 (uint32 arithmetic where "uint32" is int64)."""
    return ops.bitwise_and(x, ops.convert_to_tensor(_MASK32, x.dtype))


def mix32(x):
    """lowbias32: a uint32 -> uint32 bijection (x: uint32 tensor)."""
    x = ops.bitwise_xor(x, ops.right_shift(x, 16))
    x = _wrap(ops.multiply(x, ops.convert_to_tensor(_MULTIPLIER_1, "uint32")))
    x = ops.bitwise_xor(x, ops.right_shift(x, 15))
    x = _wrap(ops.multiply(x, ops.convert_to_tensor(_MULTIPLIER_2, "uint32")))
    return ops.bitwise_xor(x, ops.right_shift(x, 16))


def layer_key(seed, step, layer):
    """The uint32 key of `(seed, step, layer)` (tensors or ints).

    Args:
        seed: uint32 scalar (the updater's seed).
        step: int32 or uint32 scalar (the optimizer step).
        layer: Python int, the layer's position in the model.
    """
    seed = ops.cast(seed, "uint32")
    step = ops.cast(step, "uint32")
    salt = ops.convert_to_tensor(((layer + 1) * _GOLDEN) & _MASK32, "uint32")
    return mix32(ops.bitwise_xor(mix32(ops.bitwise_xor(seed, salt)), step))


def uniform_scores(key, shape):
    """i.i.d.-looking uniform scores in [0, 1) of `shape`, from `key`.

    Entry `i` (flat index) gets `mix32(mix32(i ^ key) + key) >> 8`, as a
    float32 multiple of 2^-24. Top-k of these scores is a uniform draw of k
    positions.
    """
    index = ops.cast(flat_index(shape), "uint32")
    bits = mix32(_wrap(ops.add(mix32(ops.bitwise_xor(index, key)), key)))
    scores = ops.multiply(
        ops.cast(ops.right_shift(bits, 8), "float32"), 2.0**-24
    )
    return scores


def flat_index(shape):
    """The int32 flat (row-major) index of every entry of `shape`, built
    from one small range per axis, not reshaped from one long range: a
    tensor of a sharded kernel's shape is computed shard by shard."""
    shape = tuple(int(d) for d in shape)
    index = ops.zeros((1,) * len(shape), dtype="int32")
    stride = 1
    for axis in reversed(range(len(shape))):
        view = [1] * len(shape)
        view[axis] = shape[axis]
        along = ops.reshape(ops.arange(shape[axis], dtype="int32"), view)
        index = ops.add(index, ops.multiply(along, stride))
        stride *= shape[axis]
    return index
