"""ITOP's exploration study and Sup-tickets after a converged base.

Three parts (`--parts`), every run is `examples/fashion_mnist.py`'s `run()`
(driven through absl's flagsaver), on real Fashion-MNIST, so the study
trains the example's models, data, optimizer (SGD + Nesterov, LR 0.05
x0.1 at 50% / 75%, coupled L2 5e-4, batch 128) and method settings:

* `explore` (Liu et al., 2021, ITOP): SET-ITOP (`itop_set`) and RigL-ITOP
  (`itop_rigl`) on LeNet-300-100 (`lenet300`; `--models` adds the example
  CNN), sparsity x update interval ΔT x training length (`--multiples` x
  `--base_epochs`) x seeds; dense trained for the same lengths. Tests the
  paper's claims: R_s grows with training length and with smaller ΔT;
  at a fixed length accuracy rises with R_s while exploration is reliable
  (ΔT large enough for grown weights to train); a 90% sparse net reaches
  dense accuracy at some length.
* `init`: keras_dst's `weight_init="sparse_scaled"` against the papers'
  `"unscaled"` dense initialization: SET-ITOP on the deep MLP
  (784-1000-1000-1000-10) at `--init_sparsities`, and both growths on
  `lenet300` at every sparsity (3x length, middle ΔT; the scaled runs are
  the `explore` ones).
* `sup` (Yin et al., 2022, Sup-tickets): `sup_tickets` over SET-ITOP and
  RigL-ITOP against the same ITOP base trained for the same total epochs
  (`--sup_epochs`), each evaluated after every epoch (`--validate`) so the
  curves show whether the base had plateaued before the cyclic phase; every
  base also gets Sup-tickets' BatchNorm recalibration (a no-op for the MLP,
  which has no BatchNorm). Gains are paired by seed, with standard errors.

Runs are spread over `--jobs` worker processes (one thread each); each
appends one JSON line per run to `--work_dir`, so an interrupted study
resumes where it stopped (same command). At the end:
`<output_dir>/<name>.json` (every run: configuration, accuracy, R_s,
sparsity, per-epoch history, wall time, versions, machine, command),
`<name>.md` (tables and each claim: held or not, on how many cells) and
`<name>_explore.png`, `<name>_sup.png`.

    python benchmarks/itop_study.py                    # the CPU grid
    python benchmarks/itop_study.py --quick --output_dir=/tmp/itop  # ~3 min
    python benchmarks/itop_study.py --report           # redo .md / .png
    # longer, on a faster machine:
    python benchmarks/itop_study.py --models=lenet300,cnn --train_subset=0 \\
        --base_epochs=5 --sup_epochs=60 --seeds=0,1,2,3,4
"""

import itertools
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import harness  # noqa: E402

PARTS = ("explore", "init", "sup")
GROWTH_METHOD = {"random": "itop_set", "gradient": "itop_rigl"}
LABELS = {"itop_set": "SET-ITOP", "itop_rigl": "RigL-ITOP", "dense": "dense"}


def parse_args(argv=None):
    csv = harness.csv
    p = harness.parser(__doc__, "itop_study", study=True)
    p.add_argument("--parts", type=csv(str), default=list(PARTS))
    p.add_argument("--models", type=csv(str), default=["lenet300"])
    p.add_argument("--growths", type=csv(str), default=["random", "gradient"])
    p.add_argument("--sparsities", type=csv(float), default=[0.9, 0.95, 0.98])
    p.add_argument("--seeds", type=csv(int), default=[0, 1, 2])
    p.add_argument(
        "--intervals",
        type=csv(int),
        default=[25, 100, 400],
        help="ΔT values (optimizer steps between mask updates).",
    )
    p.add_argument("--base_epochs", type=int, default=2)
    p.add_argument("--multiples", type=csv(int), default=[1, 3, 10])
    p.add_argument(
        "--train_subset",
        type=int,
        default=20000,
        help="Training images (0 = all 60,000); the test set is the full "
        "10,000.",
    )
    p.add_argument("--init_sparsities", type=csv(float), default=[0.98])
    p.add_argument("--init_epochs", type=int, default=6)
    p.add_argument("--sup_model", default="lenet300")
    p.add_argument("--sup_epochs", type=int, default=30)
    p.add_argument("--sup_interval", type=int, default=100)
    p.add_argument("--num_tickets", type=int, default=3)
    p.add_argument("--cyclic_fraction", type=float, default=0.1)
    p.add_argument(
        "--learning_rate",
        type=float,
        default=None,
        help="Initial SGD learning rate of every run (default: the "
        "example's own); for learning-rate controls under their own --name.",
    )
    p.add_argument("--backend", default="jax")
    args = p.parse_args(argv)
    if args.quick:
        args.growths, args.sparsities, args.seeds = ["random"], [0.9], [0]
        args.intervals, args.multiples = [25, 100], [1, 2]
        args.base_epochs, args.train_subset = 1, 2000
        args.init_sparsities, args.init_epochs = [0.98], 1
        args.sup_epochs, args.num_tickets = 4, 2
        args.cyclic_fraction = 0.5
    return harness.finish_study_args(p, args)


