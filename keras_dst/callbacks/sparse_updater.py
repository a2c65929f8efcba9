"""`SparseUpdater`: prune-and-regrow updates of a model's masks.

The engine behind every DST callback, usable on its own in a custom
training loop:

```python
updater = keras_dst.SparseUpdater(growth="random", seed=0)
updater.prepare(model)
for step, (x, y) in enumerate(data):
    train_step(x, y)
    if step and step % 100 == 0:
        updater.update(model, step, drop_fraction=0.3, optimizer=opt)
```

One update, per sparse layer with `n` active weights (Evci et al., 2020):

1. k = floor(drop_fraction * n).
2. Prune the k active weights of lowest prune score (|w|).
3. Grow k inactive positions (the just-pruned ones included) of highest
   growth score (random, |dense gradient|, |its momentum|, or any
   registered criterion), ranked over inactive positions only.
4. Pruned and grown weights are stored as exactly 0.0 and their optimizer
   slots (momentum, Adam m and v, ...) are reset to 0, so inactive weights
   stay exactly zero between updates with SGD(+momentum), Adam(W), RMSprop.

The whole update is one compiled function of the model's tensors
(`compiled_update.py`): values stay on the device, and only counts come
back, when they are read. Masks, the union behind R_s and the gradient
probes live only in the layers' variables: the updater holds no copy, so
a `set_mask` between updates is seen by the next one.

R_s, the in-time over-parameterization rate (Liu et al., 2021), is the
fraction of kernel entries that have ever been active: the union of all
masks so far over the total, per layer and in total. The union is kept in
each layer's `kernel_explored` variable (saved with the model).
"""

import math
import warnings
from typing import NamedTuple

import keras
import numpy as np

from keras_dst.backend import check_distribution
from keras_dst.backend import model_state
from keras_dst.backend import replica_sum
from keras_dst.backend import same_in_every_process
from keras_dst.backend import to_numpy
from keras_dst.callbacks.compiled_update import CompiledUpdate
from keras_dst.callbacks.compiled_update import LayerInputs
from keras_dst.callbacks.update_record import LayerOutcome
from keras_dst.callbacks.update_record import UpdateRecord
from keras_dst.callbacks.update_record import UpdateRequest
from keras_dst.criteria.registry import get_growth
from keras_dst.criteria.registry import get_prune
from keras_dst.layers.model_walk import layer_path
from keras_dst.layers.model_walk import require_sparse_layers
from keras_dst.layers.sparse_state import read_counts
from keras_dst.layers.sparse_state import write_sparse_state
from keras_dst.masks.blocks import block_size
from keras_dst.optimizers.slots import base_optimizer
from keras_dst.optimizers.slots import check_optimizer
from keras_dst.optimizers.slots import slot_variables
from keras_dst.utils.checks import check_seed
from keras_dst.utils.checks import check_unit_interval


class LayerCounts(NamedTuple):
    """Counts per sparse layer, read once (`SparseUpdater.layer_counts`)."""

    active: list  # active entries
    explored: list  # entries active at least once (the union's size)
    sizes: list  # kernel sizes
    paths: list  # the layers' paths

    @property
    def itop_rate(self):
        """R_s over all sparse layers."""
        return sum(self.explored) / sum(self.sizes)

    @property
    def sparsity(self):
        """Global sparsity over the sparse layers."""
        return 1.0 - sum(self.active) / sum(self.sizes)

    @property
    def itop_rate_per_layer(self):
        """Layer path -> R_s."""
        return {
            path: e / n
            for path, e, n in zip(
                self.paths, self.explored, self.sizes, strict=True
            )
        }


