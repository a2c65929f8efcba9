"""Sup-tickets tests: cyclic LR, ticket timing, superposition, recalibration."""

import os
import tempfile
from unittest import mock

import keras
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

import keras_dst
from keras_dst.schedules import CyclicLearningRate
from tests.test_case import TestCase

# 512 samples / batch 32 = 16 steps per epoch; 6 epochs = 96 steps; the
# last 3 epochs (48 steps) are 3 cycles of 16 steps starting at step 48.
N, BATCH, EPOCHS = 512, 32, 6


class WeightRecorder(keras.callbacks.Callback):
    """Records all weights at given steps and at the end (test only).

    Placed before SupTickets in the callback list, so it sees each ticket
    before the re-exploration that follows it.
    """

    def __init__(self, steps):
        super().__init__()
        self.steps, self.snapshots, self.lrs = set(steps), {}, []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_step = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_begin(self, batch, logs=None):
        step = self.epoch_step + batch
        if step in self.steps:
            self.snapshots[step] = self.take()

    def on_train_batch_end(self, batch, logs=None):
        lr = self.model.optimizer.learning_rate
        self.lrs.append(float(keras.ops.convert_to_numpy(lr)))

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.params["epochs"]:
            self.snapshots["end"] = self.take()

    def take(self):
        return [
            np.array(keras.ops.convert_to_numpy(v.value))
            for v in self.model.weights
        ]


