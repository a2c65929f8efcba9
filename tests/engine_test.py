"""DST engine tests: DynamicSparsityCallback, presets and SparseUpdater."""

import warnings

import keras
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

import keras_dst
from keras_dst.optimizers import slot_variables
from tests.selection_test import reference_select
from tests.selection_test import reference_uniform
from tests.test_case import TestCase

OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(0.05),
    "momentum": lambda: keras.optimizers.SGD(0.05, momentum=0.9),
    "nesterov": lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "adam": lambda: keras.optimizers.Adam(0.01),
    "adamw": lambda: keras.optimizers.AdamW(0.01, weight_decay=0.01),
    "rmsprop": lambda: keras.optimizers.RMSprop(0.01),
}


# Kernel-shaped slots of each optimizer above: SGD has none, momentum (also
# Nesterov) one, Adam(W) m and v, RMSprop its velocity (momentum=0).
SLOTS = {
    "sgd": 0,
    "momentum": 1,
    "nesterov": 1,
    "adam": 2,
    "adamw": 2,
    "rmsprop": 1,
}


class StepChecker(keras.callbacks.Callback):
    """Checks exact sparsity after every training step (test only)."""

    def __init__(self, test, counts):
        super().__init__()
        self.test, self.counts, self.steps = test, counts, 0

    def on_train_batch_end(self, batch, logs=None):
        self.test.assertModelExactSparsity(self.model, self.counts)
        self.steps += 1


class MaskRecorder(keras.callbacks.Callback):
    """Records every mask seen at the start of each step (test only)."""

    def __init__(self):
        super().__init__()
        self.masks = []

    def on_train_batch_begin(self, batch, logs=None):
        self.masks.append(
            [
                layer.get_mask().copy()
                for layer in keras_dst.sparse_layers(self.model)
            ]
        )


class Forbidden:
    """Stands in for the model: any access is a test failure."""

    def __getattr__(self, name):
        raise AssertionError(f"callback touched the model ('{name}')")


