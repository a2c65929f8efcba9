"""`keras_dst.export_litert`: sparse .tflite files, checked against Keras.

Runs on both backends (on JAX the conversion runs in a TensorFlow
subprocess, ~10 s per export here). The check uses the `ai-edge-litert`
interpreter when that package is installed (the `litert` extra), else
TensorFlow's `tf.lite.Interpreter`: `result.interpreter` says which, and
the tests accept either.
"""

import importlib.util
import os
from unittest import mock

import keras
import numpy as np

import keras_dst
from keras_dst.layers import SparseDense
from tests.test_case import TestCase

INTERPRETERS = ("ai_edge_litert", "tf.lite")


def mlp(layer_cls=SparseDense, hidden=(128, 128), **kwargs):
    layers = [keras.Input((64,))]
    for i, units in enumerate(hidden):
        layers.append(
            layer_cls(units, activation="relu", name=f"h{i}", **kwargs)
        )
    layers.append(layer_cls(10, name="out", **kwargs))
    return keras.Sequential(layers)


def block_mask(shape, sparsity, seed):
    """A Dense-kernel mask of 1x4 blocks: 4 consecutive input rows of one
    output column are all kept or all dropped."""
    rng = np.random.default_rng(seed)
    grid = rng.random((shape[0] // 4, shape[1])) >= sparsity
    return np.repeat(grid, 4, axis=0).astype(np.uint8)


class ExportLiteRTTest(TestCase):
    def setUp(self):
        super().setUp()
        self.x = np.random.default_rng(0).normal(size=(32, 64))
        self.x = self.x.astype("float32")

    def test_sparse_mlp_smaller_checked_and_formats(self):
        # One 0.9-sparse SparseDense MLP for both points (each export costs
        # ~10 s on JAX): random 0.9 masks (from `sparsity`) in h1 and out,
        # 0.95 masks of 1x4 blocks set on h0 and h2. h1 and h2 have kernels
        # of the same shape (128, 128) and different formats: the report
        # must tell them apart by value.
        tmp = self.temp_dir()
        model = mlp(hidden=(128, 128, 128), sparsity=0.9, mask_seed=1)
        model.get_layer("h0").set_mask(block_mask((64, 128), 0.95, 0))
        model.get_layer("h2").set_mask(block_mask((128, 128), 0.95, 2))
        sparse = keras_dst.export_litert(
            model, os.path.join(tmp, "sparse.tflite"), sample=self.x
        )
        dense_model = mlp(keras.layers.Dense, hidden=(128, 128, 128))
        dense = keras_dst.export_litert(
            dense_model, os.path.join(tmp, "dense.tflite"), sample=self.x
        )
        self.assertEqual(os.path.getsize(sparse.path), sparse.bytes)
        self.assertIn(sparse.interpreter, INTERPRETERS)
        self.assertEqual(sparse.op_resolver, "default")
        self.assertIsNone(sparse.quantize)
        self.assertEqual(
            sparse.layer_formats,
            {
                "h0": "block_sparse",
                "h1": "csr_densify",
                "h2": "block_sparse",
                "out": "csr_densify",
            },
        )
        self.assertEqual(
            dense.layer_formats,
            {"h0": "dense", "h1": "dense", "h2": "dense", "out": "dense"},
        )
        # Measured: 13,632 vs 170,800 bytes (12.5x); error 6e-11 with an
        # output scale of 9e-4 (the sparse ReLU stack shrinks the signal).
        self.assertGreater(dense.bytes / sparse.bytes, 8.0)
        self.assertLess(sparse.max_abs_error, 1e-4 * sparse.output_scale)
        self.assertLessEqual(sparse.max_abs_error, sparse.tolerance)
        self.assertLessEqual(dense.max_abs_error, dense.tolerance)
        self.assertIn("block_sparse", str(sparse))

    def test_int8_checked_with_builtin_kernels_and_tight_check_raises(self):
        tmp = self.temp_dir()
        model = mlp(sparsity=0.9, mask_seed=1)
        path = os.path.join(tmp, "int8.tflite")
        # The default XNNPACK delegate may warn here (it is wrong on int8
        # sparse files); the check itself uses the built-in kernels.
        result = keras_dst.export_litert(model, path, quantize="dynamic_int8")
        self.assertEqual(result.quantize, "dynamic_int8")
        self.assertEqual(
            result.op_resolver, "builtin_without_default_delegates"
        )
        # Measured 6e-3 of the output scale with int8 weights; not 0.
        self.assertGreater(result.max_abs_error, 0.0)
        self.assertLessEqual(result.max_abs_error, result.tolerance)
        # The same file cannot meet a float32 tolerance: an honest failure.
        path = os.path.join(tmp, "tight.tflite")
        with self.assertRaisesRegex(RuntimeError, "disagrees with the Keras"):
            keras_dst.export_litert(
                model, path, quantize="dynamic_int8", sample=self.x, rtol=1e-5
            )
        self.assertTrue(os.path.exists(path))  # kept for inspection

    def test_bad_arguments(self):
        # A plain model: the checks come before any conversion or masking
        # (and building sparse layers costs seconds of compiling on JAX).
        model = mlp(keras.layers.Dense)
        tmp = self.temp_dir()
        with self.assertRaisesRegex(ValueError, "ending in '.tflite'"):
            keras_dst.export_litert(model, os.path.join(tmp, "m.keras"))
        with self.assertRaisesRegex(ValueError, "`quantize` must be one of"):
            keras_dst.export_litert(
                model, os.path.join(tmp, "m.tflite"), quantize="int4"
            )
        with self.assertRaisesRegex(ValueError, "`rtol` must be a float"):
            keras_dst.export_litert(
                model, os.path.join(tmp, "m.tflite"), rtol=-1.0
            )
        with self.assertRaisesRegex(TypeError, "must be a keras.Model"):
            keras_dst.export_litert("model", os.path.join(tmp, "m.tflite"))
        with self.assertRaisesRegex(ValueError, "one array per model input"):
            keras_dst.export_litert(
                model,
                os.path.join(tmp, "m.tflite"),
                sample=[self.x, self.x],
            )
        find_spec = importlib.util.find_spec

        def no_tensorflow(name, *args):
            return None if name == "tensorflow" else find_spec(name, *args)

        with mock.patch("importlib.util.find_spec", no_tensorflow):
            with self.assertRaisesRegex(ImportError, "pip install tensorflow"):
                keras_dst.export_litert(model, os.path.join(tmp, "m.tflite"))
        self.assertFalse(os.path.exists(os.path.join(tmp, "m.tflite")))
