"""The accuracy benchmark's grid, statistics and claim verdicts.

Pure Python (no training): the verdicts in benchmarks/results/accuracy.md
come from these functions, so they are checked on made-up runs whose
answers are known.
"""

import argparse
import os
import tempfile

import numpy as np
from absl.testing import absltest

from benchmarks import accuracy
from benchmarks import harness
from tests.test_case import ONCE_PER_SUITE
from tests.test_case import TestCase


def run(model, method, sparsity, seed, acc, itop_rate=0.5):
    return {
        "model": model,
        "method": method,
        "sparsity": sparsity,
        "seed": seed,
        "test_accuracy": acc,
        "itop_rate": itop_rate,
        "final_sparsity": sparsity,
        "kernel_zero_fraction": sparsity,
        "wall_s": 1.0,
    }


class AccuracyBenchmarkTest(absltest.TestCase):
    def test_spearman(self):
        self.assertAlmostEqual(accuracy.spearman([1, 2, 3], [10, 20, 30]), 1)
        self.assertAlmostEqual(accuracy.spearman([1, 2, 3], [3, 2, 1]), -1)
        self.assertIsNone(accuracy.spearman([1, 1, 1], [1, 2, 3]))
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=12), rng.normal(size=12)
        ranks = [np.argsort(np.argsort(v)) for v in (x, y)]
        self.assertAlmostEqual(
            accuracy.spearman(list(x), list(y)),
            np.corrcoef(*ranks)[0, 1],
        )
        # Ties get their average rank.
        self.assertEqual(accuracy.ranks([5, 1, 5, 0]), [2.5, 1.0, 2.5, 0.0])

    def test_grid(self):
        args = accuracy.parse_args(
            ["--methods=dense,set,tfmot_gmp", "--seeds=0,1"]
        )
        specs = accuracy.specs_for(args, "mlp", ["dense", "set"])
        self.assertLen(specs, 2 * (1 + 3))  # dense once per seed
        self.assertLen({accuracy.key_of(s) for s in specs}, len(specs))
        workers = accuracy.workers(args)
        self.assertEqual(
            [(w, b) for w, b, _ in workers],
            [
                ("mlp_jax", "jax"),
                ("mlp_tfmot", None),
                ("cnn_tensorflow", "tensorflow"),
                ("cnn_tfmot", None),
            ],
        )

    def test_bad_flags(self):
        for argv in (
            ["--methods=set,magic"],
            ["--sparsities=1.0"],
            ["--update_interval=0"],
        ):
            with self.assertRaises(SystemExit):
                accuracy.parse_args(argv)

    def runs(self):
        out = []
        for seed, noise in enumerate((0.0, 0.002, -0.002)):
            out.append(run("mlp", "dense", 0.0, seed, 0.85 + noise, 1.0))
            # R_s and accuracy rise together at 0.9; fall together at 0.95
            for i, method in enumerate(("static", "set", "itop_set")):
                out.append(
                    run(
                        "mlp",
                        method,
                        0.9,
                        seed,
                        0.80 + 0.02 * i + noise,
                        0.1 + 0.2 * i,
                    )
                )
                out.append(
                    run(
                        "mlp",
                        method,
                        0.95,
                        seed,
                        0.80 - 0.02 * i + noise,
                        0.1 + 0.2 * i,
                    )
                )
            out.append(run("mlp", "itop_rigl", 0.9, seed, 0.86 + noise, 0.6))
            # Sup-tickets: wins seeds 0 and 1 at 0.9, loses on average.
            sup = (0.845, 0.843, 0.80)[seed]
            out.append(run("mlp", "sup_tickets", 0.9, seed, sup, 0.7))
        return out

    def test_claims(self):
        stats = accuracy.summarize(self.runs())
        self.assertAlmostEqual(stats[("mlp", "dense", 0.0)]["acc_mean"], 0.85)
        self.assertAlmostEqual(stats[("mlp", "dense", 0.0)]["acc_std"], 0.002)
        found = accuracy.claims(stats, ["mlp"], [0.9, 0.95])
        rs = {c["sparsity"]: c for c in found if c["claim"] == "rs"}
        # 0.9: accuracy rises with R_s but for Sup-tickets (R_s ranks
        # 0..4, accuracy ranks 0, 1, 3, 4, 2): rho = 1 - 6 * 6 / (5 * 24).
        self.assertAlmostEqual(rs[0.9]["rho"], 0.7)
        self.assertTrue(rs[0.9]["held"])
        self.assertAlmostEqual(rs[0.95]["rho"], -1.0)
        self.assertFalse(rs[0.95]["held"])
        pairs = {
            (c["base"], c["sparsity"]): c
            for c in found
            if c["claim"] == "rs_pair"
        }
        self.assertEqual(set(pairs), {("set", 0.9), ("set", 0.95)})
        self.assertAlmostEqual(pairs[("set", 0.9)]["rs_diff"], 0.2)
        self.assertTrue(pairs[("set", 0.9)]["held"])
        self.assertAlmostEqual(pairs[("set", 0.95)]["diff"], -0.02)
        self.assertFalse(pairs[("set", 0.95)]["held"])
        dense = {c["method"]: c for c in found if c["claim"] == "dense"}
        self.assertEqual(dense["itop_set"]["verdict"], "did not hold")
        self.assertAlmostEqual(dense["itop_set"]["diff"], -0.01)
        self.assertEqual(dense["itop_rigl"]["verdict"], "held")
        (sup,) = [c for c in found if c["claim"] == "sup"]
        self.assertEqual((sup["wins"], sup["pairs"]), (2, 3))
        self.assertFalse(sup["held"])
        lines = "\n".join(accuracy.claim_lines(found))
        self.assertIn("PARTLY (1 of 2)", lines)
        self.assertIn("SET → SET-ITOP: R_s +0.200, accuracy +2.00", lines)
        self.assertIn("DID NOT HOLD", lines)

    def test_within_noise(self):
        runs = [
            run("cnn", "dense", 0.0, s, a) for s, a in enumerate((0.8, 0.9))
        ]
        runs += [run("cnn", "itop_set", 0.9, 0, 0.84)]
        runs += [run("cnn", "itop_set", 0.9, 1, 0.85)]
        found = accuracy.claims(accuracy.summarize(runs), ["cnn"], [0.9])
        (c,) = [c for c in found if c["claim"] == "dense"]
        self.assertEqual(c["verdict"], "within noise")

    def test_markdown(self):
        args = argparse.Namespace(**vars(accuracy.parse_args([])))
        payload = {
            "command": "python benchmarks/accuracy.py",
            "started_at": "2026-12-01T00:00:00+00:00",
            "elapsed_s": 60.0,
            "config": accuracy.run_config(args),
            "versions": {},
            "machine": {},
            "git": {},
            "runs": self.runs(),
        }
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "a.md")
            lines = accuracy.markdown(payload, {})
            harness.write_markdown_keeping_notes(path, lines)
            with open(path, "a") as f:
                f.write("my notes\n")
            harness.write_markdown_keeping_notes(path, lines)  # notes kept
            with open(path) as f:
                text = f.read()
        self.assertIn(
            "| SET-ITOP | 84.00 ± 0.20 (R_s 0.50) | 76.00 ± 0.20 (R_s 0.50) "
            "| — |",
            text,
        )
        self.assertIn("| Dense | 85.00 ± 0.20 | 85.00 ± 0.20 |", text)
        self.assertIn("| RigL | — | — | — |", text)
        self.assertTrue(text.endswith("my notes\n"))
        self.assertEqual(text.count("my notes"), 1)


