"""Superposing tickets: running averages and the global re-prune.

CAA, the cumulative average (Yin et al., 2022), over the model at the end of
the DST phase (k = 0) and tickets k = 1..K:

    avg_k = avg_{k-1} * (1 - 1 / (k + 1)) + ticket_k / (k + 1)

CIMA, an exponential moving average with factor 0.5:

    avg_k = 0.5 * avg_{k-1} + 0.5 * ticket_k

The average's support is the union of the tickets' masks, denser than the
budget; `global_magnitude_masks` prunes it back to exactly the budget by
global magnitude over the sparse layers.
"""

import numpy as np


def caa(average, ticket, k):
    """Cumulative average after ticket `k` (k >= 1)."""
    return average * (1.0 - 1.0 / (k + 1)) + ticket / (k + 1)


def cima(average, ticket, k):
    """Exponential moving average (factor 0.5) after ticket `k`."""
    del k
    return 0.5 * average + 0.5 * ticket


AVERAGES = {"caa": caa, "cima": cima}


def global_magnitude_masks(kernels, budget, prefer=None):
    """Masks keeping the `budget` largest |w| over all `kernels` together.

    Args:
        kernels: list of arrays.
        budget: total number of active entries to keep.
        prefer: optional list of bool arrays (e.g. the current masks): among
            entries of equal |w| (in practice: exact zeros, when the
            average has fewer non-zeros than the budget) these come first,
            so the fill never picks positions that were never active.

    Returns:
        list of bool arrays of the kernels' shapes, with exactly `budget`
        True entries in total (ties broken deterministically).
    """
    flat = np.concatenate([np.abs(k).reshape(-1) for k in kernels])
    if not 0 <= budget <= flat.size:
        raise ValueError(
            f"`budget` must be in [0, {flat.size}]. Received: {budget}."
        )
    keep = np.zeros(flat.size, dtype=bool)
    if budget:
        nonzero = np.flatnonzero(flat)
        if prefer is None or nonzero.size >= budget:
            keep[np.argpartition(-flat, budget - 1)[:budget]] = True
        else:  # every non-zero, then preferred zeros, then the rest
            keep[nonzero] = True
            preferred = np.concatenate([np.reshape(p, -1) for p in prefer])
            zeros = np.flatnonzero(flat == 0)
            order = np.argsort(~preferred[zeros], kind="stable")
            keep[zeros[order[: budget - nonzero.size]]] = True
    masks, start = [], 0
    for k in kernels:
        masks.append(keep[start : start + k.size].reshape(k.shape))
        start += k.size
    return masks
