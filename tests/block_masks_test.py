"""Block masks (`block_shape=(4, 1)`): every mask writer keeps whole blocks.

After every update of every method, each layer's mask is made of whole
blocks, holds exactly its target count (in blocks) and every inactive
kernel entry is exactly 0.0. Checked at every step by a recorder callback.
"""

import os

import keras
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

import keras_dst
from tests.test_case import TestCase

BLOCK = (4, 1)


class StepChecker(keras.callbacks.Callback):
    """Records, after every batch, whether every mask is block-structured,
    its active counts and the non-zeros outside the mask."""

    def __init__(self):
        super().__init__()
        self.records = []

    def on_train_batch_end(self, batch, logs=None):
        row = []
        for layer in keras_dst.sparse_layers(self.model):
            mask = layer.get_mask()
            kernel = keras.ops.convert_to_numpy(layer.kernel_variable.value)
            row.append(
                (
                    keras_dst.masks.is_block_mask(mask, layer.block_shape),
                    int(mask.sum()),
                    int(np.count_nonzero(kernel[mask == 0])),
                )
            )
        self.records.append(row)


def block_mlp(dense_gradient=True):
    return keras.Sequential(
        [
            keras.Input((16,)),
            keras_dst.layers.SparseDense(
                32, activation="relu", block_shape=BLOCK
            ),
            keras_dst.layers.SparseDense(
                8,
                activation="relu",
                block_shape=BLOCK,
                dense_gradient=dense_gradient,
            ),
            keras_dst.layers.SparseDense(3),  # unstructured
        ]
    )


