"""Per-layer sparsity allocation (uniform, ER, ERK, custom) and model masks.

The ERK/ER expectations below are worked out by hand from the published
rules (Evci et al., 2020, appendix; Mocanu et al., 2018), not taken from the
code under test.
"""

import keras
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

import keras_dst
from keras_dst.masks import active_count
from keras_dst.masks import allocate
from tests.test_case import TestCase

# RigL-style conv net: two conv kernels and a classifier.
CNN = {
    "conv1": (3, 3, 3, 16),  # size 432,  sum of dims 25
    "conv2": (3, 3, 16, 32),  # size 4608, sum of dims 54
    "fc": (512, 10),  # size 5120, sum of dims 522
}  # total 10160; sum over layers of (sum of dims) = 601


def counts(shapes, sparsities):
    return {
        name: active_count(int(np.prod(shape)), sparsities[name])
        for name, shape in shapes.items()
    }


def random_shapes(rng, n):
    shapes = {}
    for i in range(n):
        rank = rng.integers(2, 5)
        shapes[f"layer{i}"] = tuple(int(d) for d in rng.integers(1, 40, rank))
    return shapes


class AllocateTest(TestCase):
    def test_erk_hand_computed_no_cap(self):
        # ERK: density_l = eps * sum(shape_l) / prod(shape_l), so the
        # active count of layer l is eps * sum(shape_l), and the budget
        # 0.1 * 10160 = 1016 gives eps = 1016 / 601 = 1.6905...
        # conv1: 1.6905 * 25 = 42.26 -> 42 (density 0.0978 < 1)
        # conv2: 1.6905 * 54 = 91.29 -> 91
        # fc:    1.6905 * 522 = 882.45 -> 882
        got = counts(CNN, allocate(CNN, 0.9, "erk"))
        self.assertEqual(got, {"conv1": 42, "conv2": 91, "fc": 882})

    def test_erk_hand_computed_two_layers_capped(self):
        # Sparsity 0.2: budget 0.8 * 10160 = 8128.
        # Round 1: eps = 8128 / 601 = 13.524; fc's density would be
        #   13.524 * 522 / 5120 = 1.379 > 1 (the largest score): fc dense,
        #   5120 weights.
        # Round 2: 3008 left for conv1, conv2: eps = 3008 / 79 = 38.08;
        #   conv1: 38.08 * 25 / 432 = 2.20 > 1: conv1 dense, 432 weights.
        # Round 3: 2576 left for conv2 alone: density 2576 / 4608 = 0.559.
        sparsities = allocate(CNN, 0.2, "erk")
        self.assertEqual(sparsities["fc"], 0.0)
        self.assertEqual(sparsities["conv1"], 0.0)
        self.assertAlmostEqual(sparsities["conv2"], 1 - 2576 / 4608)
        got = counts(CNN, sparsities)
        self.assertEqual(got, {"conv1": 432, "conv2": 2576, "fc": 5120})
        self.assertEqual(sum(got.values()), 8128)

    def test_erk_small_example_with_one_capped_layer(self):
        shapes = {"a": (2, 2), "b": (10, 10), "c": (20, 5)}
        # Scores sum/prod: a 4/4 = 1, b 20/100 = 0.2, c 25/100 = 0.25.
        # Budget 0.5 * 204 = 102. eps = 102 / (4 + 20 + 25) = 2.08 and
        # a's density 2.08 > 1: a dense (4 weights). Re-solve over b, c:
        # eps = 98 / 45 = 2.178; b: 2.178 * 20 = 43.56 -> 44,
        # c: 2.178 * 25 = 54.44 -> 54. Total 4 + 44 + 54 = 102.
        got = counts(shapes, allocate(shapes, 0.5, "erk"))
        self.assertEqual(got, {"a": 4, "b": 44, "c": 54})

    def test_erk_power_scale_half(self):
        shapes = {"b": (10, 10), "c": (20, 5)}
        # Scores (sum/prod) ** 0.5: b sqrt(0.2), c sqrt(0.25) = 0.5.
        # Sparsity 0.8 of 200 weights -> budget 40;
        # eps = 40 / (100 * sqrt(0.2) + 100 * 0.5) = 40 / 94.72 = 0.4223;
        # b: 0.4223 * 44.72 = 18.89 -> 19, c: 0.4223 * 50 = 21.11 -> 21.
        got = counts(shapes, allocate(shapes, 0.8, "erk", power_scale=0.5))
        self.assertEqual(got, {"b": 19, "c": 21})

    def test_er_hand_computed(self):
        # ER scores use the last two dims: (n_in + n_out) / (n_in * n_out).
        # conv: (4 + 8) / 32 = 0.375 with size 3*3*4*8 = 288 -> 108;
        # fc: (16 + 4) / 64 = 0.3125 with size 64 -> 20.
        # Budget 0.2 * 352 = 70.4; eps = 70.4 / (108 + 20) = 0.55:
        # conv 0.55 * 108 = 59.4 -> 59, fc 0.55 * 20 = 11.0 -> 11.
        shapes = {"conv": (3, 3, 4, 8), "fc": (16, 4)}
        got = counts(shapes, allocate(shapes, 0.8, "er"))
        self.assertEqual(got, {"conv": 59, "fc": 11})
        # ERK gives a different split on the same shapes (sum/prod of all
        # dims): conv 18/288, fc 20/64 -> eps = 70.4 / 38 -> 33, 37.
        got = counts(shapes, allocate(shapes, 0.8, "erk"))
        self.assertEqual(got, {"conv": 33, "fc": 37})

    def test_uniform(self):
        got = allocate(CNN, 0.9, "uniform")
        for name, shape in CNN.items():
            size = int(np.prod(shape))
            self.assertEqual(
                active_count(size, got[name]), round(0.1 * size), name
            )
        self.assertEqual(
            counts(CNN, got), {"conv1": 43, "conv2": 461, "fc": 512}
        )

    def test_uniform_with_keep_dense(self):
        # conv1 dense (432): 1016 - 432 = 584 left for 9728 weights.
        got = counts(CNN, allocate(CNN, 0.9, "uniform", keep_dense=["conv1"]))
        self.assertEqual(got["conv1"], 432)
        self.assertEqual(got["conv2"], round(584 / 9728 * 4608))  # 277
        self.assertEqual(got["fc"], round(584 / 9728 * 5120))  # 307

    @parameterized.product(
        sparsity=(0.5, 0.9, 0.95, 0.98),
        distribution=("uniform", "er", "erk"),
    )
    def test_total_matches_budget(self, sparsity, distribution):
        rng = np.random.default_rng(int(sparsity * 100))
        for trial in range(5):
            shapes = random_shapes(rng, int(rng.integers(2, 9)))
            total = sum(int(np.prod(s)) for s in shapes.values())
            got = counts(shapes, allocate(shapes, sparsity, distribution))
            budget = (1 - sparsity) * total
            self.assertLessEqual(
                abs(sum(got.values()) - budget),
                len(shapes),
                f"trial {trial}: {shapes}",
            )
            for name, shape in shapes.items():
                size = int(np.prod(shape))
                self.assertGreaterEqual(got[name], 1)
                self.assertLessEqual(got[name], size)

    def test_returned_sparsity_encodes_exact_count(self):
        shapes = {"a": (7, 13), "b": (3, 5, 11)}
        got = allocate(shapes, 0.77, "erk")
        for name, shape in shapes.items():
            size = int(np.prod(shape))
            count = active_count(size, got[name])
            self.assertAlmostEqual(got[name], 1 - count / size, places=12)

    def test_power_scale_zero_is_uniform(self):
        for sparsity in (0.5, 0.9, 0.98):
            self.assertEqual(
                allocate(CNN, sparsity, "erk", power_scale=0.0),
                allocate(CNN, sparsity, "uniform"),
            )

    def test_zero_sparsity_is_dense(self):
        for distribution in ("uniform", "er", "erk"):
            got = allocate(CNN, 0.0, distribution)
            self.assertEqual(got, {name: 0.0 for name in CNN})

    def test_keep_dense(self):
        # fc (5120 weights) is kept dense and counted in the budget: at
        # sparsity 0.4 (budget 6096) 976 remain for conv1 and conv2:
        # eps = 976 / 79 = 12.35; conv1 12.35 * 25 = 308.9 -> 309;
        # conv2 12.35 * 54 = 667.1 -> 667.
        got = counts(CNN, allocate(CNN, 0.4, "erk", keep_dense=["fc"]))
        self.assertEqual(got, {"conv1": 309, "conv2": 667, "fc": 5120})

    def test_overrides(self):
        got = allocate(CNN, 0.9, "erk", overrides={"fc": 0.5})
        self.assertEqual(got["fc"], 0.5)
        # The others share the global sparsity among themselves.
        rest = {k: v for k, v in CNN.items() if k != "fc"}
        expected = allocate(rest, 0.9, "erk")
        self.assertEqual({k: got[k] for k in rest}, expected)
        self.assertEqual(list(got), list(CNN))
        # All overridden: exactly the overrides.
        everything = {"conv1": 0.1, "conv2": 0.2, "fc": 0.3}
        self.assertEqual(allocate(CNN, 0.9, overrides=everything), everything)

    def test_custom_map(self):
        custom = {"conv1": 0.0, "conv2": 0.5, "fc": 0.99}
        self.assertEqual(allocate(CNN, None, custom), custom)
        self.assertEqual(
            counts(CNN, allocate(CNN, None, custom)),
            {"conv1": 432, "conv2": 2304, "fc": 51},
        )

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "`distribution`.*'erx'"):
            allocate(CNN, 0.9, "erx")
        with self.assertRaisesRegex(ValueError, "missing: \\['fc'\\]"):
            allocate(CNN, None, {"conv1": 0.5, "conv2": 0.5})
        with self.assertRaisesRegex(ValueError, "`distribution`.*nope"):
            allocate(CNN, None, {**dict.fromkeys(CNN, 0.5), "nope": 0.5})
        with self.assertRaisesRegex(ValueError, "distribution\\['fc'\\]"):
            allocate(CNN, None, {"conv1": 0.5, "conv2": 0.5, "fc": 1.0})
        with self.assertRaisesRegex(ValueError, "`keep_dense`.*nope"):
            allocate(CNN, 0.5, keep_dense=["nope"])
        with self.assertRaisesRegex(ValueError, "`overrides`.*nope"):
            allocate(CNN, 0.5, overrides={"nope": 0.5})
        with self.assertRaisesRegex(ValueError, "overrides\\['fc'\\]"):
            allocate(CNN, 0.5, overrides={"fc": -0.5})
        for bad in (-0.1, 1.0, 1.5):
            with self.assertRaisesRegex(ValueError, "`sparsity`"):
                allocate(CNN, bad)
        with self.assertRaisesRegex(TypeError, "`sparsity`"):
            allocate(CNN, "x")
        with self.assertRaisesRegex(ValueError, "`sparsity` is required"):
            allocate(CNN, None, "erk")
        with self.assertRaisesRegex(ValueError, "`shapes` is empty"):
            allocate({}, 0.5)
        for bad in (-1.0, float("inf"), "x", True):
            with self.assertRaisesRegex(ValueError, "`power_scale`"):
                allocate(CNN, 0.5, power_scale=bad)

    def test_infeasible_budgets(self):
        # Everything kept dense cannot be 50% sparse...
        with self.assertRaisesRegex(ValueError, "cannot be reached"):
            allocate(CNN, 0.5, keep_dense=list(CNN))
        # ...but can be 0% sparse.
        self.assertEqual(
            allocate(CNN, 0.0, keep_dense=list(CNN)), dict.fromkeys(CNN, 0.0)
        )
        # fc alone (5120) is more than the budget at 0.9 (1016).
        with self.assertRaisesRegex(ValueError, "cannot be reached"):
            allocate(CNN, 0.9, "erk", keep_dense=["fc"])
        # Exactly the whole budget: nothing left for the other layers.
        shapes = {"a": (10, 10), "b": (10, 10)}
        with self.assertRaisesRegex(ValueError, "whole budget"):
            allocate(shapes, 0.5, "uniform", keep_dense=["a"])


