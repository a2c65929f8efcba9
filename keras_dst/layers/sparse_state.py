"""The one writer of a sparse layer's state: mask, kernel, slots, union.

Every change of a mask goes through these two functions: the compiled
DST update (`SparseUpdater`), `SparseLayer.set_mask` (initial masks,
`sparsify`, GMP) and Sup-tickets' superposition. So the invariants hold
the same way everywhere:

* the mask is `uint8`, exactly 0 or 1;
* the kernel is exactly 0.0 wherever the mask is 0, and so is every
  optimizer slot of the kernel (momentum, Adam's m and v, ...): a zero
  weight with zero gradient and zero state stays zero;
* entries that are not `keep` restart at 0 (weights just grown, weights
  pruned and regrown in the same update);
* `kernel_explored`, the union of all masks so far (R_s), gains the new
  mask; it is stored packed, 8 entries per byte (`keras_dst.masks.packed`),
  and these functions pack and unpack it on the device.
"""

import functools
from typing import NamedTuple

from keras import ops

from keras_dst.backend import VariableState
from keras_dst.backend import compile_function
from keras_dst.backend import to_numpy
from keras_dst.criteria.selection import count_true
from keras_dst.masks.packed import pack
from keras_dst.masks.packed import unpack


class SparseState(NamedTuple):
    """One layer's sparse state, as `masked_values` returns it."""

    mask: object  # uint8, exactly 0 or 1
    kernel: object  # exactly 0.0 where `mask` is 0
    slots: tuple  # the kernel's optimizer slots, 0 where `mask` is 0
    explored: object  # uint8, the union of masks so far, packed


def masked_values(
    mask, keep, kernel, slots, explored, reset_explored=False, explore=None
):
    """The new state of one layer for a new `mask` (pure `keras.ops`).

    Args:
        mask: bool tensor, the new mask.
        keep: bool tensor, the entries whose weight and slots survive
            (a subset of `mask`); every other entry is set to 0.
        kernel: the current kernel.
        slots: list of the kernel's optimizer slots (current values).
        explored: `uint8` tensor, the union of masks so far, packed
            (`keras_dst.masks.packed`; its shape says how).
        reset_explored: start the union anew from `mask`.
        explore: None (default: `mask`) or a bool tensor, the entries
            added to the union (the compiled update adds the old mask and
            the new one in one pass).

    Returns:
        A `SparseState`: `uint8` mask, zeroed kernel and slots, `uint8`
        union packed like `explored`.
    """
    kernel = ops.where(keep, kernel, ops.zeros((), kernel.dtype))
    slots = [ops.where(keep, s, ops.zeros((), s.dtype)) for s in slots]
    union = pack(mask if explore is None else explore, explored.shape)
    if not reset_explored:
        union = ops.bitwise_or(explored, union)
    return SparseState(ops.cast(mask, "uint8"), kernel, tuple(slots), union)


def write_sparse_state(state, layer, slot_variables, values):
    """Writes `masked_values`' result into `layer` through `state`.

    Args:
        state: an accessor with `write(variable, value)` (see
            `keras_dst.backend.model_state`).
        layer: the sparse layer.
        slot_variables: the optimizer slot variables of its kernel, in the
            order of `values`' slots.
        values: a `SparseState`.
    """
    state.write(layer.kernel_variable, values.kernel)
    for variable, value in zip(slot_variables, values.slots, strict=True):
        state.write(variable, value)
    state.write(layer.kernel_explored, values.explored)
    state.write(layer.kernel_mask, values.mask)


def _counts(pairs):
    active, explored = [], []
    for mask, union in pairs:
        mask = ops.cast(mask, "bool")
        union = ops.logical_or(unpack(union, mask.shape), mask)
        active.append(count_true(mask))
        explored.append(count_true(union))
    return ops.stack(active), ops.stack(explored)


@functools.cache
def _compiled_counts():
    # One compiled function for every model (traced once per structure).
    return compile_function(_counts)


def read_counts(layers, state=None):
    """`(active, explored)`: two lists of ints, one per sparse layer.

    Active entries of each mask, and the size of the union of masks so
    far (`kernel_explored` or the mask), counted in one device pass: only
    the counts come to the host, never a mask (which may be sharded over
    processes).

    Args:
        layers: sparse layers.
        state: the accessor to read through (`keras_dst.backend
            .model_state(model)` inside `fit` on JAX); plain variable reads
            by default.
    """
    state = VariableState() if state is None else state
    active, explored = _compiled_counts()(
        [
            (state.read(x.kernel_mask), state.read(x.kernel_explored))
            for x in layers
        ]
    )
    return (
        [int(a) for a in to_numpy(active)],
        [int(e) for e in to_numpy(explored)],
    )
