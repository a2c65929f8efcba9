"""TensorFlow shims."""

import tensorflow as tf

# Whether `compile_function` traces (see `backend.traces_functions`).
TRACES = True


def compile_function(fn):
    # XLA fuses the selection's counting passes (about 2x faster than
    # TensorFlow's own kernels on a CPU) and runs on GPU/TPU alike.
    # Static shapes: one trace per input signature (the update's code needs
    # each layer's size when it is traced).
    return tf.function(fn, jit_compile=True)


def read_value(variable):
    """The variable's current value as a tensor.

    Under `tf.distribute`, `keras.ops.convert_to_tensor(variable.value)`
    returns the `MirroredVariable` itself, which a `tf.function` then
    captures by reference, so a compiled function shared by two models of
    the same shapes would read the first model's variables.
    `tf.convert_to_tensor` reads the value (the first replica's, in a
    cross-replica context).
    """
    return tf.convert_to_tensor(variable.value)


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
