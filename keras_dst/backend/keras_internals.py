"""Every private Keras attribute keras_dst relies on, in one place.

Keras has no public API for a few things sparse training needs: a layer's
direct sub-layers in creation order, where a layer keeps the variable
behind its `kernel` property, whether a model is Functional, which
optimizer variables shadow a model variable, and the learning rate an
optimizer reads inside its update step. Each function below wraps one such
internal, says why no public API serves, and raises a `RuntimeError`
naming the internal if Keras changes it (instead of an `AttributeError`
deep inside training, or worse, a silently wrong answer).
`tests/keras_internals_test.py` checks each one against the installed
Keras, so an upgrade that changes any of them fails there first, loudly.

Nothing else in keras_dst touches a private Keras name.
"""

import collections.abc
import contextlib

import keras


def _changed(what, needs):
    return RuntimeError(
        f"Keras {keras.__version__} changed {what}: keras_dst needs {needs}. "
        "Please report this at the keras_dst issue tracker, with your Keras "
        "version."
    )


# -- layers ----------------------------------------------------------------


# Keras's own references to layers that are not sub-layers (Sequential's
# internal Functional graph).
_NOT_SUBLAYERS = ("_functional",)


def sublayers(layer):
    """The direct sub-layers of `layer`, in the order they were created.

    For a Sequential or Functional model that is the order data flows
    through it (an `InputLayer` first); for a layer that creates its
    sub-layers in `__init__` or `build`, the order of those assignments.

    Why private: `Layer._layers` is the only record of a plain layer's
    sub-layers (`Model.layers` exists on models only, and Sequential's
    drops the `InputLayer`); Keras's own walk `_flatten_layers` is private
    too and reverses nested sub-layers.

    Args:
        layer: a `keras.layers.Layer` (models included).

    Returns:
        A new list of layers.

    Example:

    ```python
    sublayers(keras.Sequential([keras.layers.Dense(2)]))  # [Dense]
    ```
    """
    try:
        children = layer._layers
    except AttributeError:
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(
                "`layer` must be a keras.layers.Layer. Received: "
                f"{type(layer).__name__}."
            ) from None
        raise _changed(
            "`Layer._layers`",
            "each layer's direct sub-layers, in creation order, to find "
            "the sparse layers of a model",
        ) from None
    children = list(children)
    if keras.backend.backend() == "torch":
        # A layer is a `torch.nn.Module` there, and Keras does not track
        # every sub-layer that TensorFlow and JAX track in `_layers` (a
        # keras-hub task's preprocessor, assigned through a property, is
        # only an instance attribute): add the Keras layers held in the
        # module's `_modules` and instance attributes.
        known = {id(child) for child in children}
        held = list(getattr(layer, "_modules", {}).items())
        held += list(vars(layer).items())
        for name, value in held:
            if name in _NOT_SUBLAYERS:
                continue
            if isinstance(value, keras.layers.Layer) and id(value) not in known:
                known.add(id(value))
                children.append(value)
    return children


def walk_layers(root):
    """Every layer nested in `root`, pre-order, each once, `root` excluded.

    Sub-layers come in `sublayers` order, so a nested model's layers come
    in the order data flows through them (unlike Keras's private
    `_flatten_layers`, which reverses them).

    Args:
        root: a layer or model.

    Returns:
        A list of layers.
    """
    found, seen = [], {id(root)}
    stack = list(reversed(sublayers(root)))
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        found.append(layer)
        stack.extend(reversed(sublayers(layer)))
    return found


@contextlib.contextmanager
def unlocked(layer):
    """Lets a built `layer` take new variables inside the `with` block.

    Keras locks a layer's state when `build` ends ("You cannot add new
    elements of state ... to a layer that is already built"). Turning a
    built layer sparse in place adds its mask, explored union and probe
    afterwards, as Keras's own `Dense.enable_lora` and `quantize` do: they
    unlock the layer's tracker, add the variables and lock it again.

    Why private: Keras has no public way to add state to a built layer;
    `Layer._tracker` is what `enable_lora` and the `quantize` wrapper
    unlock.

    Args:
        layer: a `keras.layers.Layer`.
    """
    tracker = getattr(layer, "_tracker", None)
    if tracker is None or not all(
        hasattr(tracker, name) for name in ("lock", "unlock", "locked")
    ):
        raise _changed(
            "`Layer._tracker`",
            "to unlock a built layer's state and add the sparse variables "
            "to it, as `Dense.enable_lora` does",
        )
    was_locked = tracker.locked
    tracker.unlock()
    try:
        yield layer
    finally:
        if was_locked:
            tracker.lock()


