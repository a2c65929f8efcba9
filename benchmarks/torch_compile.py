"""PyTorch: the update run eagerly (what keras_dst does) vs `torch.compile`.

    python benchmarks/torch_compile.py            # about 5 min on 2 cores
    python benchmarks/torch_compile.py --quick --output_dir=/tmp/tc  # smoke

An experiment, not a feature: for each method (RigL, SET) one child process
per mode fits a 784-1000-1000-1000-10 MLP at 90% sparsity for one short
epoch, then times 8 direct `updater.update(model, step, 0.3)` calls.

* eager: keras_dst as shipped on PyTorch (one `top_k` per layer, `k` read
  on the host).
* compiled: the same update function under `torch.compile(fullgraph=True,
  dynamic=False)`, with the selection that TensorFlow and JAX compile (the
  radix select: static shapes, `k` a tensor) and its one data-dependent
  branch (`ops.cond`) computed as `ops.where`. To do this the child swaps
  the PyTorch shim's `compile_function` (`keras_dst.backend.torch`) and the
  module attribute that selects the eager selection: internals of this
  experiment, not an API.

Both modes must reach the same masks (their SHA-1 is compared). Writes
`benchmarks/results/torch_compile.{json,md}`.
"""

import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import harness  # noqa: E402

CHILD = r"""
import hashlib, json, os, sys, time
import numpy as np, torch, keras
torch.set_num_threads(int(sys.argv[3]))
import keras_dst
mode, method, width, repeats, backend = sys.argv[1], sys.argv[2], *sys.argv[4:]
width, repeats = int(width), int(repeats)
if mode == "compiled":
    from keras_dst.backend import torch as shim
    import keras_dst.callbacks.compiled_update as update_module
    import keras_dst.criteria.selection as selection

    def compile_function(fn):
        compiled = torch.compile(
            fn, fullgraph=True, dynamic=False, backend=backend
        )

        def run(*args):
            with torch.no_grad():
                return compiled(*args)

        return run

    shim.compile_function = compile_function
    selection.traces_functions = lambda: True  # the static selection
    update_module.traces_functions = lambda: False  # no trace counter
    keras.ops.cond = lambda pred, a, b: keras.ops.where(pred, a(), b())
keras.utils.set_random_seed(0)
model = keras.Sequential(
    [keras.Input((784,))]
    + [keras_dst.layers.SparseDense(width, activation="relu") for _ in "123"]
    + [keras_dst.layers.SparseDense(10)]
)
model.compile(
    keras.optimizers.SGD(0.01, momentum=0.9),
    keras.losses.SparseCategoricalCrossentropy(from_logits=True),
)
callback = getattr(keras_dst, method)(sparsity=0.9, update_interval=100, seed=0)
rng = np.random.default_rng(0)
x = rng.random((1280, 784), dtype="float32")
y = rng.integers(0, 10, 1280)
model.fit(x, y, batch_size=128, epochs=1, callbacks=[callback], verbose=0)
updater = callback.updater
start = time.perf_counter()
updater.update(model, 1000, 0.3)
first = time.perf_counter() - start
times = []
for i in range(repeats):
    start = time.perf_counter()
    updater.update(model, 1100 + 100 * i, 0.3)
    times.append(time.perf_counter() - start)
digest = hashlib.sha1()
for layer in model.layers:
    digest.update(keras.ops.convert_to_numpy(layer.kernel_mask).tobytes())
print("RESULT " + json.dumps({
    "first_call_s": first,
    "ms_per_update": [1000 * t for t in times],
    "masks_sha1": digest.hexdigest(),
}))
"""


def parse_args(argv=None):
    p = harness.parser(__doc__, "torch_compile")
    p.add_argument("--methods", type=harness.csv(str), default=["RigL", "SET"])
    p.add_argument("--width", type=int, default=1000, help="MLP width")
    p.add_argument("--repeats", type=int, default=8, help="timed updates")
    p.add_argument(
        "--compile_backend",
        default="inductor",
        help="torch.compile's backend ('eager': Dynamo's graph capture "
        "alone, no code generation)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("THREADS", "2")),
        help="torch threads",
    )
    args = p.parse_args(argv)
    if args.quick:  # one method, a small MLP, the graph capture alone
        args.methods, args.width, args.repeats = args.methods[:1], 64, 2
        args.compile_backend = "eager"
    return args


def measure(args):
    rows = []
    for method in args.methods:
        for mode in ("eager", "compiled"):
            cmd = [sys.executable, "-c", CHILD, mode, method]
            cmd += [str(args.threads), str(args.width), str(args.repeats)]
            cmd += [args.compile_backend]
            env = dict(os.environ, KERAS_BACKEND="torch", PYTHONPATH=ROOT)
            result = harness.child(cmd, env, cwd=ROOT)
            result.update(method=method, mode=mode)
            rows.append(result)
            ms = statistics.median(result["ms_per_update"])
            print(method, mode, f"{ms:.1f} ms", flush=True)
    keys = ("methods", "width", "repeats", "compile_backend")
    config = {k: getattr(args, k) for k in keys}
    return {"config": config, "threads": args.threads, "rows": rows}


def markdown(report, plots=None):
    rows = []
    for row in report["rows"]:
        ms = row["ms_per_update"]
        rows.append(
            [row["method"], row["mode"], f"{row['first_call_s']:.1f}"]
            + [f"{statistics.median(ms):.1f} ({min(ms):.1f}-{max(ms):.1f})"]
            + [f"`{row['masks_sha1'][:12]}`"]
        )
    config = report.get("config", {})  # older files: the defaults
    width, repeats = config.get("width", 1000), config.get("repeats", 8)
    backend = config.get("compile_backend", "inductor")
    return [
        "# PyTorch: eager update vs torch.compile",
        "",
        *harness.provenance_lines(report, "torch_compile.py"),
        f"- {report['threads']} torch threads; torch.compile backend "
        f"`{backend}`.",
        "",
        f"MLP 784-{width}-{width}-{width}-10, 90% sparse (ERK), drop "
        f"fraction 0.3; ms/update: median (min-max) of {repeats} direct "
        "`updater.update` calls after the first.",
        "",
        *harness.table(
            ["method", "mode", "first call s", "ms/update", "masks SHA-1"],
            rows,
        ),
        "",
    ]


def main(argv=None):
    rows = harness.main(parse_args(argv), measure, markdown)["rows"]
    same = {
        method: len({r["masks_sha1"] for r in rows if r["method"] == method})
        == 1
        for method in dict.fromkeys(r["method"] for r in rows)
    }
    print("same masks in both modes:", same)
    if not all(same.values()):
        sys.exit("eager and compiled updates disagree")


if __name__ == "__main__":
    main()