class AccuracyQuickRunTest(TestCase):
    def test_quick_run_resumes(self):
        if self.backend != ONCE_PER_SUITE:
            return  # its workers run the MLP on JAX (--mlp_backend)
        # One method on the example's --smoke data and model: each run
        # costs a process start and compilations (the suite's time is a
        # budget); the grid, statistics and report are tested above.
        flags = ["--smoke", "--models=mlp", "--methods=set", "--jobs=1"]
        with tempfile.TemporaryDirectory() as work:
            flags.append(f"--work_dir={work}")
            code, log, report, text = harness.run_quick("accuracy.py", *flags)
            self.assertEqual(code, 0, log)
            runs = report["runs"]
            self.assertEqual(
                [(r["method"], r["backend"]) for r in runs], [("set", "jax")]
            )
            self.assertGreater(runs[0]["updates"], 0)
            self.assertIn("| SET | ", text)
            for key in ("command", "started_at", "elapsed_s", "git_at_end"):
                self.assertIn(key, report)
            # The same command again: every run is in the parts file.
            code, log, again, _ = harness.run_quick("accuracy.py", *flags)
            self.assertEqual(code, 0, log)
            self.assertIn("0 of 1 runs to do", log)
            self.assertEqual(again["runs"], runs)


if __name__ == "__main__":
    absltest.main()
