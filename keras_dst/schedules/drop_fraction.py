"""Drop-fraction schedules, evaluated on the host at update steps only.

cosine (Evci et al., 2020; Liu et al., 2021):

    f(t) = f_end + (f_0 - f_end) * (1 + cos(pi * t / T)) / 2

with T the last update step: f(0) = f_0, f(T) = f_end. RigL uses
f_end = 0; the ITOP reference anneals 0.5 -> 0.005.
"""

import math


def cosine_drop_fraction(step, initial, end_step, final=0.0):
    """Cosine decay from `initial` at step 0 to `final` at `end_step`."""
    if end_step <= 0:
        return float(final)
    t = min(max(step / end_step, 0.0), 1.0)
    return final + (initial - final) * 0.5 * (1.0 + math.cos(math.pi * t))


def constant_drop_fraction(step, initial, end_step, final=0.0):
    """The same fraction at every update."""
    del step, end_step, final
    return float(initial)


DROP_SCHEDULES = {
    "cosine": cosine_drop_fraction,
    "constant": constant_drop_fraction,
}
