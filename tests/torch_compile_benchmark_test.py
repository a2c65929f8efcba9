"""`benchmarks/torch_compile.py --quick` runs end to end (PyTorch).

The experiment swaps the PyTorch shim's `compile_function` and the
selection's switches for a `torch.compile(fullgraph=True)` of the update:
a change to those internals must fail here, not in the next person's
rerun. Quick: one method on a small MLP, and Dynamo's graph capture with
its `eager` backend (no code generation); both modes must give the same
masks.
"""

from absl.testing import absltest

from benchmarks import harness
from tests.test_case import TestCase


class TorchCompileBenchmarkTest(TestCase):
    def test_quick_run(self):
        if self.backend != "torch":
            return  # a PyTorch experiment; once per suite
        code, log, report, text = harness.run_quick("torch_compile.py")
        self.assertEqual(code, 0, log)
        modes = {r["mode"]: r for r in report["rows"]}
        self.assertEqual(set(modes), {"eager", "compiled"})
        self.assertEqual(
            modes["eager"]["masks_sha1"], modes["compiled"]["masks_sha1"]
        )
        self.assertIn("| RigL | compiled | ", text)


if __name__ == "__main__":
    absltest.main()
