"""`sparsify`: convert a Keras model to one built from sparse layers."""

import keras

from keras_dst.backend.keras_internals import is_functional
from keras_dst.convert.model_masks import initialize_masks
from keras_dst.convert.weight_copy import copy_core_weights
from keras_dst.layers import SPARSE_TWINS
from keras_dst.masks.blocks import check_block_shape


def check_cloneable(model, fn_name):
    """Clear errors for what `keras.models.clone_model` cannot handle."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a keras.Model. Received: {type(model).__name__}."
        )
    if not (isinstance(model, keras.Sequential) or is_functional(model)):
        raise ValueError(
            f"`keras_dst.{fn_name}` supports Sequential and Functional models "
            f"(nested ones included), not the subclassed model "
            f"'{model.name}' ({type(model).__name__}). Build the subclassed "
            "model with `keras_dst.layers` (e.g. `SparseDense`, "
            "`SparseConv2D`) directly instead."
        )
    if not model.built:
        raise ValueError(
            f"Model '{model.name}' is not built. Give it a `keras.Input` or "
            "call it on data before `keras_dst." + fn_name + "`."
        )


def _selector(include, exclude):
    if include is not None and not callable(include):
        include_names = set(include)
        include = lambda layer: layer.name in include_names  # noqa: E731
    exclude = tuple(exclude or ())
    names = {e for e in exclude if isinstance(e, str)}
    types = tuple(e for e in exclude if isinstance(e, type))

    def selected(layer):
        if layer.name in names or (types and isinstance(layer, types)):
            return False
        return include is None or bool(include(layer))

    return selected


def clone_with(model, convert):
    """Clones `model` (nested models too), converting layers with `convert`.

    `convert(layer)` returns a new, unbuilt layer or None (plain clone).
    Returns the new model and the list of (old, new) layer pairs.
    """
    pairs = []

    def clone_function(layer):
        new = convert(layer)
        if new is None:
            new = layer.__class__.from_config(layer.get_config())
        pairs.append((layer, new))
        return new

    new_model = keras.models.clone_model(
        model, clone_function=clone_function, recursive=True
    )
    return new_model, pairs


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
):
    """Returns a copy of `model` whose supported layers are sparse twins.

    Supported: `Dense`, `EinsumDense`, `Conv1D/2D/3D`, `Conv2DTranspose`,
    `DepthwiseConv2D`, `Embedding` and `MultiHeadAttention` (its projection
    kernels). Weights are copied; other layers are cloned unchanged. The
    original model is not modified.

    Args:
        model: a built Sequential or Functional model (nested ones too).
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
        power_scale, keep_first_dense, keep_last_dense, overrides: see
            `keras_dst.initialize_masks`.
        block_shape: `None`, or e.g. `(4, 1)`: the converted `Dense`
            layers' masks are made of whole blocks (see `SparseDense`);
            other layers keep unstructured masks. Every converted Dense
            kernel must be divisible by it (a clear error names the layer
            otherwise).

    Returns:
        A new model.

    Example:

    ```python
    sparse = keras_dst.sparsify(model, sparsity=0.9, distribution="erk")
    keras_dst.summary(sparse)
    ```
    """
    check_cloneable(model, "sparsify")
    block_shape = check_block_shape(block_shape)
    selected = _selector(include, exclude)

    def convert(layer):
        twin = SPARSE_TWINS.get(type(layer))
        if twin is None or not selected(layer):
            return None
        config = layer.get_config()
        config["dense_gradient"] = dense_gradient
        if block_shape is not None and type(layer) is keras.layers.Dense:
            try:
                check_block_shape(block_shape, tuple(layer.kernel.shape))
            except ValueError as error:
                raise ValueError(f"Layer '{layer.name}': {error}") from None
            config["block_shape"] = block_shape
        return twin.from_config(config)

    new_model, pairs = clone_with(model, convert)
    for old, new in pairs:
        if old.built and not isinstance(old, keras.Model):
            copy_core_weights(old, new)
    if sparsity is not None or isinstance(distribution, dict):
        initialize_masks(
            new_model,
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
        from keras_dst.layers.model_walk import require_sparse_layers

        require_sparse_layers(new_model)
    return new_model
