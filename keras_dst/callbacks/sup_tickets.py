"""`SupTickets`: superpose the tickets of a cyclic phase into one network.

A thin callback: the phases come from `superposition.plan_cycles`, the
averaging and re-prune from `DeviceTicketAverager` (on the device; the
host reference is `superposition.TicketAverager`), the backups
from `superposition.backup`, BatchNorm from `recalibrate_batchnorm`, the
rate from `schedules.CyclicLearningRate`; the base DST callback runs
inside it and is steered through its public methods.
"""

import math

import keras

from keras_dst.backend.keras_internals import optimizer_learning_rate
from keras_dst.backend.keras_internals import override_learning_rate
from keras_dst.backend.keras_internals import restore_learning_rate
from keras_dst.callbacks.dynamic_sparsity_callback import (
    DynamicSparsityCallback,
)
from keras_dst.criteria.registry import check_growth
from keras_dst.criteria.registry import get_growth
from keras_dst.layers.model_walk import require_sparse_layers
from keras_dst.layers.sparse_layer import mark_probes_live
from keras_dst.schedules.cyclic_learning_rate import CyclicLearningRate
from keras_dst.schedules.cyclic_learning_rate import check_cyclic_learning_rate
from keras_dst.schedules.cyclic_learning_rate import check_learning_rate_bounds
from keras_dst.superposition.backup import delete_averages
from keras_dst.superposition.backup import load_average
from keras_dst.superposition.backup import save_average
from keras_dst.superposition.batchnorm import batchnorm_layers
from keras_dst.superposition.batchnorm import recalibrate_batchnorm
from keras_dst.superposition.device_tickets import DeviceTicketAverager
from keras_dst.superposition.phases import check_cycle_arguments
from keras_dst.superposition.phases import plan_cycles
from keras_dst.utils.checks import check_choice
from keras_dst.utils.checks import check_fraction

RESULTS = ("superposed", "last_ticket")
BASE_UPDATES = ("until_cycles", "own_schedule")


