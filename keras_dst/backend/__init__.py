"""Backend shims: the few things Keras offers no abstraction for.

One small module per backend; everything else in keras_dst is
`keras.ops`.
"""

import keras


def read_replica_sum(variable):
    """Host value of a variable that each replica fills with its own share.

    The gradient probes are `overwrite_with_gradient` variables: under
    `tf.distribute` each replica writes its local gradient (of the loss
    already divided by the number of replicas), so the global gradient is
    the sum over replicas. Elsewhere (one device, JAX sharding) the
    variable already holds the global value.
    """
    if keras.backend.backend() == "tensorflow":
        from keras_dst.backend import tensorflow as backend

        return backend.read_replica_sum(variable)
    from keras_dst.backend import jax as backend

    return backend.read_replica_sum(variable)
