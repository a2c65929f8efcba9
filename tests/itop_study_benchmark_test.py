"""The ITOP study's grid, claim checks and report, on made-up runs.

Pure Python (no training): the verdicts in benchmarks/results/itop_study.md
come from these functions, so they are checked on runs whose answers are
known.
"""

import os
import tempfile

from absl.testing import absltest

from benchmarks import harness
from benchmarks import itop_study
from tests.test_case import ONCE_PER_SUITE
from tests.test_case import TestCase


def run(method, sparsity, seed, epochs, dt, acc, rate, **extra):
    out = {
        "part": "explore",
        "model": "lenet300",
        "method": method,
        "growth": None if method == "dense" else "random",
        "sparsity": sparsity,
        "seed": seed,
        "epochs": epochs,
        "update_interval": dt,
        "weight_init": "sparse_scaled",
        "train_subset": 100,
        "validate": False,
        "test_accuracy": acc,
        "itop_rate": rate,
        "final_sparsity": sparsity,
        "history": {},
        "wall_s": 1.0,
    }
    out.update(extra)
    return out


def explore_runs():
    """R_s grows with length and smaller ΔT; accuracy peaks at ΔT=100; at
    10 epochs the 90% net is at dense accuracy, at 1 epoch it is not."""
    runs = []
    for seed in (0, 1, 2):
        noise = 0.001 * seed
        for epochs in (1, 10):
            dense = 0.85 if epochs == 1 else 0.88
            runs.append(run("dense", 0.0, seed, epochs, None, dense + noise, 1))
            for dt, bonus in ((25, 0.0), (100, 0.01), (400, -0.01)):
                rate = 0.1 + epochs / 100 + 10 / dt
                acc = 0.80 + bonus + (0.07 if epochs == 10 else 0.0)
                runs.append(
                    run("itop_set", 0.9, seed, epochs, dt, acc + noise, rate)
                )
    return runs


def write_report(args, payload):
    """`--report` from `payload` saved as <name>.json; the .md's path."""
    harness.dump(os.path.join(args.output_dir, f"{args.name}.json"), payload)
    args.report = True
    harness.main(args, None, itop_study.markdown, itop_study.plots)
    return os.path.join(args.output_dir, f"{args.name}.md")


def study_payload(args, runs):
    """What `measure` would write for `runs` (provenance made up)."""
    return {
        "command": "python benchmarks/itop_study.py",
        "elapsed_s": 60.0,
        "machine": {"cpu_model": "cpu", "cpus_available": 2},
        "versions": {"keras": "3"},
        "git": {"commit": "x"},
        "git_at_end": {"commit": "x"},
        "config": itop_study.run_config(args),
        "runs": runs,
    }


