"""Sparse Keras layers: each carries a non-trainable `kernel_mask`."""

import keras

from keras_dst.layers.sparse_conv1d import SparseConv1D
from keras_dst.layers.sparse_conv2d import SparseConv2D
from keras_dst.layers.sparse_conv2d_transpose import SparseConv2DTranspose
from keras_dst.layers.sparse_conv3d import SparseConv3D
from keras_dst.layers.sparse_dense import SparseDense
from keras_dst.layers.sparse_depthwise_conv2d import SparseDepthwiseConv2D
from keras_dst.layers.sparse_einsum_dense import SparseEinsumDense
from keras_dst.layers.sparse_embedding import SparseEmbedding
from keras_dst.layers.sparse_layer import SparseLayer
from keras_dst.layers.sparse_layer import masked_weight_property
from keras_dst.layers.sparse_multi_head_attention import (
    SparseMultiHeadAttention,
)

# Keras layer class -> its sparse twin (used by sparsify / strip). Exact
# classes only: a user's subclass of Dense is not silently converted.
SPARSE_TWINS = {
    keras.layers.Conv1D: SparseConv1D,
    keras.layers.Conv2D: SparseConv2D,
    keras.layers.Conv2DTranspose: SparseConv2DTranspose,
    keras.layers.Conv3D: SparseConv3D,
    keras.layers.Dense: SparseDense,
    keras.layers.DepthwiseConv2D: SparseDepthwiseConv2D,
    keras.layers.EinsumDense: SparseEinsumDense,
    keras.layers.Embedding: SparseEmbedding,
    keras.layers.MultiHeadAttention: SparseMultiHeadAttention,
}

__all__ = [
    "SPARSE_TWINS",
    "SparseConv1D",
    "SparseConv2D",
    "SparseConv2DTranspose",
    "SparseConv3D",
    "SparseDense",
    "SparseDepthwiseConv2D",
    "SparseEinsumDense",
    "SparseEmbedding",
    "SparseLayer",
    "SparseMultiHeadAttention",
    "masked_weight_property",
]
