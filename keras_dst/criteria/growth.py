"""Growth: activate k inactive connections of highest score.

* random (SET, Mocanu et al., 2018): uniform among inactive positions.
* gradient (RigL, Evci et al., 2020): |dL/d(w * mask)|, the dense gradient.
* momentum (SNFS, Dettmers & Zettlemoyer, 2019): |EMA of that gradient|.

Ranking is over INACTIVE positions only: active ones are never candidates
(scoring them 0 instead would let a layer with many zero gradients, e.g.
dead ReLU units, pick already-active weights and silently lose density).
"""

import numpy as np


def random_score(rng, size):
    """Random growth: i.i.d. uniform scores, so top-k is a uniform draw."""
    return rng.random(size)


def gradient_score(gradient):
    """Gradient growth: |dense gradient|."""
    return np.abs(gradient)


GROWTH_CRITERIA = ("random", "gradient", "momentum")


def grow(mask, score, k):
    """Returns a copy of flat `mask` with the k best inactives turned on.

    Args:
        mask: flat bool array after pruning, True = active.
        score: flat float array; higher = grown first.
        k: number to grow, 0 <= k <= number of inactive positions.

    Returns:
        (new_mask, grown): the new flat mask and the flat indices grown.
    """
    new_mask = mask.copy()
    inactive = np.flatnonzero(~mask)
    if k <= 0:
        return new_mask, inactive[:0]
    if k >= inactive.size:
        grown = inactive
    else:
        part = np.argpartition(-score[inactive], k - 1)[:k]
        grown = inactive[part]
    new_mask[grown] = True
    return new_mask, grown
