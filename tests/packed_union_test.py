"""The explored union and the updater's grown entries, stored as bits.

`kernel_explored` holds 8 entries per byte along one kernel axis
(`keras_dst.masks.packed`): packing round-trips on odd shapes (keras.ops
against numpy's `packbits`), the axis follows the layout, the stored union
is the OR of every mask seen after updates (with the updater's device
state packed too), byte sizes are about n / 8, and files saved before the
union was packed (one byte per entry) still load, also as a
`BackupAndRestore` backup that a run resumes from exactly.
"""

import math
import os

import h5py
import keras
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

import keras_dst
from keras_dst.masks import packed
from tests.data.make_unpacked_union_fixture import build as build_fixture
from tests.resume_test import Interrupt
from tests.resume_test import InterruptAt
from tests.test_case import TestCase

DATA = os.path.join(os.path.dirname(__file__), "data")
ODD_SHAPES = [
    (13,),  # 1-D, not a multiple of 8
    (8,),
    (1,),
    (21, 6),  # an embedding table: rows not a multiple of 8
    (5, 3),
    (16, 5),
    (3, 5, 7),  # Conv1D / EinsumDense
    (3, 3, 5, 9),  # Conv2D
    (2, 3, 3, 4, 10),  # Conv3D
]


def union_bytes(layer):
    variable = layer.kernel_explored
    return (
        math.prod(variable.shape)
        * np.dtype(keras.backend.standardize_dtype(variable.dtype)).itemsize
    )


def unpack_unions_in_h5(path):
    """Rewrites a weights file the way keras_dst wrote it before unions
    were packed: in each layer's `vars`, the second `uint8` variable (the
    union, after the mask) becomes one byte per entry of the mask's
    shape."""
    with h5py.File(path, "r+") as f:
        groups = []
        f.visititems(
            lambda name, item: (
                groups.append(item)
                if name.endswith("vars") and isinstance(item, h5py.Group)
                else None
            )
        )
        rewritten = 0
        for group in groups:
            keys = sorted(group.keys(), key=int)
            bits = [k for k in keys if group[k].dtype == np.uint8]
            if len(bits) < 2:
                continue
            mask, union = group[bits[0]][()], group[bits[1]][()]
            if union.shape == mask.shape:
                continue
            del group[bits[1]]
            group[bits[1]] = packed.unpack_numpy(union, mask.shape)
            rewritten += 1
    return rewritten


class PackingTest(TestCase):
    @parameterized.parameters(*[(s,) for s in ODD_SHAPES])
    def test_round_trip_on_every_axis(self, shape):
        rng = np.random.default_rng(len(shape))
        for axis in [None, *range(len(shape))]:
            stored = packed.packed_shape(shape, axis)
            bits = rng.random(shape) < 0.4
            ours = packed.pack(keras.ops.convert_to_tensor(bits), stored)
            self.assertEqual(tuple(ours.shape), stored)
            self.assertEqual(
                keras.backend.standardize_dtype(ours.dtype), "uint8"
            )
            expected = (
                bits.astype("uint8")
                if axis is None
                else np.packbits(bits, axis=axis, bitorder="little")
            )
            np.testing.assert_array_equal(self.to_numpy(ours), expected)
            np.testing.assert_array_equal(
                packed.pack_numpy(bits, stored), expected
            )
            np.testing.assert_array_equal(
                self.to_numpy(packed.unpack(ours, shape)), bits
            )
            np.testing.assert_array_equal(
                packed.unpack_numpy(expected, shape), bits.astype("uint8")
            )
            # The stored shape names the axis (a size-1 axis packs to the
            # same bytes as no packing, and reads as that).
            self.assertEqual(
                packed.packed_axis(shape, stored),
                None if stored == shape else axis,
            )

    def test_axis_follows_the_layout(self):
        self.assertEqual(packed.pack_axis((784, 300)), 0)
        self.assertEqual(packed.pack_axis((3, 3, 5, 9)), 2)  # fewest bytes
        self.assertEqual(packed.pack_axis((21, 6)), 0)
        self.assertIsNone(packed.pack_axis((1, 1)))
        # Sharded axes only where each shard packs its own bytes.
        self.assertEqual(packed.pack_axis((64, 32), (1, 4)), 0)
        self.assertEqual(packed.pack_axis((60, 32), (4, 1)), 1)
        self.assertEqual(packed.pack_axis((64, 32), (4, 1)), 0)  # aligned
        self.assertEqual(packed.pack_axis((16, 32), (2, 4)), 0)
        self.assertEqual(packed.pack_axis((16, 36), (4, 2)), None)
        with self.assertRaisesRegex(ValueError, "packed as 8 bits"):
            packed.packed_axis((16, 5), (3, 5))

    def test_old_layout_converts(self):
        rng = np.random.default_rng(0)
        bits = (rng.random((21, 6)) < 0.5).astype("uint8")
        stored = packed.packed_shape((21, 6), 0)
        want = np.packbits(bits, axis=0, bitorder="little")
        for found in (bits, want, np.packbits(bits, 1, bitorder="little")):
            np.testing.assert_array_equal(
                packed.convert_stored(found, (21, 6), stored), want
            )


