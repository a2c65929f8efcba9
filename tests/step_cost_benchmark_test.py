"""`benchmarks/step_cost.py --quick` runs end to end (PyTorch suite).

The benchmark compares two source trees in alternating processes; the
quick run compares this tree with itself on a small MLP, one backend.
"""

from absl.testing import absltest

from benchmarks import harness
from tests.test_case import ONCE_PER_SUITE
from tests.test_case import TestCase


class StepCostBenchmarkTest(TestCase):
    def test_quick_run(self):
        if self.backend != ONCE_PER_SUITE:
            return  # any backend does
        code, log, report, text = harness.run_quick(
            "step_cost.py", "--backends=torch"
        )
        self.assertEqual(code, 0, log)
        (tree,) = set(report["trees"])  # the same tree, twice
        self.assertLen(report["runs"], 2)
        summary = report["summary"][f"torch {tree}"]
        for key in ("probe", "noprobe", "update_random_ms"):
            self.assertGreater(summary[key], 0)
        self.assertIn(f"| torch | `{tree}` | ", text)


if __name__ == "__main__":
    absltest.main()
