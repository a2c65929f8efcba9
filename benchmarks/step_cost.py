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

Results: benchmarks/results/step_cost.{json,md} (or --output_dir/--name).
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BACKENDS = ("tensorflow", "jax", "torch")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trees", required=True, help="comma-separated roots")
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument("--runs", type=int, default=3, help="runs per tree")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--updates", type=int, default=5, help="timed updates")
    p.add_argument("--output_dir", default=os.path.join(HERE, "results"))
    p.add_argument("--name", default="step_cost")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.trees = [os.path.abspath(t) for t in args.trees.split(",") if t]
    args.backends = [b for b in args.backends.split(",") if b]
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
        for units in (1000, 1000, 1000):
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
    print(
        json.dumps(
            {
                "ratios": ratios,
                "cpu_s": cpu,
                "wall_s": wall,
                "step_ms": step_ms,
                "update_ms": updates,
                "update_steps": {k: v / step_ms for k, v in updates.items()},
            }
        )
    )


def main(argv=None):
    args = parse_args(argv)
    if args.child:  # keras_dst comes from PYTHONPATH: import nothing here
        child(args)
        return 0
    sys.path.insert(0, os.path.dirname(HERE))
    from benchmarks import provenance

    started = datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"
    )
    runs = []
    for backend in args.backends:
        for r in range(args.runs):
            for tree in args.trees:  # alternate the trees
                env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=tree)
                env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
                cmd = [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--child",
                    f"--trees={tree}",
                    f"--rounds={args.rounds}",
                    f"--steps={args.steps}",
                    f"--updates={args.updates}",
                ]
                out = subprocess.run(
                    cmd, env=env, capture_output=True, text=True, check=True
                )
                result = json.loads(out.stdout.strip().splitlines()[-1])
                result.update(backend=backend, tree=tree, run=r)
                runs.append(result)
                print(
                    backend,
                    tree,
                    r,
                    result["ratios"],
                    result["update_steps"],
                    flush=True,
                )
    summary = {}
    for backend in args.backends:
        for tree in args.trees:
            mine = [x for x in runs if x["backend"] == backend]
            mine = [x for x in mine if x["tree"] == tree]
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
    report = {
        "command": provenance.command_line(),
        "started_at": started,
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "machine": provenance.machine_info(),
        "versions": provenance.versions(),
        "git": provenance.git_info(),
        "trees": args.trees,
        "runs": runs,
        "summary": summary,
    }
    os.makedirs(args.output_dir, exist_ok=True)
    path = os.path.join(args.output_dir, args.name)
    with open(path + ".json", "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    lines = [
        "# Per-step cost of sparse layers: two source trees side by side",
        "",
        f"{report['finished_at']}, {report['machine'].get('cpu_model', '?')}"
        f" ({report['machine'].get('cpu_count')} CPUs). MLP "
        "784-1000-1000-1000-10, batch 128, Static(0.9) ERK; CPU-time ratio "
        f"to plain Keras Dense, median of {args.rounds} interleaved rounds "
        f"per run, {args.runs} alternating runs per tree (median over "
        "runs; each run's value in brackets). Update: one "
        "`SparseUpdater(growth=...).update(model, step, 0.3)` of the trained "
        "probe model, called directly, median of "
        f"{args.updates} (wall time, waits for the device), and in train "
        "steps of that model (wall time of its epochs / steps).",
        "",
        "| backend | tree | Static (probe) | Static (no probe) "
        "| update, random growth | update, gradient growth |",
        "|---|---|---|---|---|---|",
    ]
    for backend in args.backends:
        for tree in args.trees:
            mine = [x for x in runs if x["backend"] == backend]
            mine = [x for x in mine if x["tree"] == tree]
            cells = []
            for k in ("probe", "noprobe"):
                each = ", ".join(f"{x['ratios'][k]:.3f}" for x in mine)
                med = summary[f"{backend} {tree}"][k]
                cells.append(f"{med:.3f} ({each})")
            for g in ("random", "gradient"):
                each = ", ".join(f"{x['update_steps'][g]:.2f}" for x in mine)
                m = summary[f"{backend} {tree}"]
                cells.append(
                    f"{m[f'update_{g}_ms']:.1f} ms = "
                    f"{m[f'update_{g}_steps']:.2f} steps ({each})"
                )
            lines.append(
                f"| {backend} | `{tree}` | " + " | ".join(cells) + " |"
            )
    lines += ["", "Rerun:", "", "```", report["command"], "```", ""]
    provenance.write_markdown_keeping_notes(path + ".md", lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
