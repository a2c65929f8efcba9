"""Finding an optimizer's slot variables (momentum, Adam m/v, ...) by model
variable, for every built-in Keras optimizer and LossScaleOptimizer."""

import collections.abc

import keras


def base_optimizer(optimizer):
    """The optimizer that owns the slots (unwraps LossScaleOptimizer)."""
    while hasattr(optimizer, "inner_optimizer"):
        optimizer = optimizer.inner_optimizer
    return optimizer


# Optimizers whose update of an entry with zero gradient and zero slots is
# zero (decoupled weight decay included): zeroing the slots of inactive
# weights keeps them at exactly 0. Not in the list: Muon (its orthogonalized
# update mixes entries), Ftrl (zeroed accumulators divide by zero without
# L2).
ZERO_PRESERVING = tuple(
    getattr(keras.optimizers, name)
    for name in (
        "SGD",
        "Adam",
        "AdamW",
        "Adamax",
        "Nadam",
        "RMSprop",
        "Adagrad",
        "Adadelta",
        "Lion",
        "Lamb",
        "Adafactor",
    )
    if hasattr(keras.optimizers, name)
)


def keeps_zeros(optimizer):
    """Whether `optimizer` is known to leave zero-gradient, zero-slot
    entries at exactly 0 (see `ZERO_PRESERVING`)."""
    return isinstance(base_optimizer(optimizer), ZERO_PRESERVING)


def slot_variables(optimizer, variable):
    """The optimizer variables that shadow `variable`, element for element.

    Keras optimizers keep per-variable slots in lists aligned with the
    variables they were built with (`SGD.momentums`, `Adam._momentums`,
    `Adam._velocities`, `RMSprop._velocities`, ...). This finds every such
    list and returns the entries at `variable`'s index whose shape matches.
    """
    if optimizer is None:
        return []
    opt = base_optimizer(optimizer)
    if not getattr(opt, "built", False):
        return []
    try:
        index = opt._get_variable_index(variable)
    except (KeyError, ValueError, AttributeError):
        return []
    n = len(opt._trainable_variables)
    slots = []
    for value in vars(opt).values():
        if (
            isinstance(value, collections.abc.Sequence)
            and not isinstance(value, str)
            and len(value) == n
            and value
            and any(isinstance(v, keras.Variable) for v in value)
            and all(v is None or isinstance(v, keras.Variable) for v in value)
            and value is not opt._trainable_variables
        ):
            # Entries are None for variables without slots (e.g. Keras
            # skips `overwrite_with_gradient` variables).
            slot = value[index]
            if slot is not None and tuple(slot.shape) == tuple(variable.shape):
                slots.append(slot)
    return slots
