"""Sparse layer tests: masks, forward pass, training, gradient probe, saving.

Every layer type of `keras_dst.layers` is checked against its Keras parent,
on the backend that `KERAS_BACKEND` selects: the layers with a mask of
their own by the public contract `keras_dst.testing.run_sparse_layer_test`
(which a user's own sparse layer must pass too), `SparseMultiHeadAttention`
(its masks are on sub-layers) by the equivalent tests below.
"""

import os
import tempfile

import keras
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

import keras_dst
from keras_dst import layers as sparse
from keras_dst.layers import SparseLayer
from keras_dst.layers import masked_weight_property
from keras_dst.masks import active_count
from keras_dst.testing import run_sparse_layer_test
from tests.test_case import TestCase


# A sparse layer keras_dst does not ship, written as the docs show
# (docs/guides/sparse-layer.md): it must pass the same contract.
@keras.saving.register_keras_serializable(package="keras_dst_tests")
class SparseConv1DTranspose(SparseLayer, keras.layers.Conv1DTranspose):
    kernel = masked_weight_property(keras.layers.Conv1DTranspose, "kernel")


# Broken on purpose: the masked property is missing, so the kernel's
# gradient is not masked and a training step moves inactive entries.
@keras.saving.register_keras_serializable(package="keras_dst_tests")
class UnmaskedSparseDense(SparseLayer, keras.layers.Dense):
    pass


# name -> how to build the sparse layer, its Keras parent and its input.
# `shape` includes the batch dimension; `vocab` marks integer inputs.
LAYER_SPECS = {
    "SparseDense": dict(
        cls=sparse.SparseDense,
        plain=keras.layers.Dense,
        kwargs=dict(units=6),
        shape=(4, 5),
    ),
    "SparseEinsumDense": dict(
        cls=sparse.SparseEinsumDense,
        plain=keras.layers.EinsumDense,
        kwargs=dict(equation="abc,cd->abd", output_shape=(3, 6), bias_axes="d"),
        shape=(4, 3, 5),
    ),
    "SparseConv1D": dict(
        cls=sparse.SparseConv1D,
        plain=keras.layers.Conv1D,
        kwargs=dict(filters=4, kernel_size=3),
        shape=(4, 7, 3),
    ),
    "SparseConv2D": dict(
        cls=sparse.SparseConv2D,
        plain=keras.layers.Conv2D,
        kwargs=dict(filters=4, kernel_size=3, padding="same"),
        shape=(4, 5, 5, 3),
    ),
    "SparseConv3D": dict(
        cls=sparse.SparseConv3D,
        plain=keras.layers.Conv3D,
        kwargs=dict(filters=3, kernel_size=2),
        shape=(4, 3, 3, 3, 2),
    ),
    "SparseConv2DTranspose": dict(
        cls=sparse.SparseConv2DTranspose,
        plain=keras.layers.Conv2DTranspose,
        kwargs=dict(filters=3, kernel_size=3, strides=2),
        shape=(4, 3, 3, 4),
    ),
    "SparseDepthwiseConv2D": dict(
        cls=sparse.SparseDepthwiseConv2D,
        plain=keras.layers.DepthwiseConv2D,
        kwargs=dict(kernel_size=3, depth_multiplier=2),
        shape=(4, 5, 5, 3),
    ),
    "SparseEmbedding": dict(
        cls=sparse.SparseEmbedding,
        plain=keras.layers.Embedding,
        kwargs=dict(input_dim=12, output_dim=6),
        shape=(4, 5),
        vocab=12,
    ),
    "SparseReversibleEmbedding": dict(
        cls=sparse.SparseReversibleEmbedding,
        plain=keras.layers.ReversibleEmbedding,
        kwargs=dict(input_dim=12, output_dim=6),
        shape=(4, 5),
        vocab=12,
    ),
    "SparseMultiHeadAttention": dict(
        cls=sparse.SparseMultiHeadAttention,
        plain=keras.layers.MultiHeadAttention,
        kwargs=dict(num_heads=2, key_dim=3),
        shape=(4, 5, 6),
        attention=True,
    ),
}
NAMES = [(name, name) for name in LAYER_SPECS]
# The layers with one mask of their own (`SparseLayer`s), for the contract;
# the others (masks on sub-layers) keep the tests the contract replaces.
CONTRACT_NAMES = [
    (name, name)
    for name, spec in LAYER_SPECS.items()
    if issubclass(spec["cls"], SparseLayer)
]
COMPOSITE_NAMES = [
    (name, name)
    for name, spec in LAYER_SPECS.items()
    if not issubclass(spec["cls"], SparseLayer)
]
SPARSE_EXTRAS = (
    "kernel_mask",
    "kernel_explored",
    "kernel_gradient",
    "kernel_gradient_momentum",
)


