"""Applying an allocation to every sparse layer of a model."""

import numpy as np

from keras_dst.backend import to_numpy
from keras_dst.layers.model_walk import layer_path
from keras_dst.layers.model_walk import require_sparse_layers
from keras_dst.layers.model_walk import resolve_layer_map
from keras_dst.layers.sparse_layer import scale_kernel
from keras_dst.masks.distributions import allocate
from keras_dst.masks.initial_masks import WEIGHT_INITS
from keras_dst.masks.initial_masks import magnitude_mask
from keras_dst.masks.initial_masks import random_mask
from keras_dst.masks.initial_masks import sparse_init_scale
from keras_dst.utils.checks import check_choice
from keras_dst.utils.checks import check_optional_int

MASK_INITS = ("random", "magnitude")


def initialize_masks(
    model,
    sparsity=None,
    distribution="erk",
    *,
    power_scale=1.0,
    keep_first_dense=False,
    keep_last_dense=False,
    keep_dense=(),
    overrides=None,
    mask_init="random",
    weight_init="sparse_scaled",
    seed=None,
):
    """Draws masks for every sparse layer of `model` from a global budget.

    Args:
        model: a built model (or layer) holding `keras_dst.layers`.
        sparsity: global sparsity in [0, 1) over the sparse layers.
        distribution: `"uniform"`, `"er"`, `"erk"` or a full custom
            `{layer name or path: sparsity}` map.
        power_scale: ERK exponent.
        keep_first_dense: keep the first sparse layer (in model order)
            dense.
        keep_last_dense: keep the last sparse layer (in model order) dense.
        keep_dense: more layer names or paths to keep dense.
        overrides: `{layer name or path: sparsity}` fixed for those layers.
        mask_init: `"random"` (uniform at random, the DST default) or
            `"magnitude"` (keep the largest |w|, one-shot pruning of a
            trained model).
        weight_init: how the active weights of random masks start:
            `"sparse_scaled"` (default) multiplies each layer's kernel by
            `1 / sqrt(density)` (`keras_dst.masks.sparse_init_scale`), so
            its active weights have the variance their active fan-in
            calls for and a deep sparse network trains;
            `"unscaled"` keeps the dense initialization, as the papers'
            code does (a deep MLP at 95%+ sparsity may then stay at chance
            accuracy). Meant for a freshly initialized model: pass
            `"unscaled"` if its weights are already trained. Magnitude
            masks never rescale (they keep trained weights).
        seed: `None` or an int; layer `i` uses `seed + i`.

    Returns:
        dict layer path -> sparsity applied.
    """
    if mask_init not in MASK_INITS:
        raise ValueError(
            f"`mask_init` must be one of {MASK_INITS}. "
            f"Received: mask_init={mask_init!r}."
        )
    check_choice(weight_init, WEIGHT_INITS, "weight_init")
    seed = check_optional_int(seed, "seed")
    layers = require_sparse_layers(model)
    keep = list(
        resolve_layer_map(layers, {k: 0 for k in keep_dense}, "keep_dense")
    )
    if keep_first_dense:
        keep.append(layer_path(layers[0]))
    if keep_last_dense:
        keep.append(layer_path(layers[-1]))
    if isinstance(distribution, dict):
        distribution = resolve_layer_map(layers, distribution, "distribution")
    sparsities = allocate(
        {
            layer_path(layer): tuple(layer.kernel_variable.shape)
            for layer in layers
        },
        sparsity,
        distribution,
        power_scale=power_scale,
        keep_dense=keep,
        overrides=resolve_layer_map(layers, overrides, "overrides"),
    )
    if seed is None:
        seed = int(np.random.randint(0, 2**31 - 1))
    masks = {}
    for index, layer in enumerate(layers):
        shape = tuple(layer.kernel_variable.shape)
        s = sparsities[layer_path(layer)]
        block = layer.block_shape  # whole blocks, if the layer has them
        if mask_init == "random":
            masks[layer_path(layer)] = random_mask(
                shape, s, seed + index, block
            )
        else:
            # Set-up, not training: a kernel sharded over processes is
            # gathered (every process draws here, at the same point).
            weights = to_numpy(layer.kernel_variable)
            masks[layer_path(layer)] = magnitude_mask(weights, s, block)
    scales = {
        path: sparse_init_scale(mask)
        if mask_init == "random" and weight_init == "sparse_scaled"
        else 1.0
        for path, mask in masks.items()
    }
    # Set all masks only once every one was drawn: nothing half-applied.
    for layer in layers:
        scale_kernel(layer, scales[layer_path(layer)])
        layer.set_mask(masks[layer_path(layer)], reset_explored=True)
        layer.sparsity = sparsities[layer_path(layer)]
    return sparsities
