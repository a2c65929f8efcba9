"""Per-layer entries of the epoch logs (`per_layer_logs=True`)."""

import math


def layer_keys(layers, paths):
    """A short, unique key per sparse layer: its name, or its path (from
    `paths`) where two sparse layers (in nested models) share a name."""
    names = [layer.name for layer in layers]
    if len(set(names)) == len(names):
        return names
    return list(paths)


def epoch_layer_logs(layers, paths, counts, records):
    """`<metric>/<layer>` entries for one epoch.

    Args:
        layers: the sparse layers (`SparseUpdater.layers`).
        paths: their paths (`SparseUpdater.paths`), the records' keys.
        counts: `(active, explored, sizes)` at the end of the epoch
            (`SparseUpdater.layer_counts()`).
        records: the `SparseUpdater.history` entries of the epoch's
            updates.

    Returns:
        dict: per layer `itop_rate` and `sparsity` at the end of the epoch,
        `pruned` and `grown` summed over the epoch's updates, and
        `survival` pooled over them (survived / previous grown; NaN when
        no update of the epoch had grown connections to judge). Every key
        is present every epoch, so CSVLogger keeps its columns.
    """
    logs = {}
    active, explored, sizes = counts[:3]
    for path, key, a, e, n in zip(
        paths, layer_keys(layers, paths), active, explored, sizes, strict=True
    ):
        moves = [r["layers"][path] for r in records]
        before = sum(m["previous_grown"] for m in moves)
        survived = sum(m["survived"] for m in moves)
        logs[f"itop_rate/{key}"] = e / n
        logs[f"sparsity/{key}"] = 1.0 - a / n
        logs[f"pruned/{key}"] = float(sum(m["pruned"] for m in moves))
        logs[f"grown/{key}"] = float(sum(m["grown"] for m in moves))
        logs[f"survival/{key}"] = survived / before if before else math.nan
    return logs


def add_epoch_logs(logs, updater, per_layer, logged):
    """Adds `itop_rate` and `sparsity` (and, if `per_layer`, the entries of
    `epoch_layer_logs`) to an epoch's `logs`, from one read of the counts.

    Args:
        logs: the epoch's logs dict (changed in place).
        updater: the prepared `SparseUpdater`.
        per_layer: whether to add the per-layer entries.
        logged: how many `updater.history` records earlier epochs logged.

    Returns:
        The number of history records logged so far.
    """
    counts = updater.layer_counts()  # one read for every entry
    logs["itop_rate"] = counts.itop_rate
    logs["sparsity"] = counts.sparsity
    if not per_layer:
        return logged
    history = updater.history
    logs.update(
        epoch_layer_logs(
            updater.layers, updater.paths, counts, history[logged:]
        )
    )
    return len(history)
