"""JAX shims."""

import jax
import numpy as np

# Whether `compile_function` traces (see `backend.traces_functions`).
TRACES = True


def compile_function(fn):
    return jax.jit(fn)


def read_value(variable):
    """The variable's current value (a jax array)."""
    return variable.value


def replica_sum(state, variable):
    """Under `keras.distribution` JAX computes global gradients: a
    replicated variable already holds the sum."""
    return state.read(variable)


def attach_state(model):
    """Puts the JAX trainer's live state back into the variables.

    Mid-epoch, Keras's JAX trainer keeps the training state outside the
    variables and empties them. `jax_state_sync()` (what `Callback.model`
    calls) assigns every variable from that state and tells the trainer to
    read its next state from the variables, so writes made after it reach
    the next step. There is no cheaper way to write: the trainer's own
    state lists are copied into `model._jax_state` (Keras tracks the
    attribute), so writing there never reaches the next step. The sync
    costs Python time per variable, no device transfer, and runs only on
    update steps.
    """
    sync = getattr(model, "jax_state_sync", None)
    if sync is not None:
        sync()


def to_numpy(x):
    """See `backend.to_numpy`."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def same_in_every_process(value):
    """See `backend.same_in_every_process`."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.int64(value)))


def check_distribution():
    """Every distribution Keras offers on this backend is supported."""
