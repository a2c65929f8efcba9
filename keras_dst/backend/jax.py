"""JAX shims."""

import re

import jax
import keras
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
    if isinstance(x, keras.Variable):
        x = x.value
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return keras.ops.convert_to_numpy(x)


def same_in_every_process(value):
    """See `backend.same_in_every_process`."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.int64(value)))


def check_distribution():
    """Every distribution Keras offers on this backend is supported."""


_GATHER = re.compile(r"= (\w+)\[([\d,]*)\][^=]*? all-gather(?:-start)?\(")
_BYTES = {"pred": 1, "s8": 1, "u8": 1, "bf16": 2, "f16": 2, "s16": 2}


def compiled_cost(function, args):
    """See `backend.compiled_cost`: read from the compiled HLO text and
    XLA's memory analysis (served from jit's cache if already compiled)."""
    compiled = function.lower(*args).compile()
    text = compiled.as_text()
    gathered = [0]
    for dtype, dims in _GATHER.findall(text):
        size = 1
        for d in filter(None, dims.split(",")):
            size *= int(d)
        gathered.append(size * _BYTES.get(dtype, 4))
    memory = compiled.memory_analysis()
    return {
        "all_gathers": len(gathered) - 1,
        "gathered_bytes": sum(gathered),
        "largest_gather_bytes": max(gathered),
        "all_reduces": len(re.findall(r" all-reduce(?:-start)?\(", text)),
        "temp_bytes": int(memory.temp_size_in_bytes),
        "argument_bytes": int(memory.argument_size_in_bytes),
        "output_bytes": int(memory.output_size_in_bytes),
    }
