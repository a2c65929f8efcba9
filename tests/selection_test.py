"""Exact selection, random scores and the criteria registry, vs numpy.

The numpy references here are independent re-implementations of the
documented rules (lexicographic sort by score, then flat index; the
lowbias32 hash), not calls into keras_dst.
"""

import keras
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

import keras_dst
from tests.test_case import TestCase

MASK32 = 0xFFFFFFFF


def reference_select(scores, candidates, k, largest=True):
    """k candidates by score (ties: lowest flat index), as a bool mask."""
    flat = np.asarray(scores, np.float32).reshape(-1).astype(np.float64)
    idx = np.flatnonzero(np.asarray(candidates).reshape(-1))
    key = -flat[idx] if largest else flat[idx]
    order = np.lexsort((idx, key))  # primary: key, then index
    out = np.zeros(flat.size, bool)
    out[idx[order[:k]]] = True
    return out.reshape(np.shape(scores))


def mix32(x):
    x = np.asarray(x, np.uint64) & MASK32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & MASK32
    x ^= x >> 15
    x = (x * 0x846CA68B) & MASK32
    x ^= x >> 16
    return x


def reference_uniform(seed, step, layer, size):
    """The documented random scores of layer `layer` at `step`."""
    salt = ((layer + 1) * 0x9E3779B9) & MASK32
    key = mix32(mix32(np.uint64(seed) ^ np.uint64(salt)) ^ np.uint64(step))
    index = np.arange(size, dtype=np.uint64)
    bits = mix32((mix32(index ^ key) + key) & MASK32)
    return (bits >> 8).astype(np.float32) * np.float32(2.0**-24)


