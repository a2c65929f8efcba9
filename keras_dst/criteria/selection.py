"""Exact top-k selection on the device, one tie rule everywhere.

`select_largest` returns, for each layer, a boolean mask with exactly
`min(k, number of candidates)` entries: the candidates of highest score,
ties broken by the LOWEST flat index. `k` is a tensor, so a new drop
fraction never retraces the compiled update.

How (a radix select: the threshold is searched bit by bit):

1. Each float score is mapped to an int32 key with the same order
   (`order_keys`: the IEEE-754 bit pattern, negative numbers flipped).
2. The threshold `t`, the k-th largest key, is built one bit at a time
   from the top: keep a bit if at least k candidates have a key >= the
   threshold with that bit set. 32 counting passes, for all layers of
   the model in one loop.
3. Every candidate with key > t is taken, and among the keys == t the
   lowest indices fill up to k (`_first_true`, axis by axis; only
   computed when there are more ties at t than places left).

Every step is elementwise work on the kernel's own shape plus reductions
to scalars or to one axis's length: nothing is flattened, so under
`keras.distribution.ModelParallel` a sharded layer is scored and
selected shard by shard, with only those small reductions crossing
devices (never an all-gather of the layer).

No sort, O(32 n) work, static shapes: on a 2-core CPU about 7 ms for a
1M-entry layer (XLA's `top_k` with k = 30k: about 20 ms), and it needs no
static bound on k.

Where functions run eagerly (PyTorch), every one of those 32 passes is an
op of its own, and nothing is traced that a static `k` would retrace: the
selection there is one `top_k` per layer on a unique int64 key (the
order key in the high 32 bits, the reversed flat index in the low ones),
the same selection with the same tie rule in a few ops.
"""

import math

import numpy as np
from keras import ops

from keras_dst.backend import traces_functions

# Python ints, not numpy scalars: a tracer (Dynamo) may not read numpy.
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1
# Bit b of the offset (unsigned) key, from the top: 2^31, 2^30, ..., 1,
# as int32 values.
_BITS = tuple(
    int(b)
    for b in np.array(
        [np.int64(1) << (31 - i) for i in range(32)], dtype=np.uint32
    ).view(np.int32)
)


def order_keys(scores):
    """int32 keys with the order of float `scores` (finite, any sign).

    For floats >= 0 the IEEE-754 bit pattern, read as an int, grows with
    the value; for negative floats the pattern is reversed, so its low 31
    bits are flipped. -0.0 is mapped to the key of +0.0.
    """
    scores = ops.cast(scores, "float32")
    scores = ops.where(ops.equal(scores, 0.0), ops.zeros_like(scores), scores)
    bits = ops.view(scores, "int32")
    sign = ops.right_shift(bits, 31)  # arithmetic: 0 or -1
    return ops.bitwise_xor(bits, ops.bitwise_and(sign, _INT32_MAX))


def count_true(x):
    """The number of True entries of bool tensor `x`, as an int32 scalar.

    Summed in float32 when that is exact (at most 2^24 entries): XLA's CPU
    backend vectorizes float reductions, about 2.5x faster than int32.
    """
    size = math.prod(x.shape)
    dtype = "float32" if size <= 2**24 else "int32"
    return ops.cast(ops.sum(ops.cast(x, dtype)), "int32")


def _thresholds(keys, ks):
    """Per layer, the largest key t with at least k candidates >= t, and
    the number of candidates >= t (0 if t is INT32_MIN: fewer than k)."""
    bits = ops.convert_to_tensor(_BITS, dtype="int32")
    offset = ops.convert_to_tensor(_INT32_MIN, dtype="int32")

    def body(i, state):
        found, taken = state
        bit = ops.take(bits, i)
        counts = []
        for layer, key in enumerate(keys):
            trial = ops.bitwise_xor(ops.bitwise_or(found[layer], bit), offset)
            counts.append(count_true(key >= trial))
        counts = ops.stack(counts)
        keep = counts >= ks
        return (
            ops.where(keep, ops.bitwise_or(found, bit), found),
            ops.where(keep, counts, taken),
        )

    zeros = ops.zeros((len(keys),), dtype="int32")
    found, taken = ops.fori_loop(0, 32, body, (zeros, zeros))
    return ops.bitwise_xor(found, offset), taken


