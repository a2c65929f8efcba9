"""JAX shims."""

import jax

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
