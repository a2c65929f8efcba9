"""Worker for multi_process_test.py: one JAX process of a 2-process run.

`keras.distribution.initialize` joins the processes over 127.0.0.1 (CPU,
gloo collectives), one CPU device each. For each case (a layout and a
method) the process trains the same small MLP on the same global batches
and writes, to `<out>/<case>.<process>.npz`, every layer's mask, union
and kernel gathered whole (`process_allgather`, test-only), plus the
sharding specs of the kernels and masks, the update's trace count and
the counts the updater read. `process=-1` is the 1-process reference:
the same global batches on one device, no distribution.

Layouts: `data` (DataParallel, the batch split over the 2 processes) and
`model` (ModelParallel, kernels' last axis split over the 2 processes,
the batch replicated). Methods: `itop`, `rigl`, and `noseed` (ITOP with
`seed=None` while numpy's global state differs between the processes).

Usage: KERAS_BACKEND=jax python tests/multi_process_worker.py
           OUT PROCESS PORT [CASES]
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_dst  # noqa: E402

GLOBAL_BATCH = 32
STEPS = 24
METHODS = {
    "itop": lambda: keras_dst.ITOP(0.8, update_interval=4, seed=5),
    "rigl": lambda: keras_dst.RigL(0.8, update_interval=4, seed=5),
    # seed=None, drawn from numpy's global state, which the worker seeds
    # differently in each process: the masks must agree all the same.
    "noseed": lambda: keras_dst.ITOP(0.8, update_interval=4),
}


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(GLOBAL_BATCH * STEPS // 2, 12)).astype("float32")
    w = rng.normal(size=(12, 4)).astype("float32")
    return x, np.argmax(x @ w, axis=1).astype("int32")


def local_part(array, process):
    """Process `process`'s half of every global batch, in batch order."""
    half = GLOBAL_BATCH // 2
    batches = array.reshape(-1, GLOBAL_BATCH, *array.shape[1:])
    return batches[:, process * half : (process + 1) * half].reshape(
        -1, *array.shape[1:]
    )


def build():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((12,)),
            keras_dst.layers.SparseDense(16, activation="relu"),
            keras_dst.layers.SparseDense(16, activation="relu"),
            keras_dst.layers.SparseDense(4),
        ]
    )
    model.compile(
        keras.optimizers.SGD(0.05, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def distribution(layout):
    devices = keras.distribution.list_devices()
    if layout == "data":
        return keras.distribution.DataParallel(
            devices=devices, auto_shard_dataset=False
        )
    mesh = keras.distribution.DeviceMesh(
        (1, len(devices)), ["batch", "model"], devices
    )
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[".*sparse_dense.*kernel"] = (None, "model")
    return keras.distribution.ModelParallel(
        layout_map=layout_map, batch_dim_name="batch", auto_shard_dataset=False
    )


def spec(variable):
    sharding = variable.value.sharding
    return [
        None if a is None else str(a) for a in getattr(sharding, "spec", [])
    ]


def run(case, process):
    layout, method = case.split("-")
    x, y = data()
    if process >= 0:
        keras.distribution.set_distribution(distribution(layout))
        if layout == "data":
            x, y = local_part(x, process), local_part(y, process)
    batch = GLOBAL_BATCH if process < 0 or layout == "model" else None
    batch = batch or GLOBAL_BATCH // 2
    try:
        model = build()
        np.random.seed(1000 + process)  # a different draw per process
        callback = METHODS[method]()
        model.fit(
            x,
            y,
            batch_size=batch,
            epochs=2,
            shuffle=False,
            verbose=0,
            callbacks=[callback],
        )
        counts = callback.updater.layer_counts()
        out = {"traces": callback.updater.traces, "seed": callback.seed}
        out["updates"] = len(callback.updater.history)
        out["active"] = counts.active
        out["explored"] = counts.explored
        out["itop_rate"] = counts.itop_rate
        arrays = {}
        for i, layer in enumerate(keras_dst.sparse_layers(model)):
            out[f"spec_kernel_{i}"] = spec(layer.kernel_variable)
            out[f"spec_mask_{i}"] = spec(layer.kernel_mask)
            arrays[f"mask_{i}"] = layer.get_mask()
            arrays[f"explored_{i}"] = layer.get_explored()
            arrays[f"kernel_{i}"] = np.asarray(
                keras.ops.convert_to_numpy(layer.kernel_variable.value)
                if process < 0
                else _gather(layer.kernel_variable.value)
            )
        return out, arrays
    finally:
        keras.distribution.set_distribution(None)


def _gather(value):
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(value, tiled=True)


def main():
    out_dir, process, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    cases = (
        sys.argv[4].split(",")
        if len(sys.argv) > 4
        else ["data-itop", "data-rigl", "model-itop", "model-rigl"]
        + ["data-noseed"]
    )
    if process >= 0:
        keras.distribution.initialize(
            job_addresses=f"127.0.0.1:{port}",
            num_processes=2,
            process_id=process,
        )
    results = {}
    for case in cases:
        out, arrays = run(case, process)
        results[case] = out
        np.savez(os.path.join(out_dir, f"{case}.{process}.npz"), **arrays)
    with open(os.path.join(out_dir, f"result.{process}.json"), "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
