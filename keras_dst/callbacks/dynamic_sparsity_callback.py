"""`DynamicSparsityCallback`: sparse-to-sparse training inside `model.fit`."""

import math
import numbers

from keras_dst.callbacks.sparse_updater import SparseUpdater
from keras_dst.callbacks.step_schedule import StepScheduledCallback
from keras_dst.convert.model_masks import initialize_masks
from keras_dst.layers.model_walk import require_sparse_layers
from keras_dst.layers.sparse_state import read_counts
from keras_dst.masks.distributions import DISTRIBUTIONS
from keras_dst.masks.initial_masks import WEIGHT_INITS
from keras_dst.report.summary import summary
from keras_dst.schedules.drop_fraction import DROP_SCHEDULES
from keras_dst.utils.checks import check_choice
from keras_dst.utils.checks import check_fraction
from keras_dst.utils.checks import check_target_sparsity


class DynamicSparsityCallback(StepScheduledCallback):
    """Dynamic sparse training (prune and regrow) during `model.fit`.

    Every `update_interval` optimizer steps until `update_end`, each sparse
    layer replaces a fraction of its active connections: the smallest
    magnitudes are pruned and as many inactive positions are grown (random,
    gradient or momentum). Active counts stay exactly constant and inactive
    weights are stored as exactly 0.0. See `SparseUpdater` for one update.

    If every sparse layer's mask is still dense at `on_train_begin`, the
    callback draws the initial masks from `sparsity` and `distribution`;
    masks that are already sparse are kept as they are.

    Each epoch's logs gain `itop_rate` (R_s, the in-time
    over-parameterization rate: the fraction of kernel entries ever active)
    and `sparsity`, so the progress bar, History, CSVLogger and TensorBoard
    show them; with `per_layer_logs=True` also, per sparse layer,
    `itop_rate/<layer>`, `sparsity/<layer>`, `pruned/<layer>`,
    `grown/<layer>` (summed over the epoch's updates) and
    `survival/<layer>` (the fraction of connections grown at an update
    that the next update did not prune, pooled over the epoch). Each
    update's metrics are in `updater.history`; `SparsitySummaries` writes
    them to TensorBoard.

    Cost: nothing runs on steps without an update (no device read, no JAX
    state sync); the optimizer step counter is read once per epoch. An
    update is one compiled function on the model's device (see
    `SparseUpdater`) whose outcome is read back at the end of the epoch,
    with the logs. Masks are variables, so changing them never retraces the
    train step.

    Args:
        sparsity: global target sparsity in [0, 1) over the sparse layers.
        distribution: `"erk"` (default), `"er"`, `"uniform"` or a custom
            `{layer name: sparsity}` map.
        prune: `"magnitude"`.
        growth: `"random"` (SET), `"gradient"` (RigL) or `"momentum"`
            (SNFS).
        drop_fraction: fraction of active weights replaced at the first
            update, in [0, 1].
        drop_schedule: `"cosine"` (decays to `drop_fraction_end` at
            `update_end`) or `"constant"`.
        drop_fraction_end: final fraction of the cosine schedule.
        update_interval: optimizer steps between updates (ΔT), int > 0.
        update_end: when updates stop: a float in [0, 1] is a fraction of
            the `fit` call's steps (epochs x steps per epoch, counted from
            its epoch 0, so `initial_epoch` resumes keep the schedule), an
            int an absolute optimizer step. `0` disables updates (static
            sparse training). Updates run at optimizer steps `origin + j *
            update_interval < end` (origin: the step of the `fit` call's
            epoch 0), before that step's gradient update.
        momentum: EMA factor for `"momentum"` growth.
        seed: `None` or an int (initial masks and random growth).
        power_scale: an allocation option, see
            `keras_dst.initialize_masks`.
        keep_first_dense: an allocation option, see
            `keras_dst.initialize_masks`.
        keep_last_dense: an allocation option, see
            `keras_dst.initialize_masks`.
        weight_init: when this callback draws the initial masks (the
            model's masks are all ones at `fit`'s start), how their active
            weights start: `"sparse_scaled"` (default; each kernel times
            `1 / sqrt(density)`, the variance of its active fan-in, so a
            deep sparse network trains) or `"unscaled"` (the dense
            initialization, as in the papers' code). Grown weights start
            at zero either way, as in SET and RigL.
        per_layer_logs: add the per-layer entries above to the epoch
            logs (off by default: a model with many sparse layers would
            crowd the progress bar).
        verbose: 1 prints a sparsity summary at the start and end.

    Attributes:
        updater: the `SparseUpdater` doing the work.
        history: one record per update (`SparseUpdater.history`).
        itop_rate, itop_rate_per_layer, sparsity: see `SparseUpdater`.

    Example:

    ```python
    model.fit(x, y, epochs=10,
              callbacks=[keras_dst.DynamicSparsityCallback(
                  0.9, growth="gradient", update_interval=100)])
    ```

    Reference:
        - [Mocanu et al., 2018](https://arxiv.org/abs/1707.04780) (SET)
        - [Evci et al., 2020](https://arxiv.org/abs/1911.11134) (RigL)
        - [Liu et al., 2021](https://arxiv.org/abs/2102.02887) (ITOP)
    """

    def __init__(
        self,
        sparsity,
        distribution="erk",
        prune="magnitude",
        growth="random",
        drop_fraction=0.3,
        drop_schedule="cosine",
        drop_fraction_end=0.0,
        update_interval=100,
        update_end=1.0,
        momentum=0.9,
        seed=None,
        power_scale=1.0,
        keep_first_dense=False,
        keep_last_dense=False,
        weight_init="sparse_scaled",
        per_layer_logs=False,
        verbose=0,
    ):
        sparsity = check_target_sparsity(sparsity)
        if not isinstance(distribution, dict):
            check_choice(distribution, DISTRIBUTIONS, "distribution")
        check_choice(drop_schedule, DROP_SCHEDULES, "drop_schedule")
        check_choice(weight_init, WEIGHT_INITS, "weight_init")
        drop_fraction = check_fraction(drop_fraction, "drop_fraction")
        drop_fraction_end = check_fraction(
            drop_fraction_end, "drop_fraction_end"
        )
        if isinstance(update_end, bool) or not isinstance(
            update_end, numbers.Real
        ):
            raise TypeError(
                "`update_end` must be a float in [0, 1] (fraction of "
                "training) or an int >= 0 (optimizer step). "
                f"Received: update_end={update_end!r}."
            )
        if isinstance(update_end, numbers.Integral):
            if update_end < 0:
                raise ValueError(
                    "`update_end` as an int step must be >= 0. "
                    f"Received: update_end={update_end}."
                )
        else:
            check_fraction(update_end, "update_end")
        updater = SparseUpdater(
            prune=prune, growth=growth, momentum=momentum, seed=seed
        )
        super().__init__(updater, update_interval, per_layer_logs)
        self.sparsity_target = sparsity
        self.distribution = distribution
        self.drop_fraction = drop_fraction
        self.drop_schedule = drop_schedule
        self.drop_fraction_end = drop_fraction_end
        self.update_end = update_end
        self.power_scale = power_scale
        self.keep_first_dense = keep_first_dense
        self.keep_last_dense = keep_last_dense
        self.weight_init = weight_init
        self.verbose = verbose
        self.seed = self.updater.seed
        self._end_step = None
        self._schedule_override = None

    def drop_fraction_at(self, step):
        """The drop fraction the schedule gives at optimizer `step`."""
        schedule = self._schedule_override or self.drop_schedule
        return DROP_SCHEDULES[schedule](
            step - self._origin,
            self.drop_fraction,
            self._end_step - self._origin,
            self.drop_fraction_end,
        )

    def override_schedule(self, end_step, drop_schedule=None):
        """Changes the running `fit`'s schedule (used by `SupTickets`).

        Call after training began (from another callback's
        `on_epoch_begin`); the next `fit` starts from the arguments again.

        Args:
            end_step: updates run before this absolute optimizer step
                (instead of `update_end`'s).
            drop_schedule: None (unchanged) or one of the drop schedules,
                e.g. `"constant"` to keep `drop_fraction` at every update.
        """
        if self._origin is None:
            raise RuntimeError(
                "`override_schedule` applies to a running `fit`: call it "
                "once training began (e.g. in `on_epoch_begin`)."
            )
        if drop_schedule is not None:
            check_choice(drop_schedule, DROP_SCHEDULES, "drop_schedule")
        self._end_step = int(end_step)
        self._schedule_override = drop_schedule
        self._reschedule(self._end_step - 1)

    @property
    def update_end_step(self):
        """The absolute optimizer step before which updates run (set when
        training begins; None before)."""
        return self._end_step

    # -- the schedule -------------------------------------------------------

    def _place(self, epoch):
        """Draws masks if needed and places the schedule; first epoch only.

        The schedule's origin is the optimizer step at which this `fit`'s
        epoch 0 began (`step - initial_epoch * steps`): a run resumed with
        `initial_epoch` keeps its schedule, and each new `fit` call with a
        fractional `update_end` gets a schedule of its own. An int
        `update_end` is an absolute optimizer step (origin 0). Updates run
        at `origin + j * update_interval < end`, j >= 1, before that
        step's gradient update (so a run resumed at an update step, as
        checkpoints are taken after a step, does it).
        """
        model = self.model
        layers = require_sparse_layers(model)
        # Everything that can fail is checked before the model is touched:
        # a failed `fit` leaves weights and masks as they were.
        step = self._epoch_step
        if isinstance(self.update_end, numbers.Integral):
            origin, end = 0, int(self.update_end)
        else:
            if not (self.params or {}).get("steps"):
                raise ValueError(
                    "`update_end` is a fraction of training, but `fit` does "
                    "not know its number of steps (e.g. a dataset of unknown "
                    "length). Pass `steps_per_epoch` to `fit` or give "
                    "`update_end` as an int optimizer step."
                )
            epochs, steps = self.fit_steps("`update_end`")
            origin = max(0, step - epoch * steps)
            end = origin + int(self.update_end * epochs * steps)
        self.updater.check(model)
        active, _ = read_counts(layers)  # counts only: masks may be sharded
        sizes = [math.prod(x.kernel_variable.shape) for x in layers]
        self.seed = self.updater.agreed_seed()  # the same in every process
        if active == sizes:  # every mask dense: draw the initial masks
            initialize_masks(
                model,
                self.sparsity_target,
                self.distribution,
                power_scale=self.power_scale,
                keep_first_dense=self.keep_first_dense,
                keep_last_dense=self.keep_last_dense,
                weight_init=self.weight_init,
                seed=self.seed,
            )
        self.updater.prepare(model)
        self._end_step = end
        self._schedule_override = None
        if self.verbose:
            summary(model)
        return origin, origin + self.update_interval, end - 1

    def _act(self, step):
        self.updater.update(
            self._target, step, self.drop_fraction_at(step), wait=False
        )

    def on_train_end(self, logs=None):
        if self.verbose:
            counts = self.updater.layer_counts()  # one read
            print(
                f"keras_dst: sparsity {counts.sparsity:.4f}, "
                f"R_s (in-time over-parameterization) {counts.itop_rate:.4f}, "
                f"{len(self.updater.history)} updates."
            )
