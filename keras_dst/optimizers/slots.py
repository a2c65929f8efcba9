"""Finding an optimizer's slot variables (momentum, Adam m/v, ...) by model
variable, and knowing which optimizers keep zero weights at zero.

Sparse layers mask the kernel's gradient and keras_dst zeroes the
optimizer slots of inactive weights, so inactive weights stay exactly 0
only if (1) every slot that shadows the kernel is found and (2) the
optimizer's update of an entry with zero gradient and zero slots is zero.

What keras_dst does with an optimizer it does not know:

* Slots are found for any `keras.optimizers.Optimizer` that keeps them the
  standard way: one list per kind of slot, aligned with the variables of
  `build(variables)` (what `add_optimizer_variables`, or appending
  `add_variable_from_reference(variable)` for each variable, gives; see
  `keras_dst.backend.keras_internals.slot_lists`). A custom optimizer
  that does so needs nothing more.
* If an optimizer holds variables of a kernel's shape outside such lists
  (slots in a dict, in a list with gaps, ...), keras_dst cannot tell
  whether they shadow the kernel: `slot_variables` raises a `ValueError`
  rather than leave stale slots that would move inactive weights off 0.
  Register the optimizer with a `slots` function to tell it.
* An optimizer that is neither one of `ZERO_PRESERVING` nor registered
  gets a `RuntimeWarning` at the start of training (`check_optimizer`),
  naming it and how to opt in: nothing guarantees its update leaves
  zero-gradient, zero-slot entries at 0 (Muon's orthogonalized update
  mixes entries; Ftrl divides by its zeroed accumulators). Training goes
  on: the mask stays exact, the kernel may not.

Opt in with `register_zero_preserving(cls)`: subclasses of a registered
(or built-in zero-preserving) class count as zero-preserving too.
"""

import warnings

import keras

from keras_dst.backend.keras_internals import base_optimizer
from keras_dst.backend.keras_internals import built_variables
from keras_dst.backend.keras_internals import slot_lists

__all__ = [
    "ZERO_PRESERVING",
    "base_optimizer",
    "check_optimizer",
    "keeps_zeros",
    "register_zero_preserving",
    "slot_variables",
]

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

# Classes the user declared zero-preserving: {class: slots function or None}.
_REGISTERED = {}


def register_zero_preserving(cls, slots=None):
    """Declares that optimizer class `cls` keeps zero weights at zero.

    That is: for an entry whose gradient is 0 and whose slots are all 0,
    its update is exactly 0 (as for SGD, Adam, ...). keras_dst then stops
    warning about it at the start of training. Subclasses count too.

    Args:
        cls: a subclass of `keras.optimizers.Optimizer`.
        slots: optional; for an optimizer that does not keep its slots in
            lists aligned with the variables it was built with (see the
            module docstring): a function `slots(optimizer, variable)`
            returning the optimizer variables that shadow `variable`
            element for element (same shape), `[]` for none.

    Returns:
        `cls`, so that it can decorate the class.

    Example:

    ```python
    @keras_dst.optimizers.register_zero_preserving
    class MySGD(keras.optimizers.Optimizer):
        ...
    ```
    """
    if not (
        isinstance(cls, type) and issubclass(cls, keras.optimizers.Optimizer)
    ):
        raise TypeError(
            "`cls` must be a subclass of keras.optimizers.Optimizer. "
            f"Received: {cls!r}."
        )
    if slots is not None and not callable(slots):
        raise TypeError(
            "`slots` must be None or a function (optimizer, variable) -> "
            f"list of variables. Received: {slots!r}."
        )
    _REGISTERED[cls] = slots
    return cls


def _registration(opt):
    """(registered, slots function) for the optimizer's class."""
    for cls in type(opt).__mro__:
        if cls in _REGISTERED:
            return True, _REGISTERED[cls]
    return False, None


def keeps_zeros(optimizer):
    """Whether `optimizer` is known to leave zero-gradient, zero-slot
    entries at exactly 0 (`ZERO_PRESERVING` or registered)."""
    opt = base_optimizer(optimizer)
    return isinstance(opt, ZERO_PRESERVING) or _registration(opt)[0]


def slot_variables(optimizer, variable):
    """The optimizer variables that shadow `variable`, element for element.

    Args:
        optimizer: a `keras.optimizers.Optimizer` (a `LossScaleOptimizer`
            is unwrapped) or None.
        variable: a model variable.

    Returns:
        The slots at `variable`'s place in each of the optimizer's
        per-variable lists whose shape is `variable`'s (e.g. Adam's
        momentum and velocity); `[]` if `optimizer` is None, not built
        yet (its slots will start at 0), or does not train `variable`.

    Raises:
        ValueError: the optimizer holds variables of `variable`'s shape
            outside its per-variable lists (see the module docstring).
    """
    if optimizer is None:
        return []
    opt = base_optimizer(optimizer)
    custom = _registration(opt)[1]
    if custom is not None:
        return list(custom(opt, variable))
    built = built_variables(opt)
    index = next((i for i, v in enumerate(built) if v is variable), None)
    if index is None:
        return []
    lists = slot_lists(opt)
    shape = tuple(variable.shape)
    listed = {id(v) for entries in lists for v in entries if v is not None}
    stray = [
        v.path
        for v in opt.variables
        if id(v) not in listed and tuple(v.shape) == shape
    ]
    if stray:
        raise ValueError(
            f"keras_dst cannot find the slots of optimizer "
            f"{type(opt).__name__} for variable '{variable.path}': it holds "
            f"variables of that shape {shape} outside lists aligned with "
            f"the variables it was built with: {stray}. Sparse training "
            "zeroes the slots of inactive weights so that they stay "
            "exactly 0; stale slots would move them. Keep slots in such "
            "lists (append `self.add_variable_from_reference(variable)` "
            "for each variable in `build`), or tell keras_dst where they "
            "are: `keras_dst.optimizers.register_zero_preserving("
            f"{type(opt).__name__}, slots=fn)`."
        )
    return [
        entries[index]
        for entries in lists
        if entries[index] is not None and tuple(entries[index].shape) == shape
    ]


def check_optimizer(optimizer, variables):
    """The start-of-training check of an optimizer for sparse training.

    Warns (`RuntimeWarning`) if `optimizer` is not known to keep zero
    weights at zero (see `keeps_zeros`), and raises if the slots of any of
    `variables` cannot be found (see `slot_variables`; only once the
    optimizer is built).

    Args:
        optimizer: the model's optimizer, or None.
        variables: the sparse kernels.
    """
    if optimizer is None:
        return
    if not keeps_zeros(optimizer):
        name = type(base_optimizer(optimizer)).__name__
        warnings.warn(
            f"keras_dst: optimizer {name} is not known to keep weights with "
            "zero gradient and zero state at 0. Sparse layers mask the "
            "kernel's gradient and keras_dst zeroes the optimizer slots of "
            "inactive weights; an optimizer that still moves them (e.g. "
            "Muon mixes entries, Ftrl divides by its zeroed accumulators) "
            "makes the kernel dense again between updates. Known to work: "
            f"{[c.__name__ for c in ZERO_PRESERVING]}. If {name} does keep "
            "them at 0, declare it: "
            f"`keras_dst.optimizers.register_zero_preserving({name})`.",
            RuntimeWarning,
            stacklevel=3,
        )
    for variable in variables:
        slot_variables(optimizer, variable)
