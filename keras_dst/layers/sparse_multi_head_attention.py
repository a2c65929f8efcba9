"""`SparseMultiHeadAttention`: attention with sparse projection kernels."""

import keras

from keras_dst.backend.keras_internals import sublayers
from keras_dst.layers.in_place import convert_layer
from keras_dst.layers.sparse_einsum_dense import SparseEinsumDense
from keras_dst.layers.sparse_layer import SparseOptions


@keras.saving.register_keras_serializable(package="keras_dst")
class SparseMultiHeadAttention(SparseOptions, keras.layers.MultiHeadAttention):
    """A `keras.layers.MultiHeadAttention` whose projections are sparse.

    Keras builds the query/key/value/output projections as `EinsumDense`
    sub-layers; this layer builds them as `SparseEinsumDense`, so each
    projection kernel carries its own `kernel_mask` and takes part in the
    model's sparsity budget like any other sparse layer.

    Args:
        sparsity: `None` (dense masks) or a float in [0, 1) used as the
            initial sparsity of every projection.
        mask_seed: `None` or an int; projection `i` uses `mask_seed + i`.
        dense_gradient: bool, see `SparseDense`.
        **kwargs: every argument of `keras.layers.MultiHeadAttention`.

    Example:

    ```python
    mha = keras_dst.layers.SparseMultiHeadAttention(
        num_heads=2, key_dim=8, sparsity=0.8)
    x = keras.ops.ones((2, 5, 16))
    y = mha(x, x)
    ```

    Reference:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)
    """

    def build(self, query_shape, value_shape, key_shape=None):
        if self.block_shape is not None:
            raise ValueError(
                f"`block_shape` is not supported on SparseMultiHeadAttention "
                f"'{self.name}' (its projections have kernels of different "
                f"ranks). Received: block_shape={self.block_shape}."
            )
        super().build(query_shape, value_shape, key_shape)
        # Turn each EinsumDense projection sparse where it is, in creation
        # order (query, key, value, output).
        for index, sub in enumerate(projections(self)):
            seed = None if self.mask_seed is None else self.mask_seed + index
            convert_layer(
                sub,
                SparseEinsumDense,
                {**self.sparse_options, "mask_seed": seed},
                draw=True,
            )


def projections(attention):
    """The EinsumDense projections of a MultiHeadAttention layer (plain or
    already sparse), in creation order."""
    return [
        sub
        for sub in sublayers(attention)
        if type(sub) in (keras.layers.EinsumDense, SparseEinsumDense)
    ]
