"""Where Sup-tickets' cycles fall in a run: a pure planner.

Training of `epochs x steps` is split into the DST phase and a cyclic
phase of `num_tickets` cycles of `cycle` steps that ends with training:

    start = total - num_tickets * cycle,

the cyclic phase lasting the last `cyclic_fraction` of the epochs (rounded
to whole epochs, at least one), or `cyclic_epochs`, or `num_tickets *
cycle_epochs` epochs. Cycle j (0-based) starts at `start + j * cycle`; a
ticket is taken at the end of each cycle.
"""

import dataclasses
import numbers

from keras_dst.utils.checks import check_optional_count


@dataclasses.dataclass(frozen=True)
class CyclicPhases:
    """The plan of a run, in optimizer steps from the `fit` call's epoch 0.

    Attributes:
        start: the first step of the cyclic phase (= end of the DST phase).
        cycle: steps per cycle.
        total: the run's total steps.
        num_tickets: number of cycles (and tickets).
    """

    start: int
    cycle: int
    total: int
    num_tickets: int

    @property
    def cycle_starts(self):
        """The first step of each cycle."""
        return [self.start + j * self.cycle for j in range(self.num_tickets)]


def check_cycle_arguments(
    num_tickets, cyclic_fraction, cyclic_epochs, cycle_epochs
):
    """Checks the arguments of `plan_cycles` (clear errors), before any
    run knows its length."""
    if (
        isinstance(num_tickets, bool)
        or not isinstance(num_tickets, numbers.Integral)
        or num_tickets < 1
    ):
        raise ValueError(
            "`num_tickets` must be an int >= 1. "
            f"Received: num_tickets={num_tickets!r}."
        )
    check_optional_count(cyclic_epochs, "cyclic_epochs")
    check_optional_count(cycle_epochs, "cycle_epochs")
    if cyclic_epochs is None and cycle_epochs is None:
        if (
            isinstance(cyclic_fraction, bool)
            or not isinstance(cyclic_fraction, numbers.Real)
            or not 0.0 < cyclic_fraction < 1.0
        ):
            raise ValueError(
                "`cyclic_fraction` must be in (0, 1). "
                f"Received: cyclic_fraction={cyclic_fraction!r}."
            )
    if cycle_epochs is not None and cyclic_epochs is not None:
        raise ValueError(
            "Give the cyclic phase as `cyclic_epochs` (split into "
            "`num_tickets` cycles) or as `cycle_epochs` per cycle, "
            f"not both. Received: cyclic_epochs={cyclic_epochs}, "
            f"cycle_epochs={cycle_epochs}."
        )


def plan_cycles(
    epochs,
    steps_per_epoch,
    num_tickets=3,
    cyclic_fraction=0.1,
    cyclic_epochs=None,
    cycle_epochs=None,
):
    """Plans the DST phase and the cycles of a run (see the module).

    Args:
        epochs: the run's epochs.
        steps_per_epoch: optimizer steps per epoch.
        num_tickets: as `keras_dst.SupTickets`'s.
        cyclic_fraction: as `keras_dst.SupTickets`'s.
        cyclic_epochs: as `keras_dst.SupTickets`'s.
        cycle_epochs: as `keras_dst.SupTickets`'s.

    Returns:
        A `CyclicPhases`.

    Example:

    ```python
    phases = keras_dst.superposition.plan_cycles(250, 391, cycle_epochs=8)
    # phases.start: where to end the base learning-rate schedule.
    ```
    """
    check_cycle_arguments(
        num_tickets, cyclic_fraction, cyclic_epochs, cycle_epochs
    )
    steps = steps_per_epoch
    if not epochs or not steps:
        raise ValueError(
            "Sup-tickets needs the number of epochs and steps per epoch; "
            "pass `steps_per_epoch` to `fit` for datasets of unknown "
            f"length. Received: epochs={epochs}, steps_per_epoch={steps}."
        )
    if cycle_epochs is not None:
        cyclic = num_tickets * int(cycle_epochs)
    elif cyclic_epochs is not None:
        cyclic = int(cyclic_epochs)
    else:
        cyclic = max(1, int(round(cyclic_fraction * epochs)))
    if cyclic >= epochs:
        raise ValueError(
            f"The cyclic phase ({cyclic} epochs) must be shorter than "
            f"training ({epochs} epochs): lower `cyclic_epochs` / "
            "`cycle_epochs` / `cyclic_fraction` or train longer."
        )
    total = epochs * steps
    cyclic_steps = cyclic * steps
    if cyclic_steps < num_tickets:
        raise ValueError(
            f"`num_tickets`={num_tickets} cycles do not fit in the "
            f"cyclic phase of {cyclic_steps} steps."
        )
    cycle = cyclic_steps // num_tickets
    start = total - cycle * num_tickets
    return CyclicPhases(int(start), int(cycle), int(total), int(num_tickets))