def compile_model(model, optimizer=None, **kwargs):
    model.compile(
        optimizer or keras.optimizers.SGD(0.05, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **kwargs,
    )
    return model


class EngineTest(TestCase):
    def fit(self, callback, epochs=2, batch_size=32, model=None, **kw):
        x, y = self.classification_data()
        model = model or compile_model(self.mlp())
        history = model.fit(
            x,
            y,
            batch_size=batch_size,
            epochs=epochs,
            verbose=0,
            callbacks=[callback, *kw.pop("extra", [])],
            **kw,
        )
        return model, history

    @parameterized.named_parameters([(name, name) for name in OPTIMIZERS])
    def test_exact_sparsity_every_step(self, optimizer):
        model = compile_model(self.mlp(), OPTIMIZERS[optimizer]())
        callback = keras_dst.SET(0.8, update_interval=3, update_end=1.0, seed=0)
        x, y = self.classification_data()
        # Draw masks first so the checker knows the counts.
        model.fit(
            x[:32],
            y[:32],
            batch_size=32,
            epochs=1,
            verbose=0,
            callbacks=[callback],
        )
        counts = self.active_counts(model)
        checker = StepChecker(self, counts)
        model.fit(
            x,
            y,
            batch_size=32,
            epochs=2,
            verbose=0,
            callbacks=[callback, checker],
        )
        self.assertEqual(checker.steps, 16)
        self.assertGreaterEqual(len(callback.updater.history), 5)
        self.assertModelExactSparsity(model, counts)
        # The optimizer slots are zero wherever the mask is zero (and the
        # slots were found: a lookup returning [] would pass vacuously).
        for layer in keras_dst.sparse_layers(model):
            mask = layer.get_mask()
            slots = slot_variables(model.optimizer, layer.kernel_variable)
            self.assertLen(slots, SLOTS[optimizer])
            for slot in slots:
                self.assertTrue(np.all(self.to_numpy(slot)[mask == 0] == 0))

    def test_initial_allocation_is_erk(self):
        model, _ = self.fit(keras_dst.Static(0.9, seed=1), epochs=1)
        report = keras_dst.sparsity_report(model)
        sizes = {r["path"]: r["shape"] for r in report["layers"]}
        expected = keras_dst.masks.allocate(sizes, 0.9, "erk")
        for row in report["layers"]:
            self.assertEqual(
                row["active"],
                keras_dst.masks.active_count(
                    row["size"], expected[row["path"]]
                ),
            )
        self.assertAlmostEqual(report["total"]["sparsity"], 0.9, delta=0.01)

    def test_existing_sparse_masks_are_kept(self):
        model = compile_model(self.mlp(sparsity=0.5, mask_seed=3))
        before = [layer.get_mask() for layer in keras_dst.sparse_layers(model)]
        self.fit(keras_dst.Static(0.9), epochs=1, model=model)
        after = [layer.get_mask() for layer in keras_dst.sparse_layers(model)]
        for a, b in zip(before, after, strict=True):
            np.testing.assert_array_equal(a, b)

    def test_static_never_changes_masks(self):
        callback = keras_dst.Static(0.8, seed=0)
        recorder = MaskRecorder()
        self.fit(callback, extra=[recorder])
        self.assertEqual(callback.updater.history, [])
        for masks in recorder.masks[1:]:
            for a, b in zip(masks, recorder.masks[0], strict=True):
                np.testing.assert_array_equal(a, b)
        self.assertAlmostEqual(callback.itop_rate, 1 - callback.sparsity)

    def test_update_schedule_counts_optimizer_steps(self):
        # 256 samples / 32 = 8 steps per epoch, 3 epochs = 24 steps.
        if self.backend == "torch":
            # Keras's PyTorch trainer runs one step per execution.
            with self.assertRaisesRegex(ValueError, "steps_per_execution"):
                self.fit(
                    keras_dst.SET(0.8, seed=0),
                    epochs=1,
                    model=compile_model(self.mlp(), steps_per_execution=3),
                )
        for spe in (1,) if self.backend == "torch" else (1, 3):
            callback = keras_dst.SET(
                0.8, update_interval=5, update_end=1.0, seed=0
            )
            model = compile_model(self.mlp(), steps_per_execution=spe)
            self.fit(callback, epochs=3, model=model)
            steps = [h["step"] for h in callback.updater.history]
            if spe == 1:
                self.assertEqual(steps, [5, 10, 15, 20])
            else:
                # Callbacks fire at the start of each 3-step chunk: optimizer
                # steps 0, 3, 6 | 8, 11, 14 | 16, 19, 22 (8 steps/epoch).
                # Each update happens at the first boundary at or after a
                # multiple of 5, once per multiple.
                self.assertEqual(steps, [6, 11, 16, 22])

    def test_update_end_and_cosine_schedule(self):
        callback = keras_dst.RigL(
            0.8, update_interval=4, update_end=0.5, drop_fraction=0.4, seed=0
        )
        self.fit(callback, epochs=4)  # 32 steps, updates until step 16
        history = callback.updater.history
        self.assertEqual([h["step"] for h in history], [4, 8, 12])
        for h in history:
            expected = 0.4 * 0.5 * (1 + np.cos(np.pi * h["step"] / 16))
            self.assertAlmostEqual(h["drop_fraction"], expected, places=6)
        # k = floor(fraction * active) per layer.
        counts = callback.updater.active_counts
        for h in history:
            for layer_k, n in zip(h["k"].values(), counts, strict=True):
                self.assertEqual(layer_k, int(np.floor(h["drop_fraction"] * n)))

    def test_itop_schedule_anneals_to_its_end_fraction(self):
        # ITOP's cosine from 0.5 to 0.005 over all of training.
        callback = keras_dst.ITOP(0.8, update_interval=4, seed=0)
        self.fit(callback, epochs=4)  # 32 steps, update_end 1.0
        history = callback.updater.history
        self.assertEqual(
            [h["step"] for h in history], [4, 8, 12, 16, 20, 24, 28]
        )
        for h in history:
            t = h["step"] / 32
            expected = 0.005 + (0.5 - 0.005) * 0.5 * (1 + np.cos(np.pi * t))
            self.assertAlmostEqual(h["drop_fraction"], expected, places=9)
        self.assertGreater(history[-1]["drop_fraction"], 0.005)

    def test_constant_schedule(self):
        callback = keras_dst.DynamicSparsityCallback(
            0.8,
            drop_fraction=0.3,
            drop_schedule="constant",
            update_interval=4,
            update_end=1.0,
            seed=0,
        )
        model, _ = self.fit(callback, epochs=2)
        history = callback.updater.history
        self.assertEqual([h["step"] for h in history], [4, 8, 12])
        counts = self.active_counts(model)
        for h in history:
            self.assertEqual(h["drop_fraction"], 0.3)
            for path, k in h["k"].items():
                self.assertEqual(k, int(np.floor(0.3 * counts[path])))

    def test_int_update_end_is_an_absolute_step(self):
        callback = keras_dst.SET(0.8, update_interval=4, update_end=10, seed=0)
        model = compile_model(self.mlp())
        self.fit(callback, epochs=1, model=model)  # steps 0-7
        self.fit(callback, epochs=1, model=model)  # steps 8-15
        # Updates before step 10 only, across both fit calls.
        self.assertEqual([h["step"] for h in callback.updater.history], [4, 8])

    def test_itop_preset_defaults(self):
        for growth, interval in (("random", 1500), ("gradient", 4000)):
            itop = keras_dst.ITOP(0.9, growth=growth)
            self.assertEqual(itop.update_interval, interval)
            self.assertEqual(itop.drop_fraction, 0.5)
            self.assertEqual(itop.drop_fraction_end, 0.005)
            self.assertEqual(itop.update_end, 1.0)
            self.assertEqual(itop.drop_schedule, "cosine")
            self.assertEqual(itop.distribution, "erk")
            self.assertEqual(itop.updater.growth, growth)

    def test_allocation_options_through_the_callback(self):
        callback = keras_dst.Static(
            0.5, keep_first_dense=True, power_scale=0.5, seed=0
        )
        model, _ = self.fit(callback, epochs=1)
        layers = keras_dst.sparse_layers(model)
        shapes = {
            keras_dst.layer_path(x): tuple(x.kernel_variable.shape)
            for x in layers
        }
        expected = keras_dst.masks.allocate(
            shapes,
            0.5,
            "erk",
            power_scale=0.5,
            keep_dense=[keras_dst.layer_path(layers[0])],
        )
        self.assertEqual(expected[keras_dst.layer_path(layers[0])], 0.0)
        self.assertTrue(np.all(layers[0].get_mask() == 1))
        for layer in layers:
            size = int(np.prod(shapes[keras_dst.layer_path(layer)]))
            self.assertEqual(
                int(layer.get_mask().sum()),
                keras_dst.masks.active_count(
                    size, expected[keras_dst.layer_path(layer)]
                ),
            )
        # power_scale=0.5 is not the default allocation.
        default = keras_dst.masks.allocate(
            shapes, 0.5, "erk", keep_dense=[keras_dst.layer_path(layers[0])]
        )
        self.assertNotEqual(expected, default)

    def test_itop_rate_matches_recorded_masks(self):
        callback = keras_dst.SET(
            0.8, update_interval=2, update_end=1.0, drop_fraction=0.5, seed=0
        )
        recorder = MaskRecorder()
        model, history = self.fit(callback, epochs=2, extra=[recorder])
        layers = keras_dst.sparse_layers(model)
        final = [layer.get_mask() for layer in layers]
        union = [np.zeros_like(m, dtype=bool) for m in final]
        for masks in recorder.masks + [final]:
            union = [u | (m == 1) for u, m in zip(union, masks, strict=True)]
        total = sum(u.sum() for u in union) / sum(u.size for u in union)
        self.assertAlmostEqual(callback.itop_rate, total, places=12)
        for layer, u in zip(layers, union, strict=True):
            self.assertAlmostEqual(
                callback.itop_rate_per_layer[keras_dst.layer_path(layer)],
                u.mean(),
                places=12,
            )
        self.assertGreater(total, 1 - callback.sparsity + 0.05)
        self.assertAlmostEqual(history.history["itop_rate"][-1], total)
        self.assertEqual(len(history.history["sparsity"]), 2)
        self.assertAlmostEqual(
            history.history["sparsity"][-1],
            keras_dst.sparsity_report(model)["total"]["sparsity"],
        )

    def test_same_seed_same_masks(self):
        results = []
        for _ in range(2):
            keras.utils.set_random_seed(7)
            model, _ = self.fit(
                keras_dst.SET(0.8, update_interval=3, seed=11), epochs=1
            )
            results.append(
                [layer.get_mask() for layer in keras_dst.sparse_layers(model)]
            )
        for a, b in zip(*results, strict=True):
            np.testing.assert_array_equal(a, b)

    def test_no_model_access_on_steps_without_update(self):
        callback = keras_dst.SET(0.8, update_interval=10, seed=0)
        model = compile_model(self.mlp())
        x, y = self.classification_data()
        model.fit(x[:32], y[:32], epochs=1, verbose=0)
        callback.set_model(model)
        callback.set_params({"epochs": 1, "steps": 100, "verbose": 0})
        callback.on_train_begin()
        callback.on_epoch_begin(0)
        # This fit's epoch 0 starts at optimizer step 1: the schedule
        # counts from there, the first update is at step 1 + 10.
        callback.set_model(Forbidden())
        callback.updater = Forbidden()  # nor the engine, which holds state
        for batch in range(0, 10):
            callback.on_train_batch_begin(batch)  # must not touch the model
        with self.assertRaisesRegex(AssertionError, "touched the model"):
            callback.on_train_batch_begin(10)  # the update does

    @parameterized.named_parameters(("set", "SET"), ("gmp", "GMP"))
    def test_keys_fixed_when_a_sub_model_is_walked_mid_fit(self, method):
        # A walk of a sub-model (here `summary` of the encoder after each
        # epoch) gives its layers shorter paths; the running engine's keys
        # stay those of the model it was prepared on.
        encoder = keras.Sequential(
            [
                keras.Input((16,)),
                keras_dst.layers.SparseDense(32, activation="relu"),
                keras_dst.layers.SparseDense(16, activation="relu"),
            ],
            name="encoder",
        )
        model = compile_model(
            keras.Sequential(
                [keras.Input((16,)), encoder, keras_dst.layers.SparseDense(4)]
            )
        )

        class Walk(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                keras_dst.summary(encoder, print_fn=lambda _: None)

        if method == "GMP":
            callback = keras_dst.GMP(
                0.8, begin=0.0, end=1.0, update_interval=2, per_layer_logs=True
            )
        else:
            callback = keras_dst.SET(
                0.8, update_interval=2, seed=0, per_layer_logs=True
            )
        _, history = self.fit(callback, epochs=3, model=model, extra=[Walk()])
        inner = [keras_dst.layer_path(x) for x in encoder.layers]
        self.assertEqual(inner, [x.name for x in encoder.layers])  # walked
        paths = [f"encoder/{x.name}" for x in encoder.layers]
        paths.append(model.layers[-1].name)
        self.assertEqual(callback.updater.paths, paths)
        records = callback.updater.history
        self.assertGreater(len(records), 3)
        for record in records:
            self.assertEqual(list(record["k"]), paths)
            self.assertEqual(list(record["layers"]), paths)
        self.assertEqual(list(callback.itop_rate_per_layer), paths)
        for key in history.history:
            self.assertNotIn("/encoder/", key)
        self.assertLen(history.history["itop_rate/" + paths[-1]], 3)

    def test_typed_records_and_their_dicts(self):
        callback = keras_dst.RigL(0.8, update_interval=2, seed=0)
        self.fit(callback, epochs=1)
        records = callback.updater.records
        self.assertNotEmpty(records)
        self.assertLen(callback.history, len(records))
        for record, entry in zip(records, callback.history, strict=True):
            self.assertIsInstance(record, keras_dst.UpdateRecord)
            self.assertEqual(record.growth, "gradient")
            self.assertEqual(list(record.layers), callback.updater.paths)
            for path, outcome in record.layers.items():
                self.assertIsInstance(outcome, keras_dst.LayerOutcome)
                self.assertEqual(outcome.pruned, record.k[path])
                self.assertEqual(outcome.grown, record.k[path])
            self.assertEqual(record.as_dict(), entry)
            self.assertEqual(
                set(entry),
                {
                    "step",
                    "drop_fraction",
                    "growth",
                    "k",
                    "itop_rate",
                    "sparsity",
                    "layers",
                },
            )
        # One explicit read of the counts gives every summary.
        counts = callback.updater.layer_counts()
        self.assertEqual(counts.paths, callback.updater.paths)
        self.assertEqual(counts.itop_rate, callback.itop_rate)
        self.assertEqual(counts.sparsity, callback.sparsity)
        self.assertEqual(
            counts.itop_rate_per_layer, callback.itop_rate_per_layer
        )
        self.assertEqual(list(counts.active), callback.updater.active_counts)
        self.assertEqual(counts.itop_rate, records[-1].itop_rate)
        # GMP's `prune_to` grows nothing and names no growth criterion.
        gmp = keras_dst.GMP(0.8, begin=0.0, end=0.5, update_interval=2)
        self.fit(gmp, epochs=1)
        for record in gmp.updater.records:
            self.assertIsNone(record.growth)
            self.assertIsNone(record.drop_fraction)
            for outcome in record.layers.values():
                self.assertEqual(outcome.grown, 0)

    def test_mask_changes_do_not_retrace(self):
        traces = []

        class Counting(keras.layers.Layer):
            def call(self, x):
                traces.append(1)  # runs only when the step is traced
                return x

        def model():
            return compile_model(
                keras.Sequential(
                    [keras.Input((16,)), Counting(), *self.mlp().layers]
                )
            )

        self.fit(keras_dst.Static(0.8), epochs=3, model=model())
        static = len(traces)
        traces.clear()
        callback = keras_dst.SET(0.8, update_interval=2, update_end=1.0)
        self.fit(callback, epochs=3, model=model())
        self.assertGreaterEqual(len(callback.updater.history), 10)
        self.assertEqual(len(traces), static)

    def test_no_sparse_layers_error(self):
        model = compile_model(
            keras.Sequential([keras.Input((16,)), keras.layers.Dense(4)])
        )
        with self.assertRaisesRegex(ValueError, "no sparse layers"):
            self.fit(keras_dst.SET(0.9), model=model)

    def test_gradient_growth_needs_probe(self):
        model = compile_model(self.mlp(dense_gradient=False))
        with self.assertRaisesRegex(ValueError, "dense_gradient=True"):
            self.fit(keras_dst.RigL(0.9), model=model)

    @parameterized.named_parameters(
        ("sparsity_high", dict(sparsity=1.0), "sparsity"),
        ("sparsity_low", dict(sparsity=-0.1), "sparsity"),
        ("sparsity_none", dict(sparsity=None), "sparsity"),
        (
            "interval_zero",
            dict(sparsity=0.9, update_interval=0),
            "update_interval",
        ),
        (
            "interval_neg",
            dict(sparsity=0.9, update_interval=-5),
            "update_interval",
        ),
        (
            "interval_float",
            dict(sparsity=0.9, update_interval=2.5),
            "update_interval",
        ),
        ("drop_high", dict(sparsity=0.9, drop_fraction=1.5), "drop_fraction"),
        ("drop_low", dict(sparsity=0.9, drop_fraction=-0.1), "drop_fraction"),
        ("growth", dict(sparsity=0.9, growth="magic"), "growth"),
        ("prune", dict(sparsity=0.9, prune="random"), "prune"),
        (
            "schedule",
            dict(sparsity=0.9, drop_schedule="linear"),
            "drop_schedule",
        ),
        (
            "distribution",
            dict(sparsity=0.9, distribution="xyz"),
            "distribution",
        ),
        ("update_end", dict(sparsity=0.9, update_end=1.5), "update_end"),
        ("update_end_neg", dict(sparsity=0.9, update_end=-3), "update_end"),
        ("seed", dict(sparsity=0.9, seed="a"), "seed"),
        ("momentum", dict(sparsity=0.9, momentum=1.0), "momentum"),
    )
    def test_bad_arguments(self, kwargs, name):
        with self.assertRaisesRegex((ValueError, TypeError), name):
            keras_dst.DynamicSparsityCallback(**kwargs)


class UpdaterTest(TestCase):
    """One update, checked entry by entry against numpy."""

    def dense_gradient(self, model, x, y):
        """dL/dkernel of a plain Keras model, per Dense layer, with the
        backend's own autodiff (independent of the probes)."""
        kernels = [x.kernel for x in model.layers if hasattr(x, "kernel")]
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        return self.gradients(model, kernels, x, y, loss_fn)

    def prepared(self, growth, sparsity=0.5):
        model = compile_model(
            self.mlp((6, 8, 3), sparsity=sparsity, mask_seed=0)
        )
        x, y = self.classification_data(features=6, classes=3)
        model.fit(x, y, batch_size=256, epochs=1, verbose=0)
        updater = keras_dst.SparseUpdater(growth=growth, seed=0)
        updater.prepare(model)
        return model, updater, (x, y)

    def test_prune_smallest_magnitudes_grow_random(self):
        model, updater, _ = self.prepared("random")
        layers = keras_dst.sparse_layers(model)
        before = [
            (
                layer.get_mask().reshape(-1),
                self.to_numpy(layer.kernel_variable).reshape(-1),
            )
            for layer in layers
        ]
        self.assertTrue(updater.update(model, step=7, drop_fraction=0.25))
        for layer, (mask, kernel) in zip(layers, before, strict=True):
            new = layer.get_mask().reshape(-1).astype(bool)
            kernel_new = self.to_numpy(layer.kernel_variable).reshape(-1)
            k = int(np.floor(0.25 * mask.sum()))
            self.assertGreater(k, 0)
            active = np.flatnonzero(mask)
            order = np.argsort(np.abs(kernel[active]), kind="stable")
            pruned = active[order[:k]]  # the k smallest |w| (no ties here)
            kept = np.setdiff1d(active, pruned)
            # Survivors stay active with their weights unchanged.
            self.assertTrue(new[kept].all())
            np.testing.assert_array_equal(kernel_new[kept], kernel[kept])
            # Exactly k grown (just-pruned ones eligible), all at 0.0.
            grown = np.setdiff1d(np.flatnonzero(new), kept)
            self.assertEqual(grown.size, k)
            self.assertEqual(new.sum(), mask.sum())
            self.assertTrue(np.all(kernel_new[grown] == 0.0))
            self.assertTrue(np.all(kernel_new[~new] == 0.0))

    def test_gradient_growth_uses_the_dense_gradient(self):
        model, updater, (x, y) = self.prepared("gradient", sparsity=0.7)
        layers = keras_dst.sparse_layers(model)
        # An independent dense gradient: a plain Keras twin holding the
        # masked kernels, differentiated with the backend's autodiff.
        plain = keras_dst.strip(model)
        grads = self.dense_gradient(plain, x, y)
        # The probes were filled by the last fit step on the same batch
        # (before weights moved): use a zero learning rate step to refill.
        # (Momentum still moves the weights in that step: the expected
        # prune set comes from the weights read after it.)
        model.optimizer.learning_rate.assign(0.0)
        model.fit(x, y, batch_size=256, epochs=1, verbose=0)
        before = [
            (x.get_mask(), self.to_numpy(x.kernel_variable)) for x in layers
        ]
        for layer, g in zip(layers, grads, strict=True):
            np.testing.assert_allclose(
                self.to_numpy(layer.kernel_gradient), g, rtol=1e-4, atol=1e-6
            )
        self.assertTrue(updater.update(model, step=1, drop_fraction=0.3))
        for layer, g, (mask, kernel) in zip(layers, grads, before, strict=True):
            new = layer.get_mask().reshape(-1)
            mask, kernel = mask.reshape(-1), kernel.reshape(-1)
            g = np.abs(g.reshape(-1))
            k = int(np.floor(0.3 * mask.sum()))
            active = np.flatnonzero(mask)
            order = np.argsort(np.abs(kernel[active]), kind="stable")
            pruned = mask.astype(bool).copy()
            pruned[active[order[:k]]] = False
            inactive = np.flatnonzero(~pruned)
            expected_grown = set(inactive[np.argsort(-g[inactive])[:k]])
            grown = set(np.flatnonzero(new.astype(bool) & ~pruned))
            self.assertEqual(new.sum(), mask.sum())
            self.assertEqual(grown, expected_grown)
            # The survivors are exactly the expected ones.
            np.testing.assert_array_equal(new.astype(bool) & pruned, pruned)

    def test_growth_never_picks_active_positions(self):
        # All-zero gradients (dead units): still exactly k grown, all among
        # the inactive positions; density does not drop.
        model, updater, _ = self.prepared("gradient", sparsity=0.5)
        for layer in keras_dst.sparse_layers(model):
            layer.kernel_gradient.assign(
                np.zeros(layer.kernel_gradient.shape, "float32")
            )
        counts = self.active_counts(model)
        self.assertTrue(updater.update(model, step=1, drop_fraction=0.5))
        self.assertEqual(self.active_counts(model), counts)
        self.assertModelExactSparsity(model, counts)

    def test_failed_update_changes_nothing(self):
        model, updater, _ = self.prepared("gradient")
        layers = keras_dst.sparse_layers(model)
        bad = np.zeros(layers[-1].kernel_gradient.shape, "float32")
        bad[0, 0] = np.nan
        layers[-1].kernel_gradient.assign(bad)
        before = [
            (x.get_mask(), self.to_numpy(x.kernel_variable)) for x in layers
        ]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.assertFalse(updater.update(model, step=1, drop_fraction=0.5))
        self.assertTrue(any("skipped" in str(w.message) for w in caught))
        for layer, (mask, kernel) in zip(layers, before, strict=True):
            np.testing.assert_array_equal(layer.get_mask(), mask)
            np.testing.assert_array_equal(
                self.to_numpy(layer.kernel_variable), kernel
            )
        self.assertEqual(updater.history, [])

    def test_update_before_prepare(self):
        updater = keras_dst.SparseUpdater()
        with self.assertRaisesRegex(RuntimeError, "prepare"):
            updater.update(None, 1, 0.3)

    @parameterized.named_parameters(
        ("random", "random"), ("gradient", "gradient"), ("momentum", "momentum")
    )
    def test_update_matches_numpy_with_ties(self, growth):
        # Equal magnitudes and equal (often zero) gradients everywhere: the
        # one tie rule (lowest flat index) decides most of the selection.
        model, updater, _ = self.prepared(growth, sparsity=0.5)
        layers = keras_dst.sparse_layers(model)
        rng = np.random.default_rng(3)
        for layer in layers:
            mask = layer.get_mask()
            kernel = rng.integers(-2, 3, mask.shape) * 0.25 * mask
            layer.kernel_variable.assign(kernel.astype("float32"))
            if layer.kernel_gradient is not None:
                probe = rng.integers(0, 3, mask.shape) * 0.5
                probe[: mask.shape[0] // 2] = 0.0
                layer.kernel_gradient.assign(probe.astype("float32"))
        # Nonzero slots everywhere (inactive entries too, which the engine
        # never leaves so): the update must keep survivors' slots and zero
        # every other entry's, grown and pruned-and-regrown included.
        slot_values = []
        for layer in layers:
            slots = slot_variables(model.optimizer, layer.kernel_variable)
            self.assertLen(slots, 1)  # SGD momentum
            values = rng.normal(size=tuple(slots[0].shape)).astype("float32")
            slots[0].assign(values)
            slot_values.append(values.reshape(-1))
        before = [
            (x.get_mask(), self.to_numpy(x.kernel_variable)) for x in layers
        ]
        probes = [
            None
            if x.kernel_gradient is None
            else self.to_numpy(x.kernel_gradient)
            for x in layers
        ]
        step = 1234
        self.assertTrue(updater.update(model, step=step, drop_fraction=0.5))
        for i, (layer, (mask, kernel)) in enumerate(
            zip(layers, before, strict=True)
        ):
            k = int(np.floor(0.5 * mask.sum()))
            if growth == "random":
                score = reference_uniform(updater.seed, step, i, mask.size)
            else:
                score = np.abs(probes[i])
            want, survive = reference_update(mask, kernel, score, k)
            got = layer.get_mask().reshape(-1).astype(bool)
            np.testing.assert_array_equal(got, want)
            kernel_new = self.to_numpy(layer.kernel_variable).reshape(-1)
            np.testing.assert_array_equal(
                kernel_new, np.where(survive, kernel.reshape(-1), 0.0)
            )
            (slot,) = slot_variables(model.optimizer, layer.kernel_variable)
            np.testing.assert_array_equal(
                self.to_numpy(slot).reshape(-1),
                np.where(survive, slot_values[i], 0.0),
            )

    def test_compiled_once_for_every_fraction_and_step(self):
        # Compilations are shared by updaters of the same model structure
        # (a compile cache): shapes no other test uses make this updater
        # the first, so it traces exactly once. On PyTorch the update runs
        # eagerly: nothing is traced, ever.
        traced = 0 if self.backend == "torch" else 1
        model = compile_model(self.mlp((5, 23, 19, 3), sparsity=0.5))
        model.fit(*self.classification_data(features=5, classes=3), verbose=0)
        updater = keras_dst.SparseUpdater(growth="gradient", seed=0)
        updater.prepare(model)
        self.assertTrue(updater.update(model, 1, 0.5))
        self.assertEqual(updater.traces, traced)
        for i, fraction in enumerate((0.3, 0.01, 0.25, 1.0, 0.0, 0.4)):
            self.assertTrue(updater.update(model, 10 * i + 11, fraction))
        self.assertEqual(updater.traces, traced)
        self.assertLen(updater.history, 7)
        # A second updater of the same structure reuses the compilation
        # (its own count: 0); a model of new shapes is traced once more.
        again = keras_dst.SparseUpdater(growth="gradient", seed=1)
        again.prepare(model)
        self.assertTrue(again.update(model, 100, 0.3))
        self.assertEqual(again.traces, 0)
        other = compile_model(self.mlp((7, 13, 5), sparsity=0.5, mask_seed=1))
        other.fit(*self.classification_data(features=7, classes=5), verbose=0)
        again.prepare(other)
        for i in range(3):
            self.assertTrue(again.update(other, 5 + i, 0.2 + 0.1 * i))
        self.assertEqual(again.traces, traced)

    def test_set_mask_between_updates_is_seen(self):
        # No copy of the masks in the updater: it starts from the layer.
        model, updater, _ = self.prepared("random", sparsity=0.5)
        layer = keras_dst.sparse_layers(model)[0]
        old = layer.get_mask()
        new = keras_dst.masks.random_mask(old.shape, 0.5, seed=99)
        self.assertEqual(int(new.sum()), int(old.sum()))
        layer.set_mask(new, optimizer=model.optimizer)
        kernel = self.to_numpy(layer.kernel_variable)
        self.assertTrue(updater.update(model, step=5, drop_fraction=0.5))
        k = int(np.floor(0.5 * new.sum()))
        score = reference_uniform(updater.seed, 5, 0, new.size)
        want, _ = reference_update(new, kernel, score, k)
        np.testing.assert_array_equal(
            layer.get_mask().reshape(-1).astype(bool), want
        )

    def test_wait_false_reports_at_the_next_read(self):
        model, updater, _ = self.prepared("gradient")
        self.assertIsNone(updater.update(model, 3, 0.5, wait=False))
        layer = keras_dst.sparse_layers(model)[-1]
        bad = np.zeros(layer.kernel_gradient.shape, "float32")
        bad[0, 0] = np.inf
        layer.kernel_gradient.assign(bad)
        mask = layer.get_mask()
        self.assertIsNone(updater.update(model, 6, 0.5, wait=False))
        np.testing.assert_array_equal(layer.get_mask(), mask)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history = updater.history
        self.assertEqual([h["step"] for h in history], [3])
        messages = [str(w.message) for w in caught]
        self.assertTrue(any("step 6 skipped" in m for m in messages))

    def test_random_growth_itop_rate_matches_expectation(self):
        # E[R_s] = 1 - (N - A) / N * prod_t (1 - k / (N - A + k)): a
        # never-active entry is a candidate at every update, and random
        # growth takes k of the N - A + k candidates uniformly.
        model = compile_model(
            self.mlp((40, 50, 40, 50), sparsity=0.9, mask_seed=1)
        )
        model.fit(*self.classification_data(features=40), verbose=0)
        updater = keras_dst.SparseUpdater(growth="random", seed=5)
        updater.prepare(model)
        n, a = 2000, 200
        k = 50
        self.assertEqual(updater.active_counts, [a, a, a])
        for t in range(1, 31):
            self.assertTrue(updater.update(model, 100 * t, k / a))
            if t in (5, 30):
                expected = 1 - (n - a) / n * (1 - k / (n - a + k)) ** t
                rates = list(updater.itop_rate_per_layer.values())
                # Each layer's rate has sd < 0.011 (a binomial bound).
                self.assertAlmostEqual(np.mean(rates), expected, delta=0.025)
                for rate in rates:
                    self.assertAlmostEqual(rate, expected, delta=0.05)
        self.assertEqual(updater.active_counts, [a, a, a])

    def test_snfs_probe_holds_gradient_momentum(self):
        model, updater, (x, y) = self.prepared("momentum")
        layer = keras_dst.sparse_layers(model)[0]
        self.assertAlmostEqual(
            float(self.to_numpy(layer.kernel_gradient_momentum)), 0.9
        )
        model.optimizer.learning_rate.assign(0.0)
        g = self.dense_gradient(keras_dst.strip(model), x, y)[0]
        start = self.to_numpy(layer.kernel_gradient)
        model.fit(x, y, batch_size=256, epochs=1, verbose=0)
        np.testing.assert_allclose(
            self.to_numpy(layer.kernel_gradient),
            0.9 * start + 0.1 * g,
            rtol=1e-4,
            atol=1e-6,
        )


def reference_update(mask, kernel, grow_score, k):
    """One update in numpy: (new flat mask, flat survivors)."""
    mask = np.asarray(mask).reshape(-1).astype(bool)
    kernel = np.asarray(kernel).reshape(-1)
    pruned = reference_select(np.abs(kernel), mask, k, largest=False)
    survive = mask & ~pruned
    grown = reference_select(np.reshape(grow_score, -1), ~survive, k)
    return survive | grown, survive


if __name__ == "__main__":
    absltest.main()
