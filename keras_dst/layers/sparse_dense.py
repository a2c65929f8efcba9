"""`SparseDense`: `keras.layers.Dense` with a mask on its kernel."""

import keras

from keras_dst.layers.sparse_layer import SparseLayer
from keras_dst.layers.sparse_layer import masked_weight_property


@keras.saving.register_keras_serializable(package="keras_dst")
class SparseDense(SparseLayer, keras.layers.Dense):
    """A `keras.layers.Dense` whose kernel is multiplied by a 0/1 mask.

    A drop-in replacement: it takes every argument of `keras.layers.Dense`,
    plus the three below, and computes exactly what the parent computes with
    the masked kernel `kernel * kernel_mask`. The mask is a non-trainable
    `uint8` variable named `kernel_mask`, saved with the model; inactive
    entries of the raw kernel are stored as exact zeros.

    Args:
        sparsity: `None` (default: the mask starts all ones, i.e. dense) or
            a float in [0, 1): the mask then starts with exactly
            `round((1 - sparsity) * size)` active entries chosen uniformly
            at random. `keras_dst.sparsify` and the DST callbacks set masks
            for a whole model from a global budget instead.
        mask_seed: `None` or an int seed for the initial random mask.
        dense_gradient: bool (default True). Keep a `kernel_gradient`
            probe holding the dense gradient `dL/d(kernel * mask)` of the
            last training step, used by gradient-based growth (RigL, SNFS).
            Set False to save one kernel-sized variable when only random
            growth (SET) or static masks are used.
        **kwargs: every argument of `keras.layers.Dense`.

    Example:

    ```python
    layer = keras_dst.layers.SparseDense(64, sparsity=0.9, activation="relu")
    x = keras.ops.ones((2, 16))
    y = layer(x)
    print(layer.kernel_mask.shape, keras_dst.sparsity_report(layer))
    ```

    Reference:
        - [Mocanu et al., 2018](https://arxiv.org/abs/1707.04780) (SET)
        - [Evci et al., 2020](https://arxiv.org/abs/1911.11134) (RigL)
    """

    _sparse_weight_name = "kernel"
    kernel = masked_weight_property(keras.layers.Dense, "kernel")
