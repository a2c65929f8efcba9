"""The gradual pruning schedule of GMP (Zhu & Gupta, 2017).

    s(f) = s_final + (s_initial - s_final) * (1 - f) ** 3,   f in [0, 1],

with f the fraction of the pruning steps done: fast pruning early, when
the network is redundant, and slow near the target.
"""


def cubic_sparsity(fraction, final, initial=0.0):
    """Sparsity after `fraction` in [0, 1] of the pruning steps."""
    fraction = min(max(float(fraction), 0.0), 1.0)
    return final + (initial - final) * (1.0 - fraction) ** 3
