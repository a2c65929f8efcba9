"""Registries of prune and growth criteria: a name -> a score function.

A criterion is one function from a layer's state to a score of the
kernel's shape, written with `keras.ops` (it runs inside the compiled
update). Pruning removes the active connections of LOWEST score; growth
adds the inactive connections of HIGHEST score. Exactly k of each per
layer, ties broken by the lowest flat index (see `selection.py`).

Adding a criterion is one function and one line:

```python
def weighted_growth(inputs):
    return keras.ops.abs(inputs.gradient) * keras.ops.abs(inputs.kernel)

keras_dst.criteria.register_growth(
    "weighted", weighted_growth, needs_gradient=True)
keras_dst.RigL(0.9, growth="weighted")
```
"""

import dataclasses
from collections.abc import Callable
from typing import Any
from typing import NamedTuple


class ScoreInputs(NamedTuple):
    """What a score function sees of one layer (all device tensors).

    Attributes:
        kernel: the raw kernel (exact zeros where inactive).
        mask: bool tensor, the active connections before the update
            (growth candidates are the inactive positions after pruning;
            scores are asked for every position).
        gradient: the dense gradient dL/d(kernel * mask) of the last
            training step (unscaled, summed over replicas), or its moving
            average for criteria registered with `gradient_momentum=True`;
            `None` unless the criterion was registered with
            `needs_gradient=True`.
        key: uint32 scalar unique to (seed, step, layer), for random
            scores: `keras_dst.criteria.uniform_scores(key, shape)`.
    """

    kernel: Any
    mask: Any
    gradient: Any
    key: Any


@dataclasses.dataclass(frozen=True)
class Criterion:
    """A registered criterion.

    Attributes:
        name: the name callbacks accept (`growth="..."`, `prune="..."`).
        score: `ScoreInputs -> tensor` of the kernel's shape.
        needs_gradient: reads `inputs.gradient` (layers need the
            `kernel_gradient` probe, `dense_gradient=True`).
        gradient_momentum: the probe should hold an exponential moving
            average of the gradient (factor: the updater's `momentum`)
            rather than the last step's gradient.
    """

    name: str
    score: Callable
    needs_gradient: bool = False
    gradient_momentum: bool = False


_PRUNE = {}
_GROWTH = {}


def _register(table, kind, name, score, needs_gradient, gradient_momentum):
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"A {kind} criterion's `name` must be a non-empty string. "
            f"Received: name={name!r}."
        )
    if not callable(score):
        raise TypeError(
            f"`score` of {kind} criterion {name!r} must be callable "
            f"(ScoreInputs -> tensor). Received: {score!r}."
        )
    if gradient_momentum and not needs_gradient:
        raise ValueError(
            f"{kind} criterion {name!r}: `gradient_momentum=True` needs "
            "`needs_gradient=True`."
        )
    criterion = Criterion(
        name, score, bool(needs_gradient), bool(gradient_momentum)
    )
    table[name] = criterion
    return criterion


def register_prune(name, score, needs_gradient=False):
    """Registers a prune criterion: active entries of lowest score go.

    Args:
        name: the name for `prune=...`; an existing name is replaced.
        score: `ScoreInputs -> tensor` of the kernel's shape, finite
            wherever the mask is active (else the update is skipped).
        needs_gradient: the score reads `inputs.gradient`.

    Returns:
        The `Criterion`.
    """
    return _register(_PRUNE, "prune", name, score, needs_gradient, False)


def register_growth(name, score, needs_gradient=False, gradient_momentum=False):
    """Registers a growth criterion: inactive entries of highest score come.

    Args:
        name: the name for `growth=...`; an existing name is replaced.
        score: `ScoreInputs -> tensor` of the kernel's shape, finite
            everywhere (a non-finite score skips the update).
        needs_gradient: the score reads `inputs.gradient`.
        gradient_momentum: `inputs.gradient` should be the probe's moving
            average of the gradient (SNFS) instead of the last gradient.

    Returns:
        The `Criterion`.
    """
    return _register(
        _GROWTH, "growth", name, score, needs_gradient, gradient_momentum
    )


def prune_criteria():
    """Names of the registered prune criteria."""
    return tuple(_PRUNE)


def growth_criteria():
    """Names of the registered growth criteria."""
    return tuple(_GROWTH)


def _get(table, kind, name):
    if name not in table:
        raise ValueError(
            f"`{kind}` must be one of {tuple(table)}. "
            f"Received: {kind}={name!r}. Register new criteria with "
            f"`keras_dst.criteria.register_{kind}`."
        )
    return table[name]


def get_prune(name):
    """The registered prune `Criterion` called `name`."""
    return _get(_PRUNE, "prune", name)


def get_growth(name):
    """The registered growth `Criterion` called `name`."""
    return _get(_GROWTH, "growth", name)


def check_growth(name, arg="growth", others=""):
    """A clear error naming `arg` unless `name` is a registered growth
    criterion (`others` describes other accepted values, e.g. "'base' or
    ")."""
    if not isinstance(name, str) or name not in _GROWTH:
        raise ValueError(
            f"`{arg}` must be {others}a registered growth criterion, one of "
            f"{tuple(_GROWTH)}. Received: {arg}={name!r}."
        )
    return name
