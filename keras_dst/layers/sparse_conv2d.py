"""`SparseConv2D`: `keras.layers.Conv2D` with a mask on its kernel."""

import keras

from keras_dst.layers.sparse_layer import SparseLayer
from keras_dst.layers.sparse_layer import document_sparse_arguments
from keras_dst.layers.sparse_layer import masked_weight_property


@keras.saving.register_keras_serializable(package="keras_dst")
@document_sparse_arguments
class SparseConv2D(SparseLayer, keras.layers.Conv2D):
    """A `keras.layers.Conv2D` whose kernel is multiplied by a 0/1 mask.

    A drop-in replacement: it takes every argument of `keras.layers.Conv2D`,
    plus the five below, and computes exactly what the parent computes with
    the masked kernel `kernel * kernel_mask`. The mask is a non-trainable
    `uint8` variable named `kernel_mask`, saved with the model; inactive
    entries of the raw kernel are stored as exact zeros.

    Args:
        {sparse_arguments}
        **kwargs: every argument of `keras.layers.Conv2D`.

    Example:

    ```python
    layer = keras_dst.layers.SparseConv2D(8, 3, sparsity=0.9)
    x = keras.ops.ones((2, 10, 10, 4))
    y = layer(x)
    print(layer.kernel_mask.shape, keras_dst.sparsity_report(layer))
    ```

    Reference:
        - [Mocanu et al., 2018](https://arxiv.org/abs/1707.04780) (SET)
        - [Evci et al., 2020](https://arxiv.org/abs/1911.11134) (RigL)
    """

    _sparse_weight_name = "kernel"
    kernel = masked_weight_property(keras.layers.Conv2D, "kernel")