class SparseUpdater:
    """Prune-and-regrow updates and R_s bookkeeping for one model.

    Args:
        prune: a registered prune criterion (`"magnitude"`: remove the
            smallest |w|; see `keras_dst.criteria.register_prune`).
        growth: a registered growth criterion: `"random"` (SET),
            `"gradient"` (RigL), `"momentum"` (SNFS) or your own
            (`keras_dst.criteria.register_growth`). Gradient-based growth
            reads each layer's `kernel_gradient` probe, which `model.fit`
            fills with the dense gradient of the last step (needs
            `dense_gradient=True` layers).
        momentum: EMA factor of the gradient probe for criteria registered
            with `gradient_momentum=True` (`"momentum"`).
        seed: `None` or an int. Random scores at step `t` for layer `i` are
            a hash of `(seed, t, i)`: identical on every replica, on every
            backend and after a resume. A seed drawn for `None` is made
            the same in every process at `prepare` (JAX multi-process:
            process 0's).

    Attributes:
        layers: the sparse layers (`None` until `prepare`).
        paths: their paths, the per-layer keys of everything the updater
            reports (`k`, `layers`, `itop_rate_per_layer`), fixed by
            `prepare`.
        itop_rate: R_s over all sparse layers.
        itop_rate_per_layer: dict layer path -> R_s.
        sparsity: current global sparsity over the sparse layers.
        active_counts: list of active counts, one per sparse layer.
        records: one `keras_dst.UpdateRecord` per applied update (typed,
            documented field by field).
        history: the same records as plain dicts (`UpdateRecord.as_dict`).
        traces: how many times this updater's calls traced the compiled
            update: 1 per model structure it is the first to update (a
            later updater of the same structure reuses that compilation
            and counts 0); 0 on PyTorch, where the update runs eagerly.
    """

    def __init__(
        self, prune="magnitude", growth="random", momentum=0.9, seed=None
    ):
        self._prune = get_prune(prune)
        self._growth = get_growth(growth)
        self.prune = prune
        self.growth = growth
        self.momentum = check_unit_interval(momentum, "momentum")
        self.seed = check_seed(seed)
        self._seed_agreed = seed is not None  # a drawn seed may differ
        self.layers = None
        self.paths = None
        self._model = None
        self._counts = None
        self._history = []
        self._records = []
        self._pending = []
        self._update_functions = {}  # growth criterion -> CompiledUpdate
        self._retired_traces = 0  # traces of functions of earlier models
        self._plan_key = None
        # device: entries the last update grew, packed like the unions
        self._grown = None
        self._last_grown = None  # host: their counts, as updates collect

    def agreed_seed(self):
        """The seed, the same in every process.

        A seed drawn for `seed=None` differs between processes; the first
        call replaces it by process 0's (one broadcast under JAX
        multi-process training, nothing elsewhere). Called by `prepare`.
        """
        if not self._seed_agreed:
            self.seed = same_in_every_process(self.seed)
            self._seed_agreed = True
        return self.seed

    @property
    def needs_gradient(self):
        """Whether the criteria read the dense gradient probes."""
        return self._prune.needs_gradient or self._growth.needs_gradient

    # -- set-up -------------------------------------------------------------

    def check(self, model):
        """Raises if `prepare(model)` would; changes nothing.

        Checks that the model has built sparse layers and, for criteria
        that read the gradient, that every layer has its probe and that a
        moving average of it is not asked for under loss scaling, and
        that the active distribution is supported (not TensorFlow
        multi-worker).
        """
        check_distribution()
        layers = require_sparse_layers(model)
        optimizer = getattr(model, "optimizer", None)
        if self.needs_gradient:
            self._require_probes(self.growth, layers)
            if self._uses_momentum and isinstance(
                optimizer, keras.optimizers.LossScaleOptimizer
            ):
                raise ValueError(
                    f"`growth={self.growth!r}` (a moving average of the "
                    "gradient) cannot be used with a LossScaleOptimizer "
                    "(mixed_float16): the gradient probe's moving average "
                    "is computed on the scaled gradient and unscaled with "
                    "it, which would shrink the average by the loss scale "
                    "at every step. Use `growth='gradient'` (unaffected by "
                    "loss scaling), or 'mixed_bfloat16', which needs no "
                    "loss scaling."
                )
        return layers

    def _require_probes(self, growth, layers=None):
        layers = self.layers if layers is None else layers
        missing = [x.name for x in layers if x.kernel_gradient is None]
        if missing:
            raise ValueError(
                f"`growth={growth!r}` needs the dense gradient, but "
                f"sparse layers {missing} were built with "
                "`dense_gradient=False`. Rebuild them with "
                "`dense_gradient=True` (the default) or use "
                "`growth='random'`."
            )

    @property
    def _uses_momentum(self):
        return self._prune.gradient_momentum or self._growth.gradient_momentum

    def prepare(self, model):
        """Reads the model's layers and counts; call before the first update.

        Also sets the gradient probes' momentum (the updater's `momentum`
        for criteria that ask for it, else 0) and checks the probes exist
        (see `check`). Call again after changing the model's sparse layers
        or their per-layer counts by other means than this updater.
        """
        layers = self.check(model)
        self.agreed_seed()
        uses_momentum = self._uses_momentum
        optimizer = getattr(model, "optimizer", None)
        if self.needs_gradient:
            inner = getattr(optimizer, "inner_optimizer", optimizer)
            if getattr(inner, "gradient_accumulation_steps", None):
                warnings.warn(
                    f"keras_dst: `growth={self.growth!r}` with "
                    "`gradient_accumulation_steps`: Keras accumulates the "
                    "gradient probes with an elementwise maximum (its rule "
                    "for `overwrite_with_gradient` variables), not a mean, "
                    "so growth ranks by that maximum over micro-batches.",
                    RuntimeWarning,
                    stacklevel=2,
                )
        # Warns for an optimizer not known to keep zeros; raises if the
        # slots of a kernel cannot be found (once the optimizer is built).
        check_optimizer(optimizer, [x.kernel_variable for x in layers])
        state = model_state(model)
        beta = self.momentum if uses_momentum else 0.0
        for layer in layers:
            if layer.kernel_gradient is not None:
                state.write(
                    layer.kernel_gradient_momentum,
                    keras.ops.convert_to_tensor(
                        beta, layer.kernel_gradient_momentum.dtype
                    ),
                )
        if self._model is not model or self.layers != layers:
            self._retired_traces = self.traces
            self._update_functions = {}
            self._plan_key = None
            self._collect()  # pending updates of the previous model first
            self._grown = None
            self._last_grown = None
        self._model = model
        self.layers = layers
        # The per-layer keys of everything this updater reports, fixed now
        # (the walk in `check` just recorded them): no later walk of a
        # sub-model changes them.
        self.paths = [layer_path(layer) for layer in layers]
        self._counts = list(self._read_stats(model)[0])
        return self

    def _block_sizes(self):
        return [block_size(x.block_shape) for x in self.layers]

    def _check_prepared(self):
        if self.layers is None:
            raise RuntimeError(
                "Call `updater.prepare(model)` before `updater.update(...)`."
            )

    # -- the update ---------------------------------------------------------

    def dense_gradient(self, layer, optimizer=None):
        """The dense gradient dL/d(kernel * mask) of `layer`'s last step.

        A host copy of the layer's gradient probe: summed over replicas
        under `tf.distribute`, divided by the loss scale under a
        `LossScaleOptimizer` (Keras leaves `overwrite_with_gradient`
        variables scaled). For `"momentum"` growth, its moving average.
        """
        if layer.kernel_gradient is None:
            raise ValueError(
                f"Layer '{layer.name}' has no gradient probe "
                "(built with `dense_gradient=False`)."
            )
        state = model_state(self._model)
        gradient = replica_sum(state, layer.kernel_gradient)
        scale = self._loss_scale(state, optimizer)
        if scale is not None:
            gradient = gradient / scale
        return np.asarray(to_numpy(gradient))

    @staticmethod
    def _loss_scale(state, optimizer):
        """The loss scale of a `LossScaleOptimizer` (else None), on device.

        Dividing by the current scale is exact unless the scale changed at
        the last step (doubled every `dynamic_growth_steps`, halved on
        overflow); even then all layers are off by the same factor of 2,
        which leaves each layer's ranking, and so growth, unchanged.
        """
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            scale = state.read(optimizer.dynamic_scale)
            return keras.ops.cast(scale, "float32")
        return None

    def _plan(self, optimizer, growth):
        """The compiled update for `growth` and each layer's slot variables.

        The slots are looked up again only when the optimizer changes (a
        new one, or built since: its variable count changes).
        """
        inner = base_optimizer(optimizer) if optimizer is not None else None
        key = (
            id(optimizer),
            getattr(inner, "built", False),
            len(inner.variables) if inner is not None else 0,
        )
        if growth.name not in self._update_functions:
            self._update_functions[growth.name] = CompiledUpdate(
                self._prune, growth, [x.block_shape for x in self.layers]
            )
        if key != self._plan_key:
            self._slots = [
                tuple(slot_variables(optimizer, layer.kernel_variable))
                for layer in self.layers
            ]
            self._plan_key = key
        return self._update_functions[growth.name], self._slots

    def update(
        self,
        model,
        step,
        drop_fraction,
        optimizer=None,
        wait=True,
        growth=None,
    ):
        """Runs one prune-and-regrow update on every sparse layer.

        Args:
            model: the model passed to `prepare`.
            step: the optimizer step (int); keys the random scores.
            drop_fraction: fraction of each layer's active weights replaced,
                in [0, 1].
            optimizer: the model's optimizer, whose slots of pruned and
                grown weights are reset; defaults to `model.optimizer`.
            wait: True (default) waits for the device and returns whether
                the update was applied. False returns None at once; the
                outcome is collected the next time `history`, `itop_rate`,
                `sparsity` or `active_counts` are read (the DST callbacks do
                this at the end of each epoch), with the same warning if it
                was skipped.
            growth: None (this updater's growth criterion) or another
                registered one for this update only (Sup-tickets'
                re-exploration grows by `"gradient"` whatever the base).

        Returns:
            True if the update was applied, False if it was skipped because
            of non-finite weights or gradients (a warning says which step;
            the model is left exactly as it was); None if `wait=False`.
        """
        request, criterion = self._update_request(step, drop_fraction, growth)
        return self._run(model, optimizer, request, wait, criterion)

    def _update_request(self, step, drop_fraction, growth):
        self._check_prepared()
        if isinstance(drop_fraction, bool) or not 0.0 <= drop_fraction <= 1.0:
            raise ValueError(
                "`drop_fraction` must be in [0, 1]. "
                f"Received: drop_fraction={drop_fraction}."
            )
        criterion = self._growth
        if growth is not None and growth != self.growth:
            criterion = get_growth(growth)
            if criterion.needs_gradient:
                self._require_probes(growth)
        # k = floor(drop_fraction * n), in whole blocks for block layers.
        counts = [
            int(math.floor(drop_fraction * (n // b))) * b
            for n, b in zip(self._counts, self._block_sizes(), strict=True)
        ]
        request = UpdateRequest(
            step=int(step),
            drop_fraction=float(drop_fraction),
            growth=criterion.name,
            k=dict(zip(self.paths, counts, strict=True)),
            pruned=counts,
            grown=counts,
        )
        return request, criterion

    def update_cost(self, drop_fraction=0.3, optimizer=None, growth=None):
        """What the compiled update costs the device, without running it.

        Reads XLA's compiled update for the current model and layout (the
        one `update` runs; compiled now if no update ran yet): how many
        collectives it holds and how much memory it needs per device. For
        checking an update under `keras.distribution` (e.g. that a
        ModelParallel layer is never gathered whole) and for benchmarks.

        Args:
            drop_fraction: the drop fraction of the update to cost.
            optimizer: see `update`.
            growth: see `update`.

        Returns:
            dict: `all_gathers` (count), `gathered_bytes` (the bytes
            all-gathers produce, summed), `largest_gather_bytes`,
            `all_reduces` (count), and per device `temp_bytes`,
            `argument_bytes`, `output_bytes`.

        Raises:
            NotImplementedError: on TensorFlow and PyTorch (JAX only: the
                costs are read from the compiled XLA module `jax.jit`
                gives).
        """
        request, criterion = self._update_request(0, drop_fraction, growth)
        if optimizer is None:
            optimizer = getattr(self._model, "optimizer", None)
        function, _, _, arguments = self._arguments(
            optimizer, request, criterion
        )
        return function.cost(*arguments)

    def prune_to(self, model, targets, step=0, optimizer=None, wait=True):
        """Prunes each layer by the prune criterion down to a count.

        Args:
            model: the model passed to `prepare`.
            targets: dict layer path -> active count to keep (layers not
                listed, or already at or below their target, are left
                alone). Nothing is regrown.
            step: the optimizer step (for the history and random scores).
            optimizer: whose slots of pruned weights are reset; defaults to
                `model.optimizer`.
            wait: see `update`.

        Returns:
            See `update`.
        """
        self._check_prepared()
        paths = set(self.paths)
        unknown = sorted(set(targets) - paths)
        if unknown:
            raise ValueError(
                f"`targets` names {unknown}, which are not sparse layers of "
                f"the model. Sparse layers: {sorted(paths)}."
            )
        counts = [
            max(0, n - int(targets.get(path, n)))
            for path, n in zip(self.paths, self._counts, strict=True)
        ]
        for layer, path, k, b in zip(
            self.layers, self.paths, counts, self._block_sizes(), strict=True
        ):
            if k % b:
                raise ValueError(
                    f"`targets` for layer '{path}' must keep "
                    f"whole {layer.block_shape} blocks: a multiple of {b} "
                    "active entries (see `keras_dst.masks.target_count`)."
                )
        request = UpdateRequest(
            step=int(step),
            drop_fraction=None,
            growth=None,
            k=dict(zip(self.paths, counts, strict=True)),
            pruned=counts,
            grown=[0] * len(counts),
        )
        return self._run(model, optimizer, request, wait, self._growth)

    def _run(self, model, optimizer, request, wait, growth):
        prune, grow = request.pruned, request.grown
        if model is not self._model:
            raise ValueError(
                "`model` is not the model this updater was prepared with: "
                "call `updater.prepare(model)` first."
            )
        if optimizer is None:
            optimizer = getattr(model, "optimizer", None)
        new_counts = [
            n - p + g for n, p, g in zip(self._counts, prune, grow, strict=True)
        ]
        if not any(prune) and not any(grow):  # nothing to move
            self._grown = None  # this update grew nothing
            self._pending.append((request, None))
            return self._collect()[-1] if wait else None
        function, slots, state, arguments = self._arguments(
            optimizer, request, growth
        )
        result = function(*arguments)
        self._grown, report = result.grown, result.report
        # Everything computed: now write (a skipped update writes back the
        # values it was given).
        for layer, layer_slots, values in zip(
            self.layers, slots, result.layers, strict=True
        ):
            write_sparse_state(state, layer, layer_slots, values)
        # The counts the next update starts from; re-read from the masks
        # if this update turns out to have been skipped.
        self._counts = new_counts
        self._pending.append((request, (new_counts, report)))
        if wait:
            return self._collect()[-1]
        return None

    def _arguments(self, optimizer, request, growth):
        """The compiled update for `growth`, the slot variables, the state
        accessor and the update's arguments for `request`."""
        function, slots = self._plan(optimizer, growth)
        needs_gradient = self._prune.needs_gradient or growth.needs_gradient
        state = model_state(self._model)
        ops = keras.ops
        if self._grown is None:
            # Packed, shaped and laid out like the unions (`zeros_like`
            # keeps a sharded union's layout): the next update's `grown`,
            # which the function returns, comes back with that layout, so
            # the second update does not trace the function again.
            self._grown = [
                ops.zeros_like(state.read(layer.kernel_explored))
                for layer in self.layers
            ]
        layers = [
            LayerInputs(
                kernel=state.read(layer.kernel_variable),
                mask=state.read(layer.kernel_mask),
                explored=state.read(layer.kernel_explored),
                gradient=replica_sum(state, layer.kernel_gradient)
                if needs_gradient
                else None,
                slots=tuple(state.read(s) for s in layer_slots),
                grown=grown,
            )
            for layer, layer_slots, grown in zip(
                self.layers, slots, self._grown, strict=True
            )
        ]
        sizes = self._block_sizes()  # the function counts in blocks

        def in_blocks(counts):
            return ops.convert_to_tensor(
                np.asarray(
                    [k // b for k, b in zip(counts, sizes, strict=True)],
                    np.int32,
                )
            )

        arguments = (
            layers,
            in_blocks(request.pruned),
            in_blocks(request.grown),
            ops.convert_to_tensor(np.int32(request.step)),
            ops.convert_to_tensor(np.uint32(self.seed)),
            self._loss_scale(state, optimizer),
        )
        return function, slots, state, arguments

    def _collect(self):
        """Reads the outcome of pending updates; warns for skipped ones.

        One device read per update (its report vector), made when the
        history or a rate is asked for, not when the update runs. The
        previous update's grown counts are tracked here, in update order,
        as the device tracks the grown entries (`self._grown`).
        """
        outcomes = []
        pending, self._pending = self._pending, []
        stats = None
        for request, outcome in pending:
            grown = list(request.grown)
            previous = self._last_grown or [0] * len(grown)
            if outcome is None:  # nothing moved: the state is as it was
                if stats is None:
                    stats = self._read_stats(self._model)
                # Nothing pruned: every previously grown entry survived.
                counts = [
                    (a, e, p, p)
                    for a, e, p in zip(*stats, previous, strict=True)
                ]
                self._last_grown = None
            else:
                active, report = outcome
                report = to_numpy(report)
                if not report[0]:
                    outcomes.append(False)
                    self._last_grown = None  # a skipped update grows none
                    warnings.warn(
                        f"keras_dst: update at step {request.step} "
                        "skipped: non-finite weights or gradients in the "
                        "scores. Weights and masks are unchanged.",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                    continue
                explored, survived = np.reshape(report[1:], (-1, 2)).T
                counts = list(
                    zip(active, explored, previous, survived, strict=True)
                )
                self._last_grown = grown
            outcomes.append(True)
            record = self._complete(request, counts)
            self._records.append(record)
            self._history.append(record.as_dict())
        if not all(outcomes):
            self._counts = self._read_stats(self._model)[0]
        return outcomes

    def _complete(self, request, counts):
        """The `UpdateRecord` of an applied update (the one place records
        are built), from its request and the counts read after it."""
        sizes = self._sizes()
        layers = {}
        for path, size, p, g, (active, explored, before, survived) in zip(
            self.paths,
            sizes,
            request.pruned,
            request.grown,
            counts,
            strict=True,
        ):
            layers[path] = LayerOutcome(
                pruned=int(p),
                grown=int(g),
                active=int(active),
                sparsity=1.0 - active / size,
                itop_rate=explored / size,
                previous_grown=int(before),
                survived=int(survived),
                survival=survived / before if before else None,
            )
        total = sum(sizes)
        return UpdateRecord(
            step=request.step,
            drop_fraction=request.drop_fraction,
            growth=request.growth,
            k=dict(request.k),
            itop_rate=sum(c[1] for c in counts) / total,
            sparsity=1.0 - sum(c[0] for c in counts) / total,
            layers=layers,
        )

    def _sizes(self):
        return [int(np.prod(x.kernel_variable.shape)) for x in self.layers]

    # -- reporting ----------------------------------------------------------

    def _read_stats(self, model):
        return read_counts(self.layers, model_state(model))

    @property
    def records(self):
        """One `UpdateRecord` per applied update (see its fields).

        Reading it collects pending updates (one small device read each).
        """
        self._collect()
        return self._records

    @property
    def history(self):
        """`records` as plain dicts (`UpdateRecord.as_dict`): keys `step`,
        `drop_fraction`, `growth`, `k`, `itop_rate`, `sparsity` and
        `layers` (per layer path, the fields of `LayerOutcome`).

        Reading it collects pending updates (one small device read each).
        """
        self._collect()
        return self._history

    def layer_counts(self):
        """The one explicit read of the counts: a `LayerCounts` (active,
        explored, sizes: one int per sparse layer, read from the masks
        and unions in one device pass; collects pending updates first).
        Read it once and take `itop_rate`, `sparsity`, ... from it; each
        property below is one such read."""
        self._check_prepared()
        self._collect()
        active, explored = self._read_stats(self._model)
        self._counts = list(active)
        return LayerCounts(active, explored, self._sizes(), self.paths)

    @property
    def active_counts(self):
        """Active entries per sparse layer (one `layer_counts` read)."""
        return self.layer_counts().active

    @property
    def itop_rate_per_layer(self):
        """R_s per layer path (one `layer_counts` read)."""
        return self.layer_counts().itop_rate_per_layer

    @property
    def itop_rate(self):
        """R_s over all sparse layers (one `layer_counts` read)."""
        return self.layer_counts().itop_rate

    @property
    def sparsity(self):
        """Global sparsity over the sparse layers (one `layer_counts`
        read)."""
        return self.layer_counts().sparsity

    @property
    def device_state_bytes(self):
        """Bytes of device memory this updater holds between updates (the
        entries the last update grew, for the next update's survival
        counts); 0 before the first update. Model and optimizer variables
        are not counted."""
        if self._grown is None:
            return 0
        return sum(
            math.prod(x.shape)
            * np.dtype(keras.backend.standardize_dtype(x.dtype)).itemsize
            for x in self._grown
        )

    @property
    def traces(self):
        """Traces this updater's updates caused so far (not of the train
        step): 1 per model structure and criteria it was first to use."""
        functions = self._update_functions.values()
        return self._retired_traces + sum(f.traces for f in functions)