# Methods Keras wraps per instance in `Layer.__new__` (the wrapper calls
# the method of the class the layer had when it was created).
_INSTANCE_WRAPPED = ("quantize",)


def change_class(layer, cls):
    """Makes `layer` an instance of `cls`, a subclass of its own class's
    Keras parent (e.g. `Dense` -> `SparseDense`), keeping its state.

    Python's `__class__` assignment; the layer's variables, sub-layers
    and call history stay as they are. Keras's `Layer.__new__` binds a
    wrapper of `quantize` to each instance, calling the method of the
    class the layer was created with: the instance attribute is dropped
    so that `cls`'s method applies (a sparse layer refuses quantization
    with a clear error). `build` keeps its wrapper: `layer` is built.

    Why private: the per-instance wrappers of `Layer.__new__` are Keras
    internals.

    Args:
        layer: a built `keras.layers.Layer`.
        cls: the new class.

    Returns:
        A function without arguments that undoes the change.
    """
    if not isinstance(layer, keras.layers.Layer):
        raise TypeError(
            "`layer` must be a keras.layers.Layer. Received: "
            f"{type(layer).__name__}."
        )
    original = type(layer)
    wrappers = {}
    for name in _INSTANCE_WRAPPED:
        if name not in vars(layer):
            raise _changed(
                f"the per-instance `{name}` wrapper of `Layer.__new__`",
                f"to drop it so the sparse class's `{name}` applies",
            )
        wrappers[name] = vars(layer)[name]
    layer.__class__ = cls
    for name in wrappers:
        object.__delattr__(layer, name)

    def undo():
        layer.__class__ = original
        for name, wrapper in wrappers.items():
            object.__setattr__(layer, name, wrapper)

    return undo


def untrack_variable(layer, variable):
    """Removes `variable` from `layer`'s weights (undoing `add_weight`).

    Why private: Keras has no public way to drop a layer's variable;
    `Layer._untrack_variable` is what Keras uses itself.

    Args:
        layer: a `keras.layers.Layer`.
        variable: one of its own variables.
    """
    untrack = getattr(layer, "_untrack_variable", None)
    if not callable(untrack):
        raise _changed(
            "`Layer._untrack_variable`",
            "to drop the variables of a conversion that failed half-way",
        )
    untrack(variable)


def is_graph_model(layer):
    """Whether `layer` is a model whose config holds its layers' configs.

    True for `keras.Sequential` and Functional models (nested ones too)
    whose `get_config` and `from_config` are Keras's own: loading one
    rebuilds each of its layers from the layer's own config, so a layer
    turned sparse in place there comes back sparse. False for a
    subclassed model, a plain layer, and a Functional subclass that
    writes its own config (keras-hub's backbones save their constructor
    arguments and rebuild their layers in `__init__`).

    Why private: Keras exports neither the Functional class nor a test
    of whether a class kept its config methods.

    Args:
        layer: any object.

    Returns:
        A bool.
    """
    if not is_functional(layer) and not isinstance(layer, keras.Sequential):
        return False
    base = keras.Sequential if isinstance(layer, keras.Sequential) else None
    if base is None:
        from keras.src.models.functional import Functional

        base = Functional
    cls = type(layer)
    return (
        cls.get_config is base.get_config
        and cls.from_config.__func__ is base.from_config.__func__
    )


