"""Pruning: deactivate the k active connections of lowest score.

Magnitude pruning (Mocanu et al., 2018; Evci et al., 2020): score = |w|.
Selection is exact: exactly k active entries are removed, with ties broken
deterministically (numpy's introselect on a fixed array), so every layer
keeps its exact active count.
"""

import numpy as np


def magnitude_score(weights):
    """Prune score: |w| (smallest pruned first)."""
    return np.abs(weights)


PRUNE_CRITERIA = {"magnitude": magnitude_score}


def prune(mask, score, k):
    """Returns a copy of flat `mask` with the k lowest-score actives off.

    Args:
        mask: flat bool array, True = active.
        score: flat float array; lower = pruned first.
        k: number of connections to remove, 0 <= k <= mask.sum().
    """
    new_mask = mask.copy()
    if k <= 0:
        return new_mask
    active = np.flatnonzero(mask)
    if k >= active.size:
        new_mask[active] = False
        return new_mask
    chosen = np.argpartition(score[active], k - 1)[:k]
    new_mask[active[chosen]] = False
    return new_mask
