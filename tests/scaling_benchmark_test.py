"""`benchmarks/scaling.py --quick` runs (JAX) and `update_cost` says what
it can on every backend.

On JAX the quick run (ModelParallel on 1 and 2 virtual devices, a small
MLP) must show what the README promises: masks sharded like their
kernels, no all-gather larger than one axis's vector (a layer is never
gathered whole), about half the update memory per device on 2 devices,
and the update compiled once. TensorFlow and PyTorch cannot cost the update and
must say so.
"""

import os

import keras
import numpy as np
from absl.testing import absltest

import keras_dst
from benchmarks import harness
from tests.test_case import ONCE_PER_SUITE
from tests.test_case import TestCase


class ScalingBenchmarkTest(TestCase):
    def test_update_cost(self):
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((8,)), keras_dst.layers.SparseDense(4, sparsity=0.5)]
        )
        model.compile("sgd", "mse")
        updater = keras_dst.SparseUpdater(seed=0).prepare(model)
        if self.backend != "jax":
            with self.assertRaisesRegex(
                NotImplementedError, "KERAS_BACKEND=jax"
            ):
                updater.update_cost()
            return
        cost = updater.update_cost(0.5)
        self.assertEqual(cost["all_gathers"], 0)  # one device
        self.assertEqual(cost["gathered_bytes"], 0)
        self.assertGreater(cost["temp_bytes"] + cost["output_bytes"], 0)
        # Costing does not update: the mask is as it was.
        before = model.layers[0].get_mask()
        updater.update_cost(0.5)
        np.testing.assert_array_equal(model.layers[0].get_mask(), before)

    def test_quick_run(self):
        if self.backend != ONCE_PER_SUITE:
            return  # it runs JAX children itself (layouts: JAX only)
        env = dict(os.environ)
        env.pop("XLA_FLAGS", None)
        code, log, report, text = harness.run_quick("scaling.py", env=env)
        self.assertEqual(code, 0, log)
        self.assertIn("| model | 2 |", text)
        runs = {(r["layout"], r["devices"]): r for r in report["runs"]}
        self.assertEqual(set(runs), {("model", 1), ("model", 2)})
        width = report["config"]["width"]
        for run in runs.values():
            self.assertEqual(run["update_traces"], 1)
            self.assertEqual(run["active"], runs[("model", 1)]["active"])
        sharded, single = runs[("model", 2)], runs[("model", 1)]
        self.assertEqual(sharded["mask_specs"], ["P(None, 'model')"])
        # Only vectors of one axis (int32) are gathered, never a layer.
        self.assertLessEqual(sharded["cost"]["largest_gather_bytes"], 4 * width)
        # Each device holds and updates half of every layer.
        self.assertLess(
            sharded["cost"]["temp_bytes"], 0.6 * single["cost"]["temp_bytes"]
        )


if __name__ == "__main__":
    absltest.main()