class SupTickets(keras.callbacks.Callback):
    """Sup-tickets on top of any DST method (SET, RigL, SNFS, ITOP).

    Training is split in two, within the same number of epochs:

    1. The base method's DST phase. By default (`base_updates=
       "until_cycles"`, the reference) its updates run every ΔT with a
       constant drop fraction (its initial `drop_fraction`) right up to the
       cyclic phase; `"own_schedule"` keeps the base's own drop schedule
       and `update_end`, cut at the cyclic phase. A base that never
       updates (`Static`) stays static.
    2. The cyclic phase: the last `cyclic_fraction` of the epochs (default
       0.1, the reference's CIFAR command), or `cyclic_epochs`, split into
       `num_tickets` cycles of equal length; or `num_tickets` cycles of
       `cycle_epochs` epochs each. In each cycle the learning rate follows
       a triangle from `lr_low` up to `lr_high` and back
       (`CyclicLearningRate`, evaluated inside the train step); each cycle
       starts with one large prune-and-regrow of `reexplore_fraction` of
       each layer's active weights, regrown by the gradient of the last
       step (`reexplore_growth="gradient"`, the reference, whatever the
       base) or by the base's criterion (`"base"`); the base's regular
       updates are off. A ticket is taken at the end of each cycle (lowest
       rate).

    Superposition: a running average (`"caa"`, cumulative, default; or
    `"cima"`, EMA 0.5, our own: the reference's CIMA branch crashes) of ALL
    weights, BatchNorm statistics included, starting from the model at the
    end of the DST phase. With `reprune="every_cycle"` (the reference) the
    average is pruned back to exactly the budget by global magnitude over
    the sparse layers after every ticket, and that pruned average is the
    previous average of the next ticket; with `"end"` the tickets are
    averaged unpruned and pruned once. Masks are set to match, and
    BatchNorm statistics are recalibrated with one pass over
    `recalibration_data` in training mode (no weight update; each batch
    weighs equally). The reference also recalibrates after each cycle;
    that changes nothing here, because the last recalibration recomputes
    the statistics from scratch and nothing reads them in between. By
    default the model then holds the superposed network.

    Differences from the reference code and the option for each: see
    the Sup-tickets guide of the documentation
    (`docs/guides/sup-tickets.md`).

    The learning rate is taken over when the first epoch begins: the rate
    the optimizer reads becomes `CyclicLearningRate(own rate, ...)`, its
    own float rate (read at every step, so e.g. `ReduceLROnPlateau` still
    acts before the cyclic phase) or `LearningRateSchedule` before the
    cyclic phase, the triangle after. The optimizer's variables and config
    are untouched, so checkpoints and `.keras` files reload into the
    user's optimizer; `fit` ends with the optimizer's own rate back in
    place. The takeover costs one retrace of the train step per `fit`.
    `learning_rate_schedule` holds the schedule in use.

    The averaging and re-prune run on the device, each compiled once per
    model structure: the running average is held in device tensors (not
    in the model, nor in a saved file), and no weight or mask is copied
    to the host during training, only the union size and the budget at
    the end (and the average when `backup_dir` is given).

    The pieces are public, for a custom loop or a study:
    `keras_dst.superposition.plan_cycles` (where the cycles fall),
    `TicketAverager` (averaging and re-prune on host arrays: the
    reference of what the callback computes on the device),
    `recalibrate_batchnorm`, and `keras_dst.schedules.CyclicLearningRate`.
    This callback composes them with the base callback's public methods
    (`step_at`, `override_schedule`, its updater).

    Args:
        base: a `DynamicSparsityCallback` (`keras_dst.SET(...)`, `RigL`,
            `SNFS`, `ITOP`, ...). Do not also pass it to `fit`.
        num_tickets: number of cycles / tickets, int >= 1.
        cyclic_fraction: fraction of the epochs in the cyclic phase, in
            (0, 1) (default 0.1, rounded to whole epochs). Ignored if
            `cyclic_epochs` or `cycle_epochs` is given.
        cyclic_epochs: number of epochs in the cyclic phase (int >= 1).
        cycle_epochs: epochs per cycle (int >= 1): the cyclic phase is
            `num_tickets * cycle_epochs` epochs (the reference's CIFAR
            command: 3 cycles of 8 epochs in 250).
        lr_low: the triangles' lower bound, 0 < lr_low <= lr_high.
        lr_high: the triangles' upper bound.
        reexplore_fraction: drop fraction of the re-exploration at the
            start of each cycle, in [0, 1].
        reexplore_growth: `"gradient"` (default, the reference: needs
            sparse layers with `dense_gradient=True`), `"base"` (the base
            method's growth), or another registered growth criterion.
        reprune: `"every_cycle"` (default, the reference) or `"end"`.
        base_updates: `"until_cycles"` (default, the reference) or
            `"own_schedule"`, see above.
        superposition: `"caa"` or `"cima"`.
        recalibration_data: the inputs of the BatchNorm recalibration,
            passed over once at the end: an array of inputs (split into
            batches of `recalibration_batch_size`), a tuple `(x, y, ...)`
            of arrays, a `tf.data.Dataset`, a `keras.utils.PyDataset`, a
            generator or any iterable of `x` or `(x, y, ...)` batches. The
            reference uses one full pass over the (augmented) training set:
            pass the training data (cost: one forward pass over it, in
            training mode). Callbacks never see the training batches, so
            it is an argument; required only when the model has
            BatchNormalization layers.
        recalibration_batch_size: batch size for array data.
        result: `"superposed"` (default) or `"last_ticket"`: what the model
            holds after `fit`.
        backup_dir: `None` or a directory for the running average, so that
            an interrupted run resumes exactly (with `BackupAndRestore` or
            `ModelCheckpoint` for the model). Each snapshot taken is written
            there (`sup_tickets_<k>.npz`, one copy of the weights each);
            at the first epoch, the latest snapshot taken before the
            current optimizer step is read back. Deleted at the end of a
            finished `fit`. Everything else (step, masks, R_s, the cyclic
            rate) is in the model's and optimizer's variables.
        verbose: 1 (default) shows a progress bar for the recalibration.

    Attributes:
        plan: the `CyclicPhases` of the running `fit` (None before).
        history: the base's update history (re-explorations included).
        tickets: one dict per ticket (step, sparsity, itop_rate).
        superposed: summary of the superposed network (sparsity, active
            count, union density before the re-prune), after training.
        averager: the device averager (`average`: the running average
            as device tensors; `count`; `prune_masks`: the global
            re-prune of given kernels, as `global_magnitude_masks`).

    Example:

    ```python
    sup = keras_dst.SupTickets(keras_dst.ITOP(0.9), num_tickets=3,
                               cyclic_fraction=0.2)
    model.fit(x, y, epochs=50, callbacks=[sup])
    ```

    Reference:
        - [Yin et al., 2022](https://arxiv.org/abs/2205.15322)
    """

    def __init__(
        self,
        base,
        num_tickets=3,
        cyclic_fraction=0.1,
        cyclic_epochs=None,
        cycle_epochs=None,
        lr_low=0.001,
        lr_high=0.005,
        reexplore_fraction=0.5,
        reexplore_growth="gradient",
        reprune="every_cycle",
        base_updates="until_cycles",
        superposition="caa",
        recalibration_data=None,
        recalibration_batch_size=128,
        result="superposed",
        backup_dir=None,
        verbose=1,
    ):
        super().__init__()
        if not isinstance(base, DynamicSparsityCallback):
            raise TypeError(
                "`base` must be a keras_dst DST callback (e.g. "
                "`keras_dst.ITOP(0.9)`). "
                f"Received: base={type(base).__name__}."
            )
        check_cycle_arguments(
            num_tickets, cyclic_fraction, cyclic_epochs, cycle_epochs
        )
        check_learning_rate_bounds(lr_low, lr_high)
        if reexplore_growth != "base":
            check_growth(
                reexplore_growth,
                "reexplore_growth",
                "'base' (the base method's growth) or ",
            )
        check_choice(base_updates, BASE_UPDATES, "base_updates")
        check_choice(result, RESULTS, "result")
        self.base = base
        self.num_tickets = int(num_tickets)
        self.cyclic_fraction = cyclic_fraction
        self.cyclic_epochs = cyclic_epochs
        self.cycle_epochs = cycle_epochs
        self.lr_low = float(lr_low)
        self.lr_high = float(lr_high)
        self.reexplore_fraction = check_fraction(
            reexplore_fraction, "reexplore_fraction"
        )
        self.reexplore_growth = reexplore_growth
        self.base_updates = base_updates
        self.averager = DeviceTicketAverager(superposition, reprune)
        self.superposition = superposition
        self.reprune = reprune
        self.recalibration_data = recalibration_data
        self.recalibration_batch_size = int(recalibration_batch_size)
        self.result = result
        self.backup_dir = None if backup_dir is None else str(backup_dir)
        self.verbose = verbose
        self.plan = None
        self._finished = False
        self.tickets = []
        self.superposed = None
        self.learning_rate_schedule = None
        self._optimizer = None
        self._started = False
        self._reexplores_by_gradient = False

    # -- what it exposes ----------------------------------------------------

    @property
    def itop_rate(self):
        return self.base.itop_rate

    @property
    def sparsity(self):
        return self.base.sparsity

    @property
    def history(self):
        return self.base.history

    @property
    def updater(self):
        return self.base.updater

    def phases(self, epochs, steps_per_epoch):
        """Where the cycles fall in a `fit` of `epochs` x `steps_per_epoch`.

        Returns:
            `(start, cycle, total)`: the first step of the cyclic phase,
            the steps per cycle and the total steps, counted from the `fit`
            call's epoch 0 (e.g. to end a base learning-rate schedule where
            the cycles begin). See `keras_dst.superposition.plan_cycles`.
        """
        plan = self._plan(epochs, steps_per_epoch)
        return plan.start, plan.cycle, plan.total

    def _plan(self, epochs, steps_per_epoch):
        return plan_cycles(
            epochs,
            steps_per_epoch,
            self.num_tickets,
            self.cyclic_fraction,
            self.cyclic_epochs,
            self.cycle_epochs,
        )

    # -- Keras hooks: the base runs inside ----------------------------------

    def set_model(self, model):
        super().set_model(model)
        self.base.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        self.base.set_params(params)

    def on_train_begin(self, logs=None):
        if batchnorm_layers(self.model) and self.recalibration_data is None:
            raise ValueError(
                "The model has BatchNormalization layers: pass "
                "`recalibration_data` (training inputs) so that their "
                "statistics can be recalibrated for the superposed network."
            )
        params = self.params or {}
        self._plan(params.get("epochs"), params.get("steps"))  # checks
        check_cyclic_learning_rate(self.model.optimizer)
        self._check_reexplore_growth(self.model)
        self._reexplores_by_gradient = (
            self.base.updater.needs_gradient
            if self.reexplore_growth == "base"
            else get_growth(self.reexplore_growth).needs_gradient
        )
        self.base.on_train_begin(logs)
        self._started = False

    def on_epoch_begin(self, epoch, logs=None):
        self.base.on_epoch_begin(epoch, logs)
        if not self._started:
            self._begin(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        step = self.base.step_at(batch)
        if self._cycle_starts and step >= self._cycle_starts[0]:
            self._cycle_starts.pop(0)
            self._cycle_start(step)
        self.base.on_train_batch_begin(batch, logs)
        if (
            self._cycle_starts
            and self._reexplores_by_gradient
            and step + self.base.chunk >= self._cycle_starts[0]
        ):  # the re-exploration at the cycle start reads this step's probe
            mark_probes_live(self.base.updater.layers, True)

    def on_epoch_end(self, epoch, logs=None):
        self.base.on_epoch_end(epoch, logs)
        if epoch + 1 != self.params["epochs"] or not self.averager.started:
            return
        self._add_ticket(self.base.step_at(self.params["steps"]))  # the last
        self._finished = True
        if self.result == "superposed":
            self._superpose(self.model)
        if logs is not None:
            logs["tickets"] = len(self.tickets)
            if self.superposed:
                logs["superposed_sparsity"] = self.superposed["sparsity"]

    def on_train_end(self, logs=None):
        self.base.on_train_end(logs)
        self._release_learning_rate()
        if self._finished and self.backup_dir is not None:
            delete_averages(self.backup_dir, self.num_tickets)

    # -- the phases ---------------------------------------------------------

    def _begin(self, epoch):
        """Places the phases and takes over the learning rate; first epoch.

        Like the base method's schedule, the phases count from the optimizer
        step of this `fit` call's epoch 0, so `initial_epoch` resumes keep
        them (see `DynamicSparsityCallback`).
        """
        self._started = True
        step = self.base.epoch_start_step
        origin = self.base.fit_origin
        plan = self._plan(self.params["epochs"], self.params["steps"])
        self.plan = plan
        start = origin + plan.start
        # Regular updates stop where the cyclic phase begins; with
        # "until_cycles" they run until then with a constant drop fraction
        # (the reference), unless the base never updates (Static).
        if self.base_updates == "until_cycles" and self.base.update_end != 0:
            self.base.override_schedule(start, drop_schedule="constant")
        else:
            self.base.override_schedule(min(self.base.update_end_step, start))
        self._take_over_learning_rate(self.model, start, plan.cycle)
        self._cycle_starts = [
            origin + s for s in plan.cycle_starts if origin + s >= step
        ]
        self.averager.reset()
        self.tickets = []
        self.superposed = None
        self._finished = False
        restored = load_average(
            self.backup_dir, self.num_tickets, step, len(self.model.weights)
        )
        if restored is not None:
            average, count, self.tickets = restored
            self.averager.reset(average, count)

    def _cycle_start(self, step):
        """A ticket (the end of the previous cycle or of the DST phase),
        then the cycle's re-exploration."""
        self._add_ticket(step)
        growth = self.reexplore_growth
        self.base.updater.update(
            self.model,
            step,
            self.reexplore_fraction,
            growth=None if growth == "base" else growth,
        )

    def _add_ticket(self, step):
        # On the device: nothing but the ticket's counts comes to the host
        # (and the average, for a backup).
        model = self.model
        layers = self.base.updater.layers
        first = not self.averager.started
        self.averager.add(model, layers)
        if not first:
            counts = self.base.updater.layer_counts()  # one read
            self.tickets.append(
                {
                    "step": int(step),
                    "sparsity": counts.sparsity,
                    "itop_rate": counts.itop_rate,
                }
            )
        if self.backup_dir is not None:
            save_average(
                self.backup_dir,
                len(self.tickets),
                self.averager.host_average(model, layers),
                self.tickets,
                step,
            )

    def _check_reexplore_growth(self, model):
        if self.reexplore_growth == "base":
            return
        if not get_growth(self.reexplore_growth).needs_gradient:
            return
        missing = [
            layer.name
            for layer in require_sparse_layers(model)
            if layer.kernel_gradient is None
        ]
        if missing:
            raise ValueError(
                f"`reexplore_growth={self.reexplore_growth!r}` (the "
                "reference's re-exploration) regrows by the dense gradient, "
                f"but sparse layers {missing} were built with "
                "`dense_gradient=False`. Build them with "
                "`dense_gradient=True` (the default), or pass "
                "`reexplore_growth='base'` to regrow with the base method's "
                "criterion."
            )

    # -- the learning rate --------------------------------------------------

    def _take_over_learning_rate(self, model, start, cycle):
        # The optimizer keeps its own rate (variable or schedule), its
        # variables and its config: only the rate it reads is replaced.
        # Checkpoints and `.keras` files therefore hold the user's
        # optimizer, which a fresh process rebuilds and loads variable for
        # variable (`BackupAndRestore`, `load_model`).
        optimizer = model.optimizer
        schedule = CyclicLearningRate(
            optimizer_learning_rate(optimizer),
            start,
            cycle,
            self.lr_low,
            self.lr_high,
        )
        self.learning_rate_schedule = schedule
        override_learning_rate(
            optimizer, lambda: schedule(optimizer.iterations)
        )
        self._optimizer = optimizer
        model.make_train_function(force=True)

    def _release_learning_rate(self):
        if self._optimizer is not None:
            if restore_learning_rate(self._optimizer):
                # The compiled step read the cyclic rate: trace it anew.
                self.model.train_function = None
        self._optimizer = None

    # -- superposition ------------------------------------------------------

    def _superpose(self, model):
        layers = self.base.updater.layers
        union, budget = self.averager.superpose(model, layers, model.optimizer)
        self.base.updater.prepare(model)
        if self.recalibration_data is not None:
            recalibrate_batchnorm(
                model,
                self.recalibration_data,
                batch_size=self.recalibration_batch_size,
                verbose=self.verbose,
            )
        total = sum(math.prod(x.kernel_variable.shape) for x in layers)
        self.superposed = {
            "sparsity": 1.0 - budget / total,
            "active": int(budget),
            "union_density": union / total,
            "tickets": len(self.tickets),
            "reprune": self.reprune,
        }
