"""`sparsify`: make the supported layers of any Keras model sparse."""

import keras

from keras_dst.convert.model_copy import copy_model
from keras_dst.convert.model_copy import copy_weights
from keras_dst.convert.model_masks import initialize_masks
from keras_dst.layers.in_place import convert_layer
from keras_dst.layers.model_walk import layer_tree
from keras_dst.layers.model_walk import require_sparse_layers
from keras_dst.layers.sparse_dense import SparseDense
from keras_dst.layers.sparse_layer import check_sparse_options
from keras_dst.layers.sparse_multi_head_attention import (
    SparseMultiHeadAttention,
)
from keras_dst.layers.sparse_multi_head_attention import projections
from keras_dst.layers.twins import sparse_twin
from keras_dst.masks.blocks import check_block_shape


def check_model(model, fn_name):
    """Clear errors for what is not a built Keras model."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a keras.Model. Received: {type(model).__name__}."
        )
    if not model.built:
        raise ValueError(
            f"Model '{model.name}' is not built. Give it a `keras.Input` or "
            "call it on data before `keras_dst." + fn_name + "`."
        )


def _selectors(include, exclude):
    """`(included, excluded)`: predicates on a layer."""
    if include is not None and not callable(include):
        include_names = set(include)
        include = lambda layer: layer.name in include_names  # noqa: E731
    exclude = tuple(exclude or ())
    names = {e for e in exclude if isinstance(e, str)}
    types = tuple(e for e in exclude if isinstance(e, type))

    def excluded(layer):
        return layer.name in names or bool(types and isinstance(layer, types))

    def included(layer):
        return include is None or bool(include(layer))

    return included, excluded


def _plan(tree, selected, options, block_shape):
    """`{id(layer): (twin, options)}` for the layers to convert.

    An excluded layer keeps everything below it dense (exclude a whole
    block by its name). A `MultiHeadAttention` that is converted brings
    its projections along; it stays a plain one (and only the projections
    selected on their own turn sparse) unless all of them are converted.
    """
    included, excluded = selected
    out, plan = set(), {}
    for layer, _, parent in tree:
        if id(parent) in out or excluded(layer):
            out.add(id(layer))
            continue
        twin = sparse_twin(type(layer))
        if twin is None:
            continue
        brought = plan.get(id(parent), (None,))[0] is SparseMultiHeadAttention
        if not (brought or included(layer)):
            continue
        layer_options = dict(options)
        if block_shape is not None and twin is SparseDense:
            try:
                check_block_shape(block_shape, tuple(layer.kernel.shape))
            except ValueError as error:
                raise ValueError(f"Layer '{layer.name}': {error}") from None
            layer_options["block_shape"] = block_shape
        plan[id(layer)] = (twin, layer_options)
    for layer, _, _ in tree:
        if plan.get(id(layer), (None,))[0] is SparseMultiHeadAttention:
            if not all(id(p) in plan for p in projections(layer)):
                del plan[id(layer)]
    return plan


def sparsify(
    model,
    sparsity=None,
    distribution="erk",
    *,
    include=None,
    exclude=(),
    dense_gradient=True,
    mask_init="random",
    weight_init="sparse_scaled",
    seed=None,
    power_scale=1.0,
    keep_first_dense=False,
    keep_last_dense=False,
    overrides=None,
    block_shape=None,
    in_place=False,
):
    """Makes every supported layer of `model` sparse, wherever it sits.

    Supported: `Dense`, `EinsumDense`, `Conv1D/2D/3D`, `Conv2DTranspose`,
    `DepthwiseConv2D`, `Embedding`, `ReversibleEmbedding` (keras-hub's
    too) and `MultiHeadAttention` (its projection kernels), at any depth:
    in Sequential and Functional graphs (ops such as `x[:, 0]` included),
    nested models, composite layers (keras-hub's `TransformerEncoder`,
    `CachedMultiHeadAttention`, `ViTPatchingAndEmbedding`, your own
    blocks) and subclassed models. Subclasses of these classes that
    change behaviour are left dense (`keras_dst.summary` lists every
    kernel that stays dense and why).

    How: each layer is turned into its sparse twin in place (its class
    becomes e.g. `SparseDense` and it gains a mask, an explored union and
    a gradient probe), the way Keras's own `enable_lora` and `quantize`
    change layers. Rebuilding layers instead only works where a config
    describes the whole model, and keras-hub builds its layers in its
    blocks' `build`. By default this happens on a copy: the model is
    rebuilt from its config (its own classes, e.g. a keras-hub backbone
    stays a backbone) with the same weights, and the original is not
    modified. `in_place=True` changes `model` itself (no second copy of
    the weights in memory; needed for a model Keras cannot rebuild from
    its config). Save the result with `keras_dst.save_model`, which
    records the layers made sparse inside other layers so that
    `keras.saving.load_model` restores them.

    Args:
        model: a built `keras.Model`: Sequential, Functional (nested ones
            too), a keras-hub backbone or task, or a subclassed model.
        sparsity: `None` (masks start dense; a DST callback sets them at
            `on_train_begin`) or the global sparsity in [0, 1).
        distribution: `"erk"` (default), `"er"`, `"uniform"` or a custom
            `{layer name: sparsity}` map; see `keras_dst.masks.allocate`.
        include: `None` (every supported layer), a list of layer names, or
            a callable `layer -> bool`.
        exclude: layer names or layer classes never converted.
        dense_gradient: give each sparse layer its dense-gradient probe
            (needed for gradient growth, RigL/SNFS).
        mask_init: `"random"` or `"magnitude"` (keep the largest weights).
        weight_init: `"sparse_scaled"` (default) or `"unscaled"`: with
            random masks, whether each kernel is multiplied by
            `1 / sqrt(density)` (see `keras_dst.initialize_masks`). Pass
            `"unscaled"` when `model`'s weights are trained.
        seed: `None` or an int for the random masks.
        power_scale: see `keras_dst.initialize_masks`.
        keep_first_dense: see `keras_dst.initialize_masks`.
        keep_last_dense: see `keras_dst.initialize_masks`.
        overrides: see `keras_dst.initialize_masks`.
        block_shape: `None`, or e.g. `(4, 1)`: the converted `Dense`
            layers' masks are made of whole blocks (see `SparseDense`);
            other layers keep unstructured masks. Every converted Dense
            kernel must be divisible by it (a clear error names the layer
            otherwise).
        in_place: bool. False (default): convert a copy. True: convert
            `model` itself (compile it afterwards: an optimizer built
            before does not know the gradient probes).

    Returns:
        The sparse model: a new one, or `model` with `in_place=True`.

    Example:

    ```python
    sparse = keras_dst.sparsify(model, sparsity=0.9, distribution="erk")
    keras_dst.summary(sparse)
    ```
    """
    check_model(model, "sparsify")
    if not isinstance(in_place, bool):
        raise TypeError(
            f"`in_place` must be True or False. Received: {in_place!r}."
        )
    block_shape = check_block_shape(block_shape)
    selected = _selectors(include, exclude)
    options = check_sparse_options(dense_gradient=dense_gradient)
    if in_place:
        _check_not_trained(model)
    # Everything that can fail on the layers is checked before any change.
    tree = layer_tree(model)
    plan = _plan(tree, selected, options, block_shape)
    if in_place:
        target = model
    else:
        target = copy_model(model, "sparsify")
        copy_weights(model.weights, target.weights, "sparsify")
    # The copy has the same layers at the same positions.
    layers = [layer for layer, _, _ in layer_tree(target)]
    undo = []
    try:
        for index, (layer, _, _) in enumerate(tree):
            if id(layer) in plan:
                twin, layer_options = plan[id(layer)]
                undo.append(convert_layer(layers[index], twin, layer_options))
        if sparsity is not None or isinstance(distribution, dict):
            initialize_masks(
                target,
                sparsity,
                distribution,
                power_scale=power_scale,
                keep_first_dense=keep_first_dense,
                keep_last_dense=keep_last_dense,
                overrides=overrides,
                mask_init=mask_init,
                weight_init=weight_init,
                seed=seed,
            )
        else:
            require_sparse_layers(target)
    except BaseException:
        # `in_place`: a bad argument leaves the model as it was.
        for step in reversed(undo):
            step()
        raise
    return target


def _check_not_trained(model):
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and getattr(optimizer, "built", False):
        raise ValueError(
            f"Model '{model.name}' has an optimizer already built for its "
            "dense weights, which would not know the sparse layers' "
            "gradient probes. Compile it again with a new optimizer before "
            "`keras_dst.sparsify(model, ..., in_place=True)`, or sparsify "
            "a copy (`in_place=False`) and compile that."
        )
