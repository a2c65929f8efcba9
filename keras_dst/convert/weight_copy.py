"""A model's weights without the variables of the sparse mechanism."""

from keras_dst.layers.model_walk import sparse_layers


def sparse_extras(layer):
    """The variables a sparse layer adds to its parent (mask, probe, ...)."""
    return [
        variable
        for sparse in sparse_layers(layer)
        for variable in sparse.sparse_state_variables
    ]


def core_weights(layer):
    """`layer.weights` without the sparse extras, in Keras's order: the
    weights the same model without keras_dst has."""
    extras = {id(v) for v in sparse_extras(layer)}
    return [v for v in layer.weights if id(v) not in extras]
