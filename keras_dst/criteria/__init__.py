"""Prune and growth criteria: which connections leave, which come in."""

from keras_dst.criteria import growth as _growth  # registers the built-ins
from keras_dst.criteria import prune as _prune  # registers the built-ins
from keras_dst.criteria.hashing import layer_key
from keras_dst.criteria.hashing import uniform_scores
from keras_dst.criteria.registry import Criterion
from keras_dst.criteria.registry import ScoreInputs
from keras_dst.criteria.registry import get_growth
from keras_dst.criteria.registry import get_prune
from keras_dst.criteria.registry import growth_criteria
from keras_dst.criteria.registry import prune_criteria
from keras_dst.criteria.registry import register_growth
from keras_dst.criteria.registry import register_prune
from keras_dst.criteria.selection import select_largest
from keras_dst.criteria.selection import select_smallest

__all__ = [
    "Criterion",
    "ScoreInputs",
    "get_growth",
    "get_prune",
    "growth_criteria",
    "layer_key",
    "prune_criteria",
    "register_growth",
    "register_prune",
    "select_largest",
    "select_smallest",
    "uniform_scores",
]
