"""Worker for multi_device_test.py: one run on 1 device, one on 2 replicas.

Runs in its own process because the 2 CPU devices must be configured
before the backend starts (`XLA_FLAGS` for JAX, logical devices for TF).
Prints one JSON line: per method, whether the replicas hold identical
masks and how far the 2-replica run is from the 1-device run.

Usage: KERAS_BACKEND=jax|tensorflow python tests/multi_device_worker.py
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("KERAS_BACKEND") == "jax":
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + " --xla_force_host_platform_device_count=2"
    )

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_dst  # noqa: E402

BACKEND = keras.backend.backend()
METHODS = {
    "set": lambda: keras_dst.SET(0.8, update_interval=4, seed=3),
    "rigl": lambda: keras_dst.RigL(0.8, update_interval=4, seed=3),
    "snfs": lambda: keras_dst.SNFS(0.8, update_interval=4, seed=3),
}


def setup_devices():
    if BACKEND == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    import jax

    devices = jax.devices("cpu")
    assert len(devices) == 2, devices
    return devices


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 16)).astype("float32")
    w = rng.normal(size=(16, 4)).astype("float32")
    return x, np.argmax(x @ w, axis=1).astype("int32")


def build():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((16,)),
            keras_dst.layers.SparseDense(32, activation="relu"),
            keras_dst.layers.SparseDense(32, activation="relu"),
            keras_dst.layers.SparseDense(4),
        ]
    )
    model.compile(
        keras.optimizers.SGD(0.05, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def train(method):
    model = build()
    callback = METHODS[method]()
    x, y = data()
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=4,
        shuffle=False,
        verbose=0,
        callbacks=[callback],
    )
    return model, callback


def replica_values(variable):
    """The variable's value on each device/replica, as numpy arrays."""
    if BACKEND == "tensorflow":
        inner = variable.value
        values = getattr(inner, "values", None) or (inner,)
        return [np.array(v.numpy()) for v in values]
    return [np.asarray(s.data) for s in variable.value.addressable_shards]


def summary(model, callback):
    layers = keras_dst.sparse_layers(model)
    probes = {id(layer.kernel_gradient) for layer in layers}
    return {
        "masks": [layer.get_mask() for layer in layers],
        # The model's weights; the gradient probes are compared apart.
        "weights": [
            np.array(keras.ops.convert_to_numpy(v))
            for v in model.trainable_weights
            if id(v) not in probes
        ],
        "gradients": [
            callback.updater.dense_gradient(layer) for layer in layers
        ],
        "itop_rate": callback.itop_rate,
        "updates": len(callback.updater.history),
    }


def main():
    devices = setup_devices()
    out = {"backend": BACKEND}
    for method in METHODS:
        single = summary(*train(method))
        if BACKEND == "tensorflow":
            with devices.scope():
                model, callback = train(method)
            replicas = devices.num_replicas_in_sync
        else:
            keras.distribution.set_distribution(
                keras.distribution.DataParallel(devices=devices)
            )
            try:
                model, callback = train(method)
            finally:
                keras.distribution.set_distribution(None)
            replicas = len(devices)
        multi = summary(model, callback)
        per_replica = [
            replica_values(layer.kernel_mask)
            for layer in keras_dst.sparse_layers(model)
        ]
        kernels = [
            replica_values(layer.kernel_variable)
            for layer in keras_dst.sparse_layers(model)
        ]
        out[method] = {
            "replicas": replicas,
            "copies_per_mask": [len(v) for v in per_replica],
            "replica_masks_identical": all(
                np.array_equal(v[0], w) for v in per_replica for w in v
            ),
            "replica_kernels_identical": all(
                np.array_equal(v[0], w) for v in kernels for w in v
            ),
            "inactive_exact_zero": all(
                np.all(k[0][m[0] == 0] == 0.0)
                for k, m in zip(kernels, per_replica, strict=True)
            ),
            "masks_equal_single_device": all(
                np.array_equal(a, b)
                for a, b in zip(single["masks"], multi["masks"], strict=True)
            ),
            "max_weight_diff": float(
                max(
                    np.max(np.abs(a - b))
                    for a, b in zip(
                        single["weights"], multi["weights"], strict=True
                    )
                )
            ),
            "max_abs_weight": float(
                max(np.max(np.abs(a)) for a in single["weights"])
            ),
            "max_gradient_diff": float(
                max(
                    np.max(np.abs(a - b))
                    for a, b in zip(
                        single["gradients"], multi["gradients"], strict=True
                    )
                )
            ),
            "itop_rate": [single["itop_rate"], multi["itop_rate"]],
            "updates": [single["updates"], multi["updates"]],
        }
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