class BlockMaskTest(TestCase):
    def data(self):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(256, 16)).astype("float32")
        return x, (x[:, :3].sum(axis=1) > 0).astype("int32")

    def fit(self, model, callback, epochs=2, extra=()):
        model.compile(
            keras.optimizers.SGD(0.05, momentum=0.9),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        checker = StepChecker()
        x, y = self.data()
        model.fit(
            x,
            y,
            batch_size=32,
            epochs=epochs,
            verbose=0,
            callbacks=[callback, checker, *extra],
        )
        return checker

    def assertBlocksEveryStep(self, checker, counts=None):
        for step, row in enumerate(checker.records):
            for i, (blocky, active, outside) in enumerate(row):
                self.assertTrue(blocky, f"step {step} layer {i}: not blocks")
                self.assertEqual(outside, 0, f"step {step} layer {i}")
                if counts is not None:
                    self.assertEqual(active, counts[i], f"step {step} {i}")

    def test_layer_initial_mask_counts_whole_blocks(self):
        layer = keras_dst.layers.SparseDense(
            6, sparsity=0.7, mask_seed=1, block_shape=BLOCK
        )
        layer.build((None, 16))
        mask = layer.get_mask()
        self.assertTrue(keras_dst.masks.is_block_mask(mask, BLOCK))
        # 16x6 kernel = 24 blocks of 4; round(0.3 * 24) = 7 blocks.
        self.assertEqual(int(mask.sum()), 7 * 4)
        self.assertEqual(keras_dst.masks.target_count((16, 6), 0.7, BLOCK), 28)
        self.assertExactSparsity(layer, 28)
        self.assertEqual(layer.get_config()["block_shape"], BLOCK)

    def test_bad_block_shapes(self):
        layer = keras_dst.layers.SparseDense(4, block_shape=(4, 1))
        with self.assertRaisesRegex(ValueError, "block_shape.*dividing"):
            layer.build((None, 10))  # 10 inputs: not whole blocks of 4
        with self.assertRaisesRegex(ValueError, "one entry per kernel axis"):
            keras_dst.layers.SparseDense(4, block_shape=(4,)).build((None, 8))
        with self.assertRaisesRegex(ValueError, "block_shape"):
            keras_dst.layers.SparseDense(4, block_shape=(0, 1))
        with self.assertRaisesRegex(TypeError, "block_shape"):
            keras_dst.layers.SparseDense(4, block_shape=4)
        layer = keras_dst.layers.SparseDense(4, block_shape=BLOCK)
        layer.build((None, 8))
        mask = np.ones((8, 4), "uint8")
        mask[0, 0] = 0  # breaks a block
        with self.assertRaisesRegex(ValueError, "whole .* blocks"):
            layer.set_mask(mask)

    @parameterized.named_parameters(
        ("set", "set"), ("rigl", "rigl"), ("itop_rigl", "itop_rigl")
    )
    def test_dst_updates_keep_blocks_and_counts(self, method):
        model = block_mlp()
        callback = keras_dst.get_method(method)(0.75, update_interval=2, seed=0)
        checker = self.fit(model, callback)
        history = callback.history
        self.assertGreater(len(history), 4)
        self.assertGreater(history[0]["k"]["sparse_dense"], 0)
        for record in history:  # moves are whole blocks
            for key in ("sparse_dense", "sparse_dense_1"):
                self.assertEqual(record["k"][key] % 4, 0)
        counts = checker.records[0]
        self.assertEqual(counts[0][1] % 4, 0)
        self.assertBlocksEveryStep(checker, [c[1] for c in counts])
        self.assertGreater(callback.itop_rate, 1 - 0.75)  # it explored

    def test_gmp_prunes_whole_blocks(self):
        model = block_mlp()
        gmp = keras_dst.GMP(0.8, begin=0.0, end=0.8, update_interval=2)
        checker = self.fit(model, gmp)
        self.assertBlocksEveryStep(checker)
        layers = keras_dst.sparse_layers(model)
        targets = keras_dst.masks.allocate(
            {
                keras_dst.layer_path(x): tuple(x.kernel_variable.shape)
                for x in layers
            },
            0.8,
            "erk",
        )
        for layer in layers:
            want = keras_dst.masks.target_count(
                tuple(layer.kernel_variable.shape),
                targets[keras_dst.layer_path(layer)],
                layer.block_shape,
            )
            self.assertEqual(int(layer.get_mask().sum()), want)

    def test_sup_tickets_superposes_whole_blocks(self):
        model = block_mlp()
        base = keras_dst.SET(0.75, update_interval=4, seed=0)
        sup = keras_dst.SupTickets(
            base, num_tickets=2, cyclic_epochs=2, verbose=0
        )
        checker = self.fit(model, sup, epochs=4)
        self.assertBlocksEveryStep(checker)
        budget = sum(active for _, active, _ in checker.records[-1])
        layers = keras_dst.sparse_layers(model)
        for layer in layers:  # the superposed network, after fit
            self.assertTrue(
                keras_dst.masks.is_block_mask(
                    layer.get_mask(), layer.block_shape
                )
            )
            self.assertExactSparsity(layer)
        self.assertEqual(sum(int(x.get_mask().sum()) for x in layers), budget)
        self.assertEqual(sup.superposed["active"], budget)

    def test_global_magnitude_masks_with_blocks(self):
        # Block means and single entries chosen so the answer is known:
        # ranked by mean |w| per weight, units are taken while they fit.
        means = np.array([[9.0, 8.0, 1.0, 1.0], [7.0, 0.5, 0.5, 0.5]])
        blocks = np.repeat(means, 4, axis=0)  # (8, 4), blocks of (4, 1)
        entries = np.array([[6.0, 5.0], [4.0, 3.0], [2.0, 0.1], [0.1, 0.1]])
        masks = keras_dst.superposition.global_magnitude_masks(
            [-blocks, entries], 20, block_shapes=[BLOCK, None]
        )
        # Blocks 9, 8, 7 (12 weights), then the entries 6..2 (5); a block
        # of 1.0 no longer fits in the 3 left: the three 0.1 entries do.
        want = np.repeat(np.array([[1, 1, 0, 0], [1, 0, 0, 0]]), 4, axis=0)
        np.testing.assert_array_equal(masks[0], want.astype(bool))
        np.testing.assert_array_equal(masks[1], np.ones((4, 2), bool))

    def test_sparsify_save_load_and_resume_keep_blocks(self):
        dense = keras.Sequential(
            [
                keras.Input((16,)),
                keras.layers.Dense(12, activation="relu"),
                keras.layers.Dense(3),
            ]
        )
        with self.assertRaisesRegex(ValueError, "dense_1|dense"):
            keras_dst.sparsify(dense, 0.5, block_shape=(3, 1))  # 16 % 3
        model = keras_dst.sparsify(dense, 0.75, block_shape=BLOCK, seed=0)
        layers = keras_dst.sparse_layers(model)
        self.assertEqual([x.block_shape for x in layers], [BLOCK, BLOCK])
        for layer in layers:
            self.assertTrue(
                keras_dst.masks.is_block_mask(layer.get_mask(), BLOCK)
            )
        path = os.path.join(self.temp_dir(), "blocks.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        loaded_layers = keras_dst.sparse_layers(loaded)
        self.assertEqual([x.block_shape for x in loaded_layers], [BLOCK, BLOCK])
        counts = [int(x.get_mask().sum()) for x in loaded_layers]
        checker = self.fit(
            loaded, keras_dst.SET(0.75, update_interval=2, seed=1), epochs=1
        )
        self.assertBlocksEveryStep(checker, counts)
        plain = keras_dst.strip(loaded)
        self.assertNotIn("block_shape", plain.layers[0].get_config())


if __name__ == "__main__":
    absltest.main()
