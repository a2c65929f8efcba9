"""`benchmarks/deploy.py --quick` runs end to end (JAX, its backend).

A small MLP dense and with RigL-ITOP at 95%, unstructured and in 1x4
blocks, on a few hundred Fashion-MNIST images: every model is exported
to LiteRT (output checked by `export_litert`), timed, and compared with
the dense one; the report has its tables and the targets' verdicts.
"""

import os

from absl.testing import absltest

from benchmarks import harness
from tests.test_case import ONCE_PER_SUITE
from tests.test_case import TestCase


class DeployBenchmarkTest(TestCase):
    def test_quick_run(self):
        if self.backend != ONCE_PER_SUITE:
            return  # once per suite, on JAX (the benchmark's backend)
        env = dict(os.environ, KERAS_BACKEND="jax")
        code, log, report, text = harness.run_quick("deploy.py", env=env)
        self.assertEqual(code, 0, log)
        rows = {r["name"]: r for r in report["rows"]}
        self.assertEqual(
            set(rows),
            {
                "dense",
                "itop_rigl_unstructured_s0.95",
                "itop_rigl_block_1x4_s0.95",
            },
        )
        for row in rows.values():
            self.assertGreater(row["tflite_bytes"], 0)
            self.assertGreater(row["latency_b1_s"], 0)
        self.assertLen(report["targets"], 5)
        self.assertIn("## Targets (95%, 1x4 blocks)", text)
        self.assertIn("| itop_rigl_block_1x4_s0.95 | ", text)


if __name__ == "__main__":
    absltest.main()
