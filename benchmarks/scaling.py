"""Several devices: step, update and the update's memory on 1-8 devices.

    python benchmarks/scaling.py                  # about 4 min on 2 cores
    python benchmarks/scaling.py --quick --output_dir=/tmp/scaling  # model, 1-2

JAX only (Keras's `keras.distribution`). One child process per device
count (1, 2, 4, 8 virtual CPU devices, `--xla_force_host_platform_
device_count`, which must be set before JAX starts) and per layout:

* `data`: `DataParallel`, the batch split over the devices; masks,
  kernels and the update replicated.
* `model`: `ModelParallel` with kernels' last axis split over the devices
  (`(None, "model")`, the batch replicated); masks, unions and probes take
  their kernel's layout, and the update runs shard by shard.

Each child fits an MLP (784-1024-1024-16, RigL at 90%, SGD) for one
warm-up epoch, then records the median of `--reps` train steps
(`train_on_batch`, its loss read back) and of `--reps` direct
`updater.update(model, step, 0.3)` calls (each waits for the device),
and `updater.update_cost()`: the compiled update's all-gathers and the
bytes they produce, its all-reduces and XLA's per-device memory
(temporaries, arguments, outputs).

Virtual devices share this machine's cores, so times here show overhead,
not speed-up; the collectives and the per-device memory are what carry
over to real devices. Writes `benchmarks/results/scaling.{json,md}`.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import harness  # noqa: E402

CHILD = r"""
import json, statistics, sys, time
import keras, numpy as np
import keras_dst

devices, layout, width, reps = sys.argv[1:5]
devices, width, reps = int(devices), int(width), int(reps)
listed = keras.distribution.list_devices()
assert len(listed) == devices, listed
if layout == "data":
    distribution = keras.distribution.DataParallel(
        devices=listed, auto_shard_dataset=False
    )
else:
    mesh = keras.distribution.DeviceMesh(
        (1, devices), ["batch", "model"], listed
    )
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[".*sparse_dense.*kernel"] = (None, "model")
    distribution = keras.distribution.ModelParallel(
        layout_map=layout_map, batch_dim_name="batch",
        auto_shard_dataset=False,
    )
keras.distribution.set_distribution(distribution)
keras.utils.set_random_seed(0)
model = keras.Sequential(
    [keras.Input((784,))]
    + [keras_dst.layers.SparseDense(width, activation="relu") for _ in "12"]
    + [keras_dst.layers.SparseDense(16)]
)
model.compile(
    keras.optimizers.SGD(0.01, momentum=0.9),
    keras.losses.SparseCategoricalCrossentropy(from_logits=True),
)
rng = np.random.default_rng(0)
x = rng.random((256 * 8, 784), dtype=np.float32)
y = rng.integers(0, 16, 256 * 8).astype("int32")
callback = keras_dst.RigL(0.9, update_interval=4, seed=0)
model.fit(x, y, batch_size=256, epochs=1, verbose=0, callbacks=[callback])
updater = callback.updater
steps = []
model.train_on_batch(x[:256], y[:256])  # compiles train_on_batch's step
for i in range(reps):
    start = time.perf_counter()
    float(np.asarray(model.train_on_batch(x[:256], y[:256])))
    steps.append(time.perf_counter() - start)
updates = []
step = 10_000
updater.update(model, step, 0.3)  # the update compiled for direct calls
for i in range(reps):
    step += 1
    start = time.perf_counter()
    updater.update(model, step, 0.3)
    updates.append(time.perf_counter() - start)
layers = keras_dst.sparse_layers(model)
specs = sorted(
    {
        str(getattr(layer.kernel_mask.value.sharding, "spec", "one device"))
        for layer in layers
    }
)
print("RESULT " + json.dumps({
    "devices": devices,
    "layout": layout,
    "step_ms": 1000 * statistics.median(steps),
    "update_ms": 1000 * statistics.median(updates),
    "update_traces": updater.traces,
    "cost": updater.update_cost(0.3),
    "mask_specs": specs,
    "active": updater.active_counts,
}))
"""


def parse_args(argv=None):
    parser = harness.parser(__doc__, "scaling")
    parser.add_argument(
        "--devices", type=harness.csv(int), default=[1, 2, 4, 8]
    )
    parser.add_argument(
        "--layouts", type=harness.csv(str), default=["data", "model"]
    )
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args(argv)
    if args.quick:
        args.devices, args.width, args.reps = [1, 2], 64, 2
        args.layouts = ["model"]
    return args


def measure(args):
    runs = []
    for layout in args.layouts:
        for devices in args.devices:
            env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=ROOT)
            env["XLA_FLAGS"] = (
                env.get("XLA_FLAGS", "")
                + f" --xla_force_host_platform_device_count={devices}"
            )
            command = [sys.executable, "-c", CHILD, str(devices), layout]
            command += [str(args.width), str(args.reps)]
            runs.append(harness.child(command, env))
    return {"config": {"width": args.width, "reps": args.reps}, "runs": runs}


def markdown(report, plots=None):
    mib = 2.0**-20
    rows = []
    for r in report["runs"]:
        cost = r["cost"]
        rows.append(
            [r["layout"], r["devices"], f"{r['step_ms']:.1f}"]
            + [f"{r['update_ms']:.1f}", f"{r['update_ms'] / r['step_ms']:.2f}"]
            + [cost["all_gathers"], f"{cost['gathered_bytes'] / 1024:.1f}"]
            + [cost["all_reduces"], f"{cost['temp_bytes'] * mib:.2f}"]
            + [
                f"{cost['argument_bytes'] * mib:.2f}",
                ", ".join(r["mask_specs"]),
            ]
        )
    return [
        "# Several devices: step, update and update memory",
        "",
        *harness.provenance_lines(report, "scaling.py"),
        "",
        "MLP 784-{w}-{w}-16, RigL 90%, batch 256, virtual CPU devices "
        "sharing one machine's cores (times show overhead, not speed-up). "
        "Per device: XLA's memory analysis of the compiled update. "
        "Medians of {r} calls.".format(
            w=report["config"]["width"], r=report["config"]["reps"]
        ),
        "",
        *harness.table(
            ["layout", "devices", "step ms", "update ms", "update / step"]
            + ["all-gathers", "gathered KiB", "all-reduces"]
            + ["update temp MiB", "update args MiB", "mask layout"],
            rows,
            "lrrrrrrrrrl",
        ),
        "",
    ]


if __name__ == "__main__":
    harness.main(parse_args(), measure, markdown)
