"""GMP: dense-to-sparse gradual magnitude pruning (Zhu & Gupta, 2017)."""

import keras
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

import keras_dst
from keras_dst.masks import active_count
from keras_dst.masks import allocate
from keras_dst.schedules import cubic_sparsity
from tests.engine_test import Forbidden
from tests.engine_test import compile_model
from tests.test_case import TestCase


class CountRecorder(keras.callbacks.Callback):
    """Active counts and exact zeros after every step (test only)."""

    def __init__(self, test):
        super().__init__()
        self.test = test
        self.counts = []

    def on_train_batch_end(self, batch, logs=None):
        model = self.model  # syncs the JAX state first
        self.test.assertModelExactSparsity(model)
        self.counts.append(self.test.active_counts(model))


class CubicScheduleTest(TestCase):
    def test_matches_tfmot_polynomial_decay(self):
        # tfmot's PolynomialDecay(0 -> 0.9, steps 0..1000, power 3) at
        # steps 0/100/500/1000 (values read from tfmot 0.8.1).
        for fraction, expected in ((0.0, 0.0), (0.1, 0.2439), (0.5, 0.7875)):
            self.assertAlmostEqual(
                cubic_sparsity(fraction, 0.9), expected, places=4
            )
        self.assertEqual(cubic_sparsity(1.0, 0.9), 0.9)

    def test_clamped_and_monotone(self):
        values = [cubic_sparsity(f, 0.8, 0.2) for f in np.linspace(-1, 2, 61)]
        self.assertAlmostEqual(values[0], 0.2)
        self.assertEqual(values[-1], 0.8)
        self.assertTrue(np.all(np.diff(values) >= 0))


