"""Which blocks and entries the engine chooses, against numpy references.

`block_masks_test` checks the structure and the counts of block masks;
this file checks the choice itself: a block is ranked by the SUM of its
entries' scores (a block of four 2.0s beats a block holding one 5.0 and
three 0.1s), for the DST update (`update`) and for pruning to a count
(`prune_to`, GMP's path), and the stored union `kernel_explored` holds
exactly every mask the layer has had.
"""

import keras
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

import keras_dst
from tests.test_case import TestCase

BLOCK = (4, 1)


def block_sums(x):
    """(rows, cols) -> (rows // 4, cols): sums over each (4, 1) block."""
    rows, cols = x.shape
    return x.reshape(rows // BLOCK[0], BLOCK[0], cols).sum(axis=1)


def expand(grid):
    return np.repeat(grid, BLOCK[0], axis=0)


def lowest(scores, candidates, k):
    """The k candidates of lowest score (no ties in these tests)."""
    flat = np.where(candidates, scores, np.inf).reshape(-1)
    chosen = np.zeros(flat.shape, bool)
    chosen[np.argsort(flat, kind="stable")[:k]] = True
    return chosen.reshape(scores.shape)


def highest(scores, candidates, k):
    return lowest(-scores, candidates, k)


class BlockSelectionTest(TestCase):
    def prepared(self, rows, cols, growth="random", block_shape=BLOCK):
        """A one-layer model (kernel rows x cols), trained one step so the
        optimizer is built, and a prepared updater."""
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((rows,)),
                keras_dst.layers.SparseDense(
                    cols, use_bias=False, block_shape=block_shape
                ),
            ]
        )
        model.compile(keras.optimizers.SGD(0.01), "mse")
        x = np.ones((4, rows), "float32")
        model.fit(x, np.zeros((4, cols), "float32"), verbose=0)
        updater = keras_dst.SparseUpdater(growth=growth, seed=0)
        updater.prepare(model)
        return model, keras_dst.sparse_layers(model)[0], updater

    def set_state(self, model, updater, kernel, mask, gradient=None):
        """Sets the layer's kernel, mask and probe; prepares `updater`
        again (it reads the active counts when prepared)."""
        layer = keras_dst.sparse_layers(model)[0]
        layer.kernel_variable.assign(kernel.astype("float32"))
        layer.set_mask(mask.astype("uint8"), reset_explored=True)
        if gradient is not None:
            layer.kernel_gradient.assign(gradient.astype("float32"))
        updater.prepare(model)

    def test_blocks_ranked_by_sum_not_max(self):
        # The case: pruned to 4 entries, the block [2, 2, 2, 2]
        # (sum 8) stays and [5, .1, .1, .1] (sum 5.3, max 5) goes.
        model, layer, updater = self.prepared(8, 1)
        kernel = np.array([[5], [0.1], [0.1], [0.1], [2], [2], [2], [2]])
        self.set_state(model, updater, kernel, np.ones((8, 1)))
        path = keras_dst.layer_path(layer)
        self.assertTrue(updater.prune_to(model, {path: 4}))
        np.testing.assert_array_equal(
            layer.get_mask()[:, 0], [0, 0, 0, 0, 1, 1, 1, 1]
        )

    def test_update_grows_the_block_of_largest_summed_gradient(self):
        # Prune one of two active blocks by summed magnitude, then grow one
        # block by summed |gradient|: block 2 has the largest sum (4 x 1.0)
        # although block 0 holds the largest single entry (3.0).
        model, layer, updater = self.prepared(12, 1, growth="gradient")
        kernel = np.array([5, 0.1, 0.1, 0.1, 2, 2, 2, 2, 0, 0, 0, 0])
        gradient = np.array([3, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
        mask = np.array([1] * 8 + [0] * 4)
        self.set_state(
            model, updater, kernel[:, None], mask[:, None], gradient[:, None]
        )
        self.assertTrue(updater.update(model, step=1, drop_fraction=0.5))
        np.testing.assert_array_equal(layer.get_mask()[:, 0], [0] * 4 + [1] * 8)

    @parameterized.parameters(0, 1, 2)
    def test_update_matches_numpy(self, seed):
        model, layer, updater = self.prepared(16, 6, growth="gradient")
        rng = np.random.default_rng(seed)
        grid = np.zeros((4, 6), bool)
        grid.reshape(-1)[rng.permutation(24)[:12]] = True
        kernel = rng.normal(size=(16, 6))
        gradient = rng.normal(size=(16, 6))
        self.set_state(model, updater, kernel, expand(grid), gradient)
        kernel = keras.ops.convert_to_numpy(layer.kernel_variable.value)

        self.assertTrue(updater.update(model, step=1, drop_fraction=0.5))
        k = updater.history[-1]["k"][keras_dst.layer_path(layer)]
        self.assertEqual(k % 4, 0)
        self.assertGreater(k, 0)
        pruned = lowest(block_sums(np.abs(kernel)), grid, k // 4)
        survivors = grid & ~pruned
        grown = highest(block_sums(np.abs(gradient)), ~survivors, k // 4)
        np.testing.assert_array_equal(
            layer.get_mask(), expand(survivors | grown).astype("uint8")
        )

    @parameterized.parameters(0, 1, 2)
    def test_prune_to_matches_numpy(self, seed):
        model, layer, updater = self.prepared(16, 6)
        rng = np.random.default_rng(seed)
        grid = np.zeros((4, 6), bool)
        grid.reshape(-1)[rng.permutation(24)[:16]] = True
        self.set_state(model, updater, rng.normal(size=(16, 6)), expand(grid))
        kernel = keras.ops.convert_to_numpy(layer.kernel_variable.value)
        path = keras_dst.layer_path(layer)

        self.assertTrue(updater.prune_to(model, {path: 5 * 4}))
        pruned = lowest(block_sums(np.abs(kernel)), grid, 16 - 5)
        np.testing.assert_array_equal(
            layer.get_mask(), expand(grid & ~pruned).astype("uint8")
        )

    @parameterized.named_parameters(("entries", None), ("blocks", BLOCK))
    def test_stored_union_is_every_mask_so_far(self, block_shape):
        # The stored `kernel_explored` itself, not `itop_rate` (which adds
        # the current mask): after each update it is exactly the union of
        # the initial mask and every mask since.
        model, layer, updater = self.prepared(16, 6, block_shape=block_shape)
        rng = np.random.default_rng(3)
        mask = np.zeros((16, 6), "uint8")
        mask[:8] = 1  # whole (4, 1) blocks
        self.set_state(model, updater, rng.normal(size=(16, 6)), mask)
        union = layer.get_mask().astype(bool)
        for step in range(1, 6):
            self.assertTrue(updater.update(model, step, drop_fraction=0.5))
            union |= layer.get_mask().astype(bool)
            np.testing.assert_array_equal(
                layer.get_explored(), union.astype("uint8")
            )
        self.assertGreater(union.sum(), mask.sum())  # it explored


if __name__ == "__main__":
    absltest.main()
