"""Copying weights between a layer and its sparse (or plain) twin."""

import keras
import numpy as np

from keras_dst.layers.model_walk import sparse_layers


def sparse_extras(layer):
    """The variables a sparse layer adds to its parent (mask, probe, ...)."""
    return [
        variable
        for sparse in sparse_layers(layer)
        for variable in sparse.sparse_state_variables
    ]


def core_weights(layer):
    """`layer.weights` without the sparse extras, in Keras's order."""
    extras = {id(v) for v in sparse_extras(layer)}
    return [v for v in layer.weights if id(v) not in extras]


def copy_core_weights(source, target, transform=None):
    """Assigns `source`'s core weights to `target`'s, checked by name/shape.

    `transform(variable_of_source) -> value` may replace a value (e.g. to
    apply a mask); by default each value is copied as is.
    """
    src, dst = core_weights(source), core_weights(target)
    if len(src) != len(dst):
        raise ValueError(
            f"Cannot copy weights from layer '{source.name}' to "
            f"'{target.name}': {len(src)} vs {len(dst)} weights."
        )
    for a, b in zip(src, dst):
        if a.name != b.name or tuple(a.shape) != tuple(b.shape):
            raise ValueError(
                f"Cannot copy weight '{a.path}' {tuple(a.shape)} of layer "
                f"'{source.name}' to '{b.path}' {tuple(b.shape)}."
            )
        value = transform(a) if transform else a.value
        # A host copy: on JAX, assigning one variable's buffer to another
        # can alias it, and a later donated train step deletes it.
        b.assign(np.array(keras.ops.convert_to_numpy(value)))