class GMPTest(TestCase):
    def run_gmp(self, callback, epochs=3, optimizer=None):
        x, y = self.classification_data(n=64)
        model = compile_model(self.mlp(), optimizer)
        recorder = CountRecorder(self)
        model.fit(
            x,
            y,
            batch_size=8,
            epochs=epochs,
            verbose=0,
            callbacks=[callback, recorder],
        )
        return model, recorder.counts

    @parameterized.named_parameters(
        ("uniform_momentum", "uniform", "momentum"),
        ("erk_adam", "erk", "adam"),
    )
    def test_prunes_on_schedule_to_exact_counts(self, distribution, opt):
        optimizer = {
            "momentum": keras.optimizers.SGD(0.05, momentum=0.9),
            "adam": keras.optimizers.Adam(0.01),
        }[opt]
        gmp = keras_dst.GMP(
            0.8,
            distribution=distribution,
            begin=0.2,
            end=0.8,
            update_interval=2,
        )
        model, counts = self.run_gmp(gmp, optimizer=optimizer)
        # 3 epochs x 8 steps: t0 = int(0.2 * 24) = 4, n = (19 - 4) // 2
        # = 7 pruning steps after t0: steps 4, 6, ..., 18.
        steps = [4 + 2 * k for k in range(8)]
        self.assertEqual([h["step"] for h in gmp.history], steps)
        layers = keras_dst.sparse_layers(model)
        shapes = {
            keras_dst.layer_path(layer): tuple(layer.kernel_variable.shape)
            for layer in layers
        }
        final = allocate(shapes, 0.8, distribution)
        for step, seen in enumerate(counts):
            k = sum(1 for s in steps if s <= step) - 1
            for path, shape in shapes.items():
                size = int(np.prod(shape))
                want = size
                if k >= 0:
                    want = active_count(
                        size, cubic_sparsity(k / 7, final[path])
                    )
                self.assertEqual(seen[path], want, f"step {step} {path}")
        total = sum(int(np.prod(s)) for s in shapes.values())
        self.assertAlmostEqual(gmp.sparsity, 0.8, delta=len(shapes) / total)
        self.assertEqual(gmp.itop_rate, 1.0)  # every weight active at t=0
        # Pruned weights (and their slots) stay exactly 0 after pruning.
        model.fit(*self.classification_data(n=64), epochs=1, verbose=0)
        self.assertModelExactSparsity(
            model,
            {
                p: active_count(int(np.prod(s)), final[p])
                for p, s in shapes.items()
            },
        )

    def test_prunes_smallest_magnitudes(self):
        gmp = keras_dst.GMP(0.5, distribution="uniform", begin=0.0, end=0.0)
        model = compile_model(self.mlp())
        model.fit(*self.classification_data(n=8), batch_size=8, verbose=0)
        gmp.set_model(model)
        gmp.layers = keras_dst.sparse_layers(model)
        before = [self.to_numpy(layer.kernel_variable) for layer in gmp.layers]
        gmp.prune_to({keras_dst.layer_path(layer): 0.5 for layer in gmp.layers})
        for layer, w in zip(gmp.layers, before, strict=True):
            mask = layer.get_mask().astype(bool)
            self.assertEqual(int(mask.sum()), active_count(w.size, 0.5))
            self.assertGreaterEqual(
                np.abs(w[mask]).min(), np.abs(w[~mask]).max()
            )

    def test_logs_sparsity_and_itop_rate(self):
        gmp = keras_dst.GMP(0.75, distribution="uniform", update_interval=1)
        x, y = self.classification_data(n=64)
        model = compile_model(self.mlp())
        history = model.fit(
            x, y, batch_size=8, epochs=4, verbose=0, callbacks=[gmp]
        )
        sparsity = history.history["sparsity"]
        self.assertEqual(history.history["itop_rate"], [1.0] * 4)
        self.assertTrue(np.all(np.diff(sparsity) >= 0))
        self.assertGreater(sparsity[1], 0.0)
        self.assertAlmostEqual(sparsity[-1], 0.75, delta=0.01)

    def test_no_model_access_between_pruning_steps(self):
        gmp = keras_dst.GMP(0.8, begin=0.5, end=1.0, update_interval=10)
        model = compile_model(self.mlp())
        model.fit(*self.classification_data(n=8), batch_size=8, verbose=0)
        gmp.set_model(model)
        gmp.set_params({"epochs": 1, "steps": 100, "verbose": 0})
        gmp.on_train_begin()
        gmp.on_epoch_begin(0)  # this fit's step 0 is optimizer step 1
        gmp.set_model(Forbidden())
        gmp.updater = Forbidden()  # nor the engine, which holds state
        for batch in range(50):
            gmp.on_train_batch_begin(batch)  # before t0: no access
        with self.assertRaisesRegex(AssertionError, "touched the model"):
            gmp.on_train_batch_begin(50)  # t0 = 50: the first pruning

    def test_resumed_fit_prunes_as_one_fit(self):
        class StopAfter(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == 1:
                    self.model.stop_training = True  # "interrupted"

        def train(*fits):
            keras.utils.set_random_seed(7)
            model = compile_model(self.mlp())
            for initial_epoch, extra in fits:  # the same fit arguments
                model.fit(
                    x,
                    y,
                    batch_size=8,
                    epochs=4,
                    initial_epoch=initial_epoch,
                    shuffle=False,
                    verbose=0,
                    callbacks=[keras_dst.GMP(0.8, update_interval=3), *extra],
                )
            return [
                layer.get_mask() for layer in keras_dst.sparse_layers(model)
            ]

        x, y = self.classification_data(n=64)
        one = train((0, []))
        resumed = train((0, [StopAfter()]), (2, []))
        for a, b in zip(one, resumed, strict=True):
            np.testing.assert_array_equal(a, b)
        self.assertLess(
            sum(int(m.sum()) for m in one), 0.3 * sum(m.size for m in one)
        )

    @parameterized.named_parameters(
        ("sparsity_one", {"sparsity": 1.0}, "sparsity"),
        ("sparsity_negative", {"sparsity": -0.1}, "sparsity"),
        ("sparsity_none", {"sparsity": None}, "sparsity"),
        ("begin_after_end", {"begin": 0.8, "end": 0.5}, "begin"),
        ("end_above_one", {"end": 1.5}, "end"),
        ("interval_zero", {"update_interval": 0}, "update_interval"),
        ("interval_float", {"update_interval": 2.5}, "update_interval"),
        ("interval_bool", {"update_interval": True}, "update_interval"),
        ("distribution", {"distribution": "gaussian"}, "distribution"),
    )
    def test_bad_arguments(self, kwargs, name):
        args = {"sparsity": 0.9, **kwargs}
        with self.assertRaisesRegex(ValueError, f"`{name}`"):
            keras_dst.GMP(**args)

    def test_model_without_sparse_layers(self):
        model = compile_model(
            keras.Sequential([keras.Input((16,)), keras.layers.Dense(4)])
        )
        x, y = self.classification_data(n=16)
        with self.assertRaisesRegex(ValueError, "sparse layers"):
            model.fit(x, y, verbose=0, callbacks=[keras_dst.GMP(0.9)])

    def test_unknown_steps(self):
        def data():  # finite, of unknown length
            for _ in range(3):
                yield self.classification_data(n=8)

        model = compile_model(self.mlp())
        with self.assertRaisesRegex(ValueError, "steps_per_epoch"):
            model.fit(
                data(),
                epochs=1,
                steps_per_epoch=None,
                verbose=0,
                callbacks=[keras_dst.GMP(0.9)],
            )


if __name__ == "__main__":
    absltest.main()
