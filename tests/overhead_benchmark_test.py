"""The overhead benchmark runs end to end (quick mode) on this backend.

A crash of a benchmark must fail CI: `benchmarks/overhead.py --quick`
runs here in a subprocess for the current `KERAS_BACKEND`, and its JSON
is checked for what the benchmark itself promises (updates happened, no
retracing of the train step, the update compiled once).
"""

import json
import os
import subprocess
import sys
import tempfile

import keras
from absl.testing import absltest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class OverheadBenchmarkTest(absltest.TestCase):
    def test_quick_run(self):
        backend = keras.backend.backend()
        with tempfile.TemporaryDirectory() as out:
            cmd = [
                sys.executable,
                os.path.join(ROOT, "benchmarks", "overhead.py"),
                "--quick",
                # Dense, one variant with and one without the gradient
                # probe, on the MLP: the other variants and the CNN add
                # time, not code paths (the suite's time is a budget).
                "--variants=set_noprobe,rigl",
                "--models=mlp",
                f"--backend={backend}",
                f"--output_dir={out}",
                "--name=quick",
            ]
            env = dict(os.environ, KERAS_BACKEND=backend)
            env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            done = subprocess.run(
                cmd, cwd=ROOT, env=env, capture_output=True, text=True
            )
            self.assertEqual(
                done.returncode, 0, done.stdout[-3000:] + done.stderr[-3000:]
            )
            with open(os.path.join(out, "quick.json")) as f:
                report = json.load(f)
            self.assertTrue(os.path.exists(os.path.join(out, "quick.md")))
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
