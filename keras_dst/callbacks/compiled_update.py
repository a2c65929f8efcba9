"""One prune-and-regrow update of a whole model, as one compiled function.

Built from `keras.ops` only and compiled once per model structure by
`keras_dst.backend.compile_function` (jit on JAX, XLA `tf.function` on
TensorFlow). Everything it needs comes in as tensors — per-layer counts,
the step, the seed, the loss scale — so a new drop fraction or step never
traces it again. For each sparse layer, with equations as in Evci et al.
(2020):

    pruned   = the k_prune active entries of lowest prune score
    survive  = mask and not pruned
    grown    = the k_grow entries of highest growth score among not survive
    mask'    = survive or grown
    kernel'  = kernel where survive, else 0 (grown weights start at 0)
    slots'   = slots  where survive, else 0
    explored'= explored or mask or mask'

Selections are exact, ties to the lowest flat index
(`keras_dst.criteria.selection`). If any score the update ranks is not
finite (NaN/inf weights or gradients), every output equals its input and
the returned `ok` flag is False: a failed update changes nothing.
"""

from keras import ops

from keras_dst.backend import compile_function
from keras_dst.criteria.hashing import layer_key
from keras_dst.criteria.hashing import mix32
from keras_dst.criteria.registry import ScoreInputs
from keras_dst.criteria.selection import count_true
from keras_dst.criteria.selection import select_largest
from keras_dst.criteria.selection import select_smallest
from keras_dst.layers.sparse_state import masked_values

_PRUNE_SALT = 0x5BD1E995


def _all_finite(values, where):
    finite = ops.isfinite(values)
    return ops.all(ops.logical_or(finite, ops.logical_not(where)))


class CompiledUpdate:
    """The update function for one model structure, and its trace count.

    Call with:
        layers: list, per sparse layer, of `(kernel, mask, explored,
            gradient, slots)`; `gradient` is None unless a criterion needs
            it; `slots` a tuple of the kernel's optimizer slots.
        prune_counts, grow_counts: int32 tensors of shape (layers,).
        step: int32 scalar; seed: uint32 scalar; scale: float32 scalar
            (the loss scale the gradients are divided by).

    Returns:
        `(outputs, stats)`: per layer `(mask, kernel, slots, explored)`;
        stats `(ok, active, explored)`: bool scalar, int32 counts per
        layer of the new mask and of the new union.
    """

    def __init__(self, prune, growth):
        self.prune = prune
        self.growth = growth
        self.traces = 0
        self._function = compile_function(self._update)

    def __call__(self, *args):
        return self._function(*args)

    def _update(self, layers, prune_counts, grow_counts, step, seed, scale):
        self.traces += 1  # Python side effect: runs only while tracing
        prune, growth = self.prune, self.growth
        kernels = [layer[0] for layer in layers]
        masks = [ops.cast(layer[1], "bool") for layer in layers]
        gradients = [
            None if layer[3] is None else ops.divide(layer[3], scale)
            for layer in layers
        ]
        keys = [layer_key(seed, step, i) for i in range(len(layers))]
        prune_keys = [
            mix32(ops.bitwise_xor(key, ops.cast(_PRUNE_SALT, "uint32")))
            for key in keys
        ]

        def inputs(i, mask, criterion, key):
            gradient = gradients[i] if criterion.needs_gradient else None
            return ScoreInputs(kernels[i], mask, gradient, key)

        prune_scores = [
            prune.score(inputs(i, mask, prune, prune_keys[i]))
            for i, mask in enumerate(masks)
        ]
        pruned = select_smallest(prune_scores, masks, prune_counts)
        survivors = [
            ops.logical_and(mask, ops.logical_not(p))
            for mask, p in zip(masks, pruned)
        ]
        growth_scores = [
            growth.score(inputs(i, survive, growth, keys[i]))
            for i, survive in enumerate(survivors)
        ]
        vacant = [ops.logical_not(s) for s in survivors]
        grown = select_largest(growth_scores, vacant, grow_counts)

        ok = ops.convert_to_tensor(True)
        for i in range(len(layers)):
            ok = ops.logical_and(ok, _all_finite(prune_scores[i], masks[i]))
            ok = ops.logical_and(ok, _all_finite(growth_scores[i], vacant[i]))

        outputs, active, explored = [], [], []
        for i, (kernel, mask_in, explored_in, _, slots) in enumerate(layers):
            new_mask = ops.logical_or(survivors[i], grown[i])
            union_in = ops.logical_or(ops.cast(explored_in, "bool"), masks[i])
            new = masked_values(
                new_mask, survivors[i], kernel, list(slots), union_in
            )
            old = (mask_in, kernel, list(slots), explored_in)
            mask_out = ops.where(ok, new[0], old[0])
            kernel_out = ops.where(ok, new[1], old[1])
            slots_out = tuple(
                ops.where(ok, n, o) for n, o in zip(new[2], old[2])
            )
            explored_out = ops.where(ok, new[3], old[3])
            outputs.append((mask_out, kernel_out, slots_out, explored_out))
            active.append(count_true(mask_out))
            explored.append(count_true(explored_out))
        return outputs, (ok, ops.stack(active), ops.stack(explored))


class CompiledStats:
    """Active and explored counts per layer, compiled once per model.

    Call with a list of `(mask, explored)` per layer; returns two int32
    tensors (layers,): the active count and the size of the union of
    masks (explored or mask).
    """

    def __init__(self):
        self._function = compile_function(self._stats)

    def __call__(self, layers):
        return self._function(layers)

    @staticmethod
    def _stats(layers):
        active, explored = [], []
        for mask, union in layers:
            mask = ops.cast(mask, "bool")
            union = ops.logical_or(ops.cast(union, "bool"), mask)
            active.append(count_true(mask))
            explored.append(count_true(union))
        return ops.stack(active), ops.stack(explored)