def numpy_of(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


COMPILED = {}


class SelectionTest(TestCase):
    def select(self, scores, candidates, ks, largest=True):
        fn = (
            keras_dst.criteria.select_largest
            if largest
            else keras_dst.criteria.select_smallest
        )
        # Compiled as in the engine (eager op-by-op is slow on JAX); k is a
        # tensor, so one compiled function serves every k.
        if fn not in COMPILED:
            COMPILED[fn] = keras_dst.backend.compile_function(fn)
        out = COMPILED[fn](
            [keras.ops.convert_to_tensor(s) for s in scores],
            [keras.ops.convert_to_tensor(c) for c in candidates],
            keras.ops.convert_to_tensor(np.asarray(ks, np.int32)),
        )
        return [numpy_of(o) for o in out]

    @parameterized.named_parameters(
        ("distinct", "distinct"),
        ("equal_magnitudes", "equal"),
        ("all_zero", "zeros"),
        ("few_values", "few"),
        ("signed", "signed"),
    )
    def test_matches_numpy_with_ties(self, kind):
        rng = np.random.default_rng(0)
        shapes = [(37, 11), (5,), (4, 3, 2, 6)]
        scores, candidates = [], []
        for shape in shapes:
            if kind == "distinct":
                s = rng.random(shape)
            elif kind == "equal":
                s = np.full(shape, 0.25)
            elif kind == "zeros":
                s = np.zeros(shape)
            elif kind == "few":
                s = rng.integers(0, 3, shape) * 0.5
            else:
                s = rng.normal(size=shape)
                s.reshape(-1)[:3] = [0.0, -0.0, -1e-30]
            scores.append(s.astype(np.float32))
            candidates.append(rng.random(shape) < 0.6)
        for ks in ([0, 0, 0], [1, 2, 3], [50, 3, 40], [10**6, 10**6, 10**6]):
            for largest in (True, False):
                got = self.select(scores, candidates, ks, largest)
                for s, c, k, g in zip(scores, candidates, ks, got, strict=True):
                    want = reference_select(s, c, k, largest)
                    np.testing.assert_array_equal(g, want)
                    self.assertEqual(int(g.sum()), min(k, int(c.sum())))

    def test_large_layer_matches_numpy(self):
        # A 1000x300 kernel, as in the benchmarks, with duplicated values.
        rng = np.random.default_rng(1)
        s = np.round(np.abs(rng.normal(size=(1000, 300))), 3)
        c = rng.random(s.shape) < 0.9
        for k in (1, 12_345, 200_000):
            (got,) = self.select([s.astype(np.float32)], [c], [k])
            np.testing.assert_array_equal(
                got, reference_select(s.astype(np.float32), c, k)
            )


class RandomScoresTest(TestCase):
    def test_scores_are_the_documented_hash(self):
        # Identical on every backend: both are compared to one reference.
        for seed, step, layer in ((0, 0, 0), (7, 1500, 3), (2**31 - 1, 9, 1)):
            key = keras_dst.criteria.layer_key(
                keras.ops.convert_to_tensor(np.uint32(seed)),
                keras.ops.convert_to_tensor(np.int32(step)),
                layer,
            )
            got = numpy_of(keras_dst.criteria.uniform_scores(key, (64, 33)))
            want = reference_uniform(seed, step, layer, 64 * 33)
            np.testing.assert_array_equal(got.reshape(-1), want)

    def test_scores_look_uniform(self):
        key = keras_dst.criteria.layer_key(
            keras.ops.convert_to_tensor(np.uint32(3)),
            keras.ops.convert_to_tensor(np.int32(5)),
            0,
        )
        s = numpy_of(keras_dst.criteria.uniform_scores(key, (100_000,)))
        self.assertTrue(np.all((s >= 0) & (s < 1)))
        counts = np.histogram(s, bins=20, range=(0, 1))[0]
        # chi-square with 19 degrees of freedom: p < 1e-4 above 49.
        expected = s.size / 20
        self.assertLess(((counts - expected) ** 2 / expected).sum(), 49.0)
        self.assertLess(abs(np.corrcoef(s[:-1], s[1:])[0, 1]), 0.02)


class RegistryTest(TestCase):
    def test_builtins_are_registered(self):
        for name in ("random", "gradient", "momentum"):
            self.assertIn(name, keras_dst.criteria.growth_criteria())
        self.assertIn("magnitude", keras_dst.criteria.prune_criteria())
        self.assertTrue(
            keras_dst.criteria.get_growth("gradient").needs_gradient
        )
        self.assertTrue(
            keras_dst.criteria.get_growth("momentum").gradient_momentum
        )
        self.assertFalse(keras_dst.criteria.get_growth("random").needs_gradient)

    def test_bad_registrations(self):
        with self.assertRaisesRegex(ValueError, "name"):
            keras_dst.criteria.register_growth("", lambda inputs: None)
        with self.assertRaisesRegex(TypeError, "callable"):
            keras_dst.criteria.register_prune("x", 3)
        with self.assertRaisesRegex(ValueError, "needs_gradient"):
            keras_dst.criteria.register_growth(
                "x", lambda i: i.kernel, gradient_momentum=True
            )
        with self.assertRaisesRegex(ValueError, "growth.*register_growth"):
            keras_dst.DynamicSparsityCallback(0.9, growth="no_such_criterion")

    def test_custom_criteria_train_in_fit(self):
        # Growth by lowest flat index, pruning by highest |w|: the result
        # of every update is known exactly, on both backends.
        def lowest_index(inputs):
            size = int(np.prod(inputs.kernel.shape))
            index = keras.ops.arange(size, dtype="float32")
            return keras.ops.reshape(-index, keras.ops.shape(inputs.kernel))

        def largest_magnitude(inputs):
            return -keras.ops.abs(inputs.kernel)

        keras_dst.criteria.register_growth("test_lowest_index", lowest_index)
        keras_dst.criteria.register_prune("test_largest", largest_magnitude)
        model = self.mlp((6, 8, 3), sparsity=0.5, mask_seed=0)
        model.compile(keras.optimizers.SGD(0.05), "mse")
        x = np.random.default_rng(0).normal(size=(64, 6)).astype("float32")
        y = np.zeros((64, 3), "float32")
        recorder = Recorder()
        callback = keras_dst.DynamicSparsityCallback(
            0.5,
            prune="test_largest",
            growth="test_lowest_index",
            drop_fraction=0.5,
            drop_schedule="constant",
            update_interval=2,
            seed=0,
        )
        model.fit(
            x,
            y,
            batch_size=16,
            epochs=1,
            verbose=0,
            callbacks=[recorder, callback],
        )
        history = callback.updater.history
        self.assertEqual([h["step"] for h in history], [2])
        layers = keras_dst.sparse_layers(model)
        before_mask, before_kernel = recorder.at_step[2]
        for i, layer in enumerate(layers):
            mask = before_mask[i].reshape(-1).astype(bool)
            kernel = before_kernel[i].reshape(-1)
            k = history[0]["k"][keras_dst.layer_path(layer)]
            self.assertEqual(k, int(mask.sum()) // 2)
            pruned = reference_select(-np.abs(kernel), mask, k, largest=False)
            survive = mask & ~pruned
            order = np.flatnonzero(~survive)[:k]
            want = survive.copy()
            want[order] = True
            np.testing.assert_array_equal(
                layer.get_mask().reshape(-1).astype(bool), want
            )


class Recorder(keras.callbacks.Callback):
    """Masks and kernels at the start of each step (test only)."""

    def __init__(self):
        super().__init__()
        self.at_step = {}

    def on_train_batch_begin(self, batch, logs=None):
        layers = keras_dst.sparse_layers(self.model)
        step = int(numpy_of(self.model.optimizer.iterations))
        self.at_step[step] = (
            [layer.get_mask().copy() for layer in layers],
            [numpy_of(layer.kernel_variable.value).copy() for layer in layers],
        )


if __name__ == "__main__":
    absltest.main()
