"""`TicketAverager`: superposing tickets into one network (host arrays).

The running average of ALL weights of a model (BatchNorm statistics
included) over the model at the end of the DST phase and each ticket
(`averaging.py` gives CAA and CIMA). The sparse kernels of the average are
pruned back to exactly the budget (the training model's active count) by
global magnitude: after every ticket (`reprune="every_cycle"`, the
reference: the pruned average is the previous average of the next ticket)
or once at the end (`"end"`). Pure numpy: the callback feeds it copies.
"""

import numpy as np

from keras_dst.superposition.averaging import AVERAGES
from keras_dst.superposition.averaging import global_magnitude_masks
from keras_dst.utils.checks import check_choice

REPRUNES = ("every_cycle", "end")


class TicketAverager:
    """Superposes tickets given as lists of weight arrays.

    Args:
        superposition: `"caa"` (cumulative) or `"cima"` (EMA 0.5).
        reprune: `"every_cycle"` or `"end"`.

    Attributes:
        average: the running average (list of arrays) or None.
        count: tickets averaged in so far (the start is not a ticket).

    Example:

    ```python
    averager = TicketAverager("caa")
    averager.add(start_weights, kernels, masks)  # the DST phase's end
    averager.add(ticket_weights, kernels, masks)  # each ticket
    masks, union, budget = averager.budget_masks(kernels, masks)
    ```
    """

    def __init__(self, superposition="caa", reprune="every_cycle"):
        check_choice(superposition, AVERAGES, "superposition")
        check_choice(reprune, REPRUNES, "reprune")
        self.superposition = superposition
        self.reprune = reprune
        self.reset()

    def reset(self, average=None, count=0):
        """Starts again (or from a saved `average` of `count` tickets)."""
        self.average = None if average is None else list(average)
        self.count = int(count)
        self._pruned = None

    def add(self, weights, kernels, masks, block_shapes=None):
        """Averages in one model's `weights`.

        Args:
            weights: list of arrays (all of the model's weights).
            kernels: indices in `weights` of the sparse kernels.
            masks: the current masks of those kernels (bool arrays): they
                fix the budget and win ties at zero.
            block_shapes: None, or per kernel a block shape (or None):
                the re-prune keeps whole blocks there.
        """
        if self.average is None:  # the start: the end of the DST phase
            self.average = list(weights)
            return
        self.count += 1
        combine = AVERAGES[self.superposition]
        self.average = [
            combine(a, w, self.count)
            for a, w in zip(self.average, weights, strict=True)
        ]
        self._pruned = None
        if self.reprune == "every_cycle":
            pruned = self._budget_masks(kernels, masks, block_shapes)
            for i, mask in zip(kernels, pruned[0], strict=True):
                kernel = self.average[i]
                self.average[i] = np.where(mask, kernel, np.zeros_like(kernel))
            self._pruned = pruned

    def budget_masks(self, kernels, masks, block_shapes=None):
        """`(masks, union, budget)`: the average's kernels pruned to the
        budget (`masks`, bool), the count of non-zeros before the prune
        (`union`, the tickets' union) and the budget itself."""
        if self._pruned is not None:  # pruned after the last ticket
            return self._pruned
        return self._budget_masks(kernels, masks, block_shapes)

    def _budget_masks(self, kernels, masks, block_shapes=None):
        # Ties at zero go to the current positions, so R_s never grows
        # through the re-prune.
        current = [m.astype(bool) for m in masks]
        budget = sum(int(m.sum()) for m in current)
        average = [self.average[i] for i in kernels]
        union = sum(int((k != 0).sum()) for k in average)
        return (
            global_magnitude_masks(
                average, budget, prefer=current, block_shapes=block_shapes
            ),
            union,
            budget,
        )
