"""One prune-and-regrow update of a whole model, as one compiled function.

Built from `keras.ops` only and compiled once per model structure by
`keras_dst.backend.compile_function` (jit on JAX, XLA `tf.function` on
TensorFlow). Everything it needs comes in as tensors — per-layer counts,
the step, the seed, the loss scale — so a new drop fraction or step never
traces it again. For each sparse layer, with equations as in Evci et al.
(2020):

    pruned   = the k_prune active entries of lowest prune score
    survive  = mask and not pruned
    (growth scores are computed from the state before the update)
    grown    = the k_grow entries of highest growth score among not survive
    mask'    = survive or grown
    kernel'  = kernel where survive, else 0 (grown weights start at 0)
    slots'   = slots  where survive, else 0
    explored'= explored or mask or mask'

and, for the engine's per-layer metrics, counts of the new state:
explored entries, and how many of the previous update's grown
entries survived this prune (the survival of grown connections, ITOP's
"reliable exploration").

The union (`explored`) and the grown entries are packed 8 per byte
(`keras_dst.masks.packed`): they come in and go out packed, and are
unpacked only here, inside the compiled function.

A layer with a `block_shape` is ranked and selected on its grid of
blocks: a block's score is the sum of its entries' scores, its counts are
in blocks, and each selected block is expanded back to its entries.

Selections are exact, ties to the lowest flat index
(`keras_dst.criteria.selection`). If a prune score of an active entry or
any growth score is not finite (NaN/inf weights or gradients), nothing is
selected, every output equals its input and the returned `ok` flag is
False: a failed update changes nothing.
"""

from typing import NamedTuple

from keras import ops

from keras_dst.backend import compile_function
from keras_dst.backend import compiled_cost
from keras_dst.backend import traces_functions
from keras_dst.criteria.hashing import layer_key
from keras_dst.criteria.hashing import mix32
from keras_dst.criteria.registry import ScoreInputs
from keras_dst.criteria.selection import count_true
from keras_dst.criteria.selection import select_largest
from keras_dst.criteria.selection import select_smallest
from keras_dst.layers.sparse_state import masked_values
from keras_dst.masks.blocks import block_totals
from keras_dst.masks.blocks import repeat_blocks
from keras_dst.masks.packed import pack
from keras_dst.masks.packed import unpack

_PRUNE_SALT = 0x5BD1E995


class LayerInputs(NamedTuple):
    """What the compiled update reads of one sparse layer."""

    kernel: object
    mask: object  # uint8
    explored: object  # uint8, the union of masks so far, packed
    gradient: object  # the dense gradient probe, or None if not needed
    slots: tuple  # the kernel's optimizer slots
    grown: object  # uint8, the entries the previous update grew, packed
    # like `explored`


class UpdateResult(NamedTuple):
    """What the compiled update returns."""

    layers: list  # per layer, its new `SparseState`
    # per layer, uint8 packed like `explored`: the entries grown now (none
    # if skipped)
    grown: list
    # int32 `[ok, (explored, survived) per layer]`: ok is 0 if the update
    # was skipped; survived counts the previous update's grown entries
    # that this update did not prune.
    report: object


def _all_finite(values, where):
    finite = ops.isfinite(values)
    return ops.all(ops.logical_or(finite, ops.logical_not(where)))


# A compile cache: one compiled function per pair of criteria and block
# shapes, shared by every updater (the backends keep one executable per
# input signature). Compiling per updater instead made TensorFlow's
# engine, summaries and GMP tests 1.8x slower (136 s against 74 s: each
# new callback traced and XLA-compiled its update again); a user sweeping
# runs of one model pays the same. Counts stay per updater (`traces`).
_SHARED = {}


