"""`DeviceTicketAverager`: Sup-tickets' superposition on the device.

The same averaging and global re-prune as `TicketAverager` (the host
reference, kept for studies on saved snapshots), but the running
average lives in device tensors and every step is `keras.ops` in a
function compiled once per model structure
(`keras_dst.backend.compile_function`): averaging a ticket in, pruning
the average to the budget, and writing the superposed network. A
training run copies no weight or mask to the host; only the union size
and the budget come back, once, when the network is superposed. Host
copies of the average are made only for the backups (`host_average`).

The re-prune ranks like `global_magnitude_masks`, exactly:

* no block layer: by |w|; entries at exactly 0 come last, those of the
  current masks (`prefer`) first among them; ties by layer order, then
  flat index. As int32 keys: `order_keys(|w|) + 1` for non-zeros, 1 for
  preferred zeros, 0 for the other zeros, selected with
  `criteria.selection.select_global`.
* with block layers: each layer's units (whole blocks, or entries of
  layers without blocks) by mean |w| per unit, preferred units first at
  equal scores, taken greedily while their size fits the budget.
"""

from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from keras_dst.backend import compile_function
from keras_dst.backend import model_state
from keras_dst.criteria.selection import count_true
from keras_dst.criteria.selection import order_keys
from keras_dst.criteria.selection import select_global
from keras_dst.layers.sparse_state import masked_values
from keras_dst.layers.sparse_state import write_sparse_state
from keras_dst.masks.blocks import block_size
from keras_dst.masks.blocks import block_totals
from keras_dst.masks.blocks import repeat_blocks
from keras_dst.optimizers.slots import slot_variables
from keras_dst.superposition.averaging import AVERAGES
from keras_dst.superposition.tickets import REPRUNES
from keras_dst.utils.checks import check_choice


def _coefficients(superposition, k):
    """`averaging.py`'s CAA or CIMA written as `a * c1 + t / c2`.

    `c1` is computed in Python floats and rounded once to the weights'
    float type, as numpy rounds a Python float against a float32 array.
    Run eagerly (PyTorch) a float32 average then matches
    `TicketAverager`'s bit for bit. Under XLA (JAX, TensorFlow) a CAA
    average can differ in the last bit: XLA fuses `a * c1 + q` into one
    multiply-add and divides by a scalar through its reciprocal, and
    `keras.ops` cannot ask it not to. CIMA's scalings are exact, so it
    matches everywhere.
    """
    if superposition == "caa":
        return 1.0 - 1.0 / (k + 1), float(k + 1)
    return 0.5, 2.0  # 0.5 * t == t / 2 exactly


def _dtype(x):
    return keras.backend.standardize_dtype(x.dtype)


def _average_dtype(variable):
    """The average of a float weight keeps its dtype; other weights (int
    or bool state of non-sparse layers) are averaged in float32 and cast
    back when written, as `TicketAverager`'s `astype` does."""
    dtype = _dtype(variable)
    return dtype if keras.backend.is_float_dtype(dtype) else "float32"


def global_magnitude_keep(kernels, budget, prefer=None, block_shapes=None):
    """`global_magnitude_masks` on the device (see the module docstring).

    Args:
        kernels: list of float tensors.
        budget: int32 scalar tensor, the total active count to keep.
        prefer: None or a list of bool tensors of the kernels' shapes.
        block_shapes: None or a list, per kernel, of a block shape or None.

    Returns:
        list of bool tensors of the kernels' shapes.
    """
    blocks = list(block_shapes or [None] * len(kernels))
    if all(b is None for b in blocks):
        keys = []
        for i, kernel in enumerate(kernels):
            zero = (
                ops.zeros(ops.shape(kernel), "int32")
                if prefer is None
                else ops.cast(prefer[i], "int32")
            )
            keys.append(
                ops.where(
                    ops.not_equal(kernel, 0),
                    order_keys(ops.abs(kernel)) + 1,
                    zero,
                )
            )
        return select_global(keys, budget)
    keys, grid_prefer = [], []
    for i, (kernel, block) in enumerate(zip(kernels, blocks, strict=True)):
        score = ops.abs(kernel)
        if block is not None:  # per weight, to compare with single entries
            score = ops.divide(block_totals(score, block), block_size(block))
        keys.append(order_keys(score))
        if prefer is not None:
            grid_prefer.append(
                ops.greater(
                    block_totals(ops.cast(prefer[i], "int32"), block), 0
                )
            )
    chosen = select_global(
        keys,
        budget,
        costs=[block_size(b) for b in blocks],
        prefer=grid_prefer if prefer is not None else None,
    )
    return [repeat_blocks(c, b) for c, b in zip(chosen, blocks, strict=True)]


