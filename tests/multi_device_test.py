"""Multi-device training: 2 replicas on CPU, same result as 1 device.

JAX: `keras.distribution.DataParallel` over 2 host devices
(`--xla_force_host_platform_device_count=2`); TF: `MirroredStrategy` over 2
logical CPUs. Devices must be set up before the backend starts, so the
runs happen in a subprocess (tests/multi_device_worker.py).
"""

import json
import os
import subprocess
import sys

import keras
from absl.testing import absltest

from tests.test_case import TestCase

WORKER = os.path.join(os.path.dirname(__file__), "multi_device_worker.py")


class MultiDeviceTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.result = None
        if keras.backend.backend() == "torch":
            return  # see test_pytorch_has_no_keras_distribution
        env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
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
        cls.result = json.loads(lines[-1][len("RESULT ") :])

    def check(self, method):
        if self.backend == "torch":
            # Keras 3 trains on one device with PyTorch: nothing to
            # compare (test_pytorch_has_no_keras_distribution).
            self.assertIsNone(self.result)
            return
        r = self.result[method]
        self.assertEqual(self.result["backend"], keras.backend.backend())
        self.assertEqual(r["replicas"], 2)
        self.assertEqual(r["copies_per_mask"], [2, 2, 2])  # really 2 copies
        self.assertGreaterEqual(r["updates"][1], 5)  # 4 epochs, every 4 steps
        self.assertEqual(r["updates"][0], r["updates"][1])
        self.assertTrue(r["replica_masks_identical"])
        self.assertTrue(r["replica_kernels_identical"])
        self.assertTrue(r["inactive_exact_zero"])
        self.assertTrue(r["masks_equal_single_device"])
        # The README's promise: weights within float32 rounding, 2e-7
        # relative to the largest weight (summing 2 replicas' gradients
        # rounds differently from one batch: measured <= 1.2e-7 absolute).
        scale = max(1.0, r["max_abs_weight"])
        self.assertLess(r["max_weight_diff"], 2e-7 * scale)
        self.assertLess(r["max_gradient_diff"], 1e-7)
        self.assertEqual(r["itop_rate"][0], r["itop_rate"][1])

    def test_pytorch_has_no_keras_distribution(self):
        # The README says so: several devices need TensorFlow or JAX. This
        # fails the day Keras distributes PyTorch models, to support it.
        if self.backend != "torch":
            self.assertIsNotNone(self.result)
            return
        with self.assertRaises(AttributeError):
            keras.distribution.DataParallel()

    def test_random_growth(self):
        self.check("set")

    def test_gradient_growth(self):
        self.check("rigl")

    def test_momentum_growth(self):
        self.check("snfs")


if __name__ == "__main__":
    absltest.main()
