"""`UpdateRecord`: what one applied update did, field by field.

Built in one place (`SparseUpdater`, when an update's outcome is read);
`SparseUpdater.records` holds them, and `SparseUpdater.history` the same
records as plain dicts (`as_dict`, for JSON and for code that reads keys).
"""

import dataclasses
from typing import NamedTuple


class UpdateRequest(NamedTuple):
    """An update as asked for, before its outcome is known."""

    step: int
    drop_fraction: float | None  # None for `prune_to`
    growth: str | None  # the growth criterion's name; None for `prune_to`
    k: dict  # layer path -> entries to move
    pruned: list  # per layer (in the updater's order): entries pruned
    grown: list  # per layer: entries grown


@dataclasses.dataclass
class LayerOutcome:
    """One layer after one update.

    Attributes:
        pruned: entries pruned by this update.
        grown: entries grown by this update.
        active: active entries after it.
        sparsity: 1 - active / size.
        itop_rate: R_s, the share of entries active at least once so far.
        previous_grown: entries the previous update of this updater grew.
        survived: how many of those this update did not prune.
        survival: survived / previous_grown, or None when the previous
            update grew nothing here (the first update, after a resume or
            a skipped update). A low survival means grown connections are
            pruned before they could learn: ITOP's "unreliable
            exploration" (raise ΔT).
    """

    pruned: int
    grown: int
    active: int
    sparsity: float
    itop_rate: float
    previous_grown: int
    survived: int
    survival: float | None


@dataclasses.dataclass
class UpdateRecord:
    """One applied update of a `SparseUpdater`.

    Attributes:
        step: the optimizer step it ran at.
        drop_fraction: the fraction of active entries moved; None for a
            `prune_to` (GMP).
        growth: the growth criterion's name; None for a `prune_to`.
        k: layer path -> entries moved (pruned, and as many grown).
        itop_rate: R_s over all sparse layers after the update.
        sparsity: global sparsity over the sparse layers after it.
        layers: layer path -> `LayerOutcome`.
    """

    step: int
    drop_fraction: float | None
    growth: str | None
    k: dict
    itop_rate: float
    sparsity: float
    layers: dict

    def as_dict(self):
        """The record as nested plain dicts (the `history` entries)."""
        return dataclasses.asdict(self)
