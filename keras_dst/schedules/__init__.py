"""Schedules: how many connections each update replaces or prunes."""

from keras_dst.schedules.cyclic_learning_rate import CyclicLearningRate
from keras_dst.schedules.drop_fraction import DROP_SCHEDULES
from keras_dst.schedules.drop_fraction import constant_drop_fraction
from keras_dst.schedules.drop_fraction import cosine_drop_fraction
from keras_dst.schedules.gradual_sparsity import cubic_sparsity

__all__ = [
    "CyclicLearningRate",
    "DROP_SCHEDULES",
    "constant_drop_fraction",
    "cosine_drop_fraction",
    "cubic_sparsity",
]