def is_functional(model):
    """Whether `model` is a Functional model (`keras.Model(inputs, ...)`).

    Why private: `keras.Model(inputs, outputs)` returns an instance of the
    private class `keras.src.models.functional.Functional`, for which Keras
    exports neither the class nor a predicate. Sequential models are not
    Functional ones.

    Args:
        model: any object.

    Returns:
        A bool.
    """
    try:
        from keras.src.models.functional import Functional
    except ImportError:
        raise _changed(
            "`keras.src.models.functional.Functional`",
            "the class of Functional models, to accept them in "
            "`keras_dst.sparsify`",
        ) from None
    return isinstance(model, Functional)


def raw_weight_attribute(name):
    """Where Keras's `Dense`, `EinsumDense`, `Conv*` and `Embedding` keep
    the variable behind their public `kernel`/`embeddings` property.

    Why private: sparse layers replace that property (to read the weight
    with a masked gradient) and need the variable itself; Keras reads it
    as `self._<name>` inside the property, so that is where it lives.
    """
    return "_" + name


def raw_weight(layer, name):
    """The variable `layer` keeps behind its `name` property, or None."""
    return layer.__dict__.get(raw_weight_attribute(name))


def store_raw_weight(layer, name, value):
    """Stores `value` where `raw_weight` finds it (untracked: Keras's
    `__setattr__` already tracked it under the public name)."""
    object.__setattr__(layer, raw_weight_attribute(name), value)


def own_raw_weight(layer, name, variable):
    """Makes `layer` own `variable` (tracked) as its raw `name` weight."""
    setattr(layer, raw_weight_attribute(name), variable)


def own_variables(layer):
    """The variables `layer.save_own_variables` writes and
    `load_own_variables` reads, in their order (the store's keys "0",
    "1", ... are positions in this list).

    Why private: Keras numbers them by `Layer._trainable_variables +
    Layer._non_trainable_variables` (a layer's own variables, trainable
    first, whatever `layer.trainable` says); the public `weights` lists
    depend on `trainable` and include sub-layers'.
    """
    try:
        return list(layer._trainable_variables) + list(
            layer._non_trainable_variables
        )
    except AttributeError:
        raise _changed(
            "`Layer._trainable_variables` / `_non_trainable_variables`",
            "a layer's own variables in the order its save store numbers them",
        ) from None


# -- optimizers ------------------------------------------------------------


def base_optimizer(optimizer):
    """The optimizer that owns the slots and the learning rate.

    Unwraps `keras.mixed_precision.LossScaleOptimizer` (public
    `inner_optimizer`); not an internal itself, but what the functions
    below apply to.
    """
    while hasattr(optimizer, "inner_optimizer"):
        optimizer = optimizer.inner_optimizer
    return optimizer


def built_variables(optimizer):
    """The model variables `optimizer` was built with, in build order.

    Why private: only `Optimizer._trainable_variables` records them, and
    per-variable slots are aligned with this list; `optimizer.variables`
    holds the optimizer's own variables instead.

    Args:
        optimizer: a built `keras.optimizers.Optimizer` (a
            `LossScaleOptimizer` is unwrapped).

    Returns:
        A new list of `keras.Variable`s (empty if not built).
    """
    opt = base_optimizer(optimizer)
    if not getattr(opt, "built", False):
        return []
    built = getattr(opt, "_trainable_variables", None)
    if not isinstance(built, collections.abc.Sequence):
        raise _changed(
            "`Optimizer._trainable_variables`",
            "the list of variables an optimizer was built with, which its "
            "slot lists are aligned with, to zero the slots of inactive "
            "weights",
        )
    return list(built)


