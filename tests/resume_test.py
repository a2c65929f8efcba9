"""Resume after interruption: the engine's state travels with the model.

A run killed mid-way and resumed (`BackupAndRestore`, or `ModelCheckpoint`
+ `load_model` + `initial_epoch`) must end with the same masks, weights and
R_s as the uninterrupted run.
"""

import os

import keras
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

import keras_dst
from tests.test_case import TestCase

EPOCHS = 4
BATCH = 32  # 256 samples: 8 steps per epoch
STEPS = 8


class Interrupt(Exception):
    pass


class InterruptAt(keras.callbacks.Callback):
    """Raises before optimizer step `step` (simulates a preemption)."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_step = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch_step + batch == self.step:
            raise Interrupt(f"preempted at step {self.step}")


def method(name):
    # update_interval 4 divides the 8 steps per epoch: an update is due
    # exactly at each epoch start, where a resumed run begins.
    if name == "set":
        return keras_dst.SET(0.8, update_interval=4, seed=3)
    if name == "rigl":
        return keras_dst.RigL(0.8, update_interval=4, seed=3)
    if name == "snfs":
        return keras_dst.SNFS(0.8, update_interval=4, seed=3)
    raise ValueError(name)


class ResumeTest(TestCase):
    def make_model(self, seed):
        keras.utils.set_random_seed(seed)
        model = self.mlp()
        model.compile(
            keras.optimizers.SGD(0.05, momentum=0.9),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model

    def fit(self, model, callbacks, epochs=EPOCHS, **kwargs):
        x, y = self.classification_data()
        return model.fit(
            x,
            y,
            batch_size=BATCH,
            epochs=epochs,
            shuffle=False,
            verbose=0,
            callbacks=callbacks,
            **kwargs,
        )

    @parameterized.named_parameters(
        ("set", "set", False),
        ("rigl", "rigl", False),
        ("snfs", "snfs", False),
        ("set_backup_first", "set", True),
    )
    def test_backup_and_restore_resumes_exactly(self, name, backup_first):
        reference = self.make_model(0)
        reference_callback = method(name)
        self.fit(reference, [reference_callback])
        steps = [h["step"] for h in reference_callback.updater.history]
        self.assertIn(2 * STEPS, steps)  # an update at the resume point

        backup_dir = self.temp_dir()
        model = self.make_model(0)
        callbacks = [method(name), keras.callbacks.BackupAndRestore(backup_dir)]
        if backup_first:
            callbacks.reverse()
        with self.assertRaises(Interrupt):
            self.fit(model, [*callbacks, InterruptAt(2 * STEPS + 3)])

        # A new process: fresh weights, a new callback, the same backup.
        model = self.make_model(99)
        callback = method(name)
        callbacks = [callback, keras.callbacks.BackupAndRestore(backup_dir)]
        if backup_first:
            callbacks.reverse()
        self.fit(model, callbacks)
        self.assertEqual(
            int(self.to_numpy(model.optimizer.iterations)), EPOCHS * STEPS
        )
        resumed = [h["step"] for h in callback.updater.history]
        self.assertEqual(resumed, [s for s in steps if s >= 2 * STEPS])
        self.assertSameRun(model, reference, callback, reference_callback)
        self.assertModelExactSparsity(model)

    def test_model_checkpoint_and_load_model_resume_exactly(self):
        reference = self.make_model(0)
        reference_callback = method("set")
        self.fit(reference, [reference_callback])

        path = os.path.join(self.temp_dir(), "ckpt.keras")
        model = self.make_model(0)
        checkpoint = keras.callbacks.ModelCheckpoint(path)
        with self.assertRaises(Interrupt):
            self.fit(model, [method("set"), checkpoint, InterruptAt(21)])

        model = keras.saving.load_model(path)  # saved after epoch 2
        self.assertEqual(int(self.to_numpy(model.optimizer.iterations)), 16)
        callback = method("set")
        self.fit(model, [callback], initial_epoch=2)
        self.assertSameRun(model, reference, callback, reference_callback)
        self.assertModelExactSparsity(model)

    def test_keras_file_saved_mid_run_loads_and_continues(self):
        model = self.make_model(0)
        first = method("set")
        self.fit(model, [first], epochs=2)
        path = os.path.join(self.temp_dir(), "mid.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        counts = list(self.active_counts(model).values())
        for layer, ref in zip(
            keras_dst.sparse_layers(loaded),
            keras_dst.sparse_layers(model),
            strict=True,
        ):
            np.testing.assert_array_equal(layer.get_mask(), ref.get_mask())
        second = method("set")
        self.fit(loaded, [second], epochs=2)
        self.assertNotEmpty(second.updater.history)
        # Masks kept, not redrawn (layer paths differ after loading, so
        # compare in model order).
        self.assertModelExactSparsity(loaded)
        self.assertEqual(list(self.active_counts(loaded).values()), counts)
        # R_s continues from the saved union of masks.
        self.assertGreater(second.itop_rate, first.itop_rate)

    def test_repeated_fit_calls_each_get_their_schedule(self):
        model = self.make_model(0)
        callback = method("set")
        for _ in range(3):
            self.fit(model, [callback], epochs=1)
        # A fractional `update_end` is per `fit` call: with 8 steps per
        # call and ΔT 4, each call updates at its own step 4.
        steps = [h["step"] for h in callback.updater.history]
        self.assertEqual(steps, [4, 12, 20])
        fractions = [h["drop_fraction"] for h in callback.updater.history]
        self.assertEqual(fractions[0], fractions[1])
        self.assertEqual(fractions[1], fractions[2])


class SupTicketsResumeTest(TestCase):
    def run_fit(self, model, callbacks, x, epochs=6):
        return model.fit(
            x[0],
            x[1],
            batch_size=BATCH,
            epochs=epochs,
            shuffle=False,
            verbose=0,
            callbacks=callbacks,
        )

    def make(self, seed, backup_dir=None):
        keras.utils.set_random_seed(seed)
        model = self.mlp()
        model.compile(
            keras.optimizers.SGD(0.05, momentum=0.9),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        sup = keras_dst.SupTickets(
            keras_dst.SET(0.8, update_interval=4, seed=3),
            num_tickets=3,
            cyclic_epochs=3,
            lr_low=0.005,
            lr_high=0.02,
            backup_dir=backup_dir,
        )
        return model, sup

    def test_interrupted_sup_tickets_run_resumes_exactly(self):
        data = self.classification_data()
        reference, reference_sup = self.make(0)
        self.run_fit(reference, [reference_sup], data)

        root = self.temp_dir()
        backup, state = os.path.join(root, "b"), os.path.join(root, "s")
        model, sup = self.make(0, state)
        # Cycles start at steps 24, 32, 40; preempted in the 2nd cycle,
        # after its ticket was taken but before the checkpoint of step 40.
        with self.assertRaises(Interrupt):
            self.run_fit(
                model,
                [
                    sup,
                    keras.callbacks.BackupAndRestore(backup),
                    InterruptAt(35),
                ],
                data,
            )
        self.assertTrue(
            os.path.exists(os.path.join(state, "sup_tickets_001.npz"))
        )

        model, sup = self.make(99, state)
        self.run_fit(
            model, [keras.callbacks.BackupAndRestore(backup), sup], data
        )
        self.assertEqual(
            [t["step"] for t in sup.tickets],
            [t["step"] for t in reference_sup.tickets],
        )
        self.assertEqual(sup.superposed, reference_sup.superposed)
        for layer, ref in zip(
            keras_dst.sparse_layers(model),
            keras_dst.sparse_layers(reference),
            strict=True,
        ):
            np.testing.assert_array_equal(layer.get_mask(), ref.get_mask())
        for a, b in zip(model.weights, reference.weights, strict=True):
            np.testing.assert_array_equal(self.to_numpy(a), self.to_numpy(b))
        self.assertEmpty(os.listdir(state))  # finished: state removed


if __name__ == "__main__":
    absltest.main()
