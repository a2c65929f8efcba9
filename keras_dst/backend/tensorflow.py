"""TensorFlow shims."""

import tensorflow as tf


def compile_function(fn):
    # XLA fuses the selection's counting passes (about 2x faster than
    # TensorFlow's own kernels on a CPU) and runs on GPU/TPU alike.
    return tf.function(fn, jit_compile=True, reduce_retracing=True)


def replica_sum(state, variable):
    """Sum of a variable's per-replica values (tf.distribute).

    A `MirroredVariable` that replicas overwrite independently holds a
    different value on each replica; reading it plainly returns the first
    replica's. Outside a strategy this is the plain value.
    """
    value = variable.value
    replicas = getattr(value, "values", None)
    if not replicas:
        return state.read(variable)
    with tf.device(replicas[0].device):
        return tf.add_n([tf.convert_to_tensor(v) for v in replicas])


def attach_state(model):
    """TensorFlow variables always hold the live state."""
    del model
