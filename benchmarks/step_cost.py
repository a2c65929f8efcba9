"""Per-step and per-update cost, compared between two source trees.

Answers "did this change make a training step of a sparse model cheaper?"
on a noisy machine: processes of the two trees (e.g. a `git worktree` of an
older commit and this checkout) alternate, each timing the same MLP
784-1000-1000-1000-10 (batch 128, SGD momentum 0.9) three ways in
interleaved rounds: plain Keras `Dense`, and `SparseDense` under
`keras_dst.Static(0.9)` with and without the gradient probe. Reported: the
median over rounds of each sparse model's CPU-time ratio to the dense one
(CPU time of this process, less sensitive than wall time to other load),
per run, and the median over runs per tree; then one prune-and-regrow
update of the trained sparse model (random and gradient growth), in ms and
in train steps of that model.

Usage:

    git worktree add /tmp/keras_dst_old 4bfc4d7
    python benchmarks/step_cost.py --trees=/tmp/keras_dst_old,. --runs=3
    python benchmarks/step_cost.py --quick --output_dir=/tmp/step  # smoke:
        # this tree against itself, a small MLP, one backend

Results: benchmarks/results/step_cost.{json,md} (or --output_dir/--name).
"""

import argparse
import importlib.util
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BACKENDS = ("tensorflow", "jax", "torch")


def _load_harness():
    """The harness, by its path: `sys.path` stays as `PYTHONPATH` set it,
    so that a child imports the keras_dst of the tree under test."""
    path = os.path.join(HERE, "harness.py")
    spec = importlib.util.spec_from_file_location("step_cost_harness", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


harness = _load_harness()


def parse_args(argv=None):
    csv = harness.csv
    p = harness.parser(__doc__, "step_cost")
    p.add_argument("--trees", type=csv(str), help="comma-separated roots")
    p.add_argument("--backends", type=csv(str), default=list(BACKENDS))
    p.add_argument("--runs", type=int, default=3, help="runs per tree")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--updates", type=int, default=5, help="timed updates")
    p.add_argument("--hidden", type=int, default=1000, help="MLP width")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:  # this tree against itself, tiny
        args.trees = args.trees or [os.path.dirname(HERE)] * 2
        args.backends = args.backends[:1]
        args.runs, args.rounds, args.steps, args.updates = 1, 1, 5, 1
        args.hidden = 64
    if not args.trees and not args.report:
        p.error("--trees is required")
    args.trees = [os.path.abspath(t) for t in args.trees or []]
    return args


def child(args):
    """One run in this process (its keras_dst comes from PYTHONPATH)."""
    import time

    import keras
    import numpy as np

    import keras_dst

    rng = np.random.default_rng(0)
    n = 128 * args.steps
    x = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n)

    def build(kind):
        def layer(units, **kw):
            if kind == "dense":
                return keras.layers.Dense(units, **kw)
            probe = kind == "probe"
            return keras_dst.layers.SparseDense(
                units, dense_gradient=probe, **kw
            )

        inputs = keras.Input((784,))
        h = inputs
        for units in (args.hidden,) * 3:
            h = layer(units, activation="relu")(h)
        model = keras.Model(inputs, layer(10)(h))
        model.compile(
            keras.optimizers.SGD(0.01, momentum=0.9),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model

    models = {k: build(k) for k in ("dense", "probe", "noprobe")}
    for kind, model in models.items():  # compile; Static draws the masks
        cbs = [] if kind == "dense" else [keras_dst.Static(0.9, seed=0)]
        model.fit(x[:1280], y[:1280], batch_size=128, verbose=0, callbacks=cbs)
    cpu = {k: [] for k in models}
    wall = {k: [] for k in models}
    for _ in range(args.rounds):
        for kind, model in models.items():
            t0, c0 = time.perf_counter(), time.process_time()
            model.fit(x, y, batch_size=128, verbose=0)
            cpu[kind].append(time.process_time() - c0)
            wall[kind].append(time.perf_counter() - t0)
    ratios = {
        k: statistics.median(
            a / b for a, b in zip(cpu[k], cpu["dense"], strict=True)
        )
        for k in ("probe", "noprobe")
    }
    # One prune-and-regrow update of the trained probe model, called
    # directly (it waits for the device), in ms and in train steps of it.
    step_ms = 1e3 * statistics.median(wall["probe"]) / args.steps
    model = models["probe"]
    updates = {}
    for growth in ("random", "gradient"):
        updater = keras_dst.SparseUpdater(growth=growth, seed=0)
        updater.prepare(model)
        updater.update(model, 10**6, 0.3)  # compile
        times = []
        for i in range(args.updates):
            t0 = time.perf_counter()
            updater.update(model, 10**6 + 100 * (i + 1), 0.3)
            times.append(1e3 * (time.perf_counter() - t0))
        updates[growth] = statistics.median(times)
    harness.emit(
        {
            "ratios": ratios,
            "cpu_s": cpu,
            "wall_s": wall,
            "step_ms": step_ms,
            "update_ms": updates,
            "update_steps": {k: v / step_ms for k, v in updates.items()},
        }
    )


def measure(args):
    runs = []
    for backend in args.backends:
        for r in range(args.runs):
            for tree in args.trees:  # alternate the trees
                env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=tree)
                cmd = [sys.executable, os.path.abspath(__file__), "--child"]
                cmd += [f"--trees={tree}", f"--rounds={args.rounds}"]
                cmd += [f"--steps={args.steps}", f"--updates={args.updates}"]
                cmd += [f"--hidden={args.hidden}"]
                result = harness.child(cmd, env)
                result.update(backend=backend, tree=tree, run=r)
                runs.append(result)
                print(backend, tree, r, result["ratios"], flush=True)
    summary = {}
    for backend in args.backends:
        for tree in dict.fromkeys(args.trees):
            mine = [
                x for x in runs if (x["backend"], x["tree"]) == (backend, tree)
            ]
            summary[f"{backend} {tree}"] = {
                **{
                    k: statistics.median(x["ratios"][k] for x in mine)
                    for k in ("probe", "noprobe")
                },
                **{
                    f"update_{g}_{unit}": statistics.median(
                        x[f"update_{unit}"][g] for x in mine
                    )
                    for g in ("random", "gradient")
                    for unit in ("ms", "steps")
                },
            }
    config = {k: getattr(args, k) for k in ("runs", "rounds", "steps")}
    config.update(updates=args.updates, hidden=args.hidden)
    return {
        "config": config,
        "trees": args.trees,
        "runs": runs,
        "summary": summary,
    }


