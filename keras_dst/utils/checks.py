"""Argument checks shared by the whole library (the bottom layer).

Each error names the argument and its allowed range.
"""

import numbers

import numpy as np


def check_target_sparsity(sparsity):
    """A required global sparsity: a float in [0, 1)."""
    sparsity = validate_sparsity(sparsity)
    if sparsity is None:
        raise ValueError(
            "`sparsity` must be a float in [0, 1). Received: None."
        )
    return sparsity


def check_fraction(value, name):
    """A float in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a float. Received: {value!r}.")
    value = float(value)
    if not np.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(
            f"`{name}` must be in [0, 1]. Received: {name}={value}."
        )
    return value


def check_update_interval(update_interval):
    """Optimizer steps between updates: an int > 0."""
    if (
        isinstance(update_interval, bool)
        or not isinstance(update_interval, numbers.Integral)
        or update_interval <= 0
    ):
        raise ValueError(
            "`update_interval` must be an int > 0 (optimizer steps "
            "between updates). Received: "
            f"update_interval={update_interval!r}."
        )
    return int(update_interval)


def check_optional_count(value, name):
    """None, or an int >= 1 (e.g. a number of epochs)."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < 1
    ):
        raise ValueError(
            f"`{name}` must be None or an int >= 1. Received: {name}={value!r}."
        )
    return int(value)


def validate_sparsity(sparsity, name="sparsity"):
    """Checks that ``sparsity`` is None or a float in [0, 1)."""
    if sparsity is None:
        return None
    if isinstance(sparsity, bool) or not isinstance(
        sparsity, (int, float, np.floating, np.integer)
    ):
        raise TypeError(
            f"`{name}` must be None or a float in [0, 1). "
            f"Received: {name}={sparsity!r} of type {type(sparsity).__name__}."
        )
    sparsity = float(sparsity)
    if not 0.0 <= sparsity < 1.0 or not np.isfinite(sparsity):
        raise ValueError(
            f"`{name}` must be in [0, 1) (0 = dense, 0.9 = 90% of the "
            f"weights are zero). Received: {name}={sparsity}."
        )
    return sparsity


def check_choice(value, allowed, name):
    if value not in allowed:
        raise ValueError(
            f"`{name}` must be one of {tuple(allowed)}. "
            f"Received: {name}={value!r}."
        )


def check_optional_int(value, name):
    """None, or an int (a seed): a TypeError naming `name` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"`{name}` must be None or an int. Received: {name}={value!r}."
        )
    return int(value)


def check_seed(seed):
    """A seed: an int, or None for a random one drawn now."""
    if seed is None:
        return int(np.random.randint(0, 2**31 - 1))
    return check_optional_int(seed, "seed")


def check_unit_interval(value, name):
    """A float in [0, 1) (a decay factor, a momentum)."""
    if isinstance(value, bool) or not isinstance(
        value, (int, float, np.floating, np.integer)
    ):
        raise TypeError(
            f"`{name}` must be a float in [0, 1). Received: {value!r}."
        )
    value = float(value)
    if not np.isfinite(value) or not 0.0 <= value < 1.0:
        raise ValueError(
            f"`{name}` must be in [0, 1). Received: {name}={value}."
        )
    return value