class LayerUnionTest(TestCase):
    def model(self):
        keras.utils.set_random_seed(0)
        return keras.Sequential(
            [
                keras.Input((9,), dtype="int32"),
                keras_dst.layers.SparseEmbedding(21, 6, name="embed"),
                keras_dst.layers.SparseConv1D(5, 3, name="conv"),
                keras.layers.Flatten(),
                keras_dst.layers.SparseDense(11, name="hidden"),
                keras_dst.layers.SparseDense(3, name="out"),
            ]
        )

    def test_union_is_about_an_eighth_of_the_kernel(self):
        model = self.model()
        layers = [
            *keras_dst.sparse_layers(model),
            keras_dst.layers.SparseDense(300),
            keras_dst.layers.SparseConv2D(64, 3),
        ]
        layers[-2].build((None, 784))
        layers[-1].build((None, 8, 8, 32))
        for layer in layers:
            shape = tuple(layer.kernel_variable.shape)
            size = math.prod(shape)
            axis = packed.pack_axis(shape)
            # ceil(n / 8) bytes along the packed axis.
            self.assertEqual(
                union_bytes(layer),
                size // shape[axis] * math.ceil(shape[axis] / 8),
                layer.name,
            )
            self.assertLessEqual(union_bytes(layer), math.ceil(size / 8) * 2)
        self.assertEqual(union_bytes(layers[-2]), 784 * 300 // 8)
        self.assertEqual(union_bytes(layers[-1]), 3 * 3 * 32 * 64 // 8)

    @parameterized.named_parameters(
        ("random", "magnitude", "random"), ("gradient", "magnitude", "gradient")
    )
    def test_union_is_the_or_of_every_mask_after_updates(self, prune, growth):
        model = self.model()
        keras_dst.initialize_masks(model, 0.7, seed=1)
        model.compile("sgd", "mse")
        x = np.random.default_rng(0).integers(0, 21, (8, 9)).astype("int32")
        model.fit(x, np.zeros((8, 3), "float32"), verbose=0)  # the probes
        layers = keras_dst.sparse_layers(model)
        unions = [layer.get_mask().astype(bool) for layer in layers]
        for layer, union in zip(layers, unions, strict=True):
            np.testing.assert_array_equal(layer.get_explored(), union)
        updater = keras_dst.SparseUpdater(prune, growth, seed=2)
        updater.prepare(model)
        self.assertEqual(updater.device_state_bytes, 0)
        for step in range(1, 6):
            self.assertTrue(updater.update(model, step, 0.5))
            for layer, union in zip(layers, unions, strict=True):
                union |= layer.get_mask().astype(bool)
                np.testing.assert_array_equal(
                    layer.get_explored(), union.astype("uint8")
                )
                # The stored bytes themselves: numpy's packbits.
                shape = tuple(layer.kernel_variable.shape)
                axis = packed.pack_axis(shape)
                np.testing.assert_array_equal(
                    self.to_numpy(layer.kernel_explored),
                    np.packbits(union, axis=axis, bitorder="little"),
                )
        self.assertModelExactSparsity(model)
        total = sum(x.size for x in unions)
        self.assertAlmostEqual(
            updater.itop_rate, sum(int(u.sum()) for u in unions) / total
        )
        # The grown entries the updater keeps: packed like the unions.
        self.assertEqual(
            updater.device_state_bytes, sum(union_bytes(x) for x in layers)
        )
        survived = updater.history[-1]["layers"]
        self.assertTrue(any(v["previous_grown"] for v in survived.values()))

    def test_set_mask_reset_and_merge(self):
        layer = keras_dst.layers.SparseDense(6)
        layer.build((None, 13))
        rng = np.random.default_rng(1)
        first = (rng.random((13, 6)) < 0.3).astype("uint8")
        second = (rng.random((13, 6)) < 0.3).astype("uint8")
        layer.set_mask(first, reset_explored=True)
        np.testing.assert_array_equal(layer.get_explored(), first)
        layer.set_mask(second)
        np.testing.assert_array_equal(layer.get_explored(), first | second)
        layer.set_mask(second, reset_explored=True)
        np.testing.assert_array_equal(layer.get_explored(), second)
        self.assertEqual(tuple(layer.kernel_explored.shape), (2, 6))


class UnpackedFilesTest(TestCase):
    """Files written before unions were packed (one byte per entry)."""

    def expected(self):
        return np.load(os.path.join(DATA, "unpacked_union.npz"))

    def assertLoaded(self, model):
        expected = self.expected()
        for layer in keras_dst.sparse_layers(model):
            shape = tuple(layer.kernel_variable.shape)
            np.testing.assert_array_equal(
                layer.get_mask(), expected[f"{layer.name}_mask"]
            )
            np.testing.assert_array_equal(
                layer.get_explored(), expected[f"{layer.name}_union"]
            )
            np.testing.assert_array_equal(
                self.to_numpy(layer.kernel_variable),
                expected[f"{layer.name}_kernel"],
            )
            self.assertNotEqual(tuple(layer.kernel_explored.shape), shape)
            self.assertEqual(
                tuple(layer.kernel_explored.shape),
                packed.packed_shape(shape, packed.pack_axis(shape)),
            )
            # The union is more than the mask: the file's own, not redrawn.
            self.assertGreater(
                expected[f"{layer.name}_union"].sum(),
                expected[f"{layer.name}_mask"].sum(),
            )

    def test_keras_file_loads(self):
        model = keras.saving.load_model(
            os.path.join(DATA, "unpacked_union.keras")
        )
        self.assertLoaded(model)
        # ... and saves and loads again in the packed layout.
        path = os.path.join(self.temp_dir(), "again.keras")
        model.save(path)
        self.assertLoaded(keras.saving.load_model(path))

    def test_weights_file_loads(self):
        model = build_fixture()
        model.load_weights(os.path.join(DATA, "unpacked_union.weights.h5"))
        self.assertLoaded(model)

    def test_backup_and_restore_resumes_from_an_unpacked_backup(self):
        def make():
            keras.utils.set_random_seed(0)
            model = self.mlp((16, 21, 13, 4), sparsity=None)
            model.compile(
                keras.optimizers.SGD(0.05, momentum=0.9),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
            return model

        x, y = self.classification_data()

        def fit(model, callbacks, epochs):
            model.fit(
                x,
                y,
                batch_size=32,
                epochs=epochs,
                shuffle=False,
                verbose=0,
                callbacks=callbacks,
            )

        def rigl():
            return keras_dst.RigL(0.8, update_interval=4, seed=3)

        reference, reference_rigl = make(), rigl()
        fit(reference, [reference_rigl], 3)

        backup_dir = self.temp_dir()
        model = make()
        backup = keras.callbacks.BackupAndRestore(backup_dir)
        with self.assertRaises(Interrupt):  # in epoch 2 (backup: epoch 1)
            fit(model, [rigl(), backup, InterruptAt(2 * 8 + 3)], 3)
        files = [
            os.path.join(backup_dir, f)
            for f in os.listdir(backup_dir)
            if f.endswith(".h5")
        ]
        self.assertLen(files, 1)
        self.assertEqual(unpack_unions_in_h5(files[0]), 3)

        model, callback = make(), rigl()
        backup = keras.callbacks.BackupAndRestore(backup_dir)
        fit(model, [callback, backup], 3)
        self.assertSameRun(model, reference, callback, reference_rigl)


if __name__ == "__main__":
    absltest.main()