class CompiledUpdate:
    """The update function for one updater, and its trace count.

    The compiled function is shared by every updater with the same
    criteria: a model with the same layer shapes, dtypes and optimizer
    slots as one seen before reuses its trace and compilation. `traces`
    counts the traces that this updater's own calls caused: 1 for a model
    structure first seen by this updater, 0 for one an earlier updater
    compiled (always 0 on PyTorch, where the update runs eagerly).

    Call with:
        layers: list of `LayerInputs`, one per sparse layer; `gradient`
            is None unless a criterion needs it.
        prune_counts, grow_counts: int32 tensors of shape (layers,), in
            blocks for layers with a block shape.
        step: int32 scalar; seed: uint32 scalar; scale: float32 scalar
            (the loss scale the gradients are divided by) or None.

    Returns:
        An `UpdateResult`. If the update was skipped (`ok` is 0), every
        output equals its input and nothing is grown.
    """

    def __init__(self, prune, growth, blocks=None):
        self.prune = prune
        self.growth = growth
        self.traces = 0
        blocks = None if blocks is None else tuple(blocks)
        if blocks is not None and all(b is None for b in blocks):
            blocks = None
        key = (prune, growth, blocks)
        if key not in _SHARED:
            _SHARED[key] = _SharedUpdate(prune, growth, blocks)
        self._shared = _SHARED[key]

    def __call__(self, *args):
        return self._shared.call(self, *args)

    def cost(self, *args):
        """The compiled function's collectives and memory for `args`
        (`keras_dst.backend.compiled_cost`; JAX only)."""
        return compiled_cost(self._shared._function, args)


class _SharedUpdate:
    """One compiled update function per pair of criteria."""

    def __init__(self, prune, growth, blocks):
        self.prune = prune
        self.growth = growth
        self.blocks = blocks  # per layer: a block shape or None
        self._caller = None
        self._function = compile_function(self._update)
        self._traced = traces_functions()  # False: eager, nothing traced

    def call(self, caller, *args):
        self._caller = caller
        try:
            return self._function(*args)
        finally:
            self._caller = None

    def _update(self, layers, prune_counts, grow_counts, step, seed, scale):
        if self._caller is not None and self._traced:
            self._caller.traces += 1  # Python: runs only while tracing
        prune, growth = self.prune, self.growth
        kernels = [layer.kernel for layer in layers]
        masks = [ops.cast(layer.mask, "bool") for layer in layers]
        gradients = [
            layer.gradient
            if layer.gradient is None or scale is None
            # Keras leaves overwrite_with_gradient variables loss-scaled.
            else ops.divide(layer.gradient, scale)
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
        growth_scores = [
            growth.score(inputs(i, mask, growth, keys[i]))
            for i, mask in enumerate(masks)
        ]
        # A non-finite score skips the update: nothing is selected and
        # every value is kept (no extra pass over the outputs).
        ok = ops.convert_to_tensor(True)
        for i, mask in enumerate(masks):
            ok = ops.logical_and(ok, _all_finite(prune_scores[i], mask))
            ok = ops.logical_and(ok, ops.all(ops.isfinite(growth_scores[i])))
        gate = ops.cast(ok, "int32")

        blocks = self.blocks or [None] * len(layers)
        if self.blocks is not None:  # rank and select whole blocks
            prune_scores = [
                block_totals(x, b)
                for x, b in zip(prune_scores, blocks, strict=True)
            ]
            growth_scores = [
                block_totals(x, b)
                for x, b in zip(growth_scores, blocks, strict=True)
            ]
            grid_masks = [
                ops.greater(block_totals(ops.cast(m, "int32"), b), 0)
                for m, b in zip(masks, blocks, strict=True)
            ]
        else:
            grid_masks = masks
        pruned = select_smallest(prune_scores, grid_masks, prune_counts * gate)
        survivors = [
            ops.logical_and(mask, ops.logical_not(p))
            for mask, p in zip(grid_masks, pruned, strict=True)
        ]
        vacant = [ops.logical_not(s) for s in survivors]
        grown = select_largest(growth_scores, vacant, grow_counts * gate)
        survivors = [
            repeat_blocks(x, b) for x, b in zip(survivors, blocks, strict=True)
        ]
        grown = [
            repeat_blocks(x, b) for x, b in zip(grown, blocks, strict=True)
        ]

        outputs, grown_out, report = [], [], [gate]
        for i, layer in enumerate(layers):
            new_mask = ops.logical_or(survivors[i], grown[i])
            keep = ops.logical_or(survivors[i], ops.logical_not(ok))
            values = masked_values(
                new_mask,
                keep,
                layer.kernel,
                list(layer.slots),
                layer.explored,
                explore=ops.logical_or(masks[i], new_mask),
            )
            explored = ops.where(ok, values.explored, layer.explored)
            outputs.append(values._replace(explored=explored))
            # None if skipped; packed like the union.
            grown_out.append(pack(grown[i], layer.explored.shape))
            shape = masks[i].shape
            previous = unpack(layer.grown, shape)
            report += [  # active and grown counts are known on the host
                count_true(unpack(explored, shape)),
                count_true(ops.logical_and(previous, survivors[i])),
            ]
        return UpdateResult(outputs, grown_out, ops.stack(report))