def _reprune(kernels, masks, budget, blocks):
    """`(keep, union, budget)`: the kernels' masks at the budget (by
    default the current masks' total, so that ties at zero go to them and
    R_s never grows), and the non-zero count before the prune."""
    prefer = None if masks is None else [ops.cast(m, "bool") for m in masks]
    if budget is None:
        budget = sum(count_true(p) for p in prefer)
    union = sum(count_true(ops.not_equal(k, 0)) for k in kernels)
    keep = global_magnitude_keep(kernels, budget, prefer, blocks)
    return keep, ops.cast(union, "int32"), ops.cast(budget, "int32")


# A compile cache shared by every averager of the same structure (as the
# DST update's, `keras_dst.callbacks.compiled_update`: compiling per
# object makes each new callback trace and compile again).
_COMPILED = {}


def _compiled(key, build):
    """The compiled function for `key` (the backends keep one executable
    per input signature of each)."""
    if key not in _COMPILED:
        _COMPILED[key] = compile_function(build())
    return _COMPILED[key]


def _start(values):
    # New buffers, never the variables' own: JAX donates those to the
    # next train step, PyTorch's optimizer updates them in place.
    return [
        ops.copy(v)
        if keras.backend.is_float_dtype(_dtype(v))
        else ops.cast(v, "float32")
        for v in values
    ]


def _add_function(kernels, blocks, prune):
    def add(average, values, c1, c2, masks):
        new = []
        for a, v in zip(average, values, strict=True):
            dtype = _dtype(a)
            v = ops.cast(v, dtype)
            new.append(
                ops.add(
                    ops.multiply(a, ops.cast(c1, dtype)),
                    ops.divide(v, ops.cast(c2, dtype)),
                )
            )
        if not prune:
            return new, None
        keep, union, budget = _reprune(
            [new[i] for i in kernels], masks, None, blocks
        )
        for i, k in zip(kernels, keep, strict=True):
            new[i] = ops.where(k, new[i], ops.zeros((), new[i].dtype))
        return new, (keep, union, budget)

    return _compiled(("add", kernels, blocks, prune), lambda: add)


def _select_function(blocks):
    def select(kernels, masks, budget):
        return _reprune(kernels, masks, budget, blocks)

    return _compiled(("select", blocks), lambda: select)


def _write_function(kernels, dtypes):
    def write(average, keep, slots, explored):
        values = [
            ops.copy(a) if _dtype(a) == d else ops.cast(a, d)
            for a, d in zip(average, dtypes, strict=True)
        ]
        states = [
            masked_values(k, k, values[i], list(s), e)
            for i, k, s, e in zip(kernels, keep, slots, explored, strict=True)
        ]
        others = [v for i, v in enumerate(values) if i not in kernels]
        return others, states

    return _compiled(("write", kernels, dtypes), lambda: write)


class _Plan(NamedTuple):
    """Which of a model's weights are averaged, and where the kernels are."""

    variables: list  # model.weights but the sparse layers' own state
    indices: tuple  # their positions in model.weights
    kernels: tuple  # positions of the sparse kernels in `variables`
    blocks: tuple  # per sparse layer: a block shape or None


def _plan(model, layers):
    # Masks, unions and probes are no weights of the network: the
    # superposed masks come from the re-prune. (`TicketAverager` averages
    # them too, and never writes them.)
    skip = {id(v) for layer in layers for v in layer.sparse_state_variables}
    indices = tuple(i for i, v in enumerate(model.weights) if id(v) not in skip)
    variables = [model.weights[i] for i in indices]
    position = {id(v): j for j, v in enumerate(variables)}
    return _Plan(
        variables,
        indices,
        tuple(position[id(layer.kernel_variable)] for layer in layers),
        tuple(layer.block_shape for layer in layers),
    )


