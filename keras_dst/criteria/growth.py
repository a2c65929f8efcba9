"""Growth criteria: the inactive connections of highest score are added.

* random (SET, Mocanu et al., 2018): uniform among inactive positions.
* gradient (RigL, Evci et al., 2020): |dL/d(w * mask)|, the dense gradient.
* momentum (SNFS, Dettmers & Zettlemoyer, 2019): |moving average of that
  gradient|.

Ranking is over INACTIVE positions only: active ones are never candidates
(scoring them 0 instead would let a layer with many zero gradients, e.g.
dead ReLU units, pick already-active weights and silently lose density).
"""

from keras import ops

from keras_dst.criteria.hashing import uniform_scores
from keras_dst.criteria.registry import register_growth


def random_score(inputs):
    """Uniform scores keyed by (seed, step, layer): a uniform draw."""
    return uniform_scores(inputs.key, ops.shape(inputs.kernel))


def gradient_score(inputs):
    """|dense gradient| of the last step."""
    return ops.abs(inputs.gradient)


def momentum_score(inputs):
    """|moving average of the dense gradient| (the probe holds the EMA)."""
    return ops.abs(inputs.gradient)


register_growth("random", random_score)
register_growth("gradient", gradient_score, needs_gradient=True)
register_growth(
    "momentum", momentum_score, needs_gradient=True, gradient_momentum=True
)
