"""PyTorch shims."""

import functools

import keras
import torch

# Whether `compile_function` traces (see `backend.traces_functions`).
TRACES = False


def compile_function(fn):
    """`fn` run eagerly without recording autograd (the update reads
    trainable variables but is no part of any gradient). See
    `benchmarks/overhead.py` for the measured alternatives."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with torch.no_grad():
            return fn(*args, **kwargs)

    return run


def read_value(variable):
    """The variable's current value (a torch tensor)."""
    return variable.value


def replica_sum(state, variable):
    """One process, one device: the variable holds the global gradient."""
    return state.read(variable)


def attach_state(model):
    """PyTorch variables always hold the live state."""
    del model


def to_numpy(x):
    """See `backend.to_numpy`: one process, so a plain copy."""
    return keras.ops.convert_to_numpy(x)


def same_in_every_process(value):
    """One process (TF multi-worker is refused at build): `value`."""
    return value


def check_distribution():
    """Every distribution Keras offers on this backend is supported."""


def compiled_cost(function, args):
    """JAX only (see `backend.compiled_cost`)."""
    del function, args
    raise NotImplementedError(
        "`update_cost` reads the compiled XLA module of the JAX update; "
        "on PyTorch keras_dst cannot read one. Run with "
        "KERAS_BACKEND=jax to cost the update."
    )
