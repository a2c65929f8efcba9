"""Prune and growth criteria: which connections leave, which come in."""

from keras_dst.criteria.growth import GROWTH_CRITERIA
from keras_dst.criteria.growth import grow
from keras_dst.criteria.prune import PRUNE_CRITERIA
from keras_dst.criteria.prune import prune