class DeviceTicketAverager:
    """`TicketAverager` on the device: what `SupTickets` runs.

    Reads the model through `keras_dst.backend.model_state` (valid
    mid-`fit` on JAX too) and writes it through the one writer of sparse
    state (`masked_values` + `write_sparse_state`).

    Args:
        superposition: `"caa"` (cumulative) or `"cima"` (EMA 0.5).
        reprune: `"every_cycle"` or `"end"`.

    Attributes:
        average: the running average of the model's weights (device
            tensors, one per weight but the sparse layers' masks, unions
            and probes) or None.
        count: tickets averaged in so far (the start is not a ticket).
    """

    def __init__(self, superposition="caa", reprune="every_cycle"):
        check_choice(superposition, AVERAGES, "superposition")
        check_choice(reprune, REPRUNES, "reprune")
        self.superposition = superposition
        self.reprune = reprune
        self.reset()

    def reset(self, average=None, count=0):
        """Starts again, or from a backup's `average`: host arrays, one
        per `model.weights` (None where not averaged), moved to the
        device at the next `add`."""
        self.average = None
        self.count = int(count)
        self._restored = None if average is None else list(average)
        self._pruned = None

    @property
    def started(self):
        """Whether the start (the DST phase's end) is averaged in."""
        return self.average is not None or self._restored is not None

    def add(self, model, layers):
        """Averages in the model as it is now (the start, then tickets).

        With `reprune="every_cycle"` the sparse kernels of the average
        are then pruned to the budget (the current masks' active count),
        as the reference does.

        Args:
            model: the model.
            layers: its sparse layers, in the updater's order (the tie
                order of the re-prune).
        """
        plan = _plan(model, layers)
        state = model_state(model)
        values = [state.read(v) for v in plan.variables]
        if self._restored is not None:
            self.average = [
                ops.convert_to_tensor(self._restored[i], _average_dtype(v))
                for i, v in zip(plan.indices, plan.variables, strict=True)
            ]
            self._restored = None
        if self.average is None:
            self.average = _compiled(("start",), lambda: _start)(values)
            return
        self.count += 1
        prune = self.reprune == "every_cycle"
        c1, c2 = _coefficients(self.superposition, self.count)
        masks = [state.read(x.kernel_mask) for x in layers] if prune else None
        function = _add_function(plan.kernels, plan.blocks, prune)
        self.average, self._pruned = function(
            self.average,
            values,
            ops.convert_to_tensor(np.float32(c1)),
            ops.convert_to_tensor(np.float32(c2)),
            masks,
        )

    def prune_masks(self, kernels, budget, prefer=None, block_shapes=None):
        """`global_magnitude_masks` on the device, for given kernels.

        Args:
            kernels: list of float tensors or arrays.
            budget: the total active count to keep (int).
            prefer: None or a list of bool masks: they win ties at 0
                (with blocks: ties at any score).
            block_shapes: None or a list of block shapes or None.

        Returns:
            `(masks, union)`: device bool tensors, and the kernels'
            non-zero count (an int32 scalar tensor).
        """
        blocks = tuple(block_shapes or [None] * len(kernels))
        keep, union, _ = _select_function(blocks)(
            [ops.convert_to_tensor(k) for k in kernels],
            None
            if prefer is None
            else [ops.convert_to_tensor(p) for p in prefer],
            ops.convert_to_tensor(np.int32(budget)),
        )
        return keep, union

    def superpose(self, model, layers, optimizer=None):
        """Writes the superposed network into `model`.

        Every averaged weight takes the average; each sparse layer's mask
        becomes the re-pruned mask, with kernel and optimizer slots 0
        outside it and the mask added to the layer's union (R_s).

        Returns:
            `(union, budget)`: the average's non-zero count before the
            re-prune and the active count kept (the one host read).
        """
        plan = _plan(model, layers)
        state = model_state(model)
        if self._pruned is None:  # "end", or nothing averaged since
            kernels = [self.average[i] for i in plan.kernels]
            masks = [state.read(x.kernel_mask) for x in layers]
            self._pruned = _select_function(plan.blocks)(kernels, masks, None)
        keep, union, budget = self._pruned
        slots = [
            tuple(slot_variables(optimizer, x.kernel_variable)) for x in layers
        ]
        dtypes = tuple(_dtype(v) for v in plan.variables)
        others, states = _write_function(plan.kernels, dtypes)(
            self.average,
            keep,
            [tuple(state.read(s) for s in layer) for layer in slots],
            [state.read(x.kernel_explored) for x in layers],
        )
        rest = [
            v for j, v in enumerate(plan.variables) if j not in plan.kernels
        ]
        for variable, value in zip(rest, others, strict=True):
            state.write(variable, value)
        for layer, layer_slots, values in zip(
            layers, slots, states, strict=True
        ):
            write_sparse_state(state, layer, layer_slots, values)
        counts = ops.convert_to_numpy(ops.stack([union, budget]))
        return int(counts[0]), int(counts[1])

    def host_average(self, model, layers):
        """The average as host arrays, one per `model.weights` (None
        where not averaged): for the backups only."""
        plan = _plan(model, layers)
        average = [None] * len(model.weights)
        for i, value in zip(plan.indices, self.average, strict=True):
            average[i] = np.asarray(ops.convert_to_numpy(value))
        return average