def make_input(spec, seed=0):
    rng = np.random.default_rng(seed)
    if "vocab" in spec:
        return rng.integers(0, spec["vocab"], size=spec["shape"]).astype(
            "int32"
        )
    return rng.normal(size=spec["shape"]).astype("float32")


def apply(spec, layer, x):
    if spec.get("attention"):
        return layer(x, x)
    return layer(x)


def make_sparse(spec, **kwargs):
    return spec["cls"](**spec["kwargs"], name="lyr", **kwargs)


def make_plain(spec):
    return spec["plain"](**spec["kwargs"], name="lyr")


def wrap(spec, layer):
    """A functional model around one layer."""
    dtype = "int32" if "vocab" in spec else "float32"
    inputs = keras.Input(spec["shape"][1:], dtype=dtype)
    return keras.Model(inputs, apply(spec, layer, inputs))


def core_variables(layer):
    """Path -> variable for the weights a plain Keras layer also has."""
    return {v.path: v for v in layer.weights if v.name not in SPARSE_EXTRAS}


class SparseLayersTest(TestCase):
    def tempdir(self):
        return self.enter_context(tempfile.TemporaryDirectory())

    def spec(self, name):
        return LAYER_SPECS[name]

    def masked_values(self, layer):
        """Path -> numpy value of each core weight, kernels times mask."""
        masks = {
            sub.kernel_variable.path: sub.get_mask()
            for sub in keras_dst.sparse_layers(layer)
        }
        values = {}
        for path, variable in core_variables(layer).items():
            value = self.to_numpy(variable)
            if path in masks:
                value = value * masks[path]
            values[path] = value
        return values

    def plain_twin(self, spec, values):
        """The Keras parent layer, built, holding `values` (by path)."""
        plain = make_plain(spec)
        apply(spec, plain, make_input(spec))
        self.assertEqual(sorted(v.path for v in plain.weights), sorted(values))
        for variable in plain.weights:
            variable.assign(values[variable.path])
        return plain

    def dense_gradients(self, model, variables, x, y):
        """d(MSE)/d(variable) for each of `variables` of a plain `model`,
        with the backend's own autodiff (independent of the probes)."""
        return self.gradients(
            model, variables, x, y, keras.losses.MeanSquaredError(), True
        )

    # ------------------------------------------------------------------
    # The public contract (keras_dst.testing).

    @parameterized.named_parameters(CONTRACT_NAMES)
    def test_sparse_layer_contract(self, name):
        spec = self.spec(name)
        run_sparse_layer_test(
            spec["cls"],
            spec["kwargs"],
            input_data=make_input(spec),
            parent_cls=spec["plain"],
        )

    def test_contract_passes_on_a_new_three_line_layer(self):
        for dense_gradient in (True, False):
            run_sparse_layer_test(
                SparseConv1DTranspose,
                dict(filters=3, kernel_size=3, dense_gradient=dense_gradient),
                input_shape=(4, 6, 2),
            )

    def test_contract_fails_on_a_broken_layer(self):
        # Everything up to training holds (Dense keeps its kernel where
        # `kernel_variable` finds it, and masks write exact zeros) ...
        with self.assertRaisesRegex(
            AssertionError,
            r"run_sparse_layer_test\(UnmaskedSparseDense\): \d+ inactive "
            r"kernel entries are not exactly 0.0 after one SGD step: the "
            r"kernel's gradient is not masked",
        ):
            run_sparse_layer_test(
                UnmaskedSparseDense, dict(units=4), input_shape=(4, 5)
            )

        # ... and a parent that stores the kernel elsewhere fails at build.
        class UnmaskedConv1DTranspose(
            SparseLayer, keras.layers.Conv1DTranspose
        ):
            pass

        with self.assertRaisesRegex(
            AssertionError, "calling it on the input failed.*no raw `kernel`"
        ):
            run_sparse_layer_test(
                UnmaskedConv1DTranspose,
                dict(filters=3, kernel_size=3),
                input_shape=(4, 6, 2),
            )

    def test_contract_checks_its_own_arguments(self):
        with self.assertRaisesRegex(ValueError, "`layer_cls`"):
            run_sparse_layer_test(keras.layers.Dense, {}, input_shape=(2, 3))
        with self.assertRaisesRegex(ValueError, "`init_kwargs`.*sparsity"):
            run_sparse_layer_test(
                sparse.SparseDense, dict(units=2, sparsity=0.5), (2, 3)
            )
        with self.assertRaisesRegex(ValueError, "exactly one of"):
            run_sparse_layer_test(sparse.SparseDense, dict(units=2))

    # ------------------------------------------------------------------
    # Masks.

    @parameterized.named_parameters(COMPOSITE_NAMES)
    def test_build_and_exact_sparsity(self, name):
        spec = self.spec(name)
        for sparsity in (0.0, 0.3, 0.75, 0.95):
            layer = make_sparse(spec, sparsity=sparsity, mask_seed=1)
            out = apply(spec, layer, make_input(spec))
            self.assertEqual(out.shape[0], spec["shape"][0])
            subs = keras_dst.sparse_layers(layer)
            self.assertLen(subs, 4 if spec.get("attention") else 1)
            for sub in subs:
                size = int(np.prod(sub.kernel_variable.shape))
                want = int(np.floor((1 - sparsity) * size + 0.5))
                self.assertEqual(want, active_count(size, sparsity))
                self.assertExactSparsity(sub, want)
                self.assertEqual(sub.kernel_mask.dtype, "uint8")
                self.assertFalse(sub.kernel_mask.trainable)
                trainable = {id(v) for v in layer.trainable_weights}
                self.assertNotIn(id(sub.kernel_mask), trainable)
                self.assertEqual(
                    tuple(sub.kernel_mask.shape),
                    tuple(sub.kernel_variable.shape),
                )
                # Masked entries were zeroed; the active ones were not.
                kernel = self.to_numpy(sub.kernel_variable)
                mask = sub.get_mask()
                self.assertTrue(np.all(kernel[mask == 1] != 0))

    @parameterized.named_parameters(COMPOSITE_NAMES)
    def test_default_mask_is_dense(self, name):
        spec = self.spec(name)
        layer = make_sparse(spec)
        apply(spec, layer, make_input(spec))
        for sub in keras_dst.sparse_layers(layer):
            self.assertIsNone(sub.sparsity)
            self.assertTrue(np.all(sub.get_mask() == 1))
            self.assertEqual(sub.get_mask().dtype, np.uint8)

    @parameterized.named_parameters(NAMES)
    def test_same_seed_same_mask(self, name):
        spec = self.spec(name)
        masks = []
        for seed in (5, 5, 6):
            layer = make_sparse(spec, sparsity=0.5, mask_seed=seed)
            apply(spec, layer, make_input(spec))
            masks.append([s.get_mask() for s in keras_dst.sparse_layers(layer)])
        for a, b in zip(masks[0], masks[1], strict=True):
            np.testing.assert_array_equal(a, b)
        self.assertFalse(
            all(
                np.array_equal(a, c)
                for a, c in zip(masks[0], masks[2], strict=True)
            )
        )

    # ------------------------------------------------------------------
    # Forward pass.

    @parameterized.named_parameters(COMPOSITE_NAMES)
    def test_output_equals_parent_with_masked_kernel(self, name):
        spec = self.spec(name)
        x = make_input(spec, seed=1)
        layer = make_sparse(spec, sparsity=0.6, mask_seed=2)
        apply(spec, layer, x)
        # Write a dense raw kernel (nonzero where the mask is 0) and nonzero
        # biases, then re-apply the mask with `set_mask` (the documented
        # way after a raw write): the output uses kernel * mask.
        rng = np.random.default_rng(3)
        for variable in core_variables(layer).values():
            variable.assign(
                rng.normal(size=tuple(variable.shape)).astype("float32")
            )
        raw = {
            sub.kernel_variable.path: self.to_numpy(sub.kernel_variable)
            for sub in keras_dst.sparse_layers(layer)
        }
        for sub in keras_dst.sparse_layers(layer):
            sub.set_mask(sub.get_mask())
        values = self.masked_values(layer)
        for sub in keras_dst.sparse_layers(layer):
            mask = sub.get_mask().astype(bool)
            path = sub.kernel_variable.path
            np.testing.assert_array_equal(
                self.to_numpy(sub.kernel_variable), np.where(mask, raw[path], 0)
            )
        plain = self.plain_twin(spec, values)
        got = self.to_numpy(apply(spec, layer, x))
        want = self.to_numpy(apply(spec, plain, x))
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        # The raw (unmasked) kernel would give something else.
        values.update(raw)
        unmasked = self.plain_twin(spec, values)
        self.assertGreater(
            np.abs(self.to_numpy(apply(spec, unmasked, x)) - got).max(), 1e-3
        )

    # ------------------------------------------------------------------
    # Training and the gradient probe.

    @parameterized.named_parameters(COMPOSITE_NAMES)
    def test_fit_keeps_zeros_and_probe_holds_dense_gradient(self, name):
        spec = self.spec(name)
        x = make_input(spec, seed=4)
        layer = make_sparse(spec, sparsity=0.5, mask_seed=7)
        model = wrap(spec, layer)
        y = np.random.default_rng(5).normal(size=model.output.shape[1:])
        y = np.broadcast_to(y, (x.shape[0], *y.shape)).astype("float32")
        model.compile(keras.optimizers.SGD(0.1), loss="mse")
        subs = keras_dst.sparse_layers(model)
        counts = [int(s.get_mask().sum()) for s in subs]
        masks = [s.get_mask() for s in subs]
        start = [self.to_numpy(s.kernel_variable) for s in subs]
        for _ in range(2):
            # Reference: the dense gradient of the same loss on the same
            # (single) batch, w.r.t. the kernel of a plain Keras twin that
            # holds the masked kernel, taken before the step.
            plain = self.plain_twin(spec, self.masked_values(layer))
            plain_model = wrap(spec, plain)
            plain_kernels = [
                core_variables(plain)[s.kernel_variable.path] for s in subs
            ]
            want = self.dense_gradients(plain_model, plain_kernels, x, y)
            model.fit(
                x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0
            )
            for sub, count, mask, grad in zip(
                subs, counts, masks, want, strict=True
            ):
                self.assertExactSparsity(sub, count)
                np.testing.assert_array_equal(sub.get_mask(), mask)
                probe = self.to_numpy(sub.kernel_gradient)
                np.testing.assert_allclose(probe, grad, rtol=1e-4, atol=1e-6)
                # Dense: the probe is nonzero where the mask is zero too.
                self.assertGreater(np.count_nonzero(probe[mask == 0]), 0)
        for sub, before in zip(subs, start, strict=True):
            after = self.to_numpy(sub.kernel_variable)
            moved = after[sub.get_mask() == 1] != before[sub.get_mask() == 1]
            self.assertGreater(moved.mean(), 0.5, "training did not move")

    @parameterized.named_parameters(NAMES)
    def test_dense_gradient_false_has_no_probe(self, name):
        spec = self.spec(name)
        layer = make_sparse(spec, sparsity=0.5, dense_gradient=False)
        model = wrap(spec, layer)
        for sub in keras_dst.sparse_layers(layer):
            self.assertIsNone(sub.kernel_gradient)
            self.assertFalse(sub.dense_gradient)
        names = {v.name for v in layer.weights}
        self.assertNotIn("kernel_gradient", names)
        self.assertNotIn("kernel_gradient_momentum", names)
        self.assertIn("kernel_mask", names)
        plain = make_plain(spec)
        apply(spec, plain, make_input(spec))
        self.assertLen(layer.trainable_weights, len(plain.trainable_weights))
        # Training still works and keeps the zeros.
        x = make_input(spec)
        y = np.ones((x.shape[0], *model.output.shape[1:]), "float32")
        model.compile(keras.optimizers.SGD(0.1), loss="mse")
        counts = self.active_counts(model)
        model.fit(x, y, batch_size=len(x), epochs=2, verbose=0)
        self.assertModelExactSparsity(model, counts)

    # ------------------------------------------------------------------
    # Serialization.

    @parameterized.named_parameters(COMPOSITE_NAMES)
    def test_config_round_trip(self, name):
        spec = self.spec(name)
        layer = make_sparse(
            spec, sparsity=0.7, mask_seed=11, dense_gradient=False
        )
        config = layer.get_config()
        self.assertEqual(config["sparsity"], 0.7)
        self.assertEqual(config["mask_seed"], 11)
        self.assertFalse(config["dense_gradient"])
        clone = spec["cls"].from_config(config)
        self.assertIs(type(clone), spec["cls"])
        self.assertEqual(clone.get_config(), config)
        # Same config (same seed) -> same masks once built.
        apply(spec, layer, make_input(spec))
        apply(spec, clone, make_input(spec))
        for a, b in zip(
            keras_dst.sparse_layers(layer),
            keras_dst.sparse_layers(clone),
            strict=True,
        ):
            np.testing.assert_array_equal(a.get_mask(), b.get_mask())
            self.assertIsNone(b.kernel_gradient)

    @parameterized.named_parameters(COMPOSITE_NAMES)
    def test_keras_file_round_trip(self, name):
        spec = self.spec(name)
        x = make_input(spec, seed=2)
        model = wrap(spec, make_sparse(spec, sparsity=0.8, mask_seed=3))
        # Train a step so the probe and the kernels are not at init.
        y = np.ones((x.shape[0], *model.output.shape[1:]), "float32")
        model.compile(keras.optimizers.SGD(0.1), loss="mse")
        model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
        path = os.path.join(self.tempdir(), "m.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        old, new = (keras_dst.sparse_layers(m) for m in (model, loaded))
        self.assertLen(new, len(old))
        for a, b in zip(old, new, strict=True):
            self.assertIs(type(b), type(a))
            self.assertEqual(b.path, a.path)
            self.assertEqual(b.get_mask().dtype, np.uint8)
            np.testing.assert_array_equal(b.get_mask(), a.get_mask())
            np.testing.assert_array_equal(
                self.to_numpy(b.kernel_variable),
                self.to_numpy(a.kernel_variable),
            )
            # The probe holds last step's gradient: saved as zeros.
            self.assertTrue(np.any(self.to_numpy(a.kernel_gradient)))
            np.testing.assert_array_equal(
                self.to_numpy(b.kernel_gradient),
                np.zeros_like(self.to_numpy(a.kernel_gradient)),
            )
            self.assertEqual(b.sparsity, a.sparsity)
            self.assertEqual(b.mask_seed, a.mask_seed)
        np.testing.assert_array_equal(
            loaded.predict(x, verbose=0), model.predict(x, verbose=0)
        )

    @parameterized.named_parameters(NAMES)
    def test_weights_file_round_trip(self, name):
        spec = self.spec(name)
        x = make_input(spec, seed=2)
        model = wrap(spec, make_sparse(spec, sparsity=0.8, mask_seed=3))
        path = os.path.join(self.tempdir(), "m.weights.h5")
        model.save_weights(path)
        # A model with other masks and weights gets them all back.
        other = wrap(spec, make_sparse(spec, sparsity=0.3, mask_seed=4))
        for a, b in zip(
            *(keras_dst.sparse_layers(m) for m in (model, other)), strict=True
        ):
            self.assertFalse(np.array_equal(a.get_mask(), b.get_mask()))
        other.load_weights(path)
        for a, b in zip(
            *(keras_dst.sparse_layers(m) for m in (model, other)), strict=True
        ):
            np.testing.assert_array_equal(b.get_mask(), a.get_mask())
            self.assertExactSparsity(b, int(a.get_mask().sum()))
        np.testing.assert_array_equal(
            other.predict(x, verbose=0), model.predict(x, verbose=0)
        )

    # ------------------------------------------------------------------
    # Argument checking.

    @parameterized.named_parameters(NAMES)
    def test_bad_arguments(self, name):
        spec = self.spec(name)
        for value in (-0.1, 1.0, 1.5, float("nan")):
            with self.assertRaisesRegex(ValueError, "`sparsity`"):
                make_sparse(spec, sparsity=value)
        for value in ("x", True, [0.5]):
            with self.assertRaisesRegex(TypeError, "`sparsity`"):
                make_sparse(spec, sparsity=value)
        for value in ("a", 1.5, True):
            with self.assertRaisesRegex(TypeError, "`mask_seed`"):
                make_sparse(spec, mask_seed=value)
        for value in ("yes", 1, None):
            with self.assertRaisesRegex(TypeError, "`dense_gradient`"):
                make_sparse(spec, dense_gradient=value)

    def test_table_covers_every_sparse_twin(self):
        tested = {spec["cls"]: spec["plain"] for spec in LAYER_SPECS.values()}
        twins = {v: k for k, v in sparse.SPARSE_TWINS.items()}
        self.assertEqual(tested, twins)
        for cls, plain in tested.items():
            self.assertTrue(issubclass(cls, plain))

    def test_set_mask_validates_and_zeroes(self):
        layer = sparse.SparseDense(3, name="d")
        layer(np.ones((1, 4), "float32"))
        with self.assertRaisesRegex(ValueError, "shape"):
            layer.set_mask(np.ones((3, 4)))
        with self.assertRaisesRegex(ValueError, "0 and 1"):
            layer.set_mask(np.full((4, 3), 2))
        mask = np.zeros((4, 3), "uint8")
        mask[1, 2] = mask[3, 0] = 1
        before = self.to_numpy(layer.kernel_variable)
        layer.set_mask(mask)
        self.assertExactSparsity(layer, 2)
        kernel = self.to_numpy(layer.kernel_variable)
        np.testing.assert_array_equal(kernel, before * mask)

    def test_set_mask_with_optimizer_resets_slots(self):
        # Pruning mid-training: without the slot reset, leftover momentum
        # moves just-masked weights off zero at the next step.
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 8)).astype("float32")
        y = rng.integers(0, 2, 64)
        model = keras.Sequential([keras.Input((8,)), sparse.SparseDense(2)])
        model.compile(
            keras.optimizers.SGD(0.1, momentum=0.9),
            "sparse_categorical_crossentropy",
        )
        model.fit(x, y, batch_size=16, verbose=0)
        layer = model.layers[0]
        mask = np.ones((8, 2), "uint8")
        mask[:4] = 0
        layer.set_mask(mask, optimizer=model.optimizer)
        model.fit(x, y, batch_size=16, verbose=0)
        self.assertExactSparsity(layer, 8)

    def test_untied_reversible_embedding_masks_both_tables(self):
        layer = sparse.SparseReversibleEmbedding(
            12, 6, tie_weights=False, sparsity=0.5, mask_seed=3
        )
        ids = np.arange(8, dtype="int32").reshape(2, 4)
        hidden = self.to_numpy(layer(ids))
        projection = layer.reverse_projection
        self.assertEqual(
            [keras_dst.layer_path(x) for x in keras_dst.sparse_layers(layer)],
            [layer.name, f"{layer.name}/reverse_projection"],
        )
        # Each table has its own exact mask; the projection's variable
        # is saved once, in the projection.
        for part in (layer, projection):
            self.assertExactSparsity(part, 36)
        self.assertFalse(
            np.array_equal(layer.get_mask(), projection.get_mask().T)
        )
        self.assertLen(layer.weights, 10)
        table = self.to_numpy(layer.kernel_variable) * layer.get_mask()
        np.testing.assert_allclose(hidden, table[ids], rtol=1e-6)
        reverse = self.to_numpy(projection.kernel_variable)
        np.testing.assert_allclose(
            self.to_numpy(layer(hidden, reverse=True)),
            hidden @ (reverse * projection.get_mask()),
            rtol=1e-5,
            atol=1e-6,
        )
        # Saved and loaded with the model; stripped to the Keras layer.
        inputs = keras.Input((4,), dtype="int32")
        model = keras.Model(inputs, layer(layer(inputs), reverse=True))
        path = os.path.join(self.tempdir(), "m.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        for a, b in zip(
            keras_dst.sparse_layers(model),
            keras_dst.sparse_layers(loaded),
            strict=True,
        ):
            np.testing.assert_array_equal(a.get_mask(), b.get_mask())
        np.testing.assert_array_equal(
            loaded.predict(ids, verbose=0), model.predict(ids, verbose=0)
        )
        stripped = keras_dst.strip(model)
        plain = stripped.layers[1]
        self.assertIs(type(plain), keras.layers.ReversibleEmbedding)
        np.testing.assert_allclose(
            stripped.predict(ids, verbose=0),
            model.predict(ids, verbose=0),
            rtol=1e-6,
        )

    def test_lora_and_quantize_refused(self):
        layer = sparse.SparseDense(3)
        layer(np.ones((1, 4), "float32"))
        with self.assertRaisesRegex(NotImplementedError, "strip"):
            layer.enable_lora(2)
        with self.assertRaisesRegex(NotImplementedError, "strip"):
            layer.quantize("int8")


if __name__ == "__main__":
    absltest.main()
