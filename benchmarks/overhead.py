"""Training-time overhead of keras_dst against plain Keras.

Measures, per backend (TensorFlow and JAX, one process each) and model (an
MLP 784-1000-1000-1000-10 and a small CNN), the epoch time of `model.fit`
for a dense Keras model and for sparse models trained with `Static`, `SET`
and `RigL` (sparse layers with and without the dense-gradient probe), the
time of one prune-and-regrow update, and whether changing masks retraces
the train step.

Method:

* Every variant's model is built and compiled, then warmed up with one
  `fit` epoch (compilation; the DST callbacks draw their masks and run
  their first update there).
* Timed rounds are interleaved: round r fits one epoch of every variant
  (the order rotates by one each round), so slow phases of a noisy machine
  hit all variants alike. The ratio to dense is taken within each round,
  then the median over rounds is reported.
* Epoch time runs from `on_epoch_begin` of a callback placed first to
  `on_epoch_end` of a callback placed last (the epoch logs are already
  converted to Python floats there, so all steps have finished); the wall
  time of the whole `fit` call is recorded too.
* Each timed `fit` is `fit(..., initial_epoch=e, epochs=e + 1)` with `e`
  the number of earlier `fit` calls of that model: one epoch, and
  `update_end=1.0` (a fraction of `epochs x steps`, compared with the
  cumulative optimizer step) stays ahead of the optimizer step; with plain
  repeated `fit(epochs=1)` no update would happen after the first call.
  Updates per timed epoch are counted from `len(callback.updater.history)`
  and must be > 0.
* One update is also timed on its own after the rounds:
  `callback.updater.update(model, step, 0.3)`, which waits for the device,
  median of several, and expressed in train steps of the matching `Static`
  variant (same layers, no updates). The update is one compiled function
  (`keras_dst.SparseUpdater`): the table also gives the traces each
  variant's updater caused (1 = compiled once for every step and drop
  fraction; 0 = reused the compilation of an earlier variant with the
  same shapes and criteria).
* Retracing: every model starts with an identity layer that counts its
  `call`s in Python; `call` runs only while a function is traced, so the
  count must not grow between the end of the warm-up and the end of the
  rounds, while the masks do change.

Run (default, both backends, ~8 min on a 2-core CPU):

    python benchmarks/overhead.py

Smoke run (~1-2 min, results under /tmp):

    python benchmarks/overhead.py --quick --output_dir=/tmp/overhead

Results: benchmarks/results/overhead.json (every measurement) and
benchmarks/results/overhead.md (summary tables).
"""

import argparse
import gc
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import harness  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")
MODELS = ("mlp", "cnn")

# name -> (label, callback kind, dense_gradient probe)
VARIANTS = {
    "dense": ("Dense (Keras)", None, None),
    "static_probe": ("Static (probe)", "static", True),
    "static_noprobe": ("Static (no probe)", "static", False),
    "set_probe": ("SET (probe)", "set", True),
    "set_noprobe": ("SET (no probe)", "set", False),
    "rigl": ("RigL", "rigl", True),
}
# DST variant -> the Static variant with the same layers (unit of a step).
COUNTERPART = {
    "set_probe": "static_probe",
    "set_noprobe": "static_noprobe",
    "rigl": "static_probe",
}
# Targets from the issue.
RATIO_TARGETS = {"set_probe": 1.05, "set_noprobe": 1.05, "rigl": 1.10}
UPDATE_TARGET_STEPS = 2.0


