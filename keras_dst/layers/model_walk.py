"""Finding the sparse layers of a model, nested models included, and
their stable paths."""

from keras_dst.backend.keras_internals import is_graph_model
from keras_dst.backend.keras_internals import sublayers
from keras_dst.layers.sparse_layer import SparseLayer
from keras_dst.layers.sparse_layer import SparseOptions

# The instance attribute in which a walk leaves each sparse layer's path in
# the model walked (read by `layer_path`; nothing else keeps walk state).
_PATH_ATTRIBUTE = "_keras_dst_path"


def sparse_layers(model):
    """All sparse layers of `model` in a fixed depth-first order.

    `model` may be a model, a layer or a list of layers. Shared layers are
    listed once. The walk also records each layer's path in `model` (see
    `layer_path`).
    """
    if isinstance(model, (list, tuple)):
        roots = [(layer, layer.name) for layer in model]
    elif isinstance(model, SparseLayer) or not sublayers(model):
        roots = [(model, model.name)]
    else:  # a model or a container: paths start below it
        roots = [(model, "")]
    found, seen = [], set()
    # Pre-order, each layer's sub-layers in their own order (the order data
    # flows through a Sequential/Functional model). Keras's
    # `_flatten_layers` reverses sub-layers, which would make the last layer
    # of a nested model come first.
    stack = list(reversed(roots))
    while stack:
        layer, path = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, SparseLayer):
            found.append(layer)
            # Not a tracked attribute: a plain str in the instance dict.
            object.__setattr__(layer, _PATH_ATTRIBUTE, path)
        prefix = f"{path}/" if path else ""
        stack.extend(
            (child, prefix + child.name) for child in reversed(sublayers(layer))
        )
    return found


def layer_tree(model):
    """`(layer, config_saved, parent)` for every layer below `model`.

    Pre-order, in the order of `keras_internals.walk_layers` (each layer
    once, its sub-layers in creation order). `config_saved` tells whether
    loading `model`'s config rebuilds the layer from its own config: it
    does for the layers of a Sequential or Functional graph (nested
    graphs too, as long as the graph itself is rebuilt from config), and
    for the projections of a `SparseMultiHeadAttention` rebuilt so (its
    `build` makes them sparse); any other layer is created by its
    parent's code.
    """
    found, seen = [], {id(model)}
    stack = [(child, True, model) for child in reversed(sublayers(model))]
    while stack:
        layer, parent_saved, parent = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        saved = parent_saved and (
            is_graph_model(parent) or isinstance(parent, SparseOptions)
        )
        found.append((layer, saved, parent))
        stack.extend(
            (child, saved, layer) for child in reversed(sublayers(layer))
        )
    return found


def layer_path(layer):
    """The key of a sparse layer in every per-layer dict of keras_dst
    (allocations, `itop_rate_per_layer`, history, logs).

    The names of its enclosing layers below the model and its own name,
    joined by "/": `"sparse_dense"`, or `"encoder/sparse_dense"` inside a
    nested model `encoder`. Unlike Keras's `layer.path`, which depends on
    where the layer was built (`"sequential/sparse_dense"` in the model
    that built it, `"sparse_dense"` once the model is reloaded), it is the
    same for a saved and reloaded model.

    It is the path in the last model (or sub-model) walked by any
    keras_dst function; a layer never walked has its name. The keys of a
    running engine do not follow it: `SparseUpdater.paths` and GMP's are
    fixed when they are prepared, so a `keras_dst.summary` of a sub-model
    in the middle of training changes no history or log key.
    """
    return layer.__dict__.get(_PATH_ATTRIBUTE, layer.name)


def resolve_layer_map(layers, mapping, arg, paths=None):
    """Maps user keys (layer names or paths) to layer paths.

    A name is accepted when exactly one sparse layer has it; a path always.
    `paths`: the layers' paths (default: `layer_path` of each).
    """
    if mapping is None:
        return None
    if paths is None:
        paths = [layer_path(layer) for layer in layers]
    path_of = {id(x): p for x, p in zip(layers, paths, strict=True)}
    by_path = {path_of[id(layer)]: layer for layer in layers}
    by_name = {}
    for layer in layers:
        by_name.setdefault(layer.name, []).append(layer)
    out = {}
    for key, value in dict(mapping).items():
        if key in by_path:
            out[key] = value
        elif len(by_name.get(key, [])) == 1:
            out[path_of[id(by_name[key][0])]] = value
        elif key in by_name:
            named = [path_of[id(layer)] for layer in by_name[key]]
            raise ValueError(
                f"`{arg}` key {key!r} names several sparse layers: {named}. "
                "Use a layer path instead."
            )
        else:
            raise ValueError(
                f"`{arg}` names {key!r}, which is not a sparse layer of the "
                f"model. Sparse layers: {sorted(by_path)}."
            )
    return out


def require_sparse_layers(model):
    """The model's sparse layers, or a clear error if there are none."""
    layers = sparse_layers(model)
    if not layers:
        raise ValueError(
            f"Model '{getattr(model, 'name', model)}' has no sparse layers. "
            "Build it with `keras_dst.layers` (e.g. "
            "`keras_dst.layers.SparseDense`) or convert it with "
            "`model = keras_dst.sparsify(model)`."
        )
    unbuilt = [layer.name for layer in layers if not layer.built]
    if unbuilt:
        raise ValueError(
            f"Sparse layers {unbuilt} are not built yet. Build the model "
            "first (call it on data, or give it a `keras.Input`)."
        )
    return layers
