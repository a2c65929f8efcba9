"""Prune criteria: the active connections of lowest score are removed.

magnitude (Mocanu et al., 2018; Evci et al., 2020): score = |w|.
"""

from keras import ops

from keras_dst.criteria.registry import register_prune


def magnitude_score(inputs):
    """|w|: the smallest weights are pruned first."""
    return ops.abs(inputs.kernel)


register_prune("magnitude", magnitude_score)