def slot_lists(optimizer):
    """The optimizer's per-variable lists, aligned with `built_variables`.

    Keras optimizers keep each kind of slot in an attribute holding one
    entry per built variable (`SGD.momentums`, `Adam._momentums`,
    `Adam._velocities`, `Adafactor._r`, EMA averages, gradient
    accumulators, ...; entries are `None` for variables without that slot,
    e.g. `overwrite_with_gradient` ones). `add_optimizer_variables` builds
    them so, and so does a custom optimizer that appends
    `add_variable_from_reference(variable)` for each variable of `build`.

    Why private: the attribute names are each optimizer's private choice
    and Keras has no public map from a model variable to its slots. This
    finds every list of the built length whose entries are all
    `keras.Variable`s or `None`. An entry's shape may differ from its
    variable's (Adafactor's factored `_r`, `_c`).

    Args:
        optimizer: an optimizer (a `LossScaleOptimizer` is unwrapped).

    Returns:
        A list of lists, each as long as `built_variables(optimizer)`;
        empty if the optimizer is not built.
    """
    opt = base_optimizer(optimizer)
    built = built_variables(opt)
    if not built:
        return []
    found = []
    for value in vars(opt).values():
        if (
            isinstance(value, collections.abc.Sequence)
            and not isinstance(value, str)
            and len(value) == len(built)
            and any(isinstance(v, keras.Variable) for v in value)
            and all(v is None or isinstance(v, keras.Variable) for v in value)
            and not all(a is b for a, b in zip(value, built, strict=True))
        ):
            found.append(list(value))
    return found


_RATE_METHOD = "_get_current_learning_rate"


def optimizer_learning_rate(optimizer):
    """The learning rate object the optimizer owns.

    A `keras.Variable` for a float rate, else the `LearningRateSchedule`
    or callable it was given.

    Why private: the public `optimizer.learning_rate` is the current
    value (a schedule evaluated at the current step), not the schedule;
    only `Optimizer._learning_rate` holds the object itself.

    Args:
        optimizer: a `keras.optimizers.Optimizer` (a `LossScaleOptimizer`
            is unwrapped).

    Returns:
        The variable, schedule or callable.

    Example:

    ```python
    optimizer_learning_rate(keras.optimizers.SGD(0.1))  # a keras.Variable
    ```
    """
    opt = base_optimizer(optimizer)
    try:
        return opt._learning_rate
    except AttributeError:
        raise _changed(
            "`Optimizer._learning_rate`",
            "the learning rate (variable or schedule) the optimizer owns, "
            "to schedule around it",
        ) from None


def _rate_method(opt):
    method = getattr(type(opt), _RATE_METHOD, None)
    if not callable(method):
        raise _changed(
            f"`Optimizer.{_RATE_METHOD}`",
            "the method through which an optimizer's update step reads its "
            "learning rate, to replace the rate for a while without "
            "changing the optimizer's variables or config",
        )
    return method


def override_learning_rate(optimizer, fn):
    """Makes the optimizer read its current rate from `fn()`.

    The optimizer keeps its own rate (variable or schedule), its variables
    and its config, so checkpoints and `.keras` files still hold the
    user's optimizer. Only the rate its update step reads is replaced, on
    this instance. Retrace the train step afterwards
    (`model.make_train_function(force=True)`): a compiled step keeps
    reading what it read when traced.

    Why private: the public setter `optimizer.learning_rate = fn` replaces
    the rate itself: it drops the rate variable from
    `optimizer.variables` (checkpoints no longer match a fresh optimizer)
    and changes `get_config()`. Keras's update steps read the rate through
    `Optimizer._get_current_learning_rate`; an instance attribute of that
    name shadows it.

    Args:
        optimizer: a `keras.optimizers.Optimizer` (a `LossScaleOptimizer`
            is unwrapped).
        fn: a callable without arguments returning the rate as a scalar
            tensor, called inside the train step at every step (so it may
            read e.g. `optimizer.iterations`).

    Example:

    ```python
    override_learning_rate(model.optimizer, lambda: keras.ops.array(0.01))
    model.make_train_function(force=True)
    ```
    """
    if not callable(fn):
        raise TypeError(
            f"`fn` must be a callable without arguments. Received: {fn!r}."
        )
    opt = base_optimizer(optimizer)
    _rate_method(opt)
    setattr(opt, _RATE_METHOD, fn)


def restore_learning_rate(optimizer):
    """Undoes `override_learning_rate`.

    Args:
        optimizer: the optimizer given to `override_learning_rate`.

    Returns:
        True if an override was removed, False if there was none.
    """
    opt = base_optimizer(optimizer)
    _rate_method(opt)
    if _RATE_METHOD not in vars(opt):
        return False
    delattr(opt, _RATE_METHOD)
    return True
