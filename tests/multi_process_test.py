"""Several processes: 2 JAX processes on 127.0.0.1, TF multi-worker refused.

JAX (`tests/multi_process_worker.py`): two processes joined by
`keras.distribution.initialize` train the same MLP under DataParallel
(batch split over the processes) and ModelParallel (kernels' last axis
split over the processes), with ITOP (random growth) and RigL (gradient
growth), and a third process trains it on one device with the same global
batches. Both processes must hold identical masks, unions and kernels;
masks and unions must equal the 1-process run's, kernels within float32
rounding; every layer holds exactly its count with exact zeros; masks are
sharded like their kernels; the update is traced once. A `seed=None` run
must draw the same masks in both processes.

TensorFlow (`tests/tf_multi_worker_worker.py`): a 2-worker
`MultiWorkerMirroredStrategy` is refused at build with an error that
names what works instead. PyTorch: Keras has no distribution there.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile

import keras
import numpy as np
from absl.testing import absltest

from tests.test_case import TestCase

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = ["data-itop", "data-rigl", "model-itop", "model-rigl"]
TIMEOUT = 420  # seconds per process group; measured ~60 s on 2 cores


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_processes(commands, env):
    """Runs the commands side by side; returns their (code, stdout,
    stderr). Every process is killed if the group runs past TIMEOUT."""
    procs = [
        subprocess.Popen(
            c,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in commands
    ]
    try:
        outs = [p.communicate(timeout=TIMEOUT) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [(p.returncode, o, e) for p, (o, e) in zip(procs, outs, strict=True)]


class MultiProcessTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.backend_name = keras.backend.backend()
        cls.scratch = tempfile.TemporaryDirectory()
        env = dict(os.environ, KERAS_BACKEND=cls.backend_name)
        env.pop("XLA_FLAGS", None)  # one CPU device per process
        if cls.backend_name == "jax":
            out = cls.scratch.name
            (port,) = free_ports(1)
            worker = os.path.join(HERE, "multi_process_worker.py")
            commands = [
                [sys.executable, worker, out, str(i), str(port)]
                for i in (0, 1, -1)
            ]
            cls.done = run_processes(commands, env)
        elif cls.backend_name == "tensorflow":
            ports = [str(p) for p in free_ports(2)]
            worker = os.path.join(HERE, "tf_multi_worker_worker.py")
            commands = [
                [sys.executable, worker, str(i), *ports] for i in (0, 1)
            ]
            cls.done = run_processes(commands, env)
        else:
            cls.done = None

    @classmethod
    def tearDownClass(cls):
        cls.scratch.cleanup()
        super().tearDownClass()

    def require(self, backend):
        if self.backend_name != backend:
            return False
        for code, _, err in self.done:
            self.assertEqual(code, 0, err[-3000:])
        return True

    def load(self, case, process):
        return dict(
            np.load(os.path.join(self.scratch.name, f"{case}.{process}.npz"))
        )

    def results(self, process):
        path = os.path.join(self.scratch.name, f"result.{process}.json")
        with open(path) as f:
            return json.load(f)

    def check_case(self, case):
        if not self.require("jax"):
            return
        first, second, single = (self.load(case, p) for p in (0, 1, -1))
        info = [self.results(p)[case] for p in (0, 1, -1)]
        layers = len([k for k in first if k.startswith("mask_")])
        self.assertEqual(layers, 3)
        for key in first:  # the two processes agree bit for bit
            np.testing.assert_array_equal(first[key], second[key], key)
        for i in range(layers):
            mask, kernel = first[f"mask_{i}"], first[f"kernel_{i}"]
            # Same masks and unions as one device with the same batches.
            np.testing.assert_array_equal(mask, single[f"mask_{i}"])
            np.testing.assert_array_equal(
                first[f"explored_{i}"], single[f"explored_{i}"]
            )
            np.testing.assert_allclose(
                kernel, single[f"kernel_{i}"], rtol=0, atol=5e-7
            )
            self.assertEqual(int(mask.sum()), info[2]["active"][i])
            self.assertTrue(np.all(kernel[mask == 0] == 0.0))
            want = [None, "model"] if case.startswith("model") else [None, None]
            for process in (0, 1):
                self.assertEqual(info[process][f"spec_kernel_{i}"], want)
                self.assertEqual(info[process][f"spec_mask_{i}"], want)
        for process in (0, 1):
            self.assertEqual(info[process]["active"], info[2]["active"])
            self.assertEqual(info[process]["explored"], info[2]["explored"])
            self.assertEqual(info[process]["updates"], info[2]["updates"])
            self.assertGreaterEqual(info[process]["updates"], 4)
            self.assertEqual(info[process]["traces"], 1)  # compiled once

    def test_data_parallel_random_growth(self):
        self.check_case("data-itop")

    def test_data_parallel_gradient_growth(self):
        self.check_case("data-rigl")

    def test_model_parallel_random_growth(self):
        self.check_case("model-itop")

    def test_model_parallel_gradient_growth(self):
        self.check_case("model-rigl")

    def test_drawn_seed_is_the_same_in_every_process(self):
        if not self.require("jax"):
            return
        first, second = (self.load("data-noseed", p) for p in (0, 1))
        info = [self.results(p)["data-noseed"] for p in (0, 1, -1)]
        self.assertEqual(info[0]["seed"], info[1]["seed"])
        # numpy's state differed, so the processes drew different seeds
        # before agreeing (the 1-process run drew its own with 1000 - 1).
        self.assertNotEqual(info[0]["seed"], info[2]["seed"])
        for key in first:
            np.testing.assert_array_equal(first[key], second[key], key)

    def test_tensorflow_multi_worker_is_refused(self):
        if not self.require("tensorflow"):
            return
        for _, out, _ in self.done:
            line = [
                x
                for x in out.splitlines()
                if x.startswith(("REFUSED", "BUILT"))
            ]
            self.assertEqual(len(line), 1, out)
            self.assertTrue(line[0].startswith("REFUSED"), line[0])
            self.assertIn("multi-worker", line[0])
            self.assertIn("KERAS_BACKEND=jax", line[0])
            self.assertIn("MirroredStrategy", line[0])

    def test_pytorch_has_no_keras_distribution(self):
        # Keras distributes no PyTorch model (see multi_device_test): this
        # fails the day it does, to support it.
        if self.backend_name != "torch":
            self.assertIsNotNone(self.done)
            return
        with self.assertRaises(AttributeError):
            keras.distribution.initialize(
                job_addresses="127.0.0.1:1", num_processes=2, process_id=0
            )


if __name__ == "__main__":
    absltest.main()
