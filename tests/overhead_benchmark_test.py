"""The overhead benchmark runs end to end (quick mode) on this backend.

A crash of a benchmark must fail CI: `benchmarks/overhead.py --quick`
runs here in a subprocess for the current `KERAS_BACKEND`, and its JSON
is checked for what the benchmark itself promises (updates happened, no
retracing of the train step, the update compiled once).
"""

import os

import keras
from absl.testing import absltest

from benchmarks import harness


class OverheadBenchmarkTest(absltest.TestCase):
    def test_quick_run(self):
        backend = keras.backend.backend()
        code, log, report, text = harness.run_quick(
            "overhead.py",
            # Dense, one variant with and one without the gradient probe,
            # on the MLP: the other variants and the CNN add time, not
            # code paths (the suite's time is a budget).
            "--variants=set_noprobe,rigl",
            "--models=mlp",
            f"--backend={backend}",
            env=dict(os.environ, KERAS_BACKEND=backend),
        )
        self.assertEqual(code, 0, log)
        self.assertIn(f"## {backend} — mlp", text)
        models = report["backends"][backend]["models"]
        self.assertEqual(set(models), {"mlp"})
        for name, model in models.items():
            self.assertEqual(
                set(model["variants"]), {"dense", "set_noprobe", "rigl"}
            )
            for variant, out in model["variants"].items():
                where = f"{name}/{variant}"
                if backend == "torch":  # eager: nothing to retrace
                    self.assertIsNone(out["retraced_in_rounds"], where)
                else:
                    self.assertFalse(out["retraced_in_rounds"], where)
                self.assertTrue(out["same_train_function"], where)
                if variant in ("set_probe", "set_noprobe", "rigl"):
                    self.assertTrue(out["updates_in_every_round"], where)
                    self.assertGreater(out["update_ms"], 0, where)
                    # Compiled once (or reused from an earlier variant).
                    self.assertLessEqual(out["update_traces"], 1, where)
                    self.assertAlmostEqual(out["sparsity"], 0.9, delta=0.01)
                    # Unions and the updater's grown entries: packed bits
                    # (the MLP's kernels have whole bytes of rows).
                    memory = out["memory_bytes"]
                    self.assertEqual(8 * memory["unions"], memory["masks"])
                    self.assertEqual(memory["updater"], memory["unions"])


if __name__ == "__main__":
    absltest.main()
