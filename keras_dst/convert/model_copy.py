"""Copying, saving and loading models whose layers were made sparse in
place.

`sparsify` turns layers sparse where they sit (see
`keras_dst.layers.in_place`). A saved config brings a layer back as the
class it names, but only the layers whose config the file holds: those of
Sequential and Functional graphs. A layer created by its parent's code
(inside keras-hub's `TransformerEncoder`, a subclassed model, or any
layer of a keras-hub backbone, whose config is its constructor's
arguments) comes back as the plain Keras layer its parent creates.

So a model's config is written with a record of those layers: the
model's own config, wrapped in a `SparsifiedModel` entry listing each such
sparse layer (its position in the model's layer walk, its sparse class,
its sparse arguments). Loading the entry rebuilds the model from its own
config, then turns the recorded layers sparse again before Keras loads
the variables (masks, unions, probes, optimizer state). It is what
`keras_dst.save_model` writes to `config.json`, so the stock
`keras.saving.load_model` restores such a model (with `keras_dst`
imported), and what `sparsify` and `strip` copy models with.
"""

import tempfile

import keras
import numpy as np

from keras_dst.backend.keras_internals import sublayers
from keras_dst.layers.in_place import convert_layer
from keras_dst.layers.model_walk import layer_tree
from keras_dst.layers.sparse_layer import SparseLayer
from keras_dst.layers.sparse_layer import SparseOptions
from keras_dst.layers.twins import sparse_twin

WRAPPER = "keras_dst>SparsifiedModel"


def _positions(model):
    """The layers a record can name, in `layer_tree` order: those with a
    sparse twin, and sparse ones. (Keras lists some other layers in
    another order on PyTorch than on TensorFlow and JAX, e.g. a Functional
    model's inputs and a keras-hub task's preprocessor; these come in the
    same order on every backend, so a file saved on one loads on all.)"""
    return [
        entry
        for entry in layer_tree(model)
        if isinstance(entry[0], SparseOptions)
        or sparse_twin(type(entry[0])) is not None
    ]


def sparse_record(model):
    """The sparse layers `model`'s own config cannot bring back, as a
    JSON-ready list (empty when the config says everything)."""
    record = []
    for index, (layer, saved, _) in enumerate(_positions(model)):
        if saved or not isinstance(layer, SparseOptions):
            continue
        options = dict(layer.sparse_options)
        if options["block_shape"] is not None:
            options["block_shape"] = list(options["block_shape"])
        record.append(
            {
                "index": index,
                "name": layer.name,
                "class": keras.saving.get_registered_name(type(layer)),
                "options": options,
            }
        )
    return record


def apply_record(model, record):
    """Turns the recorded layers of a freshly built `model` sparse.

    In record order (the model's pre-order): a layer whose conversion
    creates sub-layers (an untied `SparseReversibleEmbedding`'s
    projection) shifts the positions after it, as it did when recorded.
    """
    layers = [layer for layer, _, _ in _positions(model)]
    for entry in record:
        twin = keras.saving.get_registered_object(entry["class"])
        index = entry["index"]
        layer = layers[index] if index < len(layers) else None
        if (
            twin is None
            or layer is None
            or not (type(layer) is twin or sparse_twin(type(layer)) is twin)
        ):
            found = (
                "nothing"
                if layer is None
                else f"'{layer.name}' ({type(layer).__name__})"
            )
            raise ValueError(
                f"Cannot make layer '{entry['name']}' sparse again as "
                f"{entry['class']}: the model rebuilt from its config has "
                f"{found} at position {index} of its layers. The model's "
                "class builds other layers from this config than when it "
                "was saved (a different version of its library?)."
            )
        options = dict(entry["options"])
        if options["block_shape"] is not None:
            options["block_shape"] = tuple(options["block_shape"])
        if type(layer) is twin:  # built sparse by its parent's own code
            SparseOptions._set_sparse_options(layer, **options)
            continue
        count = len(sublayers(layer))
        convert_layer(layer, twin, options, draw=False)
        if len(sublayers(layer)) != count:
            layers = [layer for layer, _, _ in _positions(model)]
    return model


def serialize_model(model):
    """`keras.saving.serialize_keras_object(model)`, wrapped with the
    sparse record when the model's config needs one."""
    config = keras.saving.serialize_keras_object(model)
    return wrap_config(config, sparse_record(model))


def wrap_config(config, record):
    """`config` (a serialized model) with `record` around it, if any.

    The compile config moves to the wrapper: Keras compiles after
    `from_config`, so the optimizer is built once the layers are sparse
    again (with the gradient probes among the trainable variables).
    """
    if not record:
        return config
    inner = dict(config)
    compile_config = inner.pop("compile_config", None)
    return {
        "module": SparsifiedModel.__module__,
        "class_name": SparsifiedModel.__name__,
        "config": {"model": inner, "layers": record},
        "registered_name": WRAPPER,
        "compile_config": compile_config,
    }


