"""TensorFlow shims."""

import keras
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


def to_numpy(x):
    """See `backend.to_numpy`: one process, so a plain copy."""
    return keras.ops.convert_to_numpy(x)


def same_in_every_process(value):
    """One process (TF multi-worker is refused at build): `value`."""
    return value


def check_distribution():
    """Refuses TensorFlow multi-worker training, with what works instead.

    A strategy whose replicas span several workers (more replicas in sync
    than devices on this worker: `MultiWorkerMirroredStrategy` over
    several machines or processes) is refused. Measured with Keras 3.15:
    TensorFlow's collective broadcast cannot send the uint8 masks when
    they are created; Keras's own TensorFlow trainer fails under the
    strategy (`_maybe_symbolic_build`, `reduce_per_replica`); and with
    those worked around, gradient growth ranks each worker's local
    gradient, so the workers' masks silently diverge. Refusing at build
    (and at `fit` start) is the honest answer until all three change.
    """
    if not tf.distribute.has_strategy():
        return
    strategy = tf.distribute.get_strategy()
    local = len(strategy.extended.worker_devices)
    replicas = strategy.num_replicas_in_sync
    if replicas <= local:
        return
    # Not NotImplementedError: Keras's Sequential swallows that one while
    # it builds (a layer without shape inference), leaving layers unbuilt.
    raise RuntimeError(
        "keras_dst does not support TensorFlow multi-worker training "
        f"(a strategy of {replicas} replicas, {local} on this worker). "
        "Masks are uint8 variables, which TensorFlow's collective "
        "broadcast cannot send; Keras 3's TensorFlow trainer fails under "
        "this strategy; and gradient growth (RigL) would rank each "
        "worker's own gradient, so the workers' masks would diverge. Train "
        "on several processes or machines with KERAS_BACKEND=jax "
        "(`keras.distribution.initialize(...)` with `DataParallel` or "
        "`ModelParallel`; see docs/guides/several-devices.md), or on "
        "one machine's devices with `tf.distribute.MirroredStrategy`."
    )


def compiled_cost(function, args):
    """JAX only (see `backend.compiled_cost`)."""
    del function, args
    raise NotImplementedError(
        "`update_cost` reads the compiled XLA module of the JAX update; "
        "on TensorFlow keras_dst cannot read one. Run with "
        "KERAS_BACKEND=jax to cost the update."
    )