def parse_args(argv=None):
    p = harness.parser(__doc__, "overhead")
    p.add_argument(
        "--backend",
        default="all",
        choices=("all",) + BACKENDS,
        help="'all' runs one subprocess per backend.",
    )
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument(
        "--mlp_steps",
        type=int,
        default=210,
        help="steps per epoch for the MLP (> 2 x update_interval gives "
        "2 updates per timed epoch).",
    )
    p.add_argument(
        "--cnn_steps",
        type=int,
        default=120,
        help="steps per epoch for the CNN (> update_interval gives at "
        "least 1 update per timed epoch).",
    )
    p.add_argument(
        "--cnn_filters",
        default="8,16",
        help="filters of the two Conv2D layers. 32,64 costs ~300 ms/step "
        "on JAX's CPU (XLA conv), too slow for the time budget.",
    )
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--update_interval", type=int, default=100)
    p.add_argument(
        "--update_repeats",
        type=int,
        default=5,
        help="direct `updater.update` calls timed per DST variant.",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:  # numbers not comparable with the targets
        args.rounds = 1
        args.update_interval = 20
        args.mlp_steps = 30
        args.cnn_steps = 25
        args.update_repeats = 2
    args.models = [m for m in args.models.split(",") if m]
    args.variants = [v for v in args.variants.split(",") if v]
    for m in args.models:
        if m not in MODELS:
            p.error(f"unknown model {m!r}; choose from {MODELS}")
    for v in args.variants:
        if v not in VARIANTS:
            p.error(f"unknown variant {v!r}; choose from {tuple(VARIANTS)}")
    if "dense" not in args.variants:
        args.variants.insert(0, "dense")
    args.cnn_filters = tuple(int(f) for f in args.cnn_filters.split(","))
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    return args


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# ---------------------------------------------------------------------------
# One backend, in this process.
# ---------------------------------------------------------------------------


def run_backend(args):
    """Runs every model and variant on `args.backend`; returns a dict."""
    os.environ["KERAS_BACKEND"] = args.backend
    import keras
    import numpy as np

    import keras_dst

    if keras.backend.backend() != args.backend:
        raise RuntimeError(
            f"keras was imported with backend {keras.backend.backend()!r} "
            f"before {args.backend!r} could be selected."
        )

    class TraceCounter(keras.layers.Layer):
        """Identity; counts `call`s, which happen only while tracing."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.count = 0

        def call(self, x):
            self.count += 1
            return x

    class EpochStart(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.t0 = None

        def on_epoch_begin(self, epoch, logs=None):
            self.cpu0 = time.process_time()
            self.t0 = time.perf_counter()

    class EpochEnd(keras.callbacks.Callback):
        def __init__(self, start):
            super().__init__()
            self.start = start
            self.seconds = None

        def on_epoch_end(self, epoch, logs=None):
            # CallbackList already turned the logs into floats (all steps
            # done); float() keeps that true if Keras ever changes.
            float((logs or {}).get("loss", 0.0))
            self.seconds = time.perf_counter() - self.start.t0
            self.cpu_seconds = time.process_time() - self.start.cpu0

    def dense_layer(sparse, probe):
        if not sparse:
            return keras.layers.Dense
        return lambda units, **kw: keras_dst.layers.SparseDense(
            units, dense_gradient=probe, **kw
        )

    def conv_layer(sparse, probe):
        if not sparse:
            return keras.layers.Conv2D
        return lambda filters, size, **kw: keras_dst.layers.SparseConv2D(
            filters, size, dense_gradient=probe, **kw
        )

    def build(model_name, variant):
        _, kind, probe = VARIANTS[variant]
        sparse = kind is not None
        dense = dense_layer(sparse, probe)
        counter = TraceCounter(name="trace_counter")
        if model_name == "mlp":
            inputs = keras.Input((784,))
            x = counter(inputs)
            for units in (1000, 1000, 1000):
                x = dense(units, activation="relu")(x)
        else:
            conv = conv_layer(sparse, probe)
            f1, f2 = args.cnn_filters
            inputs = keras.Input((28, 28, 1))
            x = counter(inputs)
            x = conv(f1, 3, activation="relu")(x)
            x = conv(f2, 3, activation="relu")(x)
            x = keras.layers.MaxPooling2D(2)(x)
            x = keras.layers.Flatten()(x)
            x = dense(128, activation="relu")(x)
        outputs = dense(10)(x)
        model = keras.Model(inputs, outputs, name=f"{model_name}_{variant}")
        model.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
            # The last layer has no softmax: its outputs are logits. (Up to
            # commit 4bfc4d7 this benchmark passed them as probabilities,
            # which Keras clips: gradients were ~0 and RigL's growth had
            # nothing to rank.)
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        callback = None
        if kind == "static":
            callback = keras_dst.Static(args.sparsity, seed=args.seed)
        elif kind == "set":
            callback = keras_dst.SET(
                args.sparsity,
                update_interval=args.update_interval,
                update_end=1.0,
                seed=args.seed,
            )
        elif kind == "rigl":
            callback = keras_dst.RigL(
                args.sparsity,
                update_interval=args.update_interval,
                update_end=1.0,
                seed=args.seed,
            )
        return model, counter, callback

    def nbytes(variables):
        return int(
            sum(
                int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
                for v in variables
            )
        )

    # The sparse state's variables by their name; the rest are weights.
    state_kinds = {
        "kernel_mask": "masks",
        "kernel_explored": "unions",
        "kernel_gradient": "probes",
        "kernel_gradient_momentum": "probes",
    }

    def memory_of(model, callback):
        """Bytes per kind: model variables (weights, masks, unions,
        probes), optimizer variables, the updater's device state."""
        kinds = dict.fromkeys(("weights", "masks", "unions", "probes"), 0)
        for v in model.variables:
            kind = state_kinds.get(v.path.rsplit("/", 1)[-1], "weights")
            kinds[kind] += nbytes([v])
        kinds["optimizer"] = nbytes(model.optimizer.variables)
        updater = getattr(callback, "updater", None)
        kinds["updater"] = updater.device_state_bytes if updater else 0
        return kinds

    def masks_of(model):
        return [
            layer.get_mask().copy() for layer in keras_dst.sparse_layers(model)
        ]

    def fit(run, x, y):
        """One timed epoch: (epoch s, fit wall s, epoch CPU s)."""
        start = EpochStart()
        end = EpochEnd(start)
        cbs = [start]
        if run["callback"] is not None:
            cbs.append(run["callback"])
        cbs.append(end)
        e = run["fits"]
        gc.collect()
        t0 = time.perf_counter()
        run["model"].fit(
            x,
            y,
            batch_size=args.batch_size,
            initial_epoch=e,
            epochs=e + 1,
            callbacks=cbs,
            verbose=0,
        )
        wall = time.perf_counter() - t0
        run["fits"] += 1
        return end.seconds, wall, end.cpu_seconds

    rng = np.random.default_rng(args.seed)
    result = {
        "backend": args.backend,
        "versions": harness.versions(),
        "models": {},
        "loadavg_start": list(os.getloadavg()),
    }
    t_backend = time.perf_counter()
    for model_name in args.models:
        t_model = time.perf_counter()
        steps = args.mlp_steps if model_name == "mlp" else args.cnn_steps
        shape = (784,) if model_name == "mlp" else (28, 28, 1)
        n = steps * args.batch_size  # a multiple of the batch: no retrace
        x = rng.random((n,) + shape, dtype=np.float32)
        y = rng.integers(0, 10, size=(n,))

        runs = {}
        for variant in args.variants:
            model, counter, callback = build(model_name, variant)
            runs[variant] = {
                "model": model,
                "counter": counter,
                "callback": callback,
                "fits": 0,
                "traces_after_build": counter.count,
            }

        # Warm-up: compile, draw masks, first update(s).
        for variant in args.variants:
            run = runs[variant]
            t0 = time.perf_counter()
            epoch_s, wall, _ = fit(run, x, y)
            run["warmup"] = {
                "epoch_s": epoch_s,
                "fit_s": wall,
                "total_s": time.perf_counter() - t0,
            }
            run["traces_after_warmup"] = run["counter"].count
            run["train_function_id"] = id(run["model"].train_function)
            if run["callback"] is not None:
                run["masks_after_warmup"] = masks_of(run["model"])
                run["updates_in_warmup"] = len(run["callback"].updater.history)
            print(
                f"[{args.backend}] {model_name} {variant}: warm-up "
                f"{wall:.2f} s",
                flush=True,
            )

        # Interleaved timed rounds.
        rounds = []
        for r in range(args.rounds):
            shift = r % len(args.variants)
            order = args.variants[shift:] + args.variants[:shift]
            row = {"round": r, "order": order, "variants": {}}
            for variant in order:
                run = runs[variant]
                cb = run["callback"]
                before = len(cb.updater.history) if cb else 0
                step0 = int(run["model"].optimizer.iterations.numpy())
                epoch_s, wall, cpu_s = fit(run, x, y)
                after = len(cb.updater.history) if cb else 0
                row["variants"][variant] = {
                    "epoch_s": epoch_s,
                    "fit_s": wall,
                    "cpu_s": cpu_s,
                    "first_step": step0,
                    "updates": after - before,
                    "update_steps": (
                        [h["step"] for h in cb.updater.history[before:]]
                        if cb
                        else []
                    ),
                }
            dense_s = row["variants"]["dense"]["epoch_s"]
            dense_fit = row["variants"]["dense"]["fit_s"]
            dense_cpu = row["variants"]["dense"]["cpu_s"]
            for v in row["variants"].values():
                v["ratio"] = v["epoch_s"] / dense_s
                v["fit_ratio"] = v["fit_s"] / dense_fit
                v["cpu_ratio"] = v["cpu_s"] / dense_cpu
            rounds.append(row)
            print(
                f"[{args.backend}] {model_name} round {r}: "
                + ", ".join(
                    f"{v} {row['variants'][v]['epoch_s']:.2f}s "
                    f"(x{row['variants'][v]['ratio']:.3f}, "
                    f"{row['variants'][v]['updates']} upd)"
                    for v in args.variants
                ),
                flush=True,
            )

        # Retracing and mask changes during the rounds.
        for variant in args.variants:
            run = runs[variant]
            run["traces_after_rounds"] = run["counter"].count
            run["same_train_function"] = (
                id(run["model"].train_function) == run["train_function_id"]
            )
            if run["callback"] is not None:
                now = masks_of(run["model"])
                changed = sum(
                    int((a != b).sum())
                    for a, b in zip(run["masks_after_warmup"], now, strict=True)
                )
                total = sum(a.size for a in now)
                run["mask_entries_changed_in_rounds"] = changed
                run["mask_entries_total"] = total

        # Direct update timing (after the rounds: it changes the masks).
        for variant in args.variants:
            run = runs[variant]
            cb = run["callback"]
            if cb is None or VARIANTS[variant][1] == "static":
                continue
            model = run["model"]
            updater = cb.updater
            layers = updater.layers
            traces_in_fit = updater.traces
            base = int(model.optimizer.iterations.numpy()) + 10**6
            totals = []
            for i in range(args.update_repeats):
                step = base + i * args.update_interval
                t0 = time.perf_counter()
                # Blocking: returns once the device has finished.
                applied = updater.update(model, step, 0.3)
                totals.append(time.perf_counter() - t0)
                if not applied:
                    raise RuntimeError(f"{variant}: update was skipped")
            run["direct_update"] = {
                "total_ms": [1e3 * t for t in totals],
                "traces_in_fit": traces_in_fit,
                "traces_after_direct": updater.traces,
                "layers": [
                    {
                        "path": keras_dst.layer_path(layer),
                        "shape": list(layer.kernel_variable.shape),
                    }
                    for layer in layers
                ],
            }

        # Summaries.
        variants_out = {}
        for variant in args.variants:
            run = runs[variant]
            model = run["model"]
            per_round = [row["variants"][variant] for row in rounds]
            med_epoch = median([v["epoch_s"] for v in per_round])
            out = {
                "label": VARIANTS[variant][0],
                "warmup": run["warmup"],
                "epoch_s": [v["epoch_s"] for v in per_round],
                "fit_s": [v["fit_s"] for v in per_round],
                "ratio": [v["ratio"] for v in per_round],
                "fit_ratio": [v["fit_ratio"] for v in per_round],
                "cpu_s": [v["cpu_s"] for v in per_round],
                "cpu_ratio": [v["cpu_ratio"] for v in per_round],
                "updates_per_epoch": [v["updates"] for v in per_round],
                "median_epoch_s": med_epoch,
                "median_fit_s": median([v["fit_s"] for v in per_round]),
                "median_ratio": median([v["ratio"] for v in per_round]),
                "median_cpu_ratio": median([v["cpu_ratio"] for v in per_round]),
                "median_fit_ratio": median([v["fit_ratio"] for v in per_round]),
                "median_step_ms": 1e3 * med_epoch / steps,
                "traces_after_build": run["traces_after_build"],
                "traces_after_warmup": run["traces_after_warmup"],
                "traces_after_rounds": run["traces_after_rounds"],
                # Eager PyTorch traces nothing: the counter counts calls.
                "retraced_in_rounds": None
                if args.backend == "torch"
                else (run["traces_after_rounds"] != run["traces_after_warmup"]),
                "same_train_function": run["same_train_function"],
                "model_variable_bytes": nbytes(model.variables),
                "trainable_variable_bytes": nbytes(model.trainable_variables),
                "optimizer_variable_bytes": nbytes(model.optimizer.variables),
                "memory_bytes": memory_of(model, run["callback"]),
            }
            cb = run["callback"]
            if cb is not None:
                if VARIANTS[variant][1] != "static":
                    out["updates_in_every_round"] = all(
                        v["updates"] > 0 for v in per_round
                    )
                    if not out["updates_in_every_round"]:
                        print(
                            f"WARNING: {variant} had timed epochs without "
                            "an update",
                            flush=True,
                        )
                out["updates_in_warmup"] = run["updates_in_warmup"]
                out["updates_total"] = len(cb.updater.history)
                out["mask_entries_changed_in_rounds"] = run[
                    "mask_entries_changed_in_rounds"
                ]
                out["mask_entries_total"] = run["mask_entries_total"]
                out["sparsity"] = cb.sparsity
                out["itop_rate"] = cb.itop_rate
            variants_out[variant] = out

        for variant, out in variants_out.items():
            run = runs[variant]
            if "direct_update" not in run:
                continue
            d = run["direct_update"]
            out["direct_update"] = d
            out["update_ms"] = median(d["total_ms"])
            out["update_traces"] = d["traces_after_direct"]
            ref = variants_out.get(COUNTERPART[variant])
            unit_ms = ref["median_step_ms"] if ref else out["median_step_ms"]
            out["step_unit"] = COUNTERPART[variant] if ref else variant
            out["step_unit_ms"] = unit_ms
            out["update_in_steps"] = out["update_ms"] / unit_ms
            out["update_in_dense_steps"] = (
                out["update_ms"] / variants_out["dense"]["median_step_ms"]
            )
            # In-fit estimate: extra epoch time over the Static counterpart,
            # per update (same round, median). Noisy; includes the JAX state
            # sync that a direct call does not pay.
            if ref is not None:
                extra = []
                for row in rounds:
                    v = row["variants"][variant]
                    s = row["variants"][COUNTERPART[variant]]
                    if v["updates"]:
                        extra.append(
                            1e3 * (v["epoch_s"] - s["epoch_s"]) / v["updates"]
                        )
                out["in_fit_update_ms_estimates"] = extra
                out["in_fit_update_ms"] = median(extra)

        for variant, out in variants_out.items():
            checks = {}
            if variant in RATIO_TARGETS:
                target = RATIO_TARGETS[variant]
                checks["ratio"] = {
                    "target": target,
                    "value": out["median_ratio"],
                    "pass": out["median_ratio"] <= target,
                }
            if "update_in_steps" in out:
                checks["update_steps"] = {
                    "target": UPDATE_TARGET_STEPS,
                    "value": out["update_in_steps"],
                    "pass": out["update_in_steps"] <= UPDATE_TARGET_STEPS,
                }
            out["checks"] = checks

        result["models"][model_name] = {
            "steps_per_epoch": steps,
            "samples": n,
            "input_shape": list(shape),
            "rounds": rounds,
            "variants": variants_out,
            "seconds": time.perf_counter() - t_model,
        }
        del runs
        gc.collect()
    result["loadavg_end"] = list(os.getloadavg())
    result["seconds"] = time.perf_counter() - t_backend
    return result


# ---------------------------------------------------------------------------
# Orchestration and reports.
# ---------------------------------------------------------------------------


def child_command(args, backend):
    cmd = [sys.executable, os.path.abspath(__file__), "--child"]
    for key in (
        "rounds",
        "batch_size",
        "mlp_steps",
        "cnn_steps",
        "sparsity",
        "update_interval",
        "update_repeats",
        "seed",
    ):
        cmd.append(f"--{key}={getattr(args, key)}")
    cmd += [
        f"--backend={backend}",
        f"--models={','.join(args.models)}",
        f"--variants={','.join(args.variants)}",
        f"--cnn_filters={','.join(str(f) for f in args.cnn_filters)}",
    ]
    return cmd


def fmt(value, spec):
    return "—" if value is None else format(value, spec)


def memory_table(variants):
    """Markdown lines: MiB per variant and kind, and the total vs dense."""
    kinds = ("weights", "masks", "unions", "probes", "optimizer", "updater")
    mib = {
        o["label"]: {k: o["memory_bytes"][k] / 2**20 for k in kinds}
        for o in variants.values()
        if "memory_bytes" in o
    }
    if not mib:
        return []
    dense = sum(next(iter(mib.values())).values())
    lines = [
        "",
        "Memory (MiB): model variables by kind (weights = kernels and "
        "biases; masks, unions, probes = the sparse state), optimizer "
        "variables, and the device state the updater keeps between updates; "
        "total and its ratio to the first row (dense).",
        "",
    ]
    rows = []
    for label, m in mib.items():
        model = m["weights"] + m["masks"] + m["unions"] + m["probes"]
        total = model + m["optimizer"] + m["updater"]
        values = [m[k] for k in kinds[:4]] + [model, m["optimizer"]]
        values += [m["updater"], total, total / dense]
        rows.append([label, *(f"{v:.2f}" for v in values)])
    header = ["variant", *kinds[:4], "model variables", *kinds[4:]]
    return lines + harness.table([*header, "total", "× dense"], rows)


def markdown(report, plots=None):
    cfg = report["config"]
    lines = [
        "# keras_dst training overhead",
        "",
        *harness.provenance_lines(report, "overhead.py"),
        "",
        f"Sparsity {cfg['sparsity']} (ERK), batch {cfg['batch_size']}, "
        f"SGD(0.01, momentum=0.9), ΔT = {cfg['update_interval']}, "
        f"drop fraction 0.3, update_end=1.0; {cfg['rounds']} interleaved "
        "rounds after a warm-up epoch. Ratio: epoch time / dense epoch time "
        "in the same round, median over rounds (min–max in brackets); "
        "CPU-time ratio: the same with this process's CPU time, less "
        "sensitive to other load on a shared machine. "
        "ms/update: one `updater.update(model, step, 0.3)` called directly "
        "(the compiled update, waiting for the device), median; in train "
        "steps of the `Static` model with the same layers; update traces: "
        "traces of the compiled update that this variant's updater caused in "
        "the whole run (1: compiled once; 0: it reused the compilation of an "
        "earlier variant with the same shapes and criteria). "
        "Targets: SET ≤ 1.05× dense, RigL ≤ 1.10× dense, one update ≤ 2 "
        "train steps.",
    ]
    if cfg.get("quick"):
        lines += [
            "",
            "**Quick smoke run: numbers are not comparable with the targets.**",
        ]
    for backend, res in report["backends"].items():
        v = res["versions"]
        for model_name, m in res["models"].items():
            lines += [
                "",
                f"## {backend} — {model_name} "
                f"({m['steps_per_epoch']} steps/epoch)",
                "",
                f"keras {v['keras']}, tensorflow {v['tensorflow']}, "
                f"jax {v['jax']}, numpy {v['numpy']}. Load average "
                f"(1 min) {res['loadavg_start'][0]:.2f} at the start of "
                f"this backend's run, {res['loadavg_end'][0]:.2f} at the end; "
                "dense epoch time spread over rounds "
                f"{min(m['variants']['dense']['epoch_s']):.2f}–"
                f"{max(m['variants']['dense']['epoch_s']):.2f} s.",
                "",
            ]
            rows = []
            for out in m["variants"].values():
                ratios = out["ratio"]
                ups = out["updates_per_epoch"]
                if "updates_total" not in out:
                    upd = "—"
                elif min(ups) != max(ups):
                    upd = f"{min(ups)}–{max(ups)}"
                else:
                    upd = str(ups[0])
                targets, results = [], []
                for key, c in out.get("checks", {}).items():
                    if key == "ratio":
                        targets.append(f"≤ {c['target']:.2f}×")
                    else:
                        targets.append(f"≤ {c['target']:g} steps")
                    results.append("PASS" if c["pass"] else "FAIL")
                rows.append(
                    [out["label"], f"{out['median_epoch_s']:.3f}"]
                    + [
                        f"{out['median_ratio']:.3f} "
                        f"({min(ratios):.3f}–{max(ratios):.3f})",
                        fmt(out.get("median_cpu_ratio"), ".3f"),
                        upd,
                        fmt(out.get("update_ms"), ".1f"),
                        fmt(out.get("update_in_steps"), ".2f"),
                        fmt(out.get("update_traces"), "d"),
                        " / ".join(targets) or "—",
                        " / ".join(results) or "—",
                    ]
                )
            lines += harness.table(
                ["variant", "median epoch s", "ratio to dense"]
                + ["CPU-time ratio", "updates/epoch", "ms/update"]
                + ["update in train steps", "update traces", "target"]
                + ["result"],
                rows,
            )
            retraced = [
                o["label"]
                for o in m["variants"].values()
                if o["retraced_in_rounds"] or not o["same_train_function"]
            ]
            missing = [
                o["label"]
                for o in m["variants"].values()
                if o.get("updates_in_every_round") is False
            ]
            if missing:
                lines += [
                    "",
                    "**Timed epochs without an update: "
                    + ", ".join(missing)
                    + ".**",
                ]
            changed = {
                o["label"]: o["mask_entries_changed_in_rounds"]
                for o in m["variants"].values()
                if "mask_entries_changed_in_rounds" in o
            }
            lines += memory_table(m["variants"])
            if backend == "torch":
                verdict = "not applicable (PyTorch runs the step eagerly)"
            elif retraced:
                verdict = "YES for " + ", ".join(retraced)
            else:
                verdict = "none (trace counters and `train_function` unchanged)"
            lines += [
                "",
                "Retracing during the timed rounds: "
                + verdict
                + "; mask entries changed in the rounds: "
                + ", ".join(f"{k} {v}" for k, v in changed.items())
                + ".",
            ]
    return [*lines, ""]


def measure(args):
    backends = BACKENDS if args.backend == "all" else (args.backend,)
    results = {}
    for backend in backends:
        env = dict(os.environ, KERAS_BACKEND=backend)
        results[backend] = harness.child(child_command(args, backend), env)
    return {
        "config": {
            key: getattr(args, key)
            for key in (
                "rounds",
                "batch_size",
                "mlp_steps",
                "cnn_steps",
                "cnn_filters",
                "sparsity",
                "update_interval",
                "update_repeats",
                "seed",
                "quick",
                "models",
                "variants",
            )
        },
        "models": {
            "mlp": "Input(784) - Dense 1000 relu x3 - Dense 10",
            "cnn": "Input(28,28,1) - Conv2D f1 3x3 relu - Conv2D f2 3x3 relu "
            "- MaxPool 2 - Flatten - Dense 128 relu - Dense 10",
        },
        "optimizer": "SGD(learning_rate=0.01, momentum=0.9)",
        "loss": "sparse_categorical_crossentropy(from_logits=True)",
        "data": "uniform random float32 inputs, random integer labels",
        "targets": {
            "ratio_to_dense": RATIO_TARGETS,
            "update_in_train_steps": UPDATE_TARGET_STEPS,
        },
        "backends": results,
    }


def main(argv=None):
    args = parse_args(argv)
    if args.child:  # one backend, its raw result only
        harness.emit(run_backend(args))
        return 0
    print("\n".join(markdown(harness.main(args, measure, markdown))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
