"""`StepScheduledCallback`: the step scheduling shared by DST and GMP.

Both act on a grid of optimizer steps, `first, first + ΔT, ...` up to
`last`, placed when the `fit` call's first epoch begins. What they do at a
grid step (prune and regrow, or prune to a schedule) is the subclass's.
"""

import keras

from keras_dst.backend import to_numpy
from keras_dst.callbacks.layer_logs import add_epoch_logs
from keras_dst.layers.model_walk import require_sparse_layers
from keras_dst.layers.sparse_layer import mark_probes_live
from keras_dst.utils.checks import check_update_interval


class StepScheduledCallback(keras.callbacks.Callback):
    """Runs `_act(step)` every `update_interval` steps of a `fit` call.

    Cost: on steps off the grid, `on_train_batch_begin` is pure Python (no
    device read, no JAX state sync); the optimizer step counter is read
    once per epoch, at its start, where the state is synced anyway.

    Subclasses implement `_place(epoch)` (checks, masks, and the grid:
    returns `(origin, first, last)`, absolute optimizer steps: the step
    of this `fit` call's epoch 0, which schedules count from, and the
    first and last grid steps; the base keeps them) and `_act(step)`.

    Args:
        updater: the `SparseUpdater` doing the work.
        update_interval: optimizer steps between grid points, int > 0.
        per_layer_logs: add per-layer entries to the epoch logs.
    """

    def __init__(self, updater, update_interval, per_layer_logs=False):
        super().__init__()
        self.updater = updater
        self.update_interval = check_update_interval(update_interval)
        self.per_layer_logs = bool(per_layer_logs)
        self._target = None  # the model, without Callback.model's sync
        self._origin = None
        self._first = None
        self._last = None
        self._epoch_step = 0
        self._next = None
        self._chunk = 1
        self._probe_layers = []
        self._logged_updates = 0

    # -- what every scheduled callback exposes ------------------------------

    @property
    def history(self):
        """One record per update (see `SparseUpdater.history`)."""
        return self.updater.history

    @property
    def itop_rate(self):
        """R_s over all sparse layers."""
        return self._ready().itop_rate

    @property
    def itop_rate_per_layer(self):
        """R_s per sparse layer (dict layer path -> rate)."""
        return self._ready().itop_rate_per_layer

    @property
    def sparsity(self):
        """Current global sparsity over the sparse layers."""
        return self._ready().sparsity

    @property
    def chunk(self):
        """Optimizer steps per `on_train_batch_begin` call (the model's
        `steps_per_execution`)."""
        return self._chunk

    @property
    def epoch_start_step(self):
        """The optimizer step at which the current epoch began."""
        return self._epoch_step

    def step_at(self, batch):
        """The optimizer step of `batch` in the current epoch."""
        return self._epoch_step + batch

    @property
    def fit_origin(self):
        """The optimizer step of the running `fit` call's epoch 0 (None
        before training): schedules count from it, so a run resumed with
        `initial_epoch` keeps them."""
        return self._origin

    def _ready(self):
        return self.updater

    def fit_steps(self, name):
        """`(epochs, steps per epoch)` of the running `fit`, or a clear
        error when `fit` does not know them."""
        epochs = (self.params or {}).get("epochs")
        steps = (self.params or {}).get("steps")
        if not epochs or not steps:
            raise ValueError(
                f"{name} needs the number of steps of `fit` (the data has "
                "no known length): pass `steps_per_epoch` to `fit`."
            )
        return epochs, steps

    def _reschedule(self, last):
        """Moves the last grid step (e.g. where Sup-tickets' cycles
        begin); the next grid step is found again."""
        self._last = int(last)
        self._next = self._next_at_or_after(self._epoch_step)

    def _next_at_or_after(self, step):
        if step <= self._first:
            found = self._first
        else:
            ahead = -(-(step - self._first) // self.update_interval)
            found = self._first + ahead * self.update_interval
        return found if found <= self._last else float("inf")

    # -- Keras hooks --------------------------------------------------------

    def set_model(self, model):
        super().set_model(model)
        # Updates read and write the model's state through the updater,
        # without `Callback.model` (on JAX that syncs the whole state).
        self._target = model

    def on_train_begin(self, logs=None):
        # Model state is read at the first `on_epoch_begin`, once every
        # callback's `on_train_begin` ran: `BackupAndRestore` may restore
        # weights, masks and the step counter after this callback.
        require_sparse_layers(self.model)
        self._origin = None

    def on_epoch_begin(self, epoch, logs=None):
        # The state is synced at epoch boundaries: this read is free on JAX.
        iterations = self.model.optimizer.iterations
        self._epoch_step = int(to_numpy(iterations))
        # Steps per `on_train_batch_begin` call (the next call's step is
        # at most this far ahead).
        self._chunk = max(
            int(getattr(self._target, "steps_per_execution", 1) or 1), 1
        )
        if self._origin is None:
            self._origin, self._first, self._last = self._place(epoch)
            self._logged_updates = len(self.updater.history)
            self._next = self._next_at_or_after(self._epoch_step)
        # The layers whose probes an update reads (kept here so that the
        # steps before an update touch neither the model nor the updater).
        updater = self.updater
        needs = getattr(updater, "needs_gradient", False)
        self._probe_layers = list(updater.layers or []) if needs else []

    def on_train_batch_begin(self, batch, logs=None):
        step = self._epoch_step + batch
        chunk = self._chunk
        if step + chunk < self._next:
            return  # pure Python: no device access on ordinary steps
        if step < self._next:
            # This step's gradient is what the update at `_next` reads.
            self._probes_live(True)
            return
        self._next = self._next_at_or_after(step + 1)
        if step <= self._last:
            self._act(step)
        self._probes_live(step + chunk >= self._next)

    def _probes_live(self, live):
        """Marks the probes an update will read, so that checkpoints keep
        them (a probe is otherwise saved as zeros: see
        `SparseLayer.save_own_variables`)."""
        mark_probes_live(self._probe_layers, live)  # Python attributes

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            self._logged_updates = add_epoch_logs(
                logs, self._ready(), self.per_layer_logs, self._logged_updates
            )

    def _place(self, epoch):
        raise NotImplementedError

    def _act(self, step):
        raise NotImplementedError
