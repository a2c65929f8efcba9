"""TensorFlow shims."""

import numpy as np


def read_replica_sum(variable):
    """Sum of a variable's per-replica values (tf.distribute), on the host.

    A `MirroredVariable` that replicas overwrite independently holds a
    different value on each replica; reading it plainly returns the first
    replica's. Outside a strategy this is the plain value.
    """
    value = variable.value
    replicas = getattr(value, "values", None)
    if not replicas:
        return np.array(value.numpy())
    return np.sum([np.asarray(v.numpy()) for v in replicas], axis=0)