# -- the grid ------------------------------------------------------------


def spec(part, model, method, sparsity, seed, epochs, args, **extra):
    out = {
        "part": part,
        "model": model,
        "method": method,
        "sparsity": 0.0 if method == "dense" else sparsity,
        "seed": seed,
        "epochs": epochs,
        "train_subset": args.train_subset,
        "update_interval": None,
        "weight_init": "sparse_scaled",
        "growth": None,
        "validate": False,
        "learning_rate": args.learning_rate,
    }
    out.update(extra)
    return out


def specs_for(args):
    out = []
    middle = args.intervals[len(args.intervals) // 2]
    for seed in args.seeds:
        if "explore" in args.parts:
            for model in args.models:
                for mult in args.multiples:
                    epochs = args.base_epochs * mult
                    out.append(
                        spec("explore", model, "dense", 0, seed, epochs, args)
                    )
                    for growth in args.growths:
                        for s in args.sparsities:
                            for dt in args.intervals:
                                out.append(
                                    spec(
                                        "explore",
                                        model,
                                        GROWTH_METHOD[growth],
                                        s,
                                        seed,
                                        epochs,
                                        args,
                                        update_interval=dt,
                                        growth=growth,
                                    )
                                )
        if "init" in args.parts:
            for s in args.init_sparsities:
                for init in ("sparse_scaled", "unscaled"):
                    out.append(
                        spec(
                            "init",
                            "mlp",
                            "itop_set",
                            s,
                            seed,
                            args.init_epochs,
                            args,
                            update_interval=middle,
                            weight_init=init,
                            growth="random",
                        )
                    )
            for growth in args.growths:
                for s in args.sparsities:
                    out.append(
                        spec(
                            "init",
                            "lenet300",
                            GROWTH_METHOD[growth],
                            s,
                            seed,
                            args.base_epochs * 3,
                            args,
                            update_interval=middle,
                            weight_init="unscaled",
                            growth=growth,
                        )
                    )
        if "sup" in args.parts:
            for growth in args.growths:
                for s in args.sparsities:
                    for method in ("sup_tickets", GROWTH_METHOD[growth]):
                        out.append(
                            spec(
                                "sup",
                                args.sup_model,
                                method,
                                s,
                                seed,
                                args.sup_epochs,
                                args,
                                update_interval=args.sup_interval,
                                growth=growth,
                                validate=True,
                            )
                        )
    return out


def key_of(r):
    return (
        "{part}/{model}/{method}/{growth}/{sparsity:g}/{update_interval}/"
        "{epochs}/{weight_init}/{seed}".format(**r)
    )


def cost(r):
    """Rough relative cost, to balance the workers."""
    per_epoch = {"mlp": 12.0, "cnn": 15.0}.get(r["model"], 1.0)
    return 12.0 + r["epochs"] * per_epoch


# -- one worker ------------------------------------------------------------


def runner(smoke):
    """Runs `examples/fashion_mnist.py` once per spec, in this process."""
    import keras_dst
    from examples import fashion_mnist

    run = harness.fashion_mnist_runner("itop_study", smoke)

    def run_one(s):
        values = dict(
            model=s["model"],
            method=s["method"],
            sparsity=s["sparsity"] or 0.9,  # dense ignores it
            seed=s["seed"],
            epochs=s["epochs"],
            train_subset=s["train_subset"],
            update_interval=s["update_interval"],
            weight_init=s["weight_init"],
            validate=s["validate"],
            learning_rate=s.get("learning_rate"),
        )
        sup = s["method"] == "sup_tickets"
        if sup:
            values.update(
                sup_growth=s["growth"],
                num_tickets=s["num_tickets"],
                cyclic_fraction=s["cyclic_fraction"],
            )
        summary, record = run(
            values, s["method"] not in ("sup_tickets", "dense")
        )
        if sup:
            # Epochs completed before the first cycle (the DST phase), and
            # what SupTickets reports of its tickets and their superposition.
            config = summary["config"]
            x_train = fashion_mnist.load_data(config)[0][0]
            steps = -(-len(x_train) // config["batch_size"])
            phases = keras_dst.superposition.plan_cycles(
                s["epochs"],
                steps,
                num_tickets=s["num_tickets"],
                cyclic_fraction=s["cyclic_fraction"],
            )
            record["cyclic_start_epoch"] = phases.start // steps
            record["tickets"] = summary["tickets"]
            record["superposed"] = summary["superposed"]
        return record

    return run_one


def progress_line(r):
    return (
        f"{key_of(r)}: acc {r['test_accuracy']:.4f} R_s {r['itop_rate']:.3f}"
        f" sparsity {r['final_sparsity']:.4f} [{r['wall_s']:.0f} s]"
    )


# -- statistics ------------------------------------------------------------


se = harness.mean_se


def cells(runs, part, fields):
    """{tuple of fields: [runs]} for one part."""
    out = {}
    for r in runs:
        if r["part"] == part:
            out.setdefault(tuple(r[f] for f in fields), []).append(r)
    return out


def stat(rs, field="test_accuracy"):
    return se([r[field] for r in rs])


def explore_claims(runs):
    """The ITOP paper's four claims, cell by cell, on seed means."""
    grid = cells(
        runs, "explore", ("model", "method", "sparsity", "update_interval")
    )
    by_len = {}
    for key, rs in grid.items():
        for r in rs:
            by_len.setdefault(key, {}).setdefault(r["epochs"], []).append(r)
    found = {"length": [0, 0], "interval": [0, 0], "reliable": [], "dense": []}
    # 1. R_s grows with training length (every ΔT with > 1 length).
    for key, lens in by_len.items():
        if key[1] == "dense" or len(lens) < 2:
            continue
        rates = [stat(lens[e], "itop_rate")[0] for e in sorted(lens)]
        found["length"][1] += 1
        found["length"][0] += all(a < b for a, b in itertools.pairwise(rates))
    # 2. R_s grows with smaller ΔT, at a fixed length.
    fixed = cells(runs, "explore", ("model", "method", "sparsity", "epochs"))
    for key, rs in fixed.items():
        if key[1] == "dense":
            continue
        per_dt = {}
        for r in rs:
            per_dt.setdefault(r["update_interval"], []).append(r)
        if len(per_dt) < 2:
            continue
        rates = [stat(per_dt[d], "itop_rate")[0] for d in sorted(per_dt)]
        found["interval"][1] += 1
        found["interval"][0] += all(a > b for a, b in itertools.pairwise(rates))
        accs = {d: stat(per_dt[d]) for d in sorted(per_dt)}
        best = max(accs, key=lambda d: accs[d][0])
        found["reliable"].append(
            {
                "cell": key,
                "accuracy_by_interval": accs,
                "r_s_by_interval": dict(
                    zip(
                        sorted(per_dt),
                        [round(x, 4) for x in rates],
                        strict=True,
                    )
                ),
                "best_interval": best,
            }
        )
    # 4. A 90% net at dense accuracy at some length.
    dense = {
        (k[0], k[3]): v
        for k, v in fixed.items()
        if k[1] == "dense"  # (model, epochs)
    }
    for key, rs in fixed.items():
        model, method, sparsity, epochs = key
        if method == "dense" or (model, epochs) not in dense:
            continue
        per_dt = {}
        for r in rs:
            per_dt.setdefault(r["update_interval"], []).append(r)
        best = max(per_dt, key=lambda d: stat(per_dt[d])[0])
        sparse_mean, sparse_se = stat(per_dt[best])
        dense_mean, dense_se = stat(dense[(model, epochs)])
        found["dense"].append(
            {
                "model": model,
                "method": method,
                "sparsity": sparsity,
                "epochs": epochs,
                "interval": best,
                "gap": sparse_mean - dense_mean,
                "se": math.hypot(sparse_se, dense_se),
            }
        )
    return found


def sup_gains(runs):
    """Sup-tickets minus its ITOP base (and minus the recalibrated base),
    paired by seed: {(growth, sparsity): stats}."""
    grid = cells(runs, "sup", ("growth", "sparsity"))
    out = {}
    for key, rs in sorted(grid.items()):
        sup = {r["seed"]: r for r in rs if r["method"] == "sup_tickets"}
        base = {r["seed"]: r for r in rs if r["method"] != "sup_tickets"}
        seeds = sorted(set(sup) & set(base))
        if not seeds:
            continue

        def recal(r):
            value = r.get("test_accuracy_bn_recalibrated")
            return r["test_accuracy"] if value is None else value

        gain = [
            sup[s]["test_accuracy"] - base[s]["test_accuracy"] for s in seeds
        ]
        gain_recal = [sup[s]["test_accuracy"] - recal(base[s]) for s in seeds]
        out[key] = {
            "seeds": seeds,
            "sup": stat([sup[s] for s in seeds]),
            "base": stat([base[s] for s in seeds]),
            "base_recalibrated": se([recal(base[s]) for s in seeds]),
            "gain": se(gain),
            "wins": sum(g > 0 for g in gain),
            "gain_vs_recalibrated": se(gain_recal),
            "sup_r_s": stat([sup[s] for s in seeds], "itop_rate"),
            "base_r_s": stat([base[s] for s in seeds], "itop_rate"),
            "plateau": plateau(base, seeds, sup),
        }
    return out


def plateau(base, seeds, sup):
    """Mean test accuracy of the base at the epoch the cycles start and at
    the end (from `--validate`), and the cyclic phase's first epoch."""
    starts = [sup[s].get("cyclic_start_epoch") for s in seeds]
    start = starts[0] if starts and starts[0] is not None else None
    curves = [base[s]["history"].get("val_accuracy") for s in seeds]
    if start is None or not all(curves):
        return None
    at_start = se([c[start - 1] for c in curves])[0]
    at_end = se([c[-1] for c in curves])[0]
    half = se([c[max(0, start // 2 - 1)] for c in curves])[0]
    return {
        "cyclic_start_epoch": start,
        "base_at_half_of_dst_phase": half,
        "base_at_cyclic_start": at_start,
        "base_at_end": at_end,
    }


def init_table(runs):
    grid = cells(runs, "init", ("model", "method", "sparsity", "weight_init"))
    explore = cells(
        runs,
        "explore",
        ("model", "method", "sparsity", "epochs", "update_interval"),
    )
    out = {}
    for (model, method, sparsity, init), rs in sorted(grid.items()):
        out[(model, method, sparsity, init)] = stat(rs)
        if init == "unscaled" and model == "lenet300":
            r0 = rs[0]
            twin = explore.get(
                (model, method, sparsity, r0["epochs"], r0["update_interval"])
            )
            if twin:
                out[(model, method, sparsity, "sparse_scaled")] = stat(twin)
    return out


# -- report ----------------------------------------------------------------


def learning_rates(runs):
    values = sorted(
        {r["learning_rate"] for r in runs if r.get("learning_rate")}
    )
    return ", ".join(f"{v:g}" for v in values) or "the example's default"


def untested(needs):
    return f"not tested here (needs two or more {needs})."


def held_in(held, total, cells, needs):
    """A claim's verdict over `cells`, or why this grid cannot test it."""
    if not total:
        return untested(needs)
    return f"held in {held} of {total} {cells} cells."


def pct(mean_se, sign=""):
    mean, err = mean_se
    return f"{100 * mean:{sign}.2f} ± {100 * err:.2f}"


def markdown(payload, plots):
    runs, cfg = payload["runs"], payload["config"]
    lines = [
        "# ITOP's exploration study and Sup-tickets at a converged budget",
        "",
        *harness.provenance_lines(payload, "itop_study.py"),
        f"- {len(runs)} runs, backend {cfg['backend']}, {cfg['jobs']} jobs "
        "of one thread.",
        f"- Data: Fashion-MNIST, {cfg['train_subset'] or 60000} training "
        "images, the full 10,000 test images; accuracy is mean ± standard "
        f"error over seeds {cfg['seeds']}.",
        "- Initial learning rate (the same for dense and sparse runs): "
        + learning_rates(runs)
        + ".",
        "",
    ]
    found = explore_claims(runs)
    if any(r["part"] == "explore" for r in runs):
        fixed = cells(
            runs, "explore", ("model", "method", "sparsity", "epochs")
        )
        rows = []
        for (model, method, s, epochs), rs in sorted(fixed.items()):
            if method == "dense":
                continue
            dense = fixed.get((model, "dense", 0.0, epochs))
            row = [model, LABELS[method], f"{s:g}", epochs]
            for d in cfg["intervals"]:
                sub = [r for r in rs if r["update_interval"] == d]
                row.append(
                    f"{pct(stat(sub))} ({stat(sub, 'itop_rate')[0]:.3f})"
                    if sub
                    else "-"
                )
            rows.append([*row, pct(stat(dense)) if dense else "-"])
        lines += [
            "## Exploration (ITOP)",
            "",
            f"Models {cfg['models']}, ΔT {cfg['intervals']} steps, lengths "
            f"{[cfg['base_epochs'] * m for m in cfg['multiples']]} epochs.",
            "",
            *harness.table(
                ["model", "method", "sparsity", "epochs"]
                + [f"ΔT={d}: acc % (R_s)" for d in cfg["intervals"]]
                + ["dense acc %"],
                rows,
            ),
        ]
        held, total = found["length"]
        lines += [
            "",
            "Claims (seed means, cell by cell):",
            "",
            "1. **R_s grows with training length**: "
            + held_in(held, total, "(model, method, sparsity, ΔT)", "lengths"),
        ]
        held, total = found["interval"]
        lines.append(
            "2. **R_s grows with smaller ΔT** at a fixed length: "
            + held_in(held, total, "(model, method, sparsity, length)", "ΔT")
        )
        best = {}
        for item in found["reliable"]:
            best.setdefault(item["best_interval"], 0)
            best[item["best_interval"]] += 1
        smallest = min(cfg["intervals"])
        lines.append(
            "3. **Accuracy rises with R_s while exploration is reliable**: "
            + (
                "the ΔT with the best accuracy per (model, method, sparsity, "
                f"length) cell: {dict(sorted(best.items()))} (the smallest, "
                f"ΔT={smallest}, has the highest R_s; a best ΔT above it "
                "means more exploration stopped paying once grown weights "
                "had too few steps to train)."
                if best
                else untested("ΔT")
            )
        )
        reached = [
            g
            for g in found["dense"]
            if g["sparsity"] == 0.9 and g["gap"] >= -2 * g["se"]
        ]
        at90 = [g for g in found["dense"] if g["sparsity"] == 0.9]
        lines.append(
            "4. **A 90% sparse net reaches dense accuracy at some length** "
            "(best ΔT, within 2 standard errors or above): "
            + (
                ", ".join(
                    f"{LABELS[g['method']]} {g['model']} at {g['epochs']} "
                    f"epochs ({100 * g['gap']:+.2f} ± {100 * g['se']:.2f})"
                    for g in reached
                )
                or "at no length"
            )
            + f" (of {len(at90)} cells); gaps at 90%: "
            + ", ".join(
                f"{LABELS[g['method']]} {g['epochs']} ep {100 * g['gap']:+.2f}"
                for g in sorted(at90, key=lambda g: (g["method"], g["epochs"]))
            )
            + "."
        )
        lines.append("")
    table = init_table(runs)
    if table:
        rows = []
        for key in sorted({k[:3] for k in table}):
            a = table.get(key + ("sparse_scaled",))
            b = table.get(key + ("unscaled",))
            rows.append(
                [key[0], LABELS[key[1]], f"{key[2]:g}"]
                + [pct(a) if a else "-", pct(b) if b else "-"]
            )
        header = ["model", "method", "sparsity", "sparse_scaled acc %"]
        lines += [
            "## Initialization: sparse_scaled vs unscaled",
            "",
            *harness.table([*header, "unscaled acc %"], rows),
            "",
        ]
    gains = sup_gains(runs)
    if gains:
        rows = []
        for (growth, s), g in gains.items():
            p = g["plateau"]
            curve = (
                f"{100 * p['base_at_cyclic_start']:.2f} → "
                f"{100 * p['base_at_end']:.2f}"
                if p
                else "-"
            )
            rows.append(
                [LABELS[GROWTH_METHOD[growth]], f"{s:g}", pct(g["base"])]
                + [pct(g["base_recalibrated"]), pct(g["sup"])]
                + [pct(g["gain"], "+"), f"{g['wins']}/{len(g['seeds'])}"]
                + [pct(g["gain_vs_recalibrated"], "+"), curve]
            )
        real = [
            k for k, g in gains.items() if g["gain"][0] > 2 * g["gain"][1] > 0
        ]
        lines += [
            "## Sup-tickets after a converged base",
            "",
            f"{cfg['sup_model']}, {cfg['sup_epochs']} epochs in all for "
            f"both, ΔT {cfg['sup_interval']}, {cfg['num_tickets']} tickets "
            f"in the last {cfg['cyclic_fraction']:.0%} of the epochs; gains "
            "paired by seed (wins: seeds where Sup-tickets is better).",
            "",
            *harness.table(
                ["base", "sparsity", "base acc %", "base + BN recal. %"]
                + ["Sup-tickets %", "gain (pts)", "wins", "gain vs recal."]
                + ["base at cycle start → end %"],
                rows,
            ),
            "",
            f"A gain larger than 2 standard errors in {len(real)} of "
            f"{len(gains)} cells" + (f": {real}." if real else "."),
            "",
        ]
    for plot in plots or []:
        lines += [f"![{plot}]({plot})", ""]
    return lines


def plots(payload, stem):
    plt = harness.pyplot()
    if plt is None:
        return []
    runs, cfg, out = payload["runs"], payload["config"], []
    explore = [r for r in runs if r["part"] == "explore"]
    if explore:
        models = sorted({r["model"] for r in explore})
        fig, axes = plt.subplots(
            len(models), 2, figsize=(12, 4.5 * len(models)), squeeze=False
        )
        colors = {0.9: "tab:blue", 0.95: "tab:orange", 0.98: "tab:red"}
        for row, model in zip(axes, models, strict=True):
            fixed = cells(
                [r for r in explore if r["model"] == model],
                "explore",
                ("method", "sparsity", "epochs", "update_interval"),
            )
            dense = {k[2]: stat(v) for k, v in fixed.items() if k[0] == "dense"}
            lengths = sorted(dense)
            if dense:  # dense at the longest length, mean ± SE
                mean, err = dense[lengths[-1]]
                row[0].axhspan(mean - err, mean + err, color="gray", alpha=0.3)
                row[0].axhline(mean, color="gray", linewidth=1)
            for (method, s, epochs, _dt), rs in fixed.items():
                if method == "dense":
                    continue
                mean = stat(rs)[0]
                rate = stat(rs, "itop_rate")[0]
                row[0].scatter(
                    rate,
                    mean,
                    color=colors.get(s, "black"),
                    marker="o" if method == "itop_set" else "^",
                    s=12 + 6 * math.log2(max(1, epochs)) ** 2,
                    alpha=0.8,
                )
            row[0].set_xlabel("R_s (in-time over-parameterization rate)")
            row[0].set_ylabel("test accuracy")
            row[0].set_title(
                f"{model}: accuracy vs R_s (o SET-ITOP, ^ RigL-ITOP; "
                "size = length; gray: dense at the longest length)",
                fontsize=9,
            )
            if dense:
                means = [dense[e][0] for e in lengths]
                errs = [dense[e][1] for e in lengths]
                row[1].fill_between(
                    lengths,
                    [m - e for m, e in zip(means, errs, strict=True)],
                    [m + e for m, e in zip(means, errs, strict=True)],
                    color="gray",
                    alpha=0.3,
                    label="dense",
                )
                row[1].plot(lengths, means, color="gray")
            for method in ("itop_set", "itop_rigl"):
                for s in cfg["sparsities"]:
                    xs, ys = [], []
                    for e in lengths or sorted({k[2] for k in fixed}):
                        best = [
                            stat(v)[0]
                            for k, v in fixed.items()
                            if k[:3] == (method, s, e)
                        ]
                        if best:
                            xs.append(e)
                            ys.append(max(best))
                    if xs:
                        row[1].plot(
                            xs,
                            ys,
                            color=colors.get(s, "black"),
                            linestyle="-" if method == "itop_set" else "--",
                            marker="o",
                            label=f"{LABELS[method]} {s:g}",
                        )
            row[1].set_xscale("log")
            ticks = sorted({k[2] for k in fixed})
            row[1].set_xticks(ticks, [str(e) for e in ticks])
            row[1].minorticks_off()
            row[1].set_xlabel("training epochs")
            row[1].set_ylabel("test accuracy (best ΔT)")
            row[1].set_title(
                f"{model}: accuracy vs training length", fontsize=9
            )
            row[1].legend(fontsize=7)
        out.append(harness.save_figure(fig, f"{stem}_explore.png"))
    sup = [r for r in runs if r["part"] == "sup"]
    if sup:
        grid = cells(sup, "sup", ("growth", "sparsity"))
        fig, axes = plt.subplots(
            1, len(grid), figsize=(4 * len(grid), 3.6), squeeze=False
        )
        for ax, ((growth, s), rs) in zip(
            axes[0], sorted(grid.items()), strict=True
        ):
            for r in rs:
                curve = r["history"].get("val_accuracy")
                if not curve:
                    continue
                is_sup = r["method"] == "sup_tickets"
                ax.plot(
                    range(1, len(curve) + 1),
                    curve,
                    color="tab:green" if is_sup else "tab:blue",
                    alpha=0.6,
                    linewidth=1,
                    label=(
                        ("Sup-tickets" if is_sup else "ITOP base")
                        if r["seed"] == rs[0]["seed"]
                        else None
                    ),
                )
                if is_sup and r.get("cyclic_start_epoch"):
                    ax.axvline(r["cyclic_start_epoch"], color="gray", ls=":")
            ax.set_title(f"{LABELS[GROWTH_METHOD[growth]]} {s:g}", fontsize=9)
            ax.set_xlabel("epoch")
            ax.set_ylabel("test accuracy")
            lo = min(min(r["history"].get("val_accuracy") or [1.0]) for r in rs)
            ax.set_ylim(max(lo, 0.5), None)
            ax.legend(fontsize=7)
        out.append(harness.save_figure(fig, f"{stem}_sup.png"))
    return out


# -- orchestration -----------------------------------------------------------


def run_config(args):
    keys = (
        "parts",
        "models",
        "growths",
        "sparsities",
        "seeds",
        "intervals",
        "base_epochs",
        "multiples",
        "train_subset",
        "init_sparsities",
        "init_epochs",
        "sup_model",
        "sup_epochs",
        "sup_interval",
        "num_tickets",
        "cyclic_fraction",
        "learning_rate",
        "backend",
        "jobs",
    )
    return {k: getattr(args, k) for k in keys}


def measure(args):
    specs = specs_for(args)
    for s in specs:
        if s["part"] == "sup":
            s.update(
                num_tickets=args.num_tickets,
                cyclic_fraction=args.cyclic_fraction,
            )
    done = harness.done_keys(args.work_dir, key_of)
    todo = [s for s in specs if key_of(s) not in done]
    # Longest first, each to the least loaded worker.
    queues, loads = [[] for _ in range(args.jobs)], [0.0] * args.jobs
    for s in sorted(todo, key=cost, reverse=True):
        i = loads.index(min(loads))
        queues[i].append(s)
        loads[i] += cost(s)
    env = {"KERAS_BACKEND": args.backend}
    groups = [(f"worker{i}", env, q) for i, q in enumerate(queues) if q]
    runs, failed = harness.run_study(args, groups, key_of, __file__, specs)
    return {
        "config": run_config(args),
        "failed_workers": len(failed),
        "missing_runs": len(specs) - len(runs),
        "runs": runs,
    }


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        runs = lambda _: runner(args.smoke)  # noqa: E731
        return harness.work(args.worker, key_of, runs, progress_line)
    payload = harness.main(args, measure, markdown, plots)
    print(f"{len(payload['runs'])} runs")
    return (
        1 if payload.get("failed_workers") or payload.get("missing_runs") else 0
    )


if __name__ == "__main__":
    sys.exit(main())