def _axis_index(shape, axis):
    """The int32 index along `axis`, broadcastable against `shape`."""
    view = [1] * len(shape)
    view[axis] = shape[axis]
    return ops.reshape(ops.arange(shape[axis], dtype="int32"), view)


def _first_true(x, count):
    """Bool `x` (any shape) with only its first `count` True entries kept,
    first in row-major (flat index) order.

    `count` must be below the number of True entries. No reshape: the
    position of the (count + 1)-th True entry is found one axis at a
    time (the True entries per index of axis `a`, among those whose
    earlier indices equal the position's so far; a cumulative sum over
    that short vector gives the position's index on `a`), and the kept
    entries are the True ones lexicographically before it. Each axis is
    one elementwise pass and a reduction to a vector of that axis's
    length, so a kernel sharded over devices is never gathered whole:
    only those vectors are reduced across devices.
    """
    shape = tuple(int(d) for d in x.shape)
    dtype = "float32" if math.prod(shape) <= 2**24 else "int32"
    rank = count + 1  # 1-based rank of the first entry not kept
    match = None  # entries whose indices so far equal the position's
    before = None  # entries lexicographically before it so far
    for axis in range(len(shape)):
        index = _axis_index(shape, axis)
        within = x if match is None else ops.logical_and(x, match)
        others = tuple(a for a in range(len(shape)) if a != axis)
        per = ops.cast(within, dtype)
        if others:
            per = ops.sum(per, axis=others)
        per = ops.cast(per, "int32")  # True entries per index on `axis`
        through = ops.cumsum(per)
        cut = ops.cast(ops.argmax(through >= rank), "int32")
        rank = rank - (ops.take(through, cut) - ops.take(per, cut))
        below = index < cut
        at = ops.equal(index, cut)
        if match is None:
            before, match = below, at
        else:
            before = ops.logical_or(before, ops.logical_and(match, below))
            match = ops.logical_and(match, at)
    return ops.logical_and(x, before)


def select_largest(scores, candidates, ks):
    """The k highest-score candidates of each layer, ties: lowest index.

    Args:
        scores: list of float tensors (any shape), finite where candidate.
        candidates: list of bool tensors of the same shapes.
        ks: int32 tensor of shape (len(scores),), the number to select.

    Returns:
        list of bool tensors: exactly `min(k, candidates.sum())` True
        entries each, all of them candidates.
    """
    if not scores:
        return []
    ks = ops.cast(ks, "int32")
    keys = [
        ops.where(
            c, order_keys(s), ops.full(ops.shape(s), _INT32_MIN, dtype="int32")
        )
        for s, c in zip(scores, candidates, strict=True)
    ]
    if not traces_functions():
        return _select_largest_eager(keys, candidates, ks)
    thresholds, counts = _thresholds(keys, ks)
    selected = []
    for layer, (key, candidate) in enumerate(
        zip(keys, candidates, strict=True)
    ):
        t = thresholds[layer]
        k = ks[layer]
        taken = counts[layer]  # candidates >= t, counted by the search
        at_least = ops.logical_and(key >= t, candidate)

        def break_ties(key=key, t=t, k=k, candidate=candidate):
            above = ops.logical_and(key > t, candidate)
            tied = ops.logical_and(ops.equal(key, t), candidate)
            places = k - count_true(above)
            return ops.logical_or(above, _first_true(tied, places))

        selected.append(ops.cond(taken > k, break_ties, lambda at=at_least: at))
    return selected


def _select_largest_eager(keys, candidates, ks):
    """`select_largest` for eager backends: one `top_k` per layer.

    The int64 key `order_key * 2^32 + (2^32 - 1 - index)` is unique and
    orders like (score, then lowest index first), so the k largest keys
    are the selection; `k` is read on the host (no trace to keep).
    """
    ks = ops.convert_to_numpy(ks)
    selected = []
    for key, candidate, k in zip(keys, candidates, ks, strict=True):
        flat = ops.reshape(candidate, (-1,))
        k = min(int(k), int(ops.convert_to_numpy(count_true(flat))))
        if k <= 0:
            selected.append(ops.zeros_like(candidate))
            continue
        key = ops.reshape(key, (-1,))
        size = int(key.shape[0])
        low = ops.subtract(2**32 - 1, ops.arange(size, dtype="int64"))
        unique = ops.add(ops.multiply(ops.cast(key, "int64"), 2**32), low)
        values, _ = ops.top_k(unique, k, sorted=False)
        chosen = ops.greater_equal(unique, ops.min(values))
        selected.append(ops.reshape(chosen, ops.shape(candidate)))
    return selected


