"""JAX shims."""

import keras
import numpy as np


def read_replica_sum(variable):
    """The variable's value: under `keras.distribution` JAX computes
    global gradients, so a replicated variable already holds the sum."""
    return np.array(keras.ops.convert_to_numpy(variable.value))
