"""Finding the `SparseUpdater` behind a keras_dst callback."""


def _is_updater(candidate):
    # Duck-typed on the updater's reporting API, so that `report` does not
    # import `callbacks` (which imports `report` for its summaries).
    return hasattr(candidate, "layer_counts") and hasattr(candidate, "history")


def updater_of(source, name="callback"):
    """The `SparseUpdater` behind a keras_dst callback (or `source` itself).

    Accepts a `SparseUpdater`, a callback with an `updater`
    (`DynamicSparsityCallback` and its presets, `GMP`) or one wrapping a
    `base` callback (`SupTickets`); `name` is the argument named in the
    error otherwise.
    """
    for owner in (source, getattr(source, "base", None)):
        for candidate in (owner, getattr(owner, "updater", None)):
            if candidate is not None and _is_updater(candidate):
                return candidate
    raise TypeError(
        f"`{name}` must be a keras_dst DST callback (DynamicSparsityCallback "
        "or a preset such as ITOP, GMP or SupTickets) or a SparseUpdater. "
        f"Received: {name}={type(source).__name__}."
    )
