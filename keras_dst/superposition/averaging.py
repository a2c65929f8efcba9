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

from keras_dst.masks.blocks import block_size
from keras_dst.masks.blocks import expand_blocks
from keras_dst.masks.blocks import to_blocks


def caa(average, ticket, k):
    """Cumulative average after ticket `k` (k >= 1)."""
    return average * (1.0 - 1.0 / (k + 1)) + ticket / (k + 1)


def cima(average, ticket, k):
    """Exponential moving average (factor 0.5) after ticket `k`."""
    del k
    return 0.5 * average + 0.5 * ticket


AVERAGES = {"caa": caa, "cima": cima}


def global_magnitude_masks(kernels, budget, prefer=None, block_shapes=None):
    """Masks keeping the `budget` largest |w| over all `kernels` together.

    Args:
        kernels: list of arrays.
        budget: total number of active entries to keep.
        prefer: optional list of bool arrays (e.g. the current masks): among
            entries of equal |w| (in practice: exact zeros, when the
            average has fewer non-zeros than the budget) these come first,
            so the fill never picks positions that were never active.

        block_shapes: optional list, per kernel, of a block shape or None:
            those kernels keep whole blocks, ranked by their mean |w| (so
            that blocks and single entries compare per weight).

    Returns:
        list of bool arrays of the kernels' shapes, with exactly `budget`
        True entries in total (equal |w|: the lowest flat index over the
        kernels in order, the engine's tie rule). With
        blocks, blocks are taken in rank order while they fit in what is
        left of the budget; the count is exact whenever the budget can be
        filled that way (e.g. every kernel has the same block size and the
        budget is a multiple of it, or single entries remain to fill).
    """
    if block_shapes is not None and any(b is not None for b in block_shapes):
        return _block_masks(kernels, budget, prefer, block_shapes)
    flat = np.concatenate([np.abs(k).reshape(-1) for k in kernels])
    if not 0 <= budget <= flat.size:
        raise ValueError(
            f"`budget` must be in [0, {flat.size}]. Received: {budget}."
        )
    keep = np.zeros(flat.size, dtype=bool)
    if budget:
        nonzero = np.flatnonzero(flat)
        if prefer is None or nonzero.size >= budget:
            # The engine's tie rule: equal |w|, the lowest flat index
            # (over the kernels in order) first.
            keep[np.argsort(-flat, kind="stable")[:budget]] = True
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


def _block_masks(kernels, budget, prefer, block_shapes):
    total = sum(k.size for k in kernels)
    if not 0 <= budget <= total:
        raise ValueError(
            f"`budget` must be in [0, {total}]. Received: {budget}."
        )
    scores, costs, preferred, grids = [], [], [], []
    for i, (kernel, block) in enumerate(
        zip(kernels, block_shapes, strict=True)
    ):
        size = block_size(block)
        grid = to_blocks(np.abs(kernel), block) / size
        grids.append(grid.shape)
        scores.append(grid.reshape(-1))
        costs.append(np.full(grid.size, size))
        chosen = np.zeros(kernel.shape, bool) if prefer is None else prefer[i]
        preferred.append(to_blocks(np.asarray(chosen, bool), block).reshape(-1))
    score = np.concatenate(scores)
    cost = np.concatenate(costs)
    order = np.lexsort((np.concatenate(preferred) == 0, -score))
    keep = np.zeros(score.size, bool)
    left = budget
    for unit in order:
        if left == 0:
            break
        if cost[unit] <= left:
            keep[unit] = True
            left -= cost[unit]
    masks, start = [], 0
    for grid, block in zip(grids, block_shapes, strict=True):
        n = int(np.prod(grid))
        masks.append(
            expand_blocks(keep[start : start + n].reshape(grid), block)
        )
        start += n
    return masks