class ItopStudyTest(absltest.TestCase):
    def test_grid_counts_and_unique_keys(self):
        args = itop_study.parse_args(["--seeds=0,1"])
        specs = itop_study.specs_for(args)
        explore = [s for s in specs if s["part"] == "explore"]
        # Per seed and length: dense + 2 growths x 3 sparsities x 3 ΔT.
        self.assertLen(explore, 2 * 3 * (1 + 2 * 3 * 3))
        init = [s for s in specs if s["part"] == "init"]
        self.assertLen(init, 2 * (2 + 2 * 3))
        sup = [s for s in specs if s["part"] == "sup"]
        self.assertLen(sup, 2 * 2 * 3 * 2)
        self.assertTrue(all(s["validate"] for s in sup))
        self.assertLen({itop_study.key_of(s) for s in specs}, len(specs))
        # No --learning_rate: every run keeps the example's own.
        self.assertTrue(all(s["learning_rate"] is None for s in specs))

    def test_learning_rate_reaches_every_run(self):
        args = itop_study.parse_args(["--learning_rate=0.02", "--seeds=0"])
        specs = itop_study.specs_for(args)
        self.assertTrue(all(s["learning_rate"] == 0.02 for s in specs))
        self.assertEqual(itop_study.run_config(args)["learning_rate"], 0.02)

    def test_explore_claims(self):
        found = itop_study.explore_claims(explore_runs())
        self.assertEqual(found["length"], [3, 3])
        self.assertEqual(found["interval"], [2, 2])
        self.assertEqual(
            [c["best_interval"] for c in found["reliable"]], [100, 100]
        )
        gaps = {g["epochs"]: g for g in found["dense"]}
        self.assertAlmostEqual(gaps[1]["gap"], 0.81 - 0.85)
        self.assertAlmostEqual(gaps[10]["gap"], 0.88 - 0.88)
        self.assertEqual(gaps[10]["interval"], 100)

    def test_claims_fail_when_they_should(self):
        runs = explore_runs()
        for r in runs:  # R_s now falls with training length
            if r["method"] != "dense":
                r["itop_rate"] = 1.0 / r["epochs"] + 10 / r["update_interval"]
        found = itop_study.explore_claims(runs)
        self.assertEqual(found["length"], [0, 3])

    def test_sup_gains_are_paired_by_seed(self):
        runs = []
        for seed, (base, sup) in enumerate(
            [(0.80, 0.81), (0.70, 0.72), (0.90, 0.93)]
        ):
            common = dict(part="sup", growth="random", validate=True)
            history = {"val_accuracy": [0.5, base - 0.001, base - 0.0005, base]}
            runs.append(
                run(
                    "itop_set",
                    0.9,
                    seed,
                    4,
                    100,
                    base,
                    0.3,
                    history=history,
                    test_accuracy_bn_recalibrated=None,
                    **common,
                )
            )
            runs.append(
                run(
                    "sup_tickets",
                    0.9,
                    seed,
                    4,
                    100,
                    sup,
                    0.35,
                    history={"val_accuracy": [0.5, 0.6, 0.7, sup]},
                    cyclic_start_epoch=3,
                    **common,
                )
            )
        gains = itop_study.sup_gains(runs)
        g = gains[("random", 0.9)]
        self.assertAlmostEqual(g["gain"][0], 0.02)
        self.assertEqual(g["wins"], 3)
        # Paired: the spread of the bases does not enter the error.
        self.assertAlmostEqual(g["gain"][1], 0.01 / 3**0.5)
        self.assertAlmostEqual(g["plateau"]["base_at_cyclic_start"], 0.7995)
        self.assertAlmostEqual(g["plateau"]["base_at_end"], 0.80)

    def test_report_writes_markdown_and_plots(self):
        args = itop_study.parse_args(["--parts=explore", "--seeds=0,1,2"])
        payload = study_payload(args, explore_runs())
        with tempfile.TemporaryDirectory() as out:
            args.output_dir = out
            path = write_report(args, payload)
            with open(path) as f:
                text = f.read()
            self.assertIn("held in 3 of 3", text)
            self.assertIn("{100: 2}", text)
            self.assertIn("SET-ITOP lenet300 at 10 epochs", text)
            # Runs without a recorded rate used the example's default.
            self.assertIn("runs): the example's default.", text)
            for r in payload["runs"]:
                r["learning_rate"] = 0.02
            with open(write_report(args, payload)) as f:
                self.assertIn("sparse runs): 0.02.", f.read())
            if "![" in text:  # matplotlib installed
                self.assertTrue(
                    os.path.exists(os.path.join(out, "itop_study_explore.png"))
                )

    def test_report_with_one_interval_keeps_the_exploration_table(self):
        args = itop_study.parse_args(
            ["--parts=explore", "--seeds=0,1,2", "--intervals=100"]
        )
        runs = [
            r for r in explore_runs() if r["update_interval"] in (None, 100)
        ]
        payload = study_payload(args, runs)
        with tempfile.TemporaryDirectory() as out:
            args.output_dir = out
            with open(write_report(args, payload)) as f:
                text = f.read()
        self.assertIn("## Exploration (ITOP)", text)
        self.assertIn("| lenet300 | SET-ITOP | 0.9 | 10 |", text)
        self.assertIn("held in 1 of 1", text)  # R_s vs length
        self.assertEqual(
            text.count("not tested here (needs two or more ΔT)"), 2
        )


class ItopStudyQuickRunTest(TestCase):
    def test_quick_sup_part(self):
        if self.backend != ONCE_PER_SUITE:
            return  # its workers run on JAX (--backend)
        # The Sup-tickets part (2 runs: its own code paths) on the
        # example's --smoke data and model; the grid and the other parts'
        # verdicts are tested above on made-up runs.
        flags = ["--smoke", "--parts=sup", "--jobs=1"]
        with tempfile.TemporaryDirectory() as work:
            flags.append(f"--work_dir={work}")
            code, log, report, text = harness.run_quick("itop_study.py", *flags)
        self.assertEqual(code, 0, log)
        runs = {r["method"]: r for r in report["runs"]}
        self.assertEqual(set(runs), {"itop_set", "sup_tickets"})
        sup = runs["sup_tickets"]
        self.assertEqual(sup["cyclic_start_epoch"], 2)  # 4 epochs, half
        self.assertLen(sup["tickets"], 2)
        self.assertLen(sup["history"]["val_accuracy"], 4)  # --validate
        self.assertIn("## Sup-tickets after a converged base", text)
        self.assertIn("| SET-ITOP | 0.9 | ", text)


if __name__ == "__main__":
    absltest.main()
