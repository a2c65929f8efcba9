"""Writes unpacked_union.{keras,weights.h5,npz}: a sparse model saved by
keras_dst before unions were packed (commit 76f6769: `kernel_explored`
one uint8 per kernel entry), for packed_union_test.py.

Run once, with that commit's keras_dst first on the path:

    PYTHONPATH=<checkout at 76f6769> KERAS_BACKEND=jax \
        python tests/data/make_unpacked_union_fixture.py
"""

import os

import keras
import numpy as np

import keras_dst

HERE = os.path.dirname(os.path.abspath(__file__))


def build():
    """The fixture's architecture (packed_union_test.py builds it too)."""
    return keras.Sequential(
        [
            keras.Input((6, 6, 3)),
            keras_dst.layers.SparseConv2D(4, 3, name="conv"),
            keras.layers.Flatten(),
            keras_dst.layers.SparseDense(13, name="hidden"),
            keras_dst.layers.SparseDense(5, name="out"),
        ]
    )


def main():
    keras.utils.set_random_seed(0)
    model = build()
    rng = np.random.default_rng(0)
    arrays = {}
    for layer in keras_dst.sparse_layers(model):
        shape = tuple(layer.kernel_variable.shape)
        first = (rng.random(shape) < 0.4).astype("uint8")
        second = (rng.random(shape) < 0.4).astype("uint8")
        layer.set_mask(first, reset_explored=True)
        layer.set_mask(second)  # the union is now first | second
        assert layer.kernel_explored.shape == shape  # unpacked
        arrays[f"{layer.name}_mask"] = layer.get_mask()
        arrays[f"{layer.name}_union"] = layer.get_explored()
        arrays[f"{layer.name}_kernel"] = keras.ops.convert_to_numpy(
            layer.kernel_variable
        )
    model.save(os.path.join(HERE, "unpacked_union.keras"))
    model.save_weights(os.path.join(HERE, "unpacked_union.weights.h5"))
    np.savez(os.path.join(HERE, "unpacked_union.npz"), **arrays)


if __name__ == "__main__":
    main()