def markdown(report, plots=None):
    runs, config = report["runs"], report.get("config", {})
    # Files made before the configuration was recorded: what their
    # runs say, and the command's defaults.
    rounds = config.get("rounds", len(runs[0]["cpu_s"]["dense"]))
    trees = list(dict.fromkeys(report["trees"]))
    backends = list(dict.fromkeys(x["backend"] for x in runs))
    count = config.get("runs", 1 + max(x["run"] for x in runs))
    rows = []
    for backend in backends:
        for tree in trees:
            mine = [
                x for x in runs if (x["backend"], x["tree"]) == (backend, tree)
            ]
            m = report["summary"][f"{backend} {tree}"]
            cells = []
            for k in ("probe", "noprobe"):
                each = ", ".join(f"{x['ratios'][k]:.3f}" for x in mine)
                cells.append(f"{m[k]:.3f} ({each})")
            for g in ("random", "gradient"):
                each = ", ".join(f"{x['update_steps'][g]:.2f}" for x in mine)
                cells.append(
                    f"{m[f'update_{g}_ms']:.1f} ms = "
                    f"{m[f'update_{g}_steps']:.2f} steps ({each})"
                )
            rows.append([backend, f"`{tree}`", *cells])
    width = config.get("hidden", 1000)
    return [
        "# Per-step cost of sparse layers: two source trees side by side",
        "",
        *harness.provenance_lines(report, "step_cost.py"),
        "",
        f"MLP 784-{width}-{width}-{width}-10, batch 128, Static(0.9) ERK; "
        f"CPU-time ratio to plain Keras Dense, median of {rounds} "
        f"interleaved rounds per run, {count} alternating runs per tree "
        "(median over runs; each run's value in brackets). Update: one "
        "`SparseUpdater(growth=...).update(model, step, 0.3)` of the trained "
        "probe model, called directly, median of "
        f"{config.get('updates', '--updates (see the command)')} (wall time, "
        "waits for the device), and in train steps of that model (wall time "
        "of its epochs / steps).",
        "",
        *harness.table(
            ["backend", "tree", "Static (probe)", "Static (no probe)"]
            + ["update, random growth", "update, gradient growth"],
            rows,
        ),
        "",
    ]


def main(argv=None):
    args = parse_args(argv)
    if args.child:  # keras_dst comes from PYTHONPATH
        child(args)
        return 0
    report = harness.main(args, measure, markdown)
    print("\n".join(markdown(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
