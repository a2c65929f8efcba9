"""Which Keras layer class has which sparse twin."""

import keras

from keras_dst.layers.sparse_conv1d import SparseConv1D
from keras_dst.layers.sparse_conv2d import SparseConv2D
from keras_dst.layers.sparse_conv2d_transpose import SparseConv2DTranspose
from keras_dst.layers.sparse_conv3d import SparseConv3D
from keras_dst.layers.sparse_dense import SparseDense
from keras_dst.layers.sparse_depthwise_conv2d import SparseDepthwiseConv2D
from keras_dst.layers.sparse_einsum_dense import SparseEinsumDense
from keras_dst.layers.sparse_embedding import SparseEmbedding
from keras_dst.layers.sparse_layer import SparseOptions
from keras_dst.layers.sparse_multi_head_attention import (
    SparseMultiHeadAttention,
)
from keras_dst.layers.sparse_reversible_embedding import (
    SparseReversibleEmbedding,
)

# Keras layer class -> its sparse twin (used by sparsify / strip). Exact
# classes only: a user's subclass of Dense is not silently converted (its
# `call` may read the kernel in its own way); see `sparse_twin`.
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
    keras.layers.ReversibleEmbedding: SparseReversibleEmbedding,
}

# What a class may define and still be its parent under another name.
_NAMING = frozenset(
    (
        "__module__",
        "__qualname__",
        "__doc__",
        "__firstlineno__",
        "__static_attributes__",
        "__annotations__",
        "__dict__",
        "__weakref__",
    )
)


def _renames_only(cls):
    """Whether `cls` defines no methods, properties or descriptors: a
    parent class exported under another name (keras-hub's
    `keras_hub.layers.ReversibleEmbedding` is `pass` over Keras's)."""
    return all(
        name in _NAMING or not hasattr(value, "__get__") and not callable(value)
        for name, value in vars(cls).items()
    )


def sparse_twin(cls):
    """The sparse twin of the Keras layer class `cls`, or None.

    `cls` itself must be in `SPARSE_TWINS`, or a subclass of one of them
    that only renames it (defines no method or property), like keras-hub's
    `ReversibleEmbedding`. Any other subclass gets None: it may compute
    with its weight in a way the twin does not know.
    """
    twin = SPARSE_TWINS.get(cls)
    if twin is not None:
        return twin
    for base in cls.__mro__[1:]:
        if base in SPARSE_TWINS:
            chain = cls.__mro__[: cls.__mro__.index(base)]
            if all(_renames_only(c) for c in chain):
                return SPARSE_TWINS[base]
            return None
    return None


def plain_class(cls):
    """The Keras class a sparse layer class `cls` extends, or None.

    The twin's entry in `SPARSE_TWINS`; for any other `SparseLayer`
    subclass (a user's, built as CONTRIBUTING.md shows), its first base
    that is a Keras layer without the sparse mixins.
    """
    for plain, twin in SPARSE_TWINS.items():
        if twin is cls:
            return plain
    if not (isinstance(cls, type) and issubclass(cls, SparseOptions)):
        return None
    for base in cls.__mro__[1:]:
        if issubclass(base, keras.layers.Layer) and not issubclass(
            base, SparseOptions
        ):
            return base
    return None
