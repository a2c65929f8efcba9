"""`save_model`: deflated `.keras` archives the stock loader reads
bit-identically, float16 deployable copies, and the size estimates of
`sparsity_report`."""

import os
import zipfile

import keras
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

import keras_dst
from tests.test_case import TestCase

BATCH = 32  # 256 samples: 8 steps per epoch
STEPS = 8
EPOCHS = 2


class SaveAndStop(keras.callbacks.Callback):
    """Saves with `save_model` after the first epoch and stops."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        keras_dst.save_model(self.model, self.path)
        self.model.stop_training = True


def sizes(path):
    return os.path.getsize(path)


class SaveModelTest(TestCase):
    def compiled(self, model):
        model.compile(
            keras.optimizers.SGD(0.05, momentum=0.9),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model

    def big_mlp(self, sparsity=0.9, train=True, dense_gradient=True):
        """784-300-100-10 with masks drawn at `sparsity`; `train`: one step
        (optimizer slots and gradient probes are non-trivial)."""
        model = self.mlp(
            sizes=(784, 300, 100, 10), dense_gradient=dense_gradient
        )
        keras_dst.initialize_masks(model, sparsity, seed=1)
        x, y = self.classification_data(n=32, features=784, classes=10)
        if train:
            self.compiled(model).fit(x, y, batch_size=32, epochs=1, verbose=0)
        return model, x

    def cnn(self):
        inputs = keras.Input((10, 10, 3))
        h = keras_dst.layers.SparseConv2D(8, 3)(inputs)
        h = keras.layers.BatchNormalization()(h)
        h = keras.layers.ReLU()(h)
        h = keras.layers.GlobalAveragePooling2D()(h)
        outputs = keras_dst.layers.SparseDense(4)(h)
        model = self.compiled(keras.Model(inputs, outputs))
        keras_dst.initialize_masks(model, 0.8, seed=2)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(32, 10, 10, 3)).astype("float32")
        y = rng.integers(0, 4, size=32).astype("int32")
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        return model, x

    def variables(self, model):
        found = list(model.weights)
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None:
            found += list(optimizer.variables)
        return found

    def assertBitIdentical(self, loaded, model):
        """Every variable bit-identical, but gradient probes (without
        momentum), which are saved as zeros."""
        a, b = self.variables(loaded), self.variables(model)
        self.assertEqual(len(a), len(b))
        probes = 0
        for u, v in zip(a, b, strict=True):
            self.assertEqual(u.shape, v.shape)
            self.assertEqual(u.dtype, v.dtype)
            is_probe = v.path.endswith("/kernel_gradient")
            u, v = self.to_numpy(u), self.to_numpy(v)
            if is_probe:
                probes += np.any(v)  # a trained probe is not zero
                v = np.zeros_like(v)
            self.assertEqual(u.tobytes(), v.tobytes(), "not bit-identical")
        return probes

    def assertDeflatedLike(self, path, reference):
        """A valid zip with the reference's members, all deflated."""
        with zipfile.ZipFile(path) as z, zipfile.ZipFile(reference) as r:
            self.assertIsNone(z.testzip())
            names = [i.filename for i in z.infolist()]
            self.assertEqual(names, [i.filename for i in r.infolist()])
            for info in z.infolist():
                self.assertEqual(info.compress_type, zipfile.ZIP_DEFLATED)
            for info in r.infolist():
                self.assertEqual(info.compress_type, zipfile.ZIP_STORED)
            self.assertEqual(z.read("config.json"), r.read("config.json"))

    @parameterized.named_parameters(
        # Measured ratios: 13x; 7.7x (momentum slots add sparse floats);
        # with gradient probes 2.8x before probes were saved as zeros (a
        # probe holds the last dense gradient), now as without them.
        ("initialized", False, True, 5.0),
        ("trained_without_probes", True, False, 5.0),
        ("trained_with_probes", True, True, 5.0),
    )
    def test_sparse_mlp_round_trip_is_bit_identical_and_small(
        self, train, dense_gradient, min_ratio
    ):
        model, x = self.big_mlp(0.9, train, dense_gradient)
        directory = self.temp_dir()
        plain = os.path.join(directory, "plain.keras")
        packed = os.path.join(directory, "packed.keras")
        model.save(plain)
        self.assertEqual(keras_dst.save_model(model, packed), packed)
        self.assertDeflatedLike(packed, plain)
        # Nothing but the two archives (no partial file left behind).
        self.assertCountEqual(
            os.listdir(directory), ["plain.keras", "packed.keras"]
        )

        loaded = keras.saving.load_model(packed)
        probes = self.assertBitIdentical(loaded, model)
        self.assertEqual(probes, 3 if train and dense_gradient else 0)
        for a, b in zip(
            keras_dst.sparse_layers(loaded),
            keras_dst.sparse_layers(model),
            strict=True,
        ):
            self.assertEqual(keras_dst.layer_path(a), keras_dst.layer_path(b))
            np.testing.assert_array_equal(a.get_mask(), b.get_mask())
            np.testing.assert_array_equal(a.get_explored(), b.get_explored())
        np.testing.assert_array_equal(
            self.to_numpy(loaded.predict(x, verbose=0)),
            self.to_numpy(model.predict(x, verbose=0)),
        )
        ratio = sizes(plain) / sizes(packed)
        self.assertGreaterEqual(ratio, min_ratio, f"only {ratio:.1f}x smaller")

    @parameterized.named_parameters(
        # The probe without momentum is saved as zeros; with momentum it
        # is a moving average the next steps build on, saved unchanged.
        ("rigl", "RigL", 12.0),
        ("snfs", "SNFS", None),
    )
    def test_trained_gradient_method_checkpoint(self, method, min_ratio):
        keras.utils.set_random_seed(0)
        model = self.mlp(sizes=(784, 300, 100, 10))
        model.compile(
            keras.optimizers.Adam(1e-3),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        x, y = self.classification_data(n=64, features=784, classes=10)
        callback = getattr(keras_dst, method)(
            sparsity=0.95, update_interval=2, seed=0
        )
        model.fit(
            x, y, batch_size=16, epochs=2, verbose=0, callbacks=[callback]
        )
        self.assertNotEmpty(callback.updater.history)
        directory = self.temp_dir()
        plain = os.path.join(directory, "plain.keras")
        packed = os.path.join(directory, "packed.keras")
        model.save(plain)
        keras_dst.save_model(model, packed)
        loaded = keras.saving.load_model(packed)
        stock = keras.saving.load_model(plain)  # `model.save`: the same
        probes = [
            (self.to_numpy(c.kernel_gradient), self.to_numpy(b.kernel_gradient))
            for a, b in zip(
                keras_dst.sparse_layers(loaded),
                keras_dst.sparse_layers(model),
                strict=True,
            )
            for c in (a, stock.get_layer(a.name))
        ]
        for saved, trained in probes:
            self.assertTrue(np.any(trained))
            if min_ratio is None:  # momentum: saved as it is
                np.testing.assert_array_equal(saved, trained)
            else:
                np.testing.assert_array_equal(saved, np.zeros_like(trained))
        if min_ratio is not None:
            self.assertEqual(self.assertBitIdentical(loaded, model), 3)
            ratio = sizes(plain) / sizes(packed)
            self.assertGreaterEqual(
                ratio, min_ratio, f"only {ratio:.1f}x smaller"
            )

    def test_cnn_with_batch_norm_round_trip(self):
        model, x = self.cnn()
        directory = self.temp_dir()
        plain = os.path.join(directory, "plain.keras")
        packed = os.path.join(directory, "packed.keras")
        model.save(plain)
        keras_dst.save_model(model, packed, compress=True)
        self.assertDeflatedLike(packed, plain)
        loaded = keras.saving.load_model(packed)
        self.assertBitIdentical(loaded, model)
        self.assertModelExactSparsity(loaded, self.active_counts(model))
        np.testing.assert_array_equal(
            self.to_numpy(loaded.predict(x, verbose=0)),
            self.to_numpy(model.predict(x, verbose=0)),
        )
        self.assertLess(sizes(packed), sizes(plain))

    def test_compress_false_is_model_save(self):
        model, x = self.cnn()
        path = os.path.join(self.temp_dir(), "stored.keras")
        keras_dst.save_model(model, path, compress=False)
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                self.assertEqual(info.compress_type, zipfile.ZIP_STORED)
        self.assertBitIdentical(keras.saving.load_model(path), model)

    def test_overwrites_an_existing_file(self):
        model, _ = self.cnn()
        directory = self.temp_dir()
        path = os.path.join(directory, "model.keras")
        with open(path, "wb") as f:
            f.write(b"old")
        keras_dst.save_model(model, path)
        self.assertEqual(os.listdir(directory), ["model.keras"])
        self.assertBitIdentical(keras.saving.load_model(path), model)

    def test_float16_values(self):
        model, x = self.big_mlp(0.9, train=False)
        before = [self.to_numpy(v) for v in model.weights]
        stripped = keras_dst.strip(model)
        directory = self.temp_dir()
        full = os.path.join(directory, "full.keras")
        half = os.path.join(directory, "half.keras")
        keras_dst.save_model(stripped, full)
        keras_dst.save_model(model, half, values="float16")
        # `model` is not changed; the file holds its stripped copy.
        for v, b in zip(model.weights, before, strict=True):
            np.testing.assert_array_equal(self.to_numpy(v), b)
        loaded = keras.saving.load_model(half)
        self.assertEmpty(keras_dst.sparse_layers(loaded))
        self.assertLen(loaded.weights, len(stripped.weights))
        changed = 0
        for u, v in zip(loaded.weights, stripped.weights, strict=True):
            self.assertEqual(u.dtype, "float32")
            v = self.to_numpy(v)
            rounded = v.astype(np.float16).astype(np.float32)
            np.testing.assert_array_equal(self.to_numpy(u), rounded)
            changed += int(np.count_nonzero(rounded != v))
        self.assertGreater(changed, 0)  # really rounded
        for layer, sparse in zip(
            loaded.layers, keras_dst.sparse_layers(model), strict=True
        ):
            kernel = self.to_numpy(layer.kernel)
            self.assertTrue(np.all(kernel[sparse.get_mask() == 0] == 0.0))
        np.testing.assert_allclose(
            self.to_numpy(loaded.predict(x, verbose=0)),
            self.to_numpy(model.predict(x, verbose=0)),
            rtol=1e-2,
            atol=1e-2,
        )
        # Values dominate the deflated file: float16 saves a good part.
        self.assertLess(sizes(half), 0.8 * sizes(full))

    def test_float16_without_compression_halves_the_weights(self):
        model, _ = self.big_mlp(0.9)
        stripped = keras_dst.strip(model)
        directory = self.temp_dir()
        full = os.path.join(directory, "full.keras")
        half = os.path.join(directory, "half.keras")
        stripped.save(full)
        keras_dst.save_model(stripped, half, compress=False, values="float16")
        with zipfile.ZipFile(half) as z:
            for info in z.infolist():
                self.assertEqual(info.compress_type, zipfile.ZIP_STORED)
        values = 4 * sum(int(np.prod(v.shape)) for v in stripped.weights)
        self.assertLess(sizes(half), sizes(full) - 0.45 * values)
        loaded = keras.saving.load_model(half)
        for u, v in zip(loaded.weights, stripped.weights, strict=True):
            rounded = self.to_numpy(v).astype(np.float16).astype(np.float32)
            np.testing.assert_array_equal(self.to_numpy(u), rounded)

    def test_float16_cnn_and_out_of_range_values(self):
        model, x = self.cnn()
        stripped = keras_dst.strip(model)
        batch_norm = [
            layer
            for layer in stripped.layers
            if isinstance(layer, keras.layers.BatchNormalization)
        ][0]
        # A value float16 cannot hold: that variable stays float32.
        big = np.full(batch_norm.moving_variance.shape, 1e6, "float32")
        batch_norm.moving_variance.assign(big + 0.1)
        path = os.path.join(self.temp_dir(), "half.keras")
        keras_dst.save_model(stripped, path, values="float16")
        loaded = keras.saving.load_model(path)
        for u, v in zip(loaded.weights, stripped.weights, strict=True):
            v = self.to_numpy(v)
            if v.max() > 65504:
                np.testing.assert_array_equal(self.to_numpy(u), v)
            else:
                rounded = v.astype(np.float16).astype(np.float32)
                np.testing.assert_array_equal(self.to_numpy(u), rounded)
        self.assertTrue(np.all(np.isfinite(self.to_numpy(loaded(x)))))
        np.testing.assert_allclose(
            self.to_numpy(loaded.predict(x, verbose=0)),
            self.to_numpy(stripped.predict(x, verbose=0)),
            rtol=1e-2,
            atol=1e-2,
        )

    def test_bad_arguments(self):
        model = self.mlp(sparsity=0.5)
        directory = self.temp_dir()
        path = os.path.join(directory, "m.keras")
        with self.assertRaisesRegex(ValueError, r"`path`.*'\.keras'"):
            keras_dst.save_model(model, os.path.join(directory, "m.h5"))
        with self.assertRaisesRegex(ValueError, r"`path`.*'\.keras'"):
            keras_dst.save_model(model, None)
        with self.assertRaisesRegex(ValueError, r"`values`.*'float16'"):
            keras_dst.save_model(model, path, values="int8")
        with self.assertRaisesRegex(ValueError, r"`values`.*'float16'"):
            keras_dst.save_model(model, path, values=np.float16)
        with self.assertRaisesRegex(TypeError, "`compress` must be True"):
            keras_dst.save_model(model, path, compress="yes")
        with self.assertRaisesRegex(TypeError, "`model` must be a keras"):
            keras_dst.save_model(model.layers[0], path)
        with self.assertRaisesRegex(FileNotFoundError, "folder of `path`"):
            keras_dst.save_model(
                model, os.path.join(directory, "no", "m.keras")
            )
        self.assertEmpty(os.listdir(directory))

    @parameterized.parameters("SET", "RigL")
    def test_resume_from_a_compressed_file_is_exact(self, method):
        def make():
            keras.utils.set_random_seed(0)
            return self.compiled(self.mlp())

        def fit(model, callbacks, **kwargs):
            x, y = self.classification_data()
            model.fit(
                x,
                y,
                batch_size=BATCH,
                epochs=EPOCHS,
                shuffle=False,
                verbose=0,
                callbacks=callbacks,
                **kwargs,
            )

        reference = make()
        reference_callback = getattr(keras_dst, method)(
            0.8, update_interval=4, seed=3
        )
        fit(reference, [reference_callback])
        steps = [h["step"] for h in reference_callback.updater.history]
        self.assertIn(STEPS, steps)  # an update at the resume point

        # The same run, stopped after its first epoch (the update schedule
        # spans the whole `fit` call, so it must be the same call).
        path = os.path.join(self.temp_dir(), "mid.keras")
        first = getattr(keras_dst, method)(0.8, update_interval=4, seed=3)
        fit(make(), [first, SaveAndStop(path)])
        model = keras.saving.load_model(path)
        self.assertEqual(int(self.to_numpy(model.optimizer.iterations)), STEPS)
        callback = getattr(keras_dst, method)(0.8, update_interval=4, seed=3)
        fit(model, [callback], initial_epoch=1)
        resumed = [h["step"] for h in callback.updater.history]
        self.assertEqual(resumed, [s for s in steps if s >= STEPS])
        self.assertNotEmpty(callback.updater.history)
        # Layer names differ between the two models: compare in order.
        self.assertModelExactSparsity(model)
        self.assertEqual(
            list(self.active_counts(model).values()),
            list(self.active_counts(reference).values()),
        )
        self.assertSameRun(model, reference, callback, reference_callback)


class SizeReportTest(TestCase):
    def test_sizes_from_counts(self):
        model = self.mlp(sizes=(784, 300, 100, 10))
        keras_dst.initialize_masks(model, 0.9, seed=1)
        lines = []
        report = keras_dst.summary(model, print_fn=lines.append)
        params, sizes_ = report["params"], report["sizes"]
        self.assertEqual(sizes_["dense_float32_bytes"], 4 * params["weights"])
        self.assertEqual(sizes_["active_float32_bytes"], 4 * params["active"])
        self.assertEqual(sizes_["active_float16_bytes"], 2 * params["active"])
        state = [
            v
            for layer in keras_dst.sparse_layers(model)
            for v in layer.sparse_state_variables
        ]
        self.assertEqual(
            sizes_["sparse_state_bytes"],
            sum(self.to_numpy(v).nbytes for v in state),
        )
        # log2 C(n, k) <= n bits (a bitmask), and > 0 for 0 < k < n.
        bitmask = sum(r["size"] for r in report["layers"]) / 8
        self.assertGreater(sizes_["index_floor_bytes"], 0)
        self.assertLess(sizes_["index_floor_bytes"], bitmask)
        text = "\n".join(lines).splitlines()
        self.assertTrue(text[-3].startswith("total"))
        self.assertTrue(text[-2].startswith("params:"))
        self.assertIn(f"{sizes_['dense_float32_bytes']:,} B dense", text[-1])
        self.assertIn(f"{sizes_['index_floor_bytes']:,} B index", text[-1])
        # The estimate is close to what a deflated deployable file takes.
        path = os.path.join(self.temp_dir(), "m.keras")
        keras_dst.save_model(keras_dst.strip(model), path)
        floor = sizes_["active_float32_bytes"] + sizes_["index_floor_bytes"]
        self.assertGreater(sizes(path), sizes_["active_float32_bytes"])
        self.assertLess(sizes(path), 2 * floor)

    def test_no_sizes_for_a_list_of_layers(self):
        model = self.mlp(sparsity=0.5)
        report = keras_dst.sparsity_report(model.layers)
        self.assertNotIn("sizes", report)


if __name__ == "__main__":
    absltest.main()
