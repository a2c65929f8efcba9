"""Mixed precision: exact masks, slots reset, growth unaffected by scaling."""

import keras
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

import keras_dst
from keras_dst.optimizers import slot_variables
from tests.engine_test import StepChecker
from tests.test_case import TestCase

POLICIES = ("mixed_float16", "mixed_bfloat16")


def erk_counts(model, callback):
    """Active count per layer path of the callback's ERK allocation."""
    layers = keras_dst.sparse_layers(model)
    shapes = {
        keras_dst.layer_path(x): tuple(x.kernel_variable.shape) for x in layers
    }
    sparsities = keras_dst.masks.allocate(
        shapes, callback.sparsity_target, "erk"
    )
    return {
        path: keras_dst.masks.active_count(
            int(np.prod(shape)), sparsities[path]
        )
        for path, shape in shapes.items()
    }


class MixedPrecisionTest(TestCase):
    def setUp(self):
        super().setUp()
        self.addCleanup(keras.mixed_precision.set_global_policy, "float32")

    def train(self, policy, callback, optimizer=None, epochs=2):
        keras.mixed_precision.set_global_policy(policy)
        model = self.mlp()
        model.compile(
            optimizer or keras.optimizers.SGD(0.05, momentum=0.9),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        x, y = self.classification_data()
        # Exact zeros after every step, and the active counts of the ERK
        # allocation (the masks are drawn in the first epoch).
        checker = StepChecker(self, erk_counts(model, callback))
        model.fit(
            x,
            y,
            batch_size=32,
            epochs=epochs,
            verbose=0,
            callbacks=[callback, checker],
        )
        self.assertEqual(checker.steps, epochs * 8)
        return model, (x, y)

    @parameterized.parameters(
        ("mixed_float16", "random", "sgdm"),
        ("mixed_float16", "gradient", "adam"),
        ("mixed_bfloat16", "random", "adam"),
        ("mixed_bfloat16", "gradient", "sgdm"),
    )
    def test_exact_masks_and_slots(self, policy, growth, opt):
        optimizer = (
            keras.optimizers.Adam(0.01)
            if opt == "adam"
            else keras.optimizers.SGD(0.05, momentum=0.9)
        )
        callback = keras_dst.DynamicSparsityCallback(
            0.8, growth=growth, update_interval=4, seed=0
        )
        model, _ = self.train(policy, callback, optimizer)
        wrapped = isinstance(
            model.optimizer, keras.optimizers.LossScaleOptimizer
        )
        self.assertEqual(wrapped, policy == "mixed_float16")
        self.assertNotEmpty(callback.updater.history)
        self.assertModelExactSparsity(model)
        for layer in keras_dst.sparse_layers(model):
            self.assertEqual(layer.kernel_variable.dtype, "float32")
            self.assertEqual(layer.compute_dtype, policy.split("_")[1])
            inactive = layer.get_mask() == 0
            slots = slot_variables(model.optimizer, layer.kernel_variable)
            self.assertNotEmpty(slots)  # the INNER optimizer's slots
            for slot in slots:
                self.assertTrue(np.all(self.to_numpy(slot)[inactive] == 0.0))

    @parameterized.parameters(*POLICIES)
    def test_gradient_probe_is_the_unscaled_gradient(self, policy):
        callback = keras_dst.RigL(0.7, update_interval=4, seed=0)
        model, (x, y) = self.train(policy, callback, epochs=1)
        # Independent float32 gradient of the same (masked) network, at the
        # weights the next step starts from (the probe's gradient is taken
        # there; momentum moves the weights even at a zero rate).
        keras.mixed_precision.set_global_policy("float32")
        plain = keras_dst.strip(model)
        # Refill the probes with a zero-rate step on the whole data.
        inner = getattr(model.optimizer, "inner_optimizer", model.optimizer)
        inner.learning_rate.assign(0.0)
        model.fit(x, y, batch_size=256, epochs=1, verbose=0)
        reference = keras.Sequential(
            [keras.Input((16,))]
            + [
                keras.layers.Dense(
                    layer.units, activation=layer.activation, dtype="float32"
                )
                for layer in plain.layers
            ]
        )
        reference.set_weights(plain.get_weights())
        kernels = [layer.kernel for layer in reference.layers]
        grads = self.gradients(
            reference,
            kernels,
            x,
            y,
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        for layer, g in zip(keras_dst.sparse_layers(model), grads, strict=True):
            probe = callback.updater.dense_gradient(layer, model.optimizer)
            probe = probe.ravel()
            g = g.ravel()
            ratio = np.linalg.norm(probe) / np.linalg.norm(g)
            cosine = probe @ g / (np.linalg.norm(probe) * np.linalg.norm(g))
            # A probe left scaled (loss scale 2**15) or shrunk would be off
            # by orders of magnitude; half precision (bfloat16: 8 bits of
            # mantissa) costs a few percent.
            self.assertBetween(ratio, 0.9, 1.1)
            self.assertGreater(cosine, 0.97)

    def test_momentum_growth_with_loss_scaling_is_refused(self):
        with self.assertRaisesRegex(ValueError, "LossScaleOptimizer"):
            self.train("mixed_float16", keras_dst.SNFS(0.8, seed=0))

    def test_momentum_growth_with_bfloat16(self):
        callback = keras_dst.SNFS(0.8, update_interval=4, seed=0)
        model, _ = self.train("mixed_bfloat16", callback)
        self.assertNotEmpty(callback.updater.history)
        self.assertModelExactSparsity(model)


if __name__ == "__main__":
    absltest.main()
