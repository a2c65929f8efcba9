"""`SparseEmbedding`: `keras.layers.Embedding` with a masked table."""

import keras

from keras_dst.layers.sparse_layer import SparseLayer
from keras_dst.layers.sparse_layer import document_sparse_arguments
from keras_dst.layers.sparse_layer import masked_weight_property


@keras.saving.register_keras_serializable(package="keras_dst")
@document_sparse_arguments
class SparseEmbedding(SparseLayer, keras.layers.Embedding):
    """A `keras.layers.Embedding` whose table is multiplied by a 0/1 mask.

    A drop-in replacement: it takes every argument of
    `keras.layers.Embedding`, plus the five below, and computes exactly
    what the parent computes with the masked table `embeddings *
    kernel_mask`. The mask is a non-trainable `uint8` variable named
    `kernel_mask`, saved with the model; inactive entries of the raw
    embedding table are stored as exact zeros.

    Args:
        {sparse_arguments}
        **kwargs: every argument of `keras.layers.Embedding`.

    Example:

    ```python
    layer = keras_dst.layers.SparseEmbedding(1000, 64, sparsity=0.9)
    x = keras.ops.ones((2, 5), dtype="int32")
    y = layer(x)
    print(layer.kernel_mask.shape, keras_dst.sparsity_report(layer))
    ```

    Reference:
        - [Mocanu et al., 2018](https://arxiv.org/abs/1707.04780) (SET)
        - [Evci et al., 2020](https://arxiv.org/abs/1911.11134) (RigL)
    """

    _sparse_weight_name = "embeddings"
    embeddings = masked_weight_property(keras.layers.Embedding, "embeddings")
