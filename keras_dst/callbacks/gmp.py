"""`GMP`: dense-to-sparse gradual magnitude pruning (the baseline)."""

import keras

from keras_dst.backend import model_state
from keras_dst.callbacks.sparse_updater import SparseUpdater
from keras_dst.callbacks.step_schedule import StepScheduledCallback
from keras_dst.layers.model_walk import layer_path
from keras_dst.layers.model_walk import require_sparse_layers
from keras_dst.layers.model_walk import resolve_layer_map
from keras_dst.layers.sparse_state import masked_values
from keras_dst.layers.sparse_state import write_sparse_state
from keras_dst.masks.distributions import DISTRIBUTIONS
from keras_dst.masks.distributions import allocate
from keras_dst.masks.initial_masks import target_count
from keras_dst.schedules.gradual_sparsity import cubic_sparsity
from keras_dst.utils.checks import check_choice
from keras_dst.utils.checks import check_fraction
from keras_dst.utils.checks import check_target_sparsity


class GMP(StepScheduledCallback):
    """Gradual magnitude pruning (Zhu & Gupta, 2017), dense to sparse.

    The dense-to-sparse baseline of the DST papers. Masks start dense;
    every `update_interval` optimizer steps from `begin` to `end`
    (fractions of the `fit` call's steps) each sparse layer is pruned by
    magnitude to the cubic schedule

        s_t = s_f * (1 - (1 - (t - t0) / (n * ΔT)) ** 3),

    `t0 = begin * total`, `t0 + n * ΔT` the last pruning step before `end`,
    where every layer reaches exactly its final count `s_f` from the global
    `sparsity` and `distribution` (the same allocation as the DST
    callbacks). Pruned weights and their optimizer slots are set to exactly
    0, so they stay 0. Weights are never regrown: R_s is 1 (every weight
    was active at the start). Epoch logs gain `sparsity` and `itop_rate`.

    The schedule depends only on the optimizer step and pruning to a count
    is idempotent, so a resumed run (see `DynamicSparsityCallback`) prunes
    exactly as an uninterrupted one.

    Args:
        sparsity: final global sparsity in [0, 1).
        distribution: `"erk"` (default), `"er"`, `"uniform"` or a custom
            `{layer name: sparsity}` map.
        begin: start of pruning, a fraction of training, 0 <= begin <= end
            (default 0.1).
        end: end of pruning, a fraction of training, begin <= end <= 1
            (default 0.75).
        update_interval: optimizer steps between pruning steps (ΔT), > 0.
        per_layer_logs: also log `itop_rate/<layer>`, `sparsity/<layer>`,
            `pruned/<layer>`, `grown/<layer>` (0) and `survival/<layer>`
            (NaN: nothing is grown) per epoch, as `DynamicSparsityCallback`
            does.

    Attributes:
        history: one record per pruning step (`SparseUpdater.history`,
            the same records as the DST callbacks').
        updater, itop_rate, itop_rate_per_layer, sparsity: as on
            `DynamicSparsityCallback`.

    Example:

    ```python
    model.fit(x, y, epochs=10, callbacks=[keras_dst.GMP(0.9)])
    ```

    Reference:
        - [Zhu & Gupta, 2017](https://arxiv.org/abs/1710.01878)
    """

    def __init__(
        self,
        sparsity,
        distribution="erk",
        begin=0.1,
        end=0.75,
        update_interval=100,
        per_layer_logs=False,
    ):
        sparsity = check_target_sparsity(sparsity)
        begin = check_fraction(begin, "begin")
        end = check_fraction(end, "end")
        if begin > end:
            raise ValueError(
                "`begin` must be <= `end` (fractions of training). "
                f"Received: begin={begin}, end={end}."
            )
        if not isinstance(distribution, dict):
            check_choice(distribution, DISTRIBUTIONS, "distribution")
        # Pruning runs as the engine's compiled update with nothing grown.
        updater = SparseUpdater(prune="magnitude", seed=0)
        super().__init__(updater, update_interval, per_layer_logs)
        self.sparsity_target = sparsity
        self.distribution = distribution
        self.begin = begin
        self.end = end
        self.layers = []
        self.targets = None  # per layer path: final sparsity, when placed
        self._t0 = 0  # the first pruning step, counted from the origin
        self._n = 0  # the number of pruning steps

    def _ready(self):
        if self.updater.layers is None or self.updater.layers != self.layers:
            self.updater.prepare(self._target)
        return self.updater

    def sparsity_at(self, step):
        """Each layer's scheduled sparsity at optimizer `step` (a dict)."""
        t = step - self._origin
        if t < self._t0:
            fraction = 0.0
        elif self._n == 0:
            fraction = 1.0
        else:
            k = min((t - self._t0) // self.update_interval, self._n)
            fraction = k / self._n
        return {
            path: cubic_sparsity(fraction, final)
            for path, final in self.targets.items()
        }

    def _place(self, epoch):
        epochs, steps = self.fit_steps("GMP")
        self.layers = require_sparse_layers(self.model)
        # The keys of `targets`: the paths of this walk, which the updater
        # keeps when prepared below (see `layer_path`).
        paths = [layer_path(layer) for layer in self.layers]
        distribution = self.distribution
        if isinstance(distribution, dict):
            distribution = resolve_layer_map(
                self.layers, distribution, "distribution", paths
            )
        self.targets = allocate(
            {
                path: tuple(layer.kernel_variable.shape)
                for layer, path in zip(self.layers, paths, strict=True)
            },
            self.sparsity_target,
            distribution,
        )
        # R_s counts the (dense) start: the masks join the unions, on the
        # device, through the one writer of sparse state.
        state = model_state(self.model)
        for layer in self.layers:
            mask = keras.ops.cast(state.read(layer.kernel_mask), "bool")
            values = masked_values(
                mask,
                mask,
                state.read(layer.kernel_variable),
                [],
                state.read(layer.kernel_explored),
            )
            write_sparse_state(state, layer, [], values)
        self.updater.prepare(self.model)
        origin = max(0, self._epoch_step - epoch * steps)
        total = epochs * steps
        self._t0 = int(self.begin * total)
        self._n = (int(self.end * total) - self._t0) // self.update_interval
        first = origin + self._t0
        return origin, first, first + self._n * self.update_interval

    def _act(self, step):
        self.prune_to(self.sparsity_at(step), step)

    def prune_to(self, sparsities, step=None):
        """Prunes each layer (by magnitude) down to `sparsities[path]`."""
        updater = self._ready()
        # The updater's keys, fixed when it was prepared.
        path_of = dict(zip(map(id, updater.layers), updater.paths, strict=True))
        paths = [path_of[id(layer)] for layer in self.layers]
        targets = {  # whole blocks for layers with a block shape
            path: target_count(
                tuple(layer.kernel_variable.shape),
                sparsities[path],
                layer.block_shape,
            )
            for layer, path in zip(self.layers, paths, strict=True)
        }
        updater.prune_to(
            self._target,
            targets,
            step=0 if step is None else step,
            optimizer=self._target.optimizer,
            wait=False,
        )
        for layer, path in zip(self.layers, paths, strict=True):
            layer.sparsity = sparsities[path]
