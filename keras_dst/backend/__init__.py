"""Backend shims: the few things Keras offers no abstraction for.

One small module per backend; everything else in keras_dst is
`keras.ops`. What lives here:

* `compile_function(fn)`: one compiled function (`jax.jit`; on TensorFlow
  `tf.function` with XLA; on PyTorch the function as it is, eager).
* `model_state(model)`: reads and writes variables, on JAX after
  attaching the trainer's live state inside `fit`.
* `replica_sum(state, variable)`: the global value of a variable that each
  replica overwrites with its own share (the gradient probes).
* `to_numpy(x)`: a host copy that also works on arrays spanning several
  processes (JAX multi-process).

`keras_internals` holds every use of a private Keras attribute (sub-layers,
the Functional class, optimizer slots, the learning rate an optimizer
reads), each with why no public API serves; `tests/keras_internals_test.py`
fails loudly if Keras changes one.
"""

import keras


def _module():
    if keras.backend.backend() == "tensorflow":
        from keras_dst.backend import tensorflow as backend
    elif keras.backend.backend() == "jax":
        from keras_dst.backend import jax as backend
    elif keras.backend.backend() == "torch":
        from keras_dst.backend import torch as backend
    else:
        raise NotImplementedError(
            "keras_dst supports the 'tensorflow', 'jax' and 'torch' "
            f"backends. Received: KERAS_BACKEND={keras.backend.backend()!r}."
        )
    return backend


def compile_function(fn):
    """`fn` compiled once for the backend (traced again only for new
    shapes, dtypes or structures of its tensor arguments). On PyTorch,
    `fn` runs eagerly (see `traces_functions`)."""
    return _module().compile_function(fn)


def traces_functions():
    """Whether `compile_function` traces (TensorFlow, JAX): its Python
    body then runs once per input signature; eagerly (PyTorch), at every
    call."""
    return _module().TRACES


class VariableState:
    """Reads and writes `keras.Variable`s directly.

    The right accessor outside `fit`, on TensorFlow, and on JAX whenever
    the trainer's state is attached to the variables.
    """

    def read(self, variable):
        return _module().read_value(variable)

    def write(self, variable, value):
        variable.assign(value)


def model_state(model):
    """An accessor for `model`'s variables that is valid right now.

    On JAX inside `fit`, mid-epoch, the trainer keeps the live state
    outside the variables (see the Keras notes): this attaches it first
    (`jax_state_sync`). Call it only where the model is really read or
    written: on JAX it costs Python time per variable of the model.
    """
    if model is not None:
        _module().attach_state(model)
    return VariableState()


def replica_sum(state, variable):
    """The sum over replicas of a variable each replica fills itself.

    The gradient probes are `overwrite_with_gradient` variables: under
    `tf.distribute` each replica writes its local gradient (of the loss
    already divided by the number of replicas), so the global gradient is
    the sum. Elsewhere (one device, JAX sharding) the variable already
    holds the global value.
    """
    return _module().replica_sum(state, variable)


def to_numpy(x):
    """A numpy copy of tensor or variable `x`, on every backend.

    Under JAX multi-process training (`keras.distribution.initialize`) an
    array spans devices of other processes, and `convert_to_numpy`
    refuses it even when it is replicated. Here a replicated array (a
    count, a step, a DataParallel mask) is read from this process's own
    copy, with no communication; a sharded one (a ModelParallel mask) is
    gathered from every process: a collective, so every process must
    make the same call (the engine never does this while training).
    """
    return _module().to_numpy(x)


def same_in_every_process(value):
    """`value` (an int) as process 0 has it, in every process.

    Under JAX multi-process training, one broadcast from process 0 (a
    collective: every process must call it); elsewhere `value` itself.
    """
    return _module().same_in_every_process(value)


def check_distribution():
    """Raises if the active distribution is one keras_dst cannot train
    under (TensorFlow multi-worker); nothing elsewhere."""
    _module().check_distribution()


def compiled_cost(function, args):
    """Collectives and per-device memory of compiled `function` for `args`
    (see `SparseUpdater.update_cost`); JAX only."""
    return _module().compiled_cost(function, args)
