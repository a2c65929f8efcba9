"""`strip`: plain Keras layers with the masked weights, for deployment."""

import keras

from keras_dst.convert.sparsify import check_cloneable
from keras_dst.convert.sparsify import clone_with
from keras_dst.convert.weight_copy import copy_core_weights
from keras_dst.layers import SPARSE_TWINS
from keras_dst.layers.model_walk import sparse_layers
from keras_dst.layers.sparse_layer import SPARSE_ARGUMENTS

_PLAIN = {sparse: plain for plain, sparse in SPARSE_TWINS.items()}


def strip(model):
    """Returns a copy of `model` with plain Keras layers and no masks.

    Every sparse layer becomes its Keras parent with kernel `kernel * mask`
    (exact zeros where the mask is 0); the masks and gradient probes are
    dropped. Predictions are identical. Use it before `model.export(...)`,
    quantization or any tool that expects stock Keras layers.

    Args:
        model: a built Sequential or Functional model.

    Returns:
        A new model.
    """
    check_cloneable(model, "strip")

    def convert(layer):
        plain = _PLAIN.get(type(layer))
        if plain is None:
            return None
        config = {
            k: v
            for k, v in layer.get_config().items()
            if k not in SPARSE_ARGUMENTS
        }
        return plain.from_config(config)

    new_model, pairs = clone_with(model, convert)
    masked = {}
    for layer in sparse_layers(model):
        masked[id(layer.kernel_variable)] = layer

    def apply_mask(variable):
        layer = masked.get(id(variable))
        if layer is None:
            return variable.value
        mask = keras.ops.cast(layer.kernel_mask.value, variable.dtype)
        return keras.ops.multiply(variable.value, mask)

    for old, new in pairs:
        if old.built and not isinstance(old, keras.Model):
            copy_core_weights(old, new, transform=apply_mask)
    return new_model
