"""Long-run invariants: thousands of steps on a tiny model.

At every update: exact active counts, inactive weights exactly 0.0, all
weights finite, R_s never decreasing and equal to the union of the masks
seen so far.
"""

import keras
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

import keras_dst
from tests.test_case import TestCase

STEPS = 2000


class UpdateChecker(keras.callbacks.Callback):
    """Runs after the DST callback: checks the state after each update."""

    def __init__(self, test, dst):
        super().__init__()
        self.test, self.dst = test, dst
        self.seen = 0
        self.rates = []
        self.union = None

    def on_train_batch_begin(self, batch, logs=None):
        if len(self.dst.updater.history) == self.seen:
            return  # no update at this step
        self.seen = len(self.dst.updater.history)
        layers = keras_dst.sparse_layers(self.model)
        masks = [layer.get_mask().astype(bool) for layer in layers]
        if self.union is None:
            self.union = [m.copy() for m in self.initial]
        self.union = [u | m for u, m in zip(self.union, masks, strict=True)]
        for layer, mask, count in zip(layers, masks, self.counts, strict=True):
            kernel = self.test.to_numpy(layer.kernel_variable)
            self.test.assertEqual(int(mask.sum()), count)
            self.test.assertTrue(np.all(kernel[~mask] == 0.0))
            self.test.assertTrue(np.all(np.isfinite(kernel)))
        rate = self.dst.itop_rate
        expected = sum(int(u.sum()) for u in self.union) / sum(
            u.size for u in self.union
        )
        self.test.assertAlmostEqual(rate, expected, places=12)
        if self.rates:
            self.test.assertGreaterEqual(rate, self.rates[-1])
        self.rates.append(rate)

    def on_train_begin(self, logs=None):
        layers = keras_dst.sparse_layers(self.model)
        self.initial = [layer.get_mask().astype(bool) for layer in layers]
        self.counts = [int(m.sum()) for m in self.initial]


class SoakTest(TestCase):
    @parameterized.named_parameters(
        ("set_sgd", "random", keras.optimizers.SGD, 0.05),
        ("rigl_adam", "gradient", keras.optimizers.Adam, 0.005),
    )
    def test_invariants_hold_for_thousands_of_steps(self, growth, opt, lr):
        model = self.mlp((8, 16, 16, 4), sparsity=0.8, mask_seed=0)
        model.compile(
            opt(lr),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        x, y = self.classification_data(n=800, features=8)
        dst = keras_dst.DynamicSparsityCallback(
            0.8,
            growth=growth,
            drop_fraction=0.3,
            update_interval=10,
            update_end=1.0,
            seed=0,
        )
        checker = UpdateChecker(self, dst)
        epochs = STEPS // 100
        history = model.fit(
            x,
            y,
            batch_size=8,
            epochs=epochs,
            verbose=0,
            callbacks=[dst, checker],
        )
        self.assertEqual(int(self.to_numpy(model.optimizer.iterations)), STEPS)
        self.assertLen(dst.updater.history, STEPS // 10 - 1)
        self.assertLen(checker.rates, STEPS // 10 - 1)  # checked each one
        self.assertTrue(np.isfinite(history.history["loss"]).all())
        self.assertModelExactSparsity(model)
        # Exploration happened: far more weights were tried than are active.
        self.assertGreater(dst.itop_rate, 1.5 * (1.0 - dst.sparsity))


if __name__ == "__main__":
    absltest.main()
