"""Masks: initial mask drawing and per-layer sparsity allocation."""

from keras_dst.masks.blocks import is_block_mask
from keras_dst.masks.distributions import allocate
from keras_dst.masks.distributions import er_densities
from keras_dst.masks.distributions import erk_densities
from keras_dst.masks.initial_masks import WEIGHT_INITS
from keras_dst.masks.initial_masks import active_count
from keras_dst.masks.initial_masks import magnitude_mask
from keras_dst.masks.initial_masks import random_mask
from keras_dst.masks.initial_masks import sparse_init_scale
from keras_dst.masks.initial_masks import target_count

__all__ = [
    "WEIGHT_INITS",
    "active_count",
    "allocate",
    "er_densities",
    "erk_densities",
    "is_block_mask",
    "magnitude_mask",
    "random_mask",
    "sparse_init_scale",
    "target_count",
]
