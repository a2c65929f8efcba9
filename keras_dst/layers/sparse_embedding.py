"""`SparseEmbedding`: `keras.layers.Embedding` with a masked table."""

import keras

from keras_dst.layers.sparse_layer import SparseLayer
from keras_dst.layers.sparse_layer import masked_weight_property


@keras.saving.register_keras_serializable(package="keras_dst")
class SparseEmbedding(SparseLayer, keras.layers.Embedding):
    """A `keras.layers.Embedding` whose table is multiplied by a 0/1 mask.

    A drop-in replacement: it takes every argument of
    `keras.layers.Embedding`, plus the three below, and computes exactly
    what the parent computes with the masked table `embeddings *
    kernel_mask`. The mask is a non-trainable `uint8` variable named
    `kernel_mask`, saved with the model; inactive entries of the raw
    embedding table are stored as exact zeros.

    Args:
        sparsity: `None` (default: the mask starts all ones, i.e. dense) or
            a float in [0, 1): the mask then starts with exactly
            `round((1 - sparsity) * size)` active entries chosen uniformly
            at random. `keras_dst.sparsify` and the DST callbacks set masks
            for a whole model from a global budget instead.
        mask_seed: `None` or an int seed for the initial random mask.
        dense_gradient: bool (default True). Keep a `kernel_gradient`
            probe holding the dense gradient `dL/d(embeddings * mask)` of the
            last training step, used by gradient-based growth (RigL, SNFS).
            Set False to save one table-sized variable when only
            random growth (SET) or static masks are used.
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
