"""`SupTickets`: superpose the tickets of a cyclic phase into one network."""

import json
import numbers
import os

import keras
import numpy as np

from keras_dst.callbacks.dynamic_sparsity_callback import (
    DynamicSparsityCallback,
)
from keras_dst.criteria.registry import get_growth
from keras_dst.layers.model_walk import require_sparse_layers
from keras_dst.schedules.cyclic_learning_rate import CyclicLearningRate
from keras_dst.superposition.averaging import AVERAGES
from keras_dst.superposition.averaging import global_magnitude_masks
from keras_dst.superposition.batchnorm import batchnorm_layers
from keras_dst.superposition.batchnorm import recalibrate_batchnorm
from keras_dst.utils.checks import check_choice
from keras_dst.utils.checks import check_optional_count

RESULTS = ("superposed", "last_ticket")
REPRUNES = ("every_cycle", "end")
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
    "Sup-tickets: reference vs keras_dst" in the README.

    The learning rate is taken over when the first epoch begins: the rate
    the optimizer reads becomes `CyclicLearningRate(own rate, ...)`, its
    own float rate (read at every step, so e.g. `ReduceLROnPlateau` still
    acts before the cyclic phase) or `LearningRateSchedule` before the
    cyclic phase, the triangle after. The optimizer's variables and config
    are untouched, so checkpoints and `.keras` files reload into the
    user's optimizer; `fit` ends with the optimizer's own rate back in
    place. The takeover costs one retrace of the train step per `fit`.
    `learning_rate_schedule` holds the schedule in use.

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
        lr_low, lr_high: triangle bounds, 0 < lr_low <= lr_high.
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
        tickets: one dict per ticket (step, sparsity, itop_rate).
        superposed: summary of the superposed network (sparsity, active
            count, union density before the re-prune), after training.

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
        if (
            isinstance(num_tickets, bool)
            or not isinstance(num_tickets, numbers.Integral)
            or num_tickets < 1
        ):
            raise ValueError(
                "`num_tickets` must be an int >= 1. "
                f"Received: num_tickets={num_tickets!r}."
            )
        check_optional_count(cyclic_epochs, "cyclic_epochs")
        check_optional_count(cycle_epochs, "cycle_epochs")
        if cyclic_epochs is None and cycle_epochs is None:
            if not isinstance(cyclic_fraction, numbers.Real) or not (
                0.0 < cyclic_fraction < 1.0
            ):
                raise ValueError(
                    "`cyclic_fraction` must be in (0, 1). "
                    f"Received: cyclic_fraction={cyclic_fraction!r}."
                )
        if cycle_epochs is not None and cyclic_epochs is not None:
            raise ValueError(
                "Give the cyclic phase as `cyclic_epochs` (split into "
                "`num_tickets` cycles) or as `cycle_epochs` per cycle, "
                f"not both. Received: cyclic_epochs={cyclic_epochs}, "
                f"cycle_epochs={cycle_epochs}."
            )
        for name, value in (("lr_low", lr_low), ("lr_high", lr_high)):
            if not isinstance(value, numbers.Real) or not value > 0:
                raise ValueError(
                    f"`{name}` must be a float > 0. Received: {name}={value!r}."
                )
        if lr_low > lr_high:
            raise ValueError(
                "`lr_low` must be <= `lr_high`. "
                f"Received: lr_low={lr_low}, lr_high={lr_high}."
            )
        if (
            isinstance(reexplore_fraction, bool)
            or not isinstance(reexplore_fraction, numbers.Real)
            or not 0.0 <= reexplore_fraction <= 1.0
        ):
            raise ValueError(
                "`reexplore_fraction` must be in [0, 1]. "
                f"Received: reexplore_fraction={reexplore_fraction!r}."
            )
        if reexplore_growth != "base":
            try:
                get_growth(reexplore_growth)
            except (ValueError, TypeError, KeyError):
                raise ValueError(
                    "`reexplore_growth` must be 'base' (the base method's "
                    "growth) or a registered growth criterion such as "
                    "'gradient' (the reference). "
                    f"Received: reexplore_growth={reexplore_growth!r}."
                ) from None
        check_choice(reprune, REPRUNES, "reprune")
        check_choice(base_updates, BASE_UPDATES, "base_updates")
        check_choice(superposition, AVERAGES, "superposition")
        check_choice(result, RESULTS, "result")
        self.base = base
        self.num_tickets = int(num_tickets)
        self.cyclic_fraction = cyclic_fraction
        self.cyclic_epochs = cyclic_epochs
        self.cycle_epochs = cycle_epochs
        self.lr_low = float(lr_low)
        self.lr_high = float(lr_high)
        self.reexplore_fraction = float(reexplore_fraction)
        self.reexplore_growth = reexplore_growth
        self.reprune = reprune
        self.base_updates = base_updates
        self.superposition = superposition
        self.recalibration_data = recalibration_data
        self.recalibration_batch_size = int(recalibration_batch_size)
        self.result = result
        self.backup_dir = None if backup_dir is None else str(backup_dir)
        self.verbose = verbose
        self.tickets = []
        self.superposed = None

    # -- delegation ---------------------------------------------------------

    def set_model(self, model):
        super().set_model(model)
        self.base.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        self.base.set_params(params)

    @property
    def itop_rate(self):
        return self.base.itop_rate

    @property
    def sparsity(self):
        return self.base.sparsity

    # -- phases -------------------------------------------------------------

    def _phases(self):
        return self.phases(
            (self.params or {}).get("epochs"), (self.params or {}).get("steps")
        )

    def phases(self, epochs, steps_per_epoch):
        """Where the cycles fall in a `fit` of `epochs` x `steps_per_epoch`.

        Returns:
            `(start, cycle, total)`: the first step of the cyclic phase,
            the steps per cycle and the total steps, counted from the `fit`
            call's epoch 0 (e.g. to end a base learning-rate schedule where
            the cycles begin).
        """
        steps = steps_per_epoch
        if not epochs or not steps:
            raise ValueError(
                "SupTickets needs the number of epochs and steps per epoch; "
                "pass `steps_per_epoch` to `fit` for datasets of unknown "
                "length."
            )
        if self.cycle_epochs is not None:
            cyclic = self.num_tickets * int(self.cycle_epochs)
        elif self.cyclic_epochs is not None:
            cyclic = int(self.cyclic_epochs)
        else:
            cyclic = max(1, int(round(self.cyclic_fraction * epochs)))
        if cyclic >= epochs:
            raise ValueError(
                f"The cyclic phase ({cyclic} epochs) must be shorter than "
                f"training ({epochs} epochs): lower `cyclic_epochs` / "
                "`cycle_epochs` / `cyclic_fraction` or train longer."
            )
        total = epochs * steps
        cyclic_steps = cyclic * steps
        if cyclic_steps < self.num_tickets:
            raise ValueError(
                f"`num_tickets`={self.num_tickets} cycles do not fit in the "
                f"cyclic phase of {cyclic_steps} steps."
            )
        cycle = cyclic_steps // self.num_tickets
        start = total - cycle * self.num_tickets
        return start, cycle, total

    def on_train_begin(self, logs=None):
        if batchnorm_layers(self.model) and self.recalibration_data is None:
            raise ValueError(
                "The model has BatchNormalization layers: pass "
                "`recalibration_data` (training inputs) so that their "
                "statistics can be recalibrated for the superposed network."
            )
        self._phases()  # checks the arguments against this `fit`
        self._check_learning_rate(self.model.optimizer)
        self._check_reexplore_growth(self.model)
        self.base.on_train_begin(logs)
        self._origin = None

    def _begin(self, epoch):
        """Places the phases and takes over the learning rate; first epoch.

        Like the base method's schedule, the phases count from the optimizer
        step of this `fit` call's epoch 0, so `initial_epoch` resumes keep
        them (see `DynamicSparsityCallback`).
        """
        model = self.model
        step = self.base._epoch_step
        self._origin = max(0, step - epoch * self.params["steps"])
        start, self._cycle, self._total = self._phases()
        self._start = self._origin + start
        # Regular updates stop where the cyclic phase begins; with
        # "until_cycles" they run until then with a constant drop fraction
        # (the reference), unless the base never updates (Static).
        end = self.base.update_end_step
        if self.base_updates == "until_cycles" and self.base.update_end != 0:
            self.base.override_schedule(self._start, drop_schedule="constant")
        else:
            self.base.override_schedule(min(end, self._start))
        self._take_over_learning_rate(model)
        self._events = [
            self._start + j * self._cycle for j in range(self.num_tickets)
        ]
        self._events = [s for s in self._events if s >= step]
        self._average = None
        self._last_reprune = None
        self.tickets = []
        self.superposed = None
        self._finished = False
        self._restore_state(step)

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

    @staticmethod
    def _check_learning_rate(optimizer):
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        base = inner._learning_rate
        if callable(base) and not isinstance(
            base, keras.optimizers.schedules.LearningRateSchedule
        ):
            raise TypeError(
                "SupTickets needs a float or `LearningRateSchedule` "
                "learning rate; the optimizer's is a callable."
            )

    def _take_over_learning_rate(self, model):
        # The optimizer keeps its own rate (variable or schedule), its
        # variables and its config: only the rate it reads is replaced, on
        # the instance. Checkpoints and `.keras` files therefore hold the
        # user's optimizer, which a fresh process rebuilds and loads
        # variable for variable (`BackupAndRestore`, `load_model`).
        optimizer = model.optimizer
        self._check_learning_rate(optimizer)
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        base = inner._learning_rate
        schedule = CyclicLearningRate(
            base, self._start, self._cycle, self.lr_low, self.lr_high
        )
        self.learning_rate_schedule = schedule
        inner._get_current_learning_rate = lambda: schedule(inner.iterations)
        self._optimizer = inner
        model.make_train_function(force=True)

    def _release_learning_rate(self):
        inner = getattr(self, "_optimizer", None)
        if inner is not None and "_get_current_learning_rate" in vars(inner):
            del inner._get_current_learning_rate
            # The compiled step read the cyclic rate: trace it anew.
            self.model.train_function = None
        self._optimizer = None

    def on_train_end(self, logs=None):
        self.base.on_train_end(logs)
        self._release_learning_rate()
        if self._finished:
            self._delete_state()

    def on_epoch_begin(self, epoch, logs=None):
        self.base.on_epoch_begin(epoch, logs)
        if self._origin is None:
            self._begin(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        step = self.base._epoch_step + batch
        if self._events and step >= self._events[0]:
            self._events.pop(0)
            self._cycle_start(self.model, step)
        self.base.on_train_batch_begin(batch, logs)

    def _snapshot(self, model):
        # Host copies: JAX donates buffers (see the Keras notes).
        return [
            np.array(keras.ops.convert_to_numpy(v.value)) for v in model.weights
        ]

    def _add_ticket(self, model, step):
        weights = self._snapshot(model)
        if self._average is None:  # the model at the end of the DST phase
            self._average = weights
        else:
            k = len(self.tickets) + 1
            combine = AVERAGES[self.superposition]
            self._average = [
                combine(a, w, k) for a, w in zip(self._average, weights)
            ]
            if self.reprune == "every_cycle":
                self._reprune_average(model)
            self.tickets.append(
                {
                    "step": int(step),
                    "sparsity": self.base.sparsity,
                    "itop_rate": self.base.itop_rate,
                }
            )
        self._save_state(step)

    # -- resuming -----------------------------------------------------------

    def _state_path(self, count):
        return os.path.join(self.backup_dir, f"sup_tickets_{count:03d}.npz")

    def _save_state(self, step):
        if self.backup_dir is None:
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        path = self._state_path(len(self.tickets))
        arrays = {f"w{i}": a for i, a in enumerate(self._average)}
        arrays["tickets"] = np.array(json.dumps(self.tickets))
        arrays["step"] = np.array(int(step))
        with open(path + ".tmp", "wb") as f:
            np.savez(f, **arrays)
        os.replace(path + ".tmp", path)  # never a half-written state

    def _restore_state(self, step):
        """Reads the latest snapshot taken before optimizer `step`."""
        if self.backup_dir is None or not os.path.isdir(self.backup_dir):
            return
        count = len(self.model.weights)
        for k in range(self.num_tickets, -1, -1):
            path = self._state_path(k)
            if not os.path.exists(path):
                continue
            with np.load(path) as state:
                if int(state["step"]) >= step:
                    continue  # taken after the checkpoint: redone
                self._average = [state[f"w{i}"] for i in range(count)]
                self.tickets = json.loads(str(state["tickets"]))
            return

    def _delete_state(self):
        if self.backup_dir is None:
            return
        for k in range(self.num_tickets + 1):
            if os.path.exists(self._state_path(k)):
                os.remove(self._state_path(k))

    def _cycle_start(self, model, step):
        self._add_ticket(model, step)
        growth = self.reexplore_growth
        self.base.updater.update(
            model,
            step,
            self.reexplore_fraction,
            growth=None if growth == "base" else growth,
        )

    def on_epoch_end(self, epoch, logs=None):
        self.base.on_epoch_end(epoch, logs)
        step = self.base._epoch_step + self.params["steps"]
        if epoch + 1 == self.params["epochs"] and self._average is not None:
            model = self.model
            self._add_ticket(model, step)  # the last ticket
            self._finished = True
            if self.result == "superposed":
                self._superpose(model)
            if logs is not None:
                logs["tickets"] = len(self.tickets)
                if self.superposed:
                    logs["superposed_sparsity"] = self.superposed["sparsity"]

    # -- superposition ------------------------------------------------------

    def _global_reprune(self, model):
        """The average's budget masks: `(kernel indices in the average,
        masks, union count, budget)`.

        The budget is the training model's active count; ties at zero go
        to its current positions, so R_s never grows through the re-prune.
        """
        index = {id(v): i for i, v in enumerate(model.weights)}
        layers = self.base.updater.layers
        slots = [index[id(layer.kernel_variable)] for layer in layers]
        current = [layer.get_mask().astype(bool) for layer in layers]
        budget = sum(int(m.sum()) for m in current)
        kernels = [self._average[i] for i in slots]
        union = sum(int(np.count_nonzero(k)) for k in kernels)
        masks = global_magnitude_masks(kernels, budget, prefer=current)
        return slots, masks, union, budget

    def _reprune_average(self, model):
        """The reference's re-prune after every cycle: the average is
        pruned back to the budget and is the next cycle's previous
        average."""
        slots, masks, union, budget = self._global_reprune(model)
        for i, mask in zip(slots, masks):
            kernel = self._average[i]
            self._average[i] = np.where(mask, kernel, np.zeros_like(kernel))
        self._last_reprune = (masks, union, budget)

    def _superpose(self, model):
        if self._last_reprune is not None:  # pruned after the last cycle
            masks, union, budget = self._last_reprune
        else:
            _, masks, union, budget = self._global_reprune(model)
        layers = self.base.updater.layers
        skip = {
            id(variable)
            for layer in layers
            for variable in layer.sparse_state_variables
        }
        for variable, value in zip(model.weights, self._average):
            if id(variable) not in skip:
                variable.assign(value.astype(variable.dtype))
        for layer, mask in zip(layers, masks):
            layer.set_mask(mask.astype("uint8"), optimizer=model.optimizer)
        self.base.updater.prepare(model)
        self._recalibrate(model)
        total = sum(m.size for m in masks)
        self.superposed = {
            "sparsity": 1.0 - budget / total,
            "active": int(budget),
            "union_density": union / total,
            "tickets": len(self.tickets),
            "reprune": self.reprune,
        }

    def _recalibrate(self, model):
        if self.recalibration_data is None:
            return
        recalibrate_batchnorm(
            model,
            self.recalibration_data,
            batch_size=self.recalibration_batch_size,
            verbose=self.verbose,
        )
