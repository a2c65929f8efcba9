"""`strip`: plain Keras layers with the masked weights, for deployment."""

import keras

from keras_dst.convert.model_copy import copy_model
from keras_dst.convert.model_copy import copy_weights
from keras_dst.convert.sparsify import check_model
from keras_dst.convert.weight_copy import core_weights
from keras_dst.layers.model_walk import sparse_layers
from keras_dst.layers.sparse_layer import SPARSE_ARGUMENTS
from keras_dst.layers.twins import plain_class


def strip(model):
    """Returns a copy of `model` with plain Keras layers and no masks.

    Every sparse layer becomes its Keras parent with kernel `kernel * mask`
    (exact zeros where the mask is 0); the masks, explored unions and
    gradient probes are dropped. Predictions are identical. The copy is
    rebuilt from the model's config, so it has the model's own classes: a
    keras-hub backbone stays that backbone, with the keras-hub layers it
    builds (those `keras_dst.sparsify` made sparse in place come back
    plain). Use it before `model.export(...)`, quantization, LoRA or any
    tool that expects stock Keras layers.

    Args:
        model: a built `keras.Model` that Keras can rebuild from its
            config (Sequential, Functional, keras-hub models, subclassed
            models with a `get_config`).

    Returns:
        A new model, not compiled.
    """
    check_model(model, "strip")
    config = _plain_config(keras.saving.serialize_keras_object(model))
    new = copy_model(model, "strip", config=config, instead=None)
    masked = {
        id(layer.kernel_variable): layer for layer in sparse_layers(model)
    }

    def apply_mask(variable):
        layer = masked.get(id(variable))
        if layer is None:
            return variable.value
        mask = keras.ops.cast(layer.kernel_mask.value, variable.dtype)
        return keras.ops.multiply(variable.value, mask)

    copy_weights(
        core_weights(model), new.weights, "strip", apply_mask, instead=None
    )
    return new


def _plain_config(config):
    """`config` with every sparse layer's entry made its Keras parent's."""
    if isinstance(config, list):
        return [_plain_config(item) for item in config]
    if not isinstance(config, dict):
        return config
    out = {key: _plain_config(value) for key, value in config.items()}
    name = config.get("registered_name")
    cls = keras.saving.get_registered_object(name) if name else None
    plain = plain_class(cls) if isinstance(cls, type) else None
    if plain is None or not isinstance(config.get("config"), dict):
        return out
    layer_config = {
        key: value
        for key, value in out["config"].items()
        if key not in SPARSE_ARGUMENTS
    }
    entry = keras.saving.serialize_keras_object(plain.from_config(layer_config))
    out.update(
        module=entry["module"],
        class_name=entry["class_name"],
        registered_name=entry["registered_name"],
        config=layer_config,
    )
    return out