def select_smallest(scores, candidates, ks):
    """The k lowest-score candidates of each layer, ties: lowest index."""
    return select_largest([ops.negative(s) for s in scores], candidates, ks)


def _global_threshold(keys, costs, k):
    """The largest key t with `sum(cost * #(key >= t))` >= k over all
    layers together (`_thresholds` with the counts summed over layers,
    each entry weighing its cost); INT32_MIN if there is none."""
    bits = ops.convert_to_tensor(_BITS, dtype="int32")
    offset = ops.convert_to_tensor(_INT32_MIN, dtype="int32")

    def body(i, found):
        trial = ops.bitwise_or(found, ops.take(bits, i))
        signed = ops.bitwise_xor(trial, offset)
        total = sum(
            count_true(key >= signed) * cost
            for key, cost in zip(keys, costs, strict=True)
        )
        return ops.where(total >= k, trial, found)

    found = ops.fori_loop(0, 32, body, ops.convert_to_tensor(0, "int32"))
    return ops.bitwise_xor(found, offset)


def _first(x, count, total):
    """`_first_true(x, count)`, or all of `x` when `count` >= `total`
    (its True count), which `_first_true` does not allow."""
    return ops.cond(count < total, lambda: _first_true(x, count), lambda: x)


def select_global(keys, budget, costs=None, prefer=None):
    """The highest keys over ALL layers together, within a budget.

    Entries are ranked by key, then (with `prefer`) preferred first,
    then by layer order, then by lowest flat index within a layer: the
    rank a stable sort over the layers' keys, concatenated in order,
    gives. Taken greedily in rank order, each while its cost fits in
    what is left of `budget` (an entry that does not fit is skipped,
    later cheaper ones may still fit). With equal costs that is exactly
    the `budget // cost` first entries.

    Built like `select_largest`, with every count summed over layers:
    a radix search for the threshold key (`_global_threshold`), every
    key above it taken, then the ties at it filled group by group
    (preferred, then not; layer by layer) with `_first_true`, which
    works axis by axis: no kernel is flattened or gathered. When costs
    differ, the few entries the greedy rule still takes after the first
    one that did not fit (fewer than the largest cost) are found one at
    a time, each with a few reductions. Eagerly (PyTorch), with equal
    costs and no `prefer`, one `top_k` instead (`_select_global_eager`).
    Counts are int32: at most 2^31 - 1 entries (weighted by cost) in all.

    Args:
        keys: list of int32 tensors (any shapes), from `order_keys`
            or built like them; every key above INT32_MIN.
        budget: int32 scalar tensor, the total cost to take.
        costs: None (every entry costs 1) or a list of Python ints,
            one per layer (e.g. entries per block on a grid of blocks).
        prefer: None or a list of bool tensors of the keys' shapes.

    Returns:
        list of bool tensors of the keys' shapes.
    """
    costs = [1] * len(keys) if costs is None else [int(c) for c in costs]
    total = sum(
        math.prod(key.shape) * cost
        for key, cost in zip(keys, costs, strict=True)
    )
    if total >= 2**31:
        raise ValueError(
            f"select_global counts in int32: {total} entries is too many."
        )
    budget = ops.cast(budget, "int32")
    if not traces_functions() and prefer is None and set(costs) == {1}:
        return _select_global_eager(keys, budget)
    threshold = _global_threshold(keys, costs, budget)
    chosen = [key > threshold for key in keys]
    left = budget - sum(
        count_true(c) * cost for c, cost in zip(chosen, costs, strict=True)
    )
    tied = [ops.equal(key, threshold) for key in keys]
    if prefer is None:
        groups = list(enumerate(tied))
    else:
        groups = [
            (i, ops.logical_and(t, p))
            for i, (t, p) in enumerate(zip(tied, prefer, strict=True))
        ] + [
            (i, ops.logical_and(t, ops.logical_not(p)))
            for i, (t, p) in enumerate(zip(tied, prefer, strict=True))
        ]
    # The ties in rank order, while they fit; the first that does not
    # fit ends this prefix (`full`), whatever comes after it.
    full = ops.convert_to_tensor(False)
    none = ops.convert_to_tensor(0, "int32")
    for i, group in groups:
        total = count_true(group)
        need = total * costs[i]
        take = ops.where(
            full,
            none,
            ops.where(left >= need, total, ops.floor_divide(left, costs[i])),
        )
        chosen[i] = ops.logical_or(chosen[i], _first(group, take, total))
        full = ops.logical_or(full, left < need)
        left = left - take * costs[i]
    if len(set(costs)) > 1:  # less than the largest cost is left
        chosen, left = _fill_greedily(keys, chosen, left, costs, prefer)
    return chosen


