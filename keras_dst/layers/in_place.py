"""Turning a built Keras layer into its sparse twin, in place.

How `sparsify` reaches every supported layer wherever it sits (inside
keras-hub's `TransformerEncoder`, an attention block, a patch embedding,
a subclassed model) and how `SparseMultiHeadAttention` makes its own
projections sparse. The same move Keras makes for `Dense.enable_lora`
and `quantize`: the layer object stays where it is (its parent, its
place in the graph, its weights), its class becomes the sparse twin
(`Dense` -> `SparseDense`, whose only difference is the masked `kernel`
property), and the mask, explored union and gradient probe are added to
its state. Rebuilding the layer instead would mean rebuilding every layer
that holds it, which only works where a config describes the whole model
(Sequential and Functional graphs) and fails for layers created in a
parent's `build` from the parent's own arguments.
"""

import keras

from keras_dst.backend.keras_internals import change_class
from keras_dst.backend.keras_internals import raw_weight_attribute
from keras_dst.backend.keras_internals import unlocked
from keras_dst.backend.keras_internals import untrack_variable
from keras_dst.layers.sparse_layer import SparseLayer
from keras_dst.layers.sparse_layer import check_sparse_options
from keras_dst.masks.blocks import check_block_shape


def convert_layer(layer, twin, options, draw=False):
    """Makes the built Keras `layer` an instance of its sparse `twin`.

    Args:
        layer: a built layer of the Keras class `twin` extends (or a class
            that only renames it).
        twin: a `SparseLayer` or `SparseOptions` subclass.
        options: dict of the sparse arguments (`SPARSE_ARGUMENTS`).
        draw: with a `sparsity` in `options`, draw the layer's own random
            mask (as a layer built sparse does). `sparsify` passes False
            and sets every mask from the model's budget afterwards.

    Returns:
        A function without arguments that puts the layer back as it was
        (for a caller whose later step fails).

    Raises:
        ValueError: the layer is not built, or `options` do not fit it
            (e.g. a `block_shape` that does not divide its kernel). The
            layer is left as it was.
    """
    if not layer.built:
        raise ValueError(
            f"Layer '{layer.name}' is not built: build the model (call it "
            "on data or give it a `keras.Input`) before making it sparse."
        )
    options = check_sparse_options(**options)
    if issubclass(twin, SparseLayer):
        weight = twin._sparse_weight_name
        name = raw_weight_attribute(weight)
        if name not in vars(layer) and isinstance(
            vars(layer).get(weight), keras.Variable
        ):
            # A layer that assigns `self.kernel = ...` (DepthwiseConv2D):
            # the twin's masked property keeps the raw variable in
            # `_kernel`, as its setter would have.
            vars(layer)[name] = vars(layer).pop(weight)
        if name not in vars(layer):
            raise ValueError(
                f"Layer '{layer.name}' ({type(layer).__name__}) has no raw "
                f"`{twin._sparse_weight_name}` variable: it may be "
                "quantized or use LoRA. Make it sparse before quantizing, "
                "or call `keras_dst.strip` first."
            )
        try:
            check_block_shape(
                options["block_shape"], tuple(vars(layer)[name].shape)
            )
        except ValueError as error:
            raise ValueError(f"Layer '{layer.name}': {error}") from None
    before_weights = {id(v) for v in layer.weights}
    before_attributes = set(vars(layer))
    with unlocked(layer):
        undo_class = change_class(layer, twin)

        def undo():
            """Puts the layer back as it was: its class, its variables."""
            with unlocked(layer):
                for variable in layer.weights:
                    if id(variable) not in before_weights:
                        untrack_variable(layer, variable)
                for name in set(vars(layer)) - before_attributes:
                    object.__delattr__(layer, name)
                undo_class()

        try:
            for key, value in options.items():
                setattr(layer, key, value)
            if issubclass(twin, SparseLayer):
                layer._build_sparse(draw=draw)
        except BaseException:
            undo()
            raise
    return undo