class InitializeMasksTest(TestCase):
    def model(self, **kwargs):
        # Kernels 4x32 (128), 32x24 (768), 24x4 (96): 992 weights.
        return self.mlp(sizes=(4, 32, 24, 4), **kwargs)

    def test_exact_counts_match_allocation(self):
        model = self.model()
        applied = keras_dst.initialize_masks(model, 0.8, "erk", seed=0)
        layers = keras_dst.sparse_layers(model)
        shapes = {
            keras_dst.layer_path(layer): tuple(layer.kernel_variable.shape)
            for layer in layers
        }
        self.assertEqual(applied, allocate(shapes, 0.8, "erk"))
        for layer in layers:
            size = int(np.prod(layer.kernel_variable.shape))
            self.assertExactSparsity(
                layer, active_count(size, applied[keras_dst.layer_path(layer)])
            )
            self.assertEqual(
                layer.sparsity, applied[keras_dst.layer_path(layer)]
            )
        total = sum(int(layer.get_mask().sum()) for layer in layers)
        self.assertLessEqual(abs(total - 0.2 * 992), 1.5)

    def test_keep_first_and_last_dense(self):
        for first, last in ((True, False), (False, True), (True, True)):
            model = self.model()
            keras_dst.initialize_masks(
                model,
                0.7,
                "uniform",
                keep_first_dense=first,
                keep_last_dense=last,
                seed=1,
            )
            layers = keras_dst.sparse_layers(model)
            self.assertEqual(bool(np.all(layers[0].get_mask())), first)
            self.assertEqual(bool(np.all(layers[-1].get_mask())), last)
            self.assertLess(layers[1].get_mask().mean(), 0.3)
            total = sum(int(layer.get_mask().sum()) for layer in layers)
            self.assertLessEqual(abs(total - 0.3 * 992), 1.5)

    def test_keep_dense_and_overrides_by_name(self):
        model = self.model()
        names = [layer.name for layer in keras_dst.sparse_layers(model)]
        applied = keras_dst.initialize_masks(
            model,
            0.6,
            keep_dense=[names[2]],
            overrides={names[0]: 0.25},
            seed=2,
        )
        layers = keras_dst.sparse_layers(model)
        self.assertEqual(applied[keras_dst.layer_path(layers[2])], 0.0)
        self.assertEqual(applied[keras_dst.layer_path(layers[0])], 0.25)
        self.assertExactSparsity(layers[0], 96)  # 0.75 * 128
        self.assertExactSparsity(layers[2], 96)
        # Overrides are outside the budget: 0.4 * (768 + 96) = 345.6, of
        # which the dense layer takes 96: 249.6 -> 250.
        self.assertExactSparsity(layers[1], 250)

    def test_custom_map_by_name(self):
        model = self.model()
        layers = keras_dst.sparse_layers(model)
        custom = {
            layers[0].name: 0.5,
            layers[1].name: 0.9,
            keras_dst.layer_path(layers[2]): 0,
        }
        keras_dst.initialize_masks(model, distribution=custom, seed=0)
        self.assertEqual(
            [int(layer.get_mask().sum()) for layer in layers], [64, 77, 96]
        )

    def test_magnitude_keeps_largest(self):
        model = self.model()
        before = [
            self.to_numpy(layer.kernel_variable)
            for layer in keras_dst.sparse_layers(model)
        ]
        keras_dst.initialize_masks(
            model, 0.75, "uniform", mask_init="magnitude"
        )
        for layer, w in zip(
            keras_dst.sparse_layers(model), before, strict=True
        ):
            mask = layer.get_mask()
            self.assertExactSparsity(layer, w.size // 4)
            kept, dropped = np.abs(w[mask == 1]), np.abs(w[mask == 0])
            self.assertGreaterEqual(kept.min(), dropped.max())
            # Kept weights keep their value, dropped ones become 0.
            np.testing.assert_array_equal(
                self.to_numpy(layer.kernel_variable), w * mask
            )

    def test_seed_determinism(self):
        masks = []
        for seed in (3, 3, 4):
            model = self.model()
            keras_dst.initialize_masks(model, 0.9, seed=seed)
            masks.append(
                [layer.get_mask() for layer in keras_dst.sparse_layers(model)]
            )
        for a, b in zip(masks[0], masks[1], strict=True):
            np.testing.assert_array_equal(a, b)
        self.assertFalse(np.array_equal(masks[0][0], masks[2][0]))

    def test_errors(self):
        model = self.model()
        with self.assertRaisesRegex(ValueError, "`mask_init`"):
            keras_dst.initialize_masks(model, 0.5, mask_init="largest")
        with self.assertRaisesRegex(TypeError, "`seed`"):
            keras_dst.initialize_masks(model, 0.5, seed="1")
        with self.assertRaisesRegex(ValueError, "`keep_dense`.*nope"):
            keras_dst.initialize_masks(model, 0.5, keep_dense=["nope"])
        with self.assertRaisesRegex(ValueError, "`overrides`.*nope"):
            keras_dst.initialize_masks(model, 0.5, overrides={"nope": 0.1})
        plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        with self.assertRaisesRegex(ValueError, "no sparse layers"):
            keras_dst.initialize_masks(plain, 0.5)
        unbuilt = keras.Sequential([keras_dst.layers.SparseDense(2)])
        with self.assertRaisesRegex(ValueError, "not built"):
            keras_dst.initialize_masks(unbuilt, 0.5)
        # A failed call leaves the masks untouched.
        masks = [
            layer.get_mask().copy() for layer in keras_dst.sparse_layers(model)
        ]
        with self.assertRaisesRegex(ValueError, "cannot be reached"):
            names = [layer.name for layer in keras_dst.sparse_layers(model)]
            keras_dst.initialize_masks(model, 0.99, keep_dense=names[:2])
        for layer, mask in zip(
            keras_dst.sparse_layers(model), masks, strict=True
        ):
            np.testing.assert_array_equal(layer.get_mask(), mask)


if __name__ == "__main__":
    absltest.main()
