"""`SparseReversibleEmbedding`: token embeddings with masked tables."""

import keras

from keras_dst.backend.keras_internals import own_raw_weight
from keras_dst.backend.keras_internals import raw_weight
from keras_dst.backend.keras_internals import store_raw_weight
from keras_dst.backend.keras_internals import unlocked
from keras_dst.backend.keras_internals import untrack_variable
from keras_dst.layers.sparse_layer import SparseLayer
from keras_dst.layers.sparse_layer import masked_weight_property


@keras.saving.register_keras_serializable(package="keras_dst")
class SparseReverseProjection(SparseLayer, keras.layers.Layer):
    """The untied output projection of a `SparseReversibleEmbedding`.

    Holds the parent's `reverse_embeddings` variable as its `kernel`, with
    a mask, explored union and probe of its own, so the projection is a
    sparse layer of the model like any other (its path:
    `<embedding>/reverse_projection`). Created by the parent; not a layer
    to use on its own.
    """

    kernel = masked_weight_property(keras.layers.Layer, "kernel")

    @classmethod
    def holding(cls, variable, options, draw, name="reverse_projection"):
        """A built projection that owns `variable` as its kernel."""
        projection = cls(name=name, **options)
        own_raw_weight(projection, "kernel", variable)  # tracked
        projection.built = True
        with unlocked(projection):
            projection._build_sparse(draw=draw)
        return projection


@keras.saving.register_keras_serializable(package="keras_dst")
class SparseReversibleEmbedding(SparseLayer, keras.layers.ReversibleEmbedding):
    """A `keras.layers.ReversibleEmbedding` with masked tables.

    The token embedding of GPT-2, Gemma, Llama and most keras-hub language
    models (keras-hub's `ReversibleEmbedding` is this Keras layer). With
    tied weights (`tie_weights=True`, the default) the one masked table
    serves both directions: looking tokens up and, with `reverse=True`,
    projecting hidden states to logits with its transpose, so the input
    embedding and the output projection share one mask as they share one
    table. Untied (`tie_weights=False`), the output projection
    `reverse_embeddings` gets a mask of its own: it lives in a sparse
    sub-layer `reverse_projection` (a `SparseReverseProjection`), a
    sparse layer of the model with its own share of the budget, like any
    other kernel.

    Args:
        sparsity: `None` (default: the masks start all ones, i.e. dense)
            or a float in [0, 1): each mask then starts with exactly
            `round((1 - sparsity) * size)` active entries chosen uniformly
            at random.
        mask_seed: `None` or an int seed for the initial random masks (the
            untied projection uses `mask_seed + 1`).
        dense_gradient: bool (default True): keep `kernel_gradient`
            probes with the dense gradients, for gradient growth. Tied,
            the table's probe holds the gradient summed over both
            directions.
        block_shape: `None` or a tuple per table axis (see `SparseDense`).
        weight_init: `"sparse_scaled"` (default) or `"unscaled"` (see
            `SparseDense`).
        **kwargs: every argument of `keras.layers.ReversibleEmbedding`.

    Example:

    ```python
    layer = keras_dst.layers.SparseReversibleEmbedding(100, 16, sparsity=0.9)
    tokens = keras.ops.ones((2, 5), dtype="int32")
    hidden = layer(tokens)                   # (2, 5, 16)
    logits = layer(hidden, reverse=True)     # (2, 5, 100), same mask
    ```

    Reference:
        - [Press & Wolf, 2017](https://arxiv.org/abs/1608.05859) (tied
          input and output embeddings)
    """

    _sparse_weight_name = "embeddings"
    embeddings = masked_weight_property(
        keras.layers.ReversibleEmbedding, "embeddings"
    )

    @property
    def reverse_embeddings(self):
        """The untied output projection, masked (its own sparse layer)."""
        # getattr: on PyTorch a sub-layer lives in `_modules`, not in
        # the instance dict.
        projection = getattr(self, "reverse_projection", None)
        if projection is not None:
            return projection.kernel
        variable = raw_weight(self, "reverse_embeddings")
        if variable is not None:  # still building
            return variable
        raise AttributeError("`reverse_embeddings` is not created yet.")

    @reverse_embeddings.setter
    def reverse_embeddings(self, value):
        # Layer.__setattr__ already tracked `value`; only store it.
        store_raw_weight(self, "reverse_embeddings", value)

    def _build_sparse(self, draw=True):
        super()._build_sparse(draw=draw)
        if "reverse_embeddings" in vars(self):
            # A plain layer made sparse in place stored it as a plain
            # attribute, which the property above now shadows.
            store_raw_weight(
                self, "reverse_embeddings", vars(self).pop("reverse_embeddings")
            )
        variable = raw_weight(self, "reverse_embeddings")
        if self.tie_weights or variable is None:
            return
        # The projection's variable moves to the sparse sub-layer (so it
        # is saved, counted and updated there, once).
        untrack_variable(self, variable)
        options = dict(self.sparse_options)
        if options["mask_seed"] is not None:
            options["mask_seed"] += 1
        self.reverse_projection = SparseReverseProjection.holding(
            variable, options, draw
        )