def _select_global_eager(keys, budget):
    """`select_global` for eager backends (PyTorch), equal costs, no
    `prefer`: one `top_k` over all layers.

    As `_select_largest_eager`, on the int64 key `key * 2^32 + (2^32 - 1 -
    index)`, the index running over the layers in order: unique, and
    ordered like (key, then layer order and lowest index first). Eagerly,
    the 32 counting passes of the radix search are 32 x layers ops of
    their own (about 20x slower on a CPU); PyTorch has no sharded
    kernels to keep whole, so the flat view costs nothing but one int64
    copy of the keys.
    """
    budget = int(ops.convert_to_numpy(budget))
    sizes = [math.prod(key.shape) for key in keys]
    unique, start = [], 0
    for key, size in zip(keys, sizes, strict=True):
        index = ops.arange(start, start + size, dtype="int64")
        low = ops.subtract(2**32 - 1, index)
        high = ops.multiply(ops.cast(ops.reshape(key, (-1,)), "int64"), 2**32)
        unique.append(ops.add(high, low))
        start += size
    budget = min(budget, start)
    if budget <= 0:
        return [ops.zeros(ops.shape(key), "bool") for key in keys]
    values, _ = ops.top_k(ops.concatenate(unique), budget, sorted=False)
    cut = ops.min(values)
    return [
        ops.reshape(ops.greater_equal(u, cut), ops.shape(key))
        for u, key in zip(unique, keys, strict=True)
    ]


def _fill_greedily(keys, chosen, left, costs, prefer):
    """After the first entry that did not fit: the next entry in rank
    order whose cost fits what is left, one at a time (at most the
    largest cost - 1 times, as each takes at least 1)."""
    lowest = ops.convert_to_tensor(_INT32_MIN, dtype="int32")

    def body(_, state):
        chosen, left = state
        fits = [
            ops.logical_and(ops.logical_not(c), ops.less_equal(cost, left))
            for c, cost in zip(chosen, costs, strict=True)
        ]
        best = ops.max(
            ops.stack(
                [
                    ops.max(ops.where(f, key, lowest))
                    for f, key in zip(fits, keys, strict=True)
                ]
            )
        )
        at = [
            ops.logical_and(f, ops.equal(key, best))
            for f, key in zip(fits, keys, strict=True)
        ]
        if prefer is not None:  # a preferred entry at `best` first
            some = ops.any(
                ops.stack(
                    [
                        ops.any(ops.logical_and(a, p))
                        for a, p in zip(at, prefer, strict=True)
                    ]
                )
            )
            at = [
                ops.logical_and(a, ops.logical_or(p, ops.logical_not(some)))
                for a, p in zip(at, prefer, strict=True)
            ]
        taken = ops.convert_to_tensor(False)
        new = []
        for c, a, cost in zip(chosen, at, costs, strict=True):
            total = count_true(a)
            one = ops.logical_and(
                _first(a, ops.convert_to_tensor(1, "int32"), total),
                ops.logical_not(taken),
            )
            taken = ops.logical_or(taken, total > 0)
            left = left - count_true(one) * cost
            new.append(ops.logical_or(c, one))
        return new, left

    return ops.fori_loop(0, max(costs) - 1, body, (chosen, left))
