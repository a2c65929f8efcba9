"""Worker for layout_test.py: sparse state under ModelParallel, 8 devices.

Runs in its own process because the 8 virtual CPU devices must exist
before JAX starts. Prints one JSON line:

* `hub`: a Gemma backbone sharded by keras-hub's own `get_layout_map`
  (which names kernels only): for each sparse layer, the sharding spec
  of its kernel and of its mask, explored union and probe; the probe
  momentum's; then, after RigL trains it inside `fit`, whether every
  layer holds exactly its count with exact zeros.
* `loose`: an MLP whose layout map says `.*kernel.*` (which also matches
  the scalar `kernel_gradient_momentum`): whether it builds and trains.

Usage: KERAS_BACKEND=jax python tests/layout_worker.py
"""

import json
import os
import sys

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_force_host_platform_device_count=8"
)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

import keras_dst  # noqa: E402


def spec(variable):
    return [
        None if axis is None else str(axis)
        for axis in variable.value.sharding.spec
    ]


def exact(model, counts):
    for layer in keras_dst.sparse_layers(model):
        mask = layer.get_mask()
        kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel_variable))
        if int(mask.sum()) != counts[keras_dst.layer_path(layer)]:
            return False
        if np.any(kernel[mask == 0] != 0.0):
            return False
    return True


def counts_of(model):
    return {
        keras_dst.layer_path(layer): int(layer.get_mask().sum())
        for layer in keras_dst.sparse_layers(model)
    }


def hub():
    mesh = keras.distribution.DeviceMesh(
        (2, 4), ["batch", "model"], keras.distribution.list_devices()
    )
    layout_map = keras_hub.models.GemmaBackbone.get_layout_map(mesh)
    distribution = keras.distribution.ModelParallel(
        layout_map=layout_map, batch_dim_name="batch"
    )
    keras.distribution.set_distribution(distribution)
    backbone = keras_hub.models.GemmaBackbone(
        vocabulary_size=64,
        num_layers=1,
        num_query_heads=4,
        num_key_value_heads=4,
        hidden_dim=16,
        intermediate_dim=32,
        head_dim=8,
    )
    sparse = keras_dst.sparsify(backbone, 0.8, seed=0)
    layers = {}
    for layer in keras_dst.sparse_layers(sparse):
        layers[keras_dst.layer_path(layer)] = {
            "kernel": spec(layer.kernel_variable),
            "mask": spec(layer.kernel_mask),
            "explored": spec(layer.kernel_explored),
            "probe": spec(layer.kernel_gradient),
            "momentum": spec(layer.kernel_gradient_momentum),
        }
    model = keras_hub.models.GemmaCausalLM(sparse, preprocessor=None)
    model.compile(
        optimizer=keras.optimizers.SGD(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    counts = counts_of(model)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 64, size=(8, 8)).astype("int32")
    x = {"token_ids": ids, "padding_mask": np.ones_like(ids)}
    rigl = keras_dst.RigL(0.8, update_interval=2, seed=0)
    model.fit(x, ids, batch_size=4, epochs=2, verbose=0, callbacks=[rigl])
    keras.distribution.set_distribution(None)
    return {
        "layers": layers,
        "updates": len(rigl.history),
        "exact": exact(model, counts),
    }


def loose():
    mesh = keras.distribution.DeviceMesh(
        (1, 8), ["batch", "model"], keras.distribution.list_devices()
    )
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[".*kernel.*"] = (None, "model")
    distribution = keras.distribution.ModelParallel(
        layout_map=layout_map, batch_dim_name="batch"
    )
    with distribution.scope():
        model = keras.Sequential(
            [
                keras.Input((16,)),
                keras_dst.layers.SparseDense(32, activation="relu"),
                keras_dst.layers.SparseDense(8),
            ]
        )
        model.compile(
            optimizer="sgd",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        rng = np.random.default_rng(0)
        x = rng.normal(size=(32, 16)).astype("float32")
        y = rng.integers(0, 8, size=32)
        rigl = keras_dst.RigL(0.75, update_interval=2, seed=0)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[rigl])
        layer = model.layers[0]
        return {
            "built": True,
            "updates": len(rigl.history),
            "kernel": spec(layer.kernel_variable),
            "mask": spec(layer.kernel_mask),
            "momentum": spec(layer.kernel_gradient_momentum),
            "exact": exact(model, counts_of(model)),
            "sparsity": keras_dst.sparsity_report(model)["total"]["sparsity"],
        }


if __name__ == "__main__":
    result = {"devices": len(keras.distribution.list_devices())}
    result["hub"] = hub()
    result["loose"] = loose()
    print("RESULT " + json.dumps(result))
