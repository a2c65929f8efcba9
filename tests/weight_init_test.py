"""Sparsity-aware initialization: a deep sparse MLP keeps its signal.

With masks of density `d` and the dense initialization, each layer's
pre-activation variance shrinks by ~`d`; `weight_init="sparse_scaled"`
(the default for masks keras_dst draws) scales the active weights by
`1 / sqrt(d)` so the forward variance stays that of the dense network.
"""

import keras
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

import keras_dst
from tests.test_case import TestCase

UNITS = (1000, 1000, 1000)


def dense_mlp():
    inputs = keras.Input((784,))
    x = inputs
    for units in UNITS:
        x = keras.layers.Dense(units, activation="relu")(x)
    return keras.Model(inputs, x)


def layer_variances(model, x):
    """Variance of every Dense layer's output on `x`."""
    layers = [layer for layer in model.layers if hasattr(layer, "kernel")]
    probe = keras.Model(model.inputs, [layer.output for layer in layers])
    return np.array(
        [float(np.var(keras.ops.convert_to_numpy(y))) for y in probe(x)]
    )


class WeightInitTest(TestCase):
    def setUp(self):
        super().setUp()
        self.x = np.random.default_rng(0).uniform(size=(256, 784))
        self.x = self.x.astype("float32")
        self.dense = dense_mlp()
        self.dense_var = layer_variances(self.dense, self.x)

    @parameterized.parameters("sparse_scaled", "unscaled")
    def test_forward_variance_of_a_98_percent_sparse_mlp(self, weight_init):
        sparse = keras_dst.sparsify(
            self.dense, 0.98, "erk", weight_init=weight_init, seed=0
        )
        self.assertAlmostEqual(
            keras_dst.sparsity_report(sparse)["total"]["sparsity"],
            0.98,
            places=3,
        )
        ratio = layer_variances(sparse, self.x) / self.dense_var
        if weight_init == "sparse_scaled":
            # Every layer within 2x of the dense network's variance.
            self.assertTrue(
                np.all((ratio > 0.5) & (ratio < 2.0)), f"ratios {ratio}"
            )
        else:
            # The papers' unscaled start: the signal collapses with depth.
            self.assertLess(ratio[-1], 1e-3, f"ratios {ratio}")

    def test_scale_is_one_over_sqrt_density_and_only_on_active(self):
        sparse = keras_dst.sparsify(self.dense, 0.9, "uniform", seed=1)
        for old, new in zip(
            self.dense.layers[1:], keras_dst.sparse_layers(sparse), strict=True
        ):
            mask = new.get_mask().astype(bool)
            kernel = self.to_numpy(new.kernel_variable)
            before = self.to_numpy(old.kernel)
            density = mask.mean()
            self.assertAlmostEqual(density, 0.1, places=6)
            np.testing.assert_allclose(
                kernel[mask], before[mask] / np.sqrt(density), rtol=1e-6
            )
            self.assertExactSparsity(new)
        unscaled = keras_dst.sparsify(
            self.dense, 0.9, "uniform", seed=1, weight_init="unscaled"
        )
        for old, new in zip(
            self.dense.layers[1:],
            keras_dst.sparse_layers(unscaled),
            strict=True,
        ):
            mask = new.get_mask().astype(bool)
            np.testing.assert_array_equal(
                self.to_numpy(new.kernel_variable)[mask],
                self.to_numpy(old.kernel)[mask],
            )

    def test_magnitude_masks_keep_trained_weights(self):
        sparse = keras_dst.sparsify(
            self.dense, 0.9, "uniform", mask_init="magnitude"
        )
        for old, new in zip(
            self.dense.layers[1:], keras_dst.sparse_layers(sparse), strict=True
        ):
            mask = new.get_mask().astype(bool)
            np.testing.assert_array_equal(
                self.to_numpy(new.kernel_variable)[mask],
                self.to_numpy(old.kernel)[mask],
            )

    @parameterized.parameters("sparse_scaled", "unscaled")
    def test_callback_draws_with_its_weight_init(self, weight_init):
        model = keras.Sequential(
            [
                keras.Input((20,)),
                keras_dst.layers.SparseDense(64, activation="relu"),
                keras_dst.layers.SparseDense(4),
            ]
        )
        before = [self.to_numpy(w.kernel_variable) for w in model.layers]
        model.compile("sgd", "mse")
        callback = keras_dst.SET(
            0.75, weight_init=weight_init, update_interval=1000, seed=0
        )
        model.fit(
            np.zeros((8, 20), "float32"),
            np.zeros((8, 4), "float32"),
            epochs=1,
            verbose=0,
            callbacks=[callback],
        )
        for layer, kernel in zip(model.layers, before, strict=True):
            mask = layer.get_mask().astype(bool)
            # Zero inputs and targets: SGD leaves the kernel unchanged.
            scale = 1 / np.sqrt(mask.mean())
            if weight_init == "unscaled":
                scale = 1.0
            np.testing.assert_allclose(
                self.to_numpy(layer.kernel_variable)[mask],
                kernel[mask] * scale,
                rtol=1e-6,
            )
            self.assertExactSparsity(layer)

    def test_layer_sparsity_argument_scales_and_saves_the_choice(self):
        x = np.ones((2, 50), "float32")
        init = {"class_name": "GlorotUniform", "config": {"seed": 7}}
        scaled = keras_dst.layers.SparseDense(
            40, sparsity=0.96, mask_seed=3, kernel_initializer=init
        )
        scaled(x)
        plain = keras_dst.layers.SparseDense(
            40,
            sparsity=0.96,
            mask_seed=3,
            kernel_initializer=init,
            weight_init="unscaled",
        )
        plain(x)
        mask = scaled.get_mask().astype(bool)
        np.testing.assert_array_equal(mask, plain.get_mask().astype(bool))
        np.testing.assert_allclose(
            self.to_numpy(scaled.kernel_variable)[mask],
            self.to_numpy(plain.kernel_variable)[mask] * 5.0,
            rtol=1e-6,
        )
        self.assertEqual(plain.get_config()["weight_init"], "unscaled")

    def test_bad_weight_init_names_the_argument(self):
        for make in (
            lambda: keras_dst.SET(0.9, weight_init="he"),
            lambda: keras_dst.layers.SparseDense(4, weight_init="he"),
            lambda: keras_dst.initialize_masks(
                self.dense_sparse(), 0.9, weight_init="he"
            ),
        ):
            with self.assertRaisesRegex(ValueError, "`weight_init` must be"):
                make()

    def dense_sparse(self):
        return keras_dst.sparsify(self.dense)


if __name__ == "__main__":
    absltest.main()