@keras.saving.register_keras_serializable(package="keras_dst")
class SparsifiedModel:
    """The config entry of a model with layers made sparse in place.

    Not a model class: `from_config` returns the model its config
    describes (its own class), with the recorded layers sparse again.
    `keras.saving.load_model` reads it from files that
    `keras_dst.save_model` wrote.
    """

    def __init__(self, model, layers):
        self.model = model
        self.layers = layers

    def get_config(self):
        return {"model": self.model, "layers": self.layers}

    @classmethod
    def from_config(cls, config):
        model = keras.saving.deserialize_keras_object(config["model"])
        return apply_record(model, config["layers"])


def copy_model(model, fn_name, config=None, instead="in_place=True"):
    """A new model with `model`'s classes, structure and weight values.

    Rebuilt from `model`'s config (`serialize_model`, or `config` if
    given), then every weight assigned (host copies: on JAX, assigning
    one variable's buffer to another can alias it, and a later donated
    train step deletes it). Not compiled.

    Raises:
        ValueError: naming `fn_name` and what to do instead, when Keras
            cannot rebuild the model from its config, or the rebuilt model
            has other weights.
    """
    if config is None:
        config = serialize_model(model)
    config = dict(config, compile_config=None)
    # The model's own classes, registered or not (as `clone_model` does).
    classes = {}
    for layer in [model] + [entry[0] for entry in layer_tree(model)]:
        cls = type(layer)
        classes[cls.__name__] = cls
        classes[keras.saving.get_registered_name(cls)] = cls
    try:
        new = keras.saving.deserialize_keras_object(
            config, custom_objects=classes
        )
    except Exception as error:
        cause = str(error).strip().splitlines()[0][:300]
        raise ValueError(
            f"`keras_dst.{fn_name}` copies the model, and Keras cannot "
            f"rebuild model '{model.name}' ({type(model).__name__}) from "
            f"its config ({type(error).__name__}: {cause}). Give the class "
            "a `get_config` returning its constructor's arguments"
            + (
                f", or call `keras_dst.{fn_name}(model, ..., {instead})`."
                if instead
                else "."
            )
        ) from error
    _copy_assets(model, new, fn_name)
    if not new.built:
        raise ValueError(
            f"`keras_dst.{fn_name}`: model '{model.name}' rebuilt from its "
            "config is not built (its config has no build information). "
            "Call the model on data before converting it"
            + (f", or use `{instead}`." if instead else ".")
        )
    return new


def _copy_assets(source, target, fn_name):
    """Copies what layers keep outside their config and weights (keras-hub
    tokenizers' vocabularies): each layer's `save_assets` into its twin's
    `load_assets`, as `keras.saving.load_model` does from a file."""

    def layers(model):
        # Without the sub-layers a sparse layer creates for itself (an
        # untied embedding's projection), which a stripped copy lacks.
        return [model] + [
            layer
            for layer, _, parent in layer_tree(model)
            if not isinstance(parent, SparseLayer)
        ]

    old_layers, new_layers = layers(source), layers(target)
    if len(old_layers) != len(new_layers):
        raise ValueError(
            f"`keras_dst.{fn_name}`: the model rebuilt from its config has "
            f"{len(new_layers)} layers, the original {len(old_layers)}: its "
            "class builds other layers from the same config."
        )
    for old, new in zip(old_layers, new_layers, strict=True):
        if callable(getattr(old, "save_assets", None)) and callable(
            getattr(new, "load_assets", None)
        ):
            with tempfile.TemporaryDirectory() as folder:
                old.save_assets(folder)
                new.load_assets(folder)


def copy_weights(
    source, target, fn_name, transform=None, instead="in_place=True"
):
    """Assigns `source` weight values to `target`'s, matched in order.

    `source` is a list of variables, `target` a list of variables with
    the same names and shapes in the same order; `transform(variable)`
    may replace a source value.
    """
    if len(source) != len(target):
        raise ValueError(
            f"`keras_dst.{fn_name}`: the model rebuilt from its config has "
            f"{len(target)} weights, the original {len(source)}: its class "
            "creates different weights from the same config"
            + (f". Use `{instead}`." if instead else ".")
        )
    for a, b in zip(source, target, strict=True):
        if a.name != b.name or tuple(a.shape) != tuple(b.shape):
            raise ValueError(
                f"`keras_dst.{fn_name}`: weight '{a.path}' "
                f"{tuple(a.shape)} of the original model does not match "
                f"'{b.path}' {tuple(b.shape)} of the one rebuilt from its "
                "config" + (f". Use `{instead}`." if instead else ".")
            )
        value = transform(a) if transform else a.value
        b.assign(np.array(keras.ops.convert_to_numpy(value)))
