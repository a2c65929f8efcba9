"""Sparse Keras layers: each carries a non-trainable `kernel_mask`."""

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
from keras_dst.layers.sparse_reversible_embedding import (
    SparseReversibleEmbedding,
)
from keras_dst.layers.twins import SPARSE_TWINS
from keras_dst.layers.twins import sparse_twin

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
    "SparseReversibleEmbedding",
    "masked_weight_property",
    "sparse_twin",
]