def mlp(batchnorm=False):
    layers = [keras.Input((12,))]
    if batchnorm:
        layers.append(keras.layers.BatchNormalization(name="bn"))
    layers += [
        keras_dst.layers.SparseDense(32, activation="relu"),
        keras_dst.layers.SparseDense(3),
    ]
    model = keras.Sequential(layers)
    model.compile(
        keras.optimizers.SGD(0.05, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def dead_relu_run():
    """A model whose hidden units are all dead, its SupTickets and data.

    A bias of -5 kills every hidden unit on inputs in [0, 1): no kernel
    ever gets a gradient, each update swaps zeros for zeros, and the
    average has fewer non-zeros than the budget, so the re-prune's fill
    at zero runs.
    """
    keras.utils.set_random_seed(0)
    x = np.random.rand(512, 20).astype("float32")
    y = np.random.randint(0, 3, 512)
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras_dst.layers.SparseDense(
                64,
                activation="relu",
                bias_initializer=keras.initializers.Constant(-5.0),
            ),
            keras_dst.layers.SparseDense(3),
        ]
    )
    model.compile(
        keras.optimizers.SGD(0.05),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    sup = keras_dst.SupTickets(
        keras_dst.SET(0.9, update_interval=4, seed=0),
        num_tickets=3,
        cyclic_epochs=3,
    )
    return model, sup, (x, y)


class SupTicketsTest(TestCase):
    def data(self):
        return self.classification_data(n=N, features=12, classes=3)

    def run_sup(self, model=None, recorder=None, **kwargs):
        x, y = self.data()
        model = model or mlp()
        base = keras_dst.SET(0.8, update_interval=4, update_end=1.0, seed=0)
        kwargs.setdefault("cyclic_epochs", 3)
        sup = keras_dst.SupTickets(base, num_tickets=3, **kwargs)
        callbacks = [recorder, sup] if recorder else [sup]
        history = model.fit(
            x,
            y,
            batch_size=BATCH,
            epochs=EPOCHS,
            verbose=0,
            callbacks=callbacks,
        )
        return model, sup, history

    def test_triangle_values(self):
        lr = CyclicLearningRate(0.1, 100, 20, 0.001, 0.005)
        for step, expected in [
            (0, 0.1),
            (99, 0.1),
            (100, 0.001),
            (105, 0.003),
            (110, 0.005),
            (115, 0.003),
            (119, 0.001 + 0.004 * 0.1),
            (120, 0.001),
            (130, 0.005),
        ]:
            self.assertAlmostEqual(float(lr(step)), expected, places=6)
        decay = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
        lr = CyclicLearningRate(decay, 100, 20, 0.001, 0.005)
        self.assertAlmostEqual(float(lr(20)), 0.025, places=6)
        self.assertAlmostEqual(float(lr(110)), 0.005, places=6)
        restored = CyclicLearningRate.from_config(lr.get_config())
        self.assertAlmostEqual(float(restored(20)), 0.025, places=6)

    def test_learning_rate_during_fit(self):
        recorder = WeightRecorder([])
        self.run_sup(recorder=recorder)
        lrs = np.array(recorder.lrs)  # rate after step s+1 was taken
        self.assertEqual(len(lrs), EPOCHS * N // BATCH)
        # `learning_rate` reads the schedule at the current iteration.
        for s in range(1, 96):
            want = (
                0.05
                if s < 48
                else 0.001 + 0.004 * (1 - abs(2 * ((s - 48) % 16) / 16 - 1))
            )
            self.assertAlmostEqual(lrs[s - 1], want, places=6, msg=f"{s}")

    def test_learning_rate_schedule_base_in_fit(self):
        decay = keras.optimizers.schedules.ExponentialDecay(0.05, 16, 0.5)
        model = mlp()
        model.compile(
            keras.optimizers.SGD(decay, momentum=0.9),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        recorder = WeightRecorder([])
        self.run_sup(model=model, recorder=recorder)
        lrs = np.array(recorder.lrs)
        for s in range(1, 96):
            if s < 48:
                want = 0.05 * 0.5 ** (s / 16)
            else:
                t = ((s - 48) % 16) / 16
                want = 0.001 + 0.004 * (1 - abs(2 * t - 1))
            self.assertAlmostEqual(lrs[s - 1], want, places=6, msg=f"{s}")

    def test_ticket_timing_and_regular_updates_off(self):
        _, sup, history = self.run_sup()
        self.assertEqual([t["step"] for t in sup.tickets], [64, 80, 96])
        updates = sup.base.updater.history
        regular = [u["step"] for u in updates if u["step"] < 48]
        self.assertEqual(regular, list(range(4, 48, 4)))
        cyclic = [u for u in updates if u["step"] >= 48]
        self.assertEqual([u["step"] for u in cyclic], [48, 64, 80])
        self.assertTrue(all(u["drop_fraction"] == 0.5 for u in cyclic))
        self.assertEqual(history.history["tickets"], [3])
        self.assertEqual(len(history.history["loss"]), EPOCHS)

    @parameterized.named_parameters(("caa", "caa"), ("cima", "cima"))
    def test_superposition_arithmetic(self, kind):
        # reprune="end": the tickets are averaged unpruned, pruned once.
        recorder = WeightRecorder([48, 64, 80])
        model, sup, _ = self.run_sup(
            recorder=recorder, superposition=kind, reprune="end"
        )
        snaps = [recorder.snapshots[s] for s in (48, 64, 80)]
        snaps.append(recorder.snapshots["end"])
        average = [w.copy() for w in snaps[0]]
        for k, ticket in enumerate(snaps[1:], start=1):
            if kind == "caa":
                average = [
                    a * k / (k + 1) + t / (k + 1)
                    for a, t in zip(average, ticket, strict=True)
                ]
            else:
                average = [
                    0.5 * a + 0.5 * t
                    for a, t in zip(average, ticket, strict=True)
                ]
        index = {id(v): i for i, v in enumerate(model.weights)}
        layers = keras_dst.sparse_layers(model)
        kernels = [average[index[id(x.kernel_variable)]] for x in layers]
        budget = sum(sup.base.updater.active_counts)
        flat = np.concatenate([np.abs(k).ravel() for k in kernels])
        threshold = np.sort(flat)[::-1][budget - 1]
        for layer, kernel in zip(layers, kernels, strict=True):
            mask = layer.get_mask().astype(bool)
            np.testing.assert_array_equal(mask, np.abs(kernel) >= threshold)
            np.testing.assert_allclose(
                self.to_numpy(layer.kernel_variable),
                np.where(mask, kernel, 0.0),
                rtol=1e-6,
                atol=1e-7,
            )
            bias = average[index[id(layer.bias)]]
            np.testing.assert_allclose(
                self.to_numpy(layer.bias), bias, rtol=1e-6, atol=1e-7
            )
        # Exactly the budget, and inactive entries exactly 0.
        total = sum(int(x.get_mask().sum()) for x in layers)
        self.assertEqual(total, budget)
        self.assertModelExactSparsity(model)
        union = sum(np.count_nonzero(k) for k in kernels) / flat.size
        self.assertAlmostEqual(sup.superposed["union_density"], union)
        self.assertGreater(union, 1 - sup.superposed["sparsity"])

    def test_every_cycle_reprune_matches_numpy(self):
        # The reference: after every ticket the running average is pruned
        # back to the budget by global magnitude, and that pruned average
        # is the previous average of the next ticket.
        recorder = WeightRecorder([48, 64, 80])
        model, sup, _ = self.run_sup(recorder=recorder)
        self.assertEqual(sup.reprune, "every_cycle")  # the default
        snaps = [recorder.snapshots[s] for s in (48, 64, 80)]
        snaps.append(recorder.snapshots["end"])
        index = {id(v): i for i, v in enumerate(model.weights)}
        layers = keras_dst.sparse_layers(model)
        slots = [index[id(x.kernel_variable)] for x in layers]
        budget = sum(sup.base.updater.active_counts)
        average = [w.astype("float64") for w in snaps[0]]
        for k, ticket in enumerate(snaps[1:], start=1):
            average = [
                a * k / (k + 1) + t / (k + 1)
                for a, t in zip(average, ticket, strict=True)
            ]
            flat = np.concatenate([np.abs(average[i]).ravel() for i in slots])
            union = np.count_nonzero(flat)
            # The threshold rule below is the global top-k when the union
            # exceeds the budget and there is no tie at the threshold.
            self.assertGreater(union, budget)
            order = np.sort(flat)[::-1]
            self.assertGreater(order[budget - 1], order[budget])
            for i in slots:
                keep = np.abs(average[i]) >= order[budget - 1]
                average[i] = np.where(keep, average[i], 0.0)
        for layer, i in zip(layers, slots, strict=True):
            mask = layer.get_mask().astype(bool)
            np.testing.assert_array_equal(mask, average[i] != 0)
            np.testing.assert_allclose(
                self.to_numpy(layer.kernel_variable),
                average[i],
                rtol=1e-5,
                atol=1e-6,
            )
            np.testing.assert_allclose(
                self.to_numpy(layer.bias),
                average[index[id(layer.bias)]],
                rtol=1e-5,
                atol=1e-6,
            )
        self.assertEqual(sum(int(x.get_mask().sum()) for x in layers), budget)
        self.assertModelExactSparsity(model)
        self.assertAlmostEqual(
            sup.superposed["union_density"], union / flat.size
        )
        # Pruning every cycle is not the same as pruning once at the end.
        ended = [w.astype("float64") for w in snaps[0]]
        for k, ticket in enumerate(snaps[1:], start=1):
            ended = [
                a * k / (k + 1) + t / (k + 1)
                for a, t in zip(ended, ticket, strict=True)
            ]
        self.assertGreater(
            max(np.abs(ended[i] - average[i]).max() for i in slots), 1e-3
        )

    def test_reexplore_growth(self):
        # The reference regrows by the gradient at every cycle start,
        # whatever the base; "base" keeps the base's (random) growth.
        from tests.engine_test import reference_update

        recorder = WeightRecorder([48, 49])
        model, sup, _ = self.run_sup(recorder=recorder)
        updates = {u["step"]: u for u in sup.base.updater.history}
        self.assertEqual(
            [updates[s]["growth"] for s in (44, 48, 64, 80)],
            ["random", "gradient", "gradient", "gradient"],
        )
        index = {id(v): i for i, v in enumerate(model.weights)}
        before, after = recorder.snapshots[48], recorder.snapshots[49]
        for layer in keras_dst.sparse_layers(model):
            mask = before[index[id(layer.kernel_mask)]]
            kernel = before[index[id(layer.kernel_variable)]]
            probe = before[index[id(layer.kernel_gradient)]]
            k = int(np.floor(0.5 * mask.sum()))
            want, _ = reference_update(mask, kernel, np.abs(probe), k)
            got = after[index[id(layer.kernel_mask)]].reshape(-1)
            np.testing.assert_array_equal(got.astype(bool), want)
        _, sup, _ = self.run_sup(reexplore_growth="base")
        growth = [u["growth"] for u in sup.base.updater.history]
        self.assertEqual(set(growth), {"random"})

    def test_reexplore_gradient_needs_probes(self):
        x, y = self.data()
        model = keras.Sequential(
            [
                keras.Input((12,)),
                keras_dst.layers.SparseDense(8, dense_gradient=False),
                keras_dst.layers.SparseDense(3, dense_gradient=False),
            ]
        )
        model.compile("sgd", "sparse_categorical_crossentropy")
        masks = [x.get_mask() for x in keras_dst.sparse_layers(model)]
        sup = keras_dst.SupTickets(keras_dst.SET(0.8), cyclic_epochs=1)
        with self.assertRaisesRegex(ValueError, "reexplore_growth='base'"):
            model.fit(x, y, epochs=2, verbose=0, callbacks=[sup])
        for layer, mask in zip(
            keras_dst.sparse_layers(model), masks, strict=True
        ):
            np.testing.assert_array_equal(layer.get_mask(), mask)
        sup = keras_dst.SupTickets(
            keras_dst.SET(0.8), cyclic_epochs=1, reexplore_growth="base"
        )
        model.fit(x, y, epochs=2, verbose=0, callbacks=[sup])
        self.assertLen(sup.tickets, 3)

    def test_base_updates_until_the_cycles(self):
        # SET stops at 25% of training here (step 24); the reference keeps
        # the base updating, with a constant drop, until the cycles (48).
        def regular(**kwargs):
            x, y = self.data()
            base = keras_dst.SET(
                0.8, update_interval=4, update_end=0.25, seed=0
            )
            sup = keras_dst.SupTickets(
                base, num_tickets=3, cyclic_epochs=3, **kwargs
            )
            mlp().fit(
                x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0,
                callbacks=[sup],
            )  # fmt: skip
            history = sup.base.updater.history
            return [(u["step"], u["drop_fraction"]) for u in history][:-3]

        self.assertEqual(regular(), [(s, 0.3) for s in range(4, 48, 4)])
        own = regular(base_updates="own_schedule")
        self.assertEqual([s for s, _ in own], [4, 8, 12, 16, 20])
        cosine = [0.3 * 0.5 * (1 + np.cos(np.pi * s / 24)) for s, _ in own]
        np.testing.assert_allclose([f for _, f in own], cosine)

    def test_static_base_stays_static(self):
        x, y = self.data()
        sup = keras_dst.SupTickets(keras_dst.Static(0.8), cyclic_epochs=3)
        mlp().fit(
            x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0, callbacks=[sup]
        )
        steps = [u["step"] for u in sup.base.updater.history]
        self.assertEqual(steps, [48, 64, 80])  # the re-explorations only

    def test_cycle_layouts(self):
        def phases(**kwargs):
            sup = keras_dst.SupTickets(keras_dst.SET(0.9), **kwargs)
            return sup.phases(250, 100)

        # The reference's CIFAR command: 250 epochs, 3 cycles of 8 epochs.
        self.assertEqual(
            phases(num_tickets=3, cycle_epochs=8), (25000 - 2400, 800, 25000)
        )
        # The default: 10% of the epochs (25), split in 3 cycles.
        self.assertEqual(phases(), (25000 - 3 * 833, 833, 25000))
        self.assertEqual(phases(cyclic_epochs=30), (25000 - 3000, 1000, 25000))
        with self.assertRaisesRegex(ValueError, "shorter than training"):
            phases(num_tickets=40, cycle_epochs=8)

    def test_last_ticket_result(self):
        recorder = WeightRecorder([])
        model, sup, _ = self.run_sup(recorder=recorder, result="last_ticket")
        self.assertIsNone(sup.superposed)
        for v, w in zip(model.weights, recorder.snapshots["end"], strict=True):
            np.testing.assert_array_equal(self.to_numpy(v), w)

    def test_batchnorm_recalibrated(self):
        # BatchNorm after a sparse layer: its statistics must be those of
        # the superposed network's outputs (so recalibrating with the wrong
        # weights, or before superposition, would fail).
        x, _ = self.data()
        model = keras.Sequential(
            [
                keras.Input((12,)),
                keras_dst.layers.SparseDense(32, name="sparse_in"),
                keras.layers.BatchNormalization(name="bn"),
                keras.layers.ReLU(),
                keras_dst.layers.SparseDense(3),
            ]
        )
        model.compile(
            keras.optimizers.SGD(0.05, momentum=0.9),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model, sup, _ = self.run_sup(
            model=model, recalibration_data=x, recalibration_batch_size=64
        )
        self.assertIsNotNone(sup.superposed)
        sparse = model.get_layer("sparse_in")
        kernel = self.to_numpy(sparse.kernel_variable)
        mask = sparse.get_mask()
        np.testing.assert_array_equal(kernel[mask == 0], 0.0)
        outputs = x @ kernel + self.to_numpy(sparse.bias)
        batches = outputs.reshape(8, 64, 32)
        bn = model.get_layer("bn")
        np.testing.assert_allclose(
            self.to_numpy(bn.moving_mean),
            batches.mean(axis=1).mean(axis=0),
            rtol=1e-4,
            atol=1e-5,
        )
        np.testing.assert_allclose(
            self.to_numpy(bn.moving_variance),
            batches.var(axis=1).mean(axis=0),
            rtol=1e-4,
            atol=1e-5,
        )
        self.assertEqual(bn.momentum, 0.99)  # restored

    def test_batchnorm_without_data_is_an_error(self):
        with self.assertRaisesRegex(ValueError, "recalibration_data"):
            self.run_sup(model=mlp(batchnorm=True))

    def test_superposed_model_saves_and_loads(self):
        model, _, _ = self.run_sup()
        path = os.path.join(tempfile.mkdtemp(), "sup.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        x, _ = self.data()
        np.testing.assert_allclose(
            loaded.predict(x, verbose=0),
            model.predict(x, verbose=0),
            rtol=1e-5,
            atol=1e-6,
        )
        for a, b in zip(
            keras_dst.sparse_layers(model),
            keras_dst.sparse_layers(loaded),
            strict=True,
        ):
            np.testing.assert_array_equal(a.get_mask(), b.get_mask())

    @parameterized.named_parameters(
        ("tickets_zero", dict(num_tickets=0), "num_tickets"),
        ("tickets_float", dict(num_tickets=2.5), "num_tickets"),
        ("fraction", dict(cyclic_fraction=1.0), "cyclic_fraction"),
        ("epochs", dict(cyclic_epochs=0), "cyclic_epochs"),
        ("lr_order", dict(lr_low=0.01, lr_high=0.001), "lr_low"),
        ("lr_neg", dict(lr_low=-1.0), "lr_low"),
        ("reexplore", dict(reexplore_fraction=2.0), "reexplore_fraction"),
        ("reexplore_bool", dict(reexplore_fraction=True), "reexplore_fraction"),
        ("reexplore_growth", dict(reexplore_growth="best"), "reexplore_growth"),
        ("reprune", dict(reprune="never"), "reprune"),
        ("base_updates", dict(base_updates="always"), "base_updates"),
        ("cycle_epochs", dict(cycle_epochs=0), "cycle_epochs"),
        (
            "both_layouts",
            dict(cycle_epochs=2, cyclic_epochs=6),
            "cycle_epochs",
        ),
        ("superposition", dict(superposition="sum"), "superposition"),
        ("result", dict(result="best"), "result"),
    )
    def test_bad_arguments(self, kwargs, name):
        with self.assertRaisesRegex((ValueError, TypeError), name):
            keras_dst.SupTickets(keras_dst.SET(0.9), **kwargs)

    def test_base_must_be_a_dst_callback(self):
        with self.assertRaisesRegex(TypeError, "base"):
            keras_dst.SupTickets(keras.callbacks.History())

    def test_cyclic_phase_longer_than_training(self):
        with self.assertRaisesRegex(ValueError, "shorter than training"):
            self.run_sup(cyclic_epochs=6)


class RecalibrateBatchnormTest(TestCase):
    """`recalibrate_batchnorm` takes the data forms users have."""

    def model_and_expected(self):
        x = np.random.default_rng(0).normal(size=(100, 5)).astype("float32")
        model = keras.Sequential(
            [keras.Input((5,)), keras.layers.BatchNormalization(momentum=0.9)]
        )
        model(x[:2])
        batches = [x[i : i + 32] for i in range(0, 100, 32)]
        mean = np.mean([b.mean(axis=0) for b in batches], axis=0)
        variance = np.mean([b.var(axis=0) for b in batches], axis=0)
        return x, model, batches, (mean, variance)

    def assertRecalibrated(self, model, expected):
        bn = model.layers[0]
        np.testing.assert_allclose(
            self.to_numpy(bn.moving_mean), expected[0], rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(
            self.to_numpy(bn.moving_variance),
            expected[1],
            rtol=1e-4,
            atol=1e-5,
        )
        self.assertEqual(bn.momentum, 0.9)

    def test_data_forms(self):
        recalibrate = keras_dst.superposition.recalibrate_batchnorm
        x, _, batches, expected = self.model_and_expected()
        y = np.zeros(len(x), "int32")

        class Batches(keras.utils.PyDataset):
            def __len__(self):
                return len(batches)

            def __getitem__(self, i):
                return batches[i], y[: len(batches[i])]

        forms = {
            "array": x,
            "tuple": (x, y),
            "list": batches,
            "generator": (b for b in batches),
            "pairs": [(b, y[: len(b)]) for b in batches],
            "py_dataset": Batches(),
        }
        try:
            import tensorflow as tf

            forms["tf_data"] = tf.data.Dataset.from_tensor_slices((x, y)).batch(
                32
            )
        except ImportError:  # TensorFlow is a dependency; say if it is not
            self.fail("tensorflow is not installed")
        for name, data in forms.items():
            _, model, _, _ = self.model_and_expected()
            self.assertEqual(recalibrate(model, data, batch_size=32), 4, name)
            self.assertRecalibrated(model, expected)

    def test_empty_data_keeps_statistics(self):
        _, model, _, _ = self.model_and_expected()
        bn = model.layers[0]
        bn.moving_mean.assign(np.full(5, 0.5))
        with self.assertWarnsRegex(RuntimeWarning, "no batch"):
            self.assertEqual(
                keras_dst.superposition.recalibrate_batchnorm(model, []), 0
            )
        np.testing.assert_array_equal(self.to_numpy(bn.moving_mean), 0.5)
        self.assertEqual(bn.momentum, 0.9)


class GlobalReprunePreferenceTest(TestCase):
    def test_zero_ties_go_to_preferred_positions(self):
        kernels = [np.array([[0.0, 2.0], [0.0, 0.0]]), np.array([0.0, -1.0])]
        prefer = [
            np.array([[False, True], [False, True]]),
            np.array([False, True]),
        ]
        masks = keras_dst.superposition.global_magnitude_masks(
            kernels, 3, prefer=prefer
        )
        np.testing.assert_array_equal(masks[0], [[False, True], [False, True]])
        np.testing.assert_array_equal(masks[1], [False, True])

    def test_equal_magnitudes_go_to_the_lowest_index(self):
        # The engine's tie rule, over the kernels in order.
        kernels = [np.array([1.0, 2.0, 1.0]), np.array([[1.0, 1.0]])]
        masks = keras_dst.superposition.global_magnitude_masks(kernels, 3)
        np.testing.assert_array_equal(masks[0], [True, True, True])
        np.testing.assert_array_equal(masks[1], [[False, False]])
        masks = keras_dst.superposition.global_magnitude_masks(kernels, 2)
        np.testing.assert_array_equal(masks[0], [True, True, False])

    def test_superposition_never_raises_r_s(self):
        # Dead ReLU units leave active weights at exactly 0, so the average
        # has fewer non-zeros than the budget: the fill must reuse the last
        # ticket's positions, not never-active ones. A bias of -5 kills
        # every hidden unit on inputs in [0, 1): no kernel ever gets a
        # gradient, and each update swaps zeros for zeros.
        model, sup, (x, y) = dead_relu_run()
        model.fit(x, y, batch_size=64, epochs=6, verbose=0, callbacks=[sup])
        # The fill path ran: the average's support is below the budget.
        density = 1.0 - sup.superposed["sparsity"]
        self.assertLess(sup.superposed["union_density"], density - 0.01)
        self.assertEqual(sup.itop_rate, sup.tickets[-1]["itop_rate"])
        self.assertModelExactSparsity(model)


class DeviceSuperpositionTest(TestCase):
    """The device averager SupTickets runs, against numpy references."""

    def prune(self, kernels, budget, prefer=None, block_shapes=None):
        averager = keras_dst.SupTickets(keras_dst.SET(0.9)).averager
        masks, union = averager.prune_masks(
            kernels, budget, prefer=prefer, block_shapes=block_shapes
        )
        return [self.to_numpy(m) for m in masks], int(self.to_numpy(union))

    @staticmethod
    def reference(kernels, budget, prefer=None):
        """The rule, written out: non-zeros by |w|; then zeros, those
        of `prefer` first; ties by layer order, then flat index."""
        ranked = []
        for layer, kernel in enumerate(kernels):
            flat = np.abs(kernel).ravel()
            chosen = np.zeros(flat.size, bool)
            if prefer is not None:
                chosen = np.asarray(prefer[layer], bool).ravel()
            for i, w in enumerate(flat):
                tie = 0 if w != 0 else int(not chosen[i])
                ranked.append((-w, tie, layer, i))
        keep = [np.zeros(k.size, bool) for k in kernels]
        for _, _, layer, i in sorted(ranked)[:budget]:
            keep[layer][i] = True
        return [m.reshape(k.shape) for m, k in zip(keep, kernels, strict=True)]

    def test_reprune_matches_numpy_with_ties(self):
        # Ties at non-zero magnitudes across layers (1.0 and 2.0), and
        # zeros that the current masks (`prefer`) must win, in every
        # layer: every budget from 0 to all entries.
        kernels = [
            np.array([[0.0, 2.0, -1.0], [1.0, 0.0, 0.0]], "float32"),
            np.array([0.0, -1.0, 2.0, 0.0, -0.0], "float32"),
            np.array([[[0.0, 1.0], [0.0, 3.0]]], "float32"),
        ]
        prefer = [
            np.array([[False, True, False], [False, True, False]]),
            np.array([True, False, False, False, True]),
            np.array([[[False, False], [True, False]]]),
        ]
        total = sum(k.size for k in kernels)
        for budget in range(total + 1):
            for chosen in (prefer, None):
                want = self.reference(kernels, budget, chosen)
                host = keras_dst.superposition.global_magnitude_masks(
                    kernels, budget, prefer=chosen
                )
                got, union = self.prune(kernels, budget, chosen)
                self.assertEqual(union, 7)
                for w, h, g in zip(want, host, got, strict=True):
                    msg = f"budget={budget}, prefer={chosen is not None}"
                    np.testing.assert_array_equal(w, h, msg)
                    np.testing.assert_array_equal(g, w, msg)

    def test_reprune_matches_numpy_on_random_ties(self):
        # Small integers: many ties, and block means computed exactly.
        rng = np.random.default_rng(0)
        shapes = [(8, 4), (4, 6), (4, 4)]
        for trial in range(12):
            blocks = [(4, 1), None, (2, 2)] if trial % 2 else None
            kernels = [
                (rng.integers(-3, 4, s) * (rng.random(s) < 0.5)).astype(
                    "float32"
                )
                for s in shapes
            ]
            prefer = [rng.random(s) < 0.4 for s in shapes]
            if blocks:  # current masks are whole blocks
                prefer = [
                    p if b is None else np.repeat(p[::4], 4, axis=0)
                    for p, b in zip(prefer, blocks, strict=True)
                ]
                prefer[2] = np.kron(rng.random((2, 2)) < 0.4, np.ones((2, 2)))
                prefer[2] = prefer[2].astype(bool)
            budget = int(rng.integers(0, sum(k.size for k in kernels) + 1))
            want = keras_dst.superposition.global_magnitude_masks(
                kernels, budget, prefer=prefer, block_shapes=blocks
            )
            got, _ = self.prune(kernels, budget, prefer, blocks)
            for w, g in zip(want, got, strict=True):
                np.testing.assert_array_equal(g, w, f"trial {trial}")
            if blocks is None:
                for w, r in zip(
                    want, self.reference(kernels, budget, prefer), strict=True
                ):
                    np.testing.assert_array_equal(r, w, f"trial {trial}")

    def test_block_reprune_skips_blocks_that_do_not_fit(self):
        # As `global_magnitude_masks`: blocks 9, 8, 7 (12 weights), then
        # the entries 6..2 (5); a block of 1.0 no longer fits in the 3
        # left: the three 0.1 entries do.
        means = np.array([[9.0, 8.0, 1.0, 1.0], [7.0, 0.5, 0.5, 0.5]])
        blocks = np.repeat(means, 4, axis=0).astype("float32")
        entries = np.array(
            [[6.0, 5.0], [4.0, 3.0], [2.0, 0.1], [0.1, 0.1]], "float32"
        )
        got, _ = self.prune([-blocks, entries], 20, None, [(4, 1), None])
        want = np.repeat(np.array([[1, 1, 0, 0], [1, 0, 0, 0]]), 4, axis=0)
        np.testing.assert_array_equal(got[0], want.astype(bool))
        np.testing.assert_array_equal(got[1], np.ones((4, 2), bool))

    def test_fit_matches_the_host_averager(self):
        # Dead ReLU units leave active weights at exactly 0, so the
        # re-prune fills the budget with zeros: the current masks' must
        # win. The tickets, replayed through the host `TicketAverager`,
        # give the same masks, kernels and counts.
        model, sup, (x, y) = dead_relu_run()
        recorder = WeightRecorder([24, 32, 40])  # 8 steps per epoch
        model.fit(
            x,
            y,
            batch_size=64,
            epochs=6,
            verbose=0,
            callbacks=[recorder, sup],
        )
        snaps = [recorder.snapshots[s] for s in (24, 32, 40, "end")]
        index = {id(v): i for i, v in enumerate(model.weights)}
        layers = keras_dst.sparse_layers(model)
        kernels = [index[id(x.kernel_variable)] for x in layers]
        masks_at = [index[id(x.kernel_mask)] for x in layers]
        host = keras_dst.superposition.TicketAverager("caa", "every_cycle")
        for snap in snaps:
            host.add(snap, kernels, [snap[i] for i in masks_at])
        masks, union, budget = host.budget_masks(
            kernels, [snaps[-1][i] for i in masks_at]
        )
        self.assertLess(union, budget)  # the zero fill ran
        for layer, mask, i in zip(layers, masks, kernels, strict=True):
            np.testing.assert_array_equal(layer.get_mask().astype(bool), mask)
            np.testing.assert_allclose(
                self.to_numpy(layer.kernel_variable),
                np.where(mask, host.average[i], 0.0),
                rtol=1e-6,
                atol=1e-7,
            )
        self.assertEqual(sup.superposed["active"], budget)
        total = sum(int(np.prod(x.kernel_variable.shape)) for x in layers)
        self.assertAlmostEqual(sup.superposed["union_density"], union / total)
        self.assertModelExactSparsity(model)

    @parameterized.named_parameters(
        ("every_cycle", "every_cycle"), ("end", "end")
    )
    def test_no_whole_array_comes_to_the_host(self, reprune):
        # Every `keras.ops.convert_to_numpy` of the whole fit is recorded
        # (the base method's steps and updates, the tickets, re-prunes and
        # the superposition): only counts come back, never an array
        # shaped like a weight (the host averager read every weight and
        # mask per ticket; the first epoch read every mask).
        shapes = []
        convert = keras.ops.convert_to_numpy

        def recorded(x):
            value = convert(x)
            shapes.append(np.shape(value))
            return value

        model = mlp()
        weights = {tuple(v.shape) for v in model.weights if len(v.shape)}
        x, y = self.classification_data(n=N, features=12, classes=3)
        sup = keras_dst.SupTickets(
            keras_dst.SET(0.8, update_interval=4, seed=0),
            num_tickets=3,
            cyclic_epochs=3,
            reprune=reprune,
        )
        with mock.patch.object(keras.ops, "convert_to_numpy", recorded):
            model.fit(
                x,
                y,
                batch_size=BATCH,
                epochs=EPOCHS,
                verbose=0,
                callbacks=[sup],
            )
        self.assertIsNotNone(sup.superposed)
        self.assertNotEmpty(shapes)
        self.assertEmpty([s for s in shapes if s in weights], shapes)
        self.assertLessEqual(max(int(np.prod(s)) for s in shapes), 8)


if __name__ == "__main__":
    absltest.main()
