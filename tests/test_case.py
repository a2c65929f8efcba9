"""Shared test helpers: one TestCase for every suite, on any backend."""

import os
import tempfile

# Quiet TensorFlow's C++ logs before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl.testing import parameterized  # noqa: E402

import keras_dst  # noqa: E402

# The backend whose suite runs the tests that need to run once per suite,
# not once per backend: a benchmark's --quick run, which starts its own
# processes with the backend it measures. tests/run_all.py runs the
# backends' suites side by side, and PyTorch's finishes minutes before the
# others (measured: 632 s against TensorFlow's 1474 s and JAX's 1279 s).
ONCE_PER_SUITE = "torch"


class TestCase(parameterized.TestCase):
    """absltest TestCase with sparse-training assertions.

    Every test starts from a fixed global seed and a clean Keras session.
    """

    def setUp(self):
        super().setUp()
        keras.backend.clear_session()
        keras.utils.set_random_seed(1234)

    def temp_dir(self):
        """A fresh directory, removed after the test (works under pytest,
        unlike absltest's `create_tempdir`, which needs parsed flags)."""
        return self.enter_context(tempfile.TemporaryDirectory())

    @property
    def backend(self):
        return keras.backend.backend()

    def to_numpy(self, x):
        if hasattr(x, "value") and not hasattr(x, "shape_as_list"):
            x = x.value
        return np.array(keras.ops.convert_to_numpy(x))

    def assertExactSparsity(self, layer, expected_active=None):
        """Mask is 0/1, kernel is exactly 0.0 where the mask is 0."""
        mask = layer.get_mask()
        kernel = self.to_numpy(layer.kernel_variable)
        self.assertEqual(mask.dtype, np.uint8)
        self.assertTrue(np.isin(mask, (0, 1)).all(), "mask not 0/1")
        inactive = kernel[mask == 0]
        self.assertTrue(
            np.all(inactive == 0.0),
            f"layer {layer.name}: {np.count_nonzero(inactive)} inactive "
            "kernel entries are not exactly 0.0",
        )
        if expected_active is not None:
            self.assertEqual(int(mask.sum()), int(expected_active))

    def assertSameRun(self, model, reference, callback, reference_callback):
        """A resumed (or reloaded) run equals its uninterrupted reference:
        masks and unions per layer, in order, every trainable weight bit
        for bit (what the README promises), and the callbacks' R_s."""
        for layer, ref in zip(
            keras_dst.sparse_layers(model),
            keras_dst.sparse_layers(reference),
            strict=True,
        ):
            np.testing.assert_array_equal(layer.get_mask(), ref.get_mask())
            np.testing.assert_array_equal(
                layer.get_explored(), ref.get_explored()
            )
        for a, b in zip(
            model.trainable_weights, reference.trainable_weights, strict=True
        ):
            np.testing.assert_array_equal(self.to_numpy(a), self.to_numpy(b))
        self.assertEqual(callback.itop_rate, reference_callback.itop_rate)

    def assertModelExactSparsity(self, model, expected=None):
        """`expected`: optional {layer path: active count}."""
        for layer in keras_dst.sparse_layers(model):
            want = (
                None
                if expected is None
                else expected[keras_dst.layer_path(layer)]
            )
            self.assertExactSparsity(layer, want)

    def active_counts(self, model):
        return {
            keras_dst.layer_path(layer): int(layer.get_mask().sum())
            for layer in keras_dst.sparse_layers(model)
        }

    def gradients(self, model, variables, x, y, loss_fn, training=False):
        """d(loss_fn(y, model(x)))/d(variable) for each of `variables`.

        Computed with the backend's own autodiff (tf.GradientTape,
        jax.grad over `stateless_call`, torch.autograd), independently of
        keras_dst's gradient probes. Numpy arrays.
        """
        if self.backend == "tensorflow":
            import tensorflow as tf

            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=training))
            grads = tape.gradient(loss, variables)
            return [self.to_numpy(tf.convert_to_tensor(g)) for g in grads]
        if self.backend == "jax":
            import jax

            trainable = [v.value for v in model.trainable_variables]
            non_trainable = [v.value for v in model.non_trainable_variables]
            ids = [id(t) for t in model.trainable_variables]
            index = [ids.index(id(v)) for v in variables]

            def loss_of(chosen):
                values = list(trainable)
                for i, value in zip(index, chosen, strict=True):
                    values[i] = value
                out, _ = model.stateless_call(
                    values, non_trainable, x, training=training
                )
                return loss_fn(y, out)

            grads = jax.grad(loss_of)([trainable[i] for i in index])
            return [np.asarray(g) for g in grads]
        if self.backend == "torch":
            import torch

            loss = loss_fn(y, model(x, training=training))
            grads = torch.autograd.grad(loss, [v.value for v in variables])
            return [g.detach().cpu().numpy() for g in grads]
        self.fail(f"no autodiff reference for backend {self.backend}")

    def mlp(self, sizes=(16, 32, 32, 4), sparsity=None, **kwargs):
        """A small Sequential MLP of SparseDense layers."""
        layers = [keras.Input((sizes[0],))]
        for i, units in enumerate(sizes[1:]):
            last = i == len(sizes) - 2
            layers.append(
                keras_dst.layers.SparseDense(
                    units,
                    activation=None if last else "relu",
                    sparsity=sparsity,
                    **kwargs,
                )
            )
        return keras.Sequential(layers)

    def classification_data(self, n=256, features=16, classes=4, seed=0):
        """A small, learnable classification problem (generated)."""
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, features)).astype("float32")
        w = rng.normal(size=(features, classes)).astype("float32")
        y = np.argmax(x @ w, axis=1).astype("int32")
        return x, y
