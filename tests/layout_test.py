"""The sparse state takes its kernel's layout under ModelParallel.

On JAX (the backend on which `keras.distribution.ModelParallel` shards
variables), 8 virtual CPU devices in a subprocess (tests/layout_worker.py):
a Gemma backbone sharded by keras-hub's own layout map, which names
kernels only, gets masks, explored unions and probes sharded like their
kernels and replicated scalars, and RigL trains it with exact counts; a
loose `.*kernel.*` regex, which also matches our scalar probe momentum,
still builds and trains. On TensorFlow, Keras's ModelParallel places no
variable (TF models distribute with `tf.distribute`); the loose map must
still build and train. PyTorch: Keras has no keras.distribution there.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
from absl.testing import absltest

import keras_dst
from tests.test_case import TestCase

WORKER = os.path.join(os.path.dirname(__file__), "layout_worker.py")


def trimmed(spec):
    """A sharding spec without trailing replicated axes (JAX drops them)."""
    spec = list(spec)
    while spec and spec[-1] is None:
        spec.pop()
    return spec


class LayoutTest(TestCase):
    def test_sparse_state_takes_the_kernel_layout(self):
        if self.backend == "jax":
            self.check_jax_8_devices()
        elif self.backend == "tensorflow":
            self.check_loose_layout_map_on_tensorflow()
        else:
            # Keras has no keras.distribution on PyTorch: sparse layers
            # build and train without any layout.
            self.assertIsNone(keras.distribution.distribution())
            with self.assertRaises(AttributeError):
                keras.distribution.list_devices()
            model = self.mlp((8, 16, 4), sparsity=0.5, mask_seed=0)
            self.assertModelExactSparsity(model)

    def check_jax_8_devices(self):
        env = dict(os.environ, KERAS_BACKEND="jax")
        done = subprocess.run(
            [sys.executable, WORKER],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
        if done.returncode or not lines:
            raise AssertionError(
                f"worker failed ({done.returncode}):\n{done.stderr[-4000:]}"
            )
        result = json.loads(lines[-1][len("RESULT ") :])
        self.assertEqual(result["devices"], 8)
        hub = result["hub"]
        self.assertLen(hub["layers"], 8)
        sharded = 0
        for path, specs in hub["layers"].items():
            kernel = trimmed(specs["kernel"])
            sharded += bool(kernel)
            for name in ("mask", "explored", "probe"):
                self.assertEqual(trimmed(specs[name]), kernel, (path, name))
            self.assertEqual(specs["momentum"], [], path)
        self.assertEqual(sharded, 8)  # keras-hub's map shards every kernel
        self.assertGreaterEqual(hub["updates"], 1)
        self.assertTrue(hub["exact"])
        loose = result["loose"]
        self.assertTrue(loose["built"])
        self.assertEqual(loose["kernel"], [None, "model"])
        self.assertEqual(loose["mask"], [None, "model"])
        self.assertEqual(loose["momentum"], [])
        self.assertTrue(loose["exact"])
        self.assertGreaterEqual(loose["updates"], 1)

    def check_loose_layout_map_on_tensorflow(self):
        devices = keras.distribution.list_devices()
        mesh = keras.distribution.DeviceMesh((1,), ["model"], devices[:1])
        layout_map = keras.distribution.LayoutMap(mesh)
        layout_map[".*kernel.*"] = (None, "model")
        distribution = keras.distribution.ModelParallel(
            layout_map=layout_map, batch_dim_name="model"
        )
        with distribution.scope():
            model = self.mlp((8, 16, 4), sparsity=0.5, mask_seed=0)
            model.compile("sgd", "mse")
            x, _ = self.classification_data(n=16, features=8)
            counts = self.active_counts(model)
            model.fit(
                x,
                np.zeros((16, 4), "float32"),
                verbose=0,
                callbacks=[keras_dst.RigL(0.5, update_interval=1, seed=0)],
            )
        self.assertModelExactSparsity(model, counts)


if __name__ == "__main__":
    absltest.main()
