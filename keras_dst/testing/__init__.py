"""Test helpers for users of keras_dst: check your own sparse layer.

`run_sparse_layer_test` runs the contract every keras_dst sparse layer
meets (exact masks and zeros, the parent's output, masked gradients, the
gradient probe, config and `.keras` round trips, `strip`) on a layer class.
It uses plain `assert`-style `AssertionError`s, so it works under pytest,
absltest or unittest alike.
"""

from keras_dst.testing.sparse_layer_contract import run_sparse_layer_test

__all__ = ["run_sparse_layer_test"]
