"""`run_sparse_layer_test`: the contract every sparse layer must meet.

A user who writes a sparse layer of their own (`SparseLayer` first, then a
Keras layer, and the masked property) runs this one function on it: it
builds the layer and checks, with the public API of Keras and keras_dst
only, everything the DST callbacks rely on. Each failed property raises an
`AssertionError` that names the layer class and the property.
"""

import os
import tempfile

import keras
import numpy as np

from keras_dst.export.strip import strip
from keras_dst.layers import SparseLayer
from keras_dst.layers.sparse_layer import SPARSE_ARGUMENTS
from keras_dst.masks import active_count

# The arguments `SparseLayer` adds to its Keras parent.
# The sparsities whose exact active count is checked besides `sparsity`.
EXTRA_SPARSITIES = (0.0, 0.9)
LEARNING_RATE = 0.5


def run_sparse_layer_test(
    layer_cls,
    init_kwargs,
    input_shape=None,
    input_data=None,
    parent_cls=None,
    sparsity=0.5,
    mask_seed=3,
    rtol=1e-5,
    atol=1e-5,
):
    """Checks that `layer_cls` behaves as a keras_dst sparse layer.

    Builds `layer_cls(**init_kwargs, sparsity=..., mask_seed=...)` on the
    input and checks, in order:

    1. the arguments: `sparsity`, `mask_seed` and `dense_gradient` are kept
       as attributes;
    2. the mask: `kernel_mask` is a non-trainable `uint8` variable of the
       kernel's shape, exactly 0 or 1, and `get_mask()` returns it;
    3. exact counts: `sparsity=s` gives exactly
       `keras_dst.masks.active_count(size, s)` active entries (for `s` =
       `sparsity`, 0.0 and 0.9), `sparsity=None` an all-ones mask, and the
       same `mask_seed` the same mask;
    4. exact zeros: inactive kernel entries are exactly 0.0 after `build`
       and after `set_mask`, which keeps the active values and adds the
       mask to `get_explored()`;
    5. the forward pass: the output equals that of the Keras parent layer
       holding the same weights with the masked kernel;
    6. training: after one `model.fit` step with SGD, the mask is
       unchanged, inactive kernel entries are still exactly 0.0 (their
       gradient is masked), every other weight moved exactly as the Keras
       parent's did, and, with `dense_gradient=True`, `kernel_gradient`
       holds the dense gradient of the loss w.r.t. the masked kernel
       (measured on the parent's own SGD step);
    7. `get_config()` / `from_config()` round trip, with the five sparse
       arguments in the config;
    8. a `.keras` file round trip (in a temporary directory) keeps the
       class, the arguments, the mask, the kernel and the outputs, and
       writes the gradient probe as zeros;
    9. `keras_dst.strip` keeps the outputs and the masked weights.

    Args:
        layer_cls: the sparse layer class, a subclass of
            `keras_dst.layers.SparseLayer` and of a Keras layer. It must be
            registered with `keras.saving.register_keras_serializable`
            for the `.keras` round trip.
        init_kwargs: dict, the constructor's arguments, without
            `sparsity` and `mask_seed` (give those below). May hold
            `dense_gradient`.
        input_shape: the input's shape, batch dimension included; random
            normal `float32` data of that shape is used. Give this or
            `input_data`.
        input_data: a numpy array to call the layer on (e.g. integer ids
            for an embedding), batch dimension first.
        parent_cls: the Keras layer class to compare with. By default, the
            first Keras layer class after `SparseLayer` in `layer_cls`'s
            method resolution order (`keras.layers.Dense` for
            `class SparseDense(SparseLayer, keras.layers.Dense)`).
        sparsity: float in (0, 1), the sparsity of the layer under test.
        mask_seed: int, the seed of its initial mask.
        rtol: relative tolerance of the floating-point comparisons.
        atol: absolute tolerance of the floating-point comparisons.

    Raises:
        AssertionError: naming the first property that does not hold.
        ValueError: if the arguments of this function are invalid.

    Example:

    ```python
    @keras.saving.register_keras_serializable(package="my_package")
    class SparseConv1DTranspose(SparseLayer, keras.layers.Conv1DTranspose):
        kernel = masked_weight_property(keras.layers.Conv1DTranspose, "kernel")

    keras_dst.testing.run_sparse_layer_test(
        SparseConv1DTranspose,
        dict(filters=4, kernel_size=3),
        input_shape=(2, 8, 3),
    )
    ```
    """
    x = _check_arguments(
        layer_cls, init_kwargs, input_shape, input_data, sparsity, mask_seed
    )
    check = _Checker(layer_cls)
    if parent_cls is None:
        parent_cls = _parent_class(layer_cls)
    dense_gradient = init_kwargs.get("dense_gradient", True)

    def make(**sparse_kwargs):
        layer = layer_cls(**init_kwargs, **sparse_kwargs)
        check.builds(layer, x)
        return layer

    # 1-3. Arguments, the mask variable, exact counts, seeds.
    layer = layer_cls(**init_kwargs, sparsity=sparsity, mask_seed=mask_seed)
    block_shape = init_kwargs.get("block_shape")
    expected = (
        sparsity,
        mask_seed,
        dense_gradient,
        None if block_shape is None else tuple(block_shape),
        init_kwargs.get("weight_init", "sparse_scaled"),
    )
    for name, want in zip(SPARSE_ARGUMENTS, expected, strict=True):
        got = getattr(layer, name, "<missing>")
        check.that(
            got == want,
            f"attribute `{name}` is {got!r} after construction, expected "
            f"{want!r}.",
        )
    check.builds(layer, x)
    size = check.mask_variable(layer)
    first_mask = layer.get_mask()
    check.exact_sparsity(layer, active_count(size, sparsity), "after build")
    check.that(
        np.array_equal(
            make(sparsity=sparsity, mask_seed=mask_seed).get_mask(), first_mask
        ),
        f"two layers built with mask_seed={mask_seed} have different masks.",
    )
    for extra in EXTRA_SPARSITIES:
        other = make(sparsity=extra, mask_seed=mask_seed)
        check.exact_sparsity(
            other, active_count(size, extra), f"with sparsity={extra}"
        )
    check.exact_sparsity(make(), size, "with sparsity=None (dense)")

    # 4. `set_mask` on a dense raw kernel.
    rng = np.random.default_rng(mask_seed)
    for variable in _core_weights(layer):
        if _is_float(variable):
            variable.assign(
                rng.normal(size=tuple(variable.shape)).astype(variable.dtype)
            )
    raw = _numpy(layer.kernel_variable)
    new_mask = np.zeros(size, "uint8")
    new_mask[rng.permutation(size)[: active_count(size, sparsity)]] = 1
    new_mask = new_mask.reshape(raw.shape)
    layer.set_mask(new_mask)
    check.that(
        np.array_equal(layer.get_mask(), new_mask),
        "`get_mask()` does not return the mask given to `set_mask`.",
    )
    check.exact_sparsity(layer, int(new_mask.sum()), "after `set_mask`")
    check.that(
        np.array_equal(_numpy(layer.kernel_variable), raw * new_mask),
        "`set_mask` changed active kernel entries (it must only zero the "
        "inactive ones).",
    )
    check.that(
        np.array_equal(layer.get_explored(), first_mask | new_mask),
        "`get_explored()` is not the union of the masks set so far.",
    )

    # 5. The forward pass against the Keras parent.
    plain = _plain_twin(check, layer, parent_cls, x)
    got = _numpy(layer(x))
    check.close(
        got,
        _numpy(plain(x)),
        f"the output differs from `{parent_cls.__name__}`'s with the "
        "masked kernel",
        rtol,
        atol,
    )
    want_trainable = len(plain.trainable_weights) + int(dense_gradient)
    check.that(
        len(layer.trainable_weights) == want_trainable,
        f"{len(layer.trainable_weights)} trainable weights, expected "
        f"{want_trainable} (the parent's"
        + (" plus the `kernel_gradient` probe)." if dense_gradient else ")."),
    )

    # 6. One SGD step against the parent's.
    model, plain_model = _wrap(layer, x), _wrap(plain, x)
    y = rng.normal(size=got.shape).astype("float32")
    mask = layer.get_mask()
    core = _core_weights(layer)
    kernel_index = [id(v) for v in core].index(id(layer.kernel_variable))
    plain_kernel = plain.weights[kernel_index]
    kernel_before = _numpy(plain_kernel)
    for m in (model, plain_model):
        m.compile(keras.optimizers.SGD(LEARNING_RATE), loss="mse")
        m.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    check.that(
        np.array_equal(layer.get_mask(), mask),
        "the mask changed during `fit` (only the DST callbacks change it).",
    )
    check.exact_sparsity(
        layer,
        int(mask.sum()),
        "after one SGD step: the kernel's gradient is not masked (is the "
        "weight replaced by `masked_weight_property`?)",
    )
    for index, (variable, plain_variable) in enumerate(
        zip(core, plain.weights, strict=True)
    ):
        want = _numpy(plain_variable)
        if index == kernel_index:
            want = want * mask
        check.close(
            _numpy(variable),
            want,
            f"weight '{variable.name}' after one SGD step differs from "
            f"`{parent_cls.__name__}`'s",
            rtol,
            atol,
        )
    probe = getattr(layer, "kernel_gradient", "<missing>")
    if not dense_gradient:
        check.that(
            probe is None,
            "with dense_gradient=False `kernel_gradient` must be None. "
            f"Received: {probe!r}.",
        )
    else:
        dense = (kernel_before - _numpy(plain_kernel)) / LEARNING_RATE
        check.close(
            _numpy(probe),
            dense,
            "`kernel_gradient` does not hold the dense gradient "
            "dL/d(kernel * mask) of the last step",
            1e-3,
            1e-4 * max(1.0, float(np.abs(dense).max())),
        )

    # 7. Config round trip.
    config = layer.get_config()
    for name in SPARSE_ARGUMENTS:
        check.that(
            config.get(name, "<missing>") == getattr(layer, name),
            f"get_config()[{name!r}] is {config.get(name, '<missing>')!r}, "
            f"expected {getattr(layer, name)!r}.",
        )
    clone = layer_cls.from_config(config)
    check.that(
        type(clone) is layer_cls and clone.get_config() == config,
        "`from_config(get_config())` does not give back the same config.",
    )
    clone(x)
    check.that(
        np.array_equal(clone.get_mask(), first_mask),
        "a layer made by `from_config` draws another initial mask than "
        "the original (same `mask_seed`).",
    )

    # 8. `.keras` file round trip.
    outputs = _numpy(model(x))
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "sparse_layer_test.keras")
        model.save(path)
        try:
            loaded = keras.saving.load_model(path)
        except Exception as error:
            raise AssertionError(
                f"{check.prefix}a model holding it could not be loaded back "
                f"from a .keras file ({type(error).__name__}, see above). Is "
                "the class registered with "
                "`@keras.saving.register_keras_serializable()`?"
            ) from error
    copy = loaded.get_layer(layer.name)
    check.that(
        type(copy) is layer_cls,
        f"loaded back as {type(copy).__name__}, not {layer_cls.__name__}.",
    )
    for name in SPARSE_ARGUMENTS:
        check.that(
            getattr(copy, name) == getattr(layer, name),
            f"`{name}` is {getattr(copy, name)!r} after a .keras round "
            f"trip, expected {getattr(layer, name)!r}.",
        )
    check.that(
        np.array_equal(copy.get_mask(), mask),
        "the mask is not restored by a .keras round trip.",
    )
    check.that(
        np.array_equal(
            _numpy(copy.kernel_variable), _numpy(layer.kernel_variable)
        ),
        "the kernel is not restored by a .keras round trip.",
    )
    if dense_gradient:
        # A probe without momentum holds only the last step's gradient and
        # is saved as zeros (`SparseLayer.save_own_variables`).
        check.that(
            np.array_equal(
                _numpy(copy.kernel_gradient),
                np.zeros_like(_numpy(layer.kernel_gradient)),
            ),
            "`kernel_gradient` (no momentum) is not saved as zeros by a "
            ".keras round trip.",
        )
    check.close(
        _numpy(loaded(x)),
        outputs,
        "the output differs after a .keras round trip",
        rtol,
        atol,
    )

    # 9. `keras_dst.strip`.
    stripped = strip(model)
    check.close(
        _numpy(stripped(x)),
        outputs,
        "the output differs after `keras_dst.strip`",
        rtol,
        atol,
    )
    masked = [
        _numpy(v) * mask if v is layer.kernel_variable else _numpy(v)
        for v in _core_weights(layer)
    ]
    kept = _core_weights(stripped.get_layer(layer.name))
    check.that(
        len(kept) == len(masked)
        and all(
            np.array_equal(_numpy(a), b)
            for a, b in zip(kept, masked, strict=True)
        ),
        "`keras_dst.strip` does not keep the masked weights.",
    )


class _Checker:
    """Raises `AssertionError`s that name the layer class under test."""

    def __init__(self, layer_cls):
        self.prefix = f"run_sparse_layer_test({layer_cls.__name__}): "

    def that(self, condition, message):
        if not condition:
            raise AssertionError(self.prefix + message)

    def close(self, got, want, what, rtol, atol):
        self.that(
            got.shape == want.shape,
            f"{what}: shape {got.shape} vs {want.shape}.",
        )
        error = np.abs(got.astype("float64") - want.astype("float64"))
        bound = atol + rtol * np.abs(want.astype("float64"))
        self.that(
            bool(np.all(error <= bound)),
            f"{what}: max abs difference {float(error.max()):.3g} "
            f"(atol={atol:.3g}, rtol={rtol:.3g}).",
        )

    def builds(self, layer, x):
        try:
            layer(x)
        except Exception as error:
            raise AssertionError(
                f"{self.prefix}calling it on the input failed "
                f"({type(error).__name__}: {error})"
            ) from error

    def mask_variable(self, layer):
        """Checks the mask variable's kind; returns the kernel's size."""
        mask = getattr(layer, "kernel_mask", None)
        self.that(
            mask is not None,
            "no `kernel_mask` after build. Subclass `SparseLayer` first "
            "(before the Keras layer) and do not override `build` without "
            "calling `super().build(input_shape)`.",
        )
        kernel = layer.kernel_variable
        self.that(
            tuple(mask.shape) == tuple(kernel.shape),
            f"`kernel_mask` has shape {tuple(mask.shape)}, the kernel "
            f"{tuple(kernel.shape)}.",
        )
        self.that(
            keras.backend.standardize_dtype(mask.dtype) == "uint8",
            f"`kernel_mask` has dtype {mask.dtype}, expected uint8.",
        )
        trainable = {id(v) for v in layer.trainable_weights}
        self.that(
            not mask.trainable and id(mask) not in trainable,
            "`kernel_mask` must not be trainable.",
        )
        return int(np.prod(kernel.shape))

    def exact_sparsity(self, layer, expected_active, when):
        mask = layer.get_mask()
        self.that(
            mask.dtype == np.uint8,
            f"`get_mask()` returns dtype {mask.dtype} {when}, expected uint8.",
        )
        self.that(
            np.array_equal(mask, _numpy(layer.kernel_mask)),
            f"`get_mask()` is not the value of `kernel_mask` {when}.",
        )
        self.that(
            bool(np.isin(mask, (0, 1)).all()),
            f"the mask holds values other than 0 and 1 {when}.",
        )
        self.that(
            int(mask.sum()) == expected_active,
            f"{int(mask.sum())} active entries {when}, expected exactly "
            f"{expected_active} of {mask.size}.",
        )
        kernel = _numpy(layer.kernel_variable)
        moved = int(np.count_nonzero(kernel[mask == 0]))
        self.that(
            moved == 0,
            f"{moved} inactive kernel entries are not exactly 0.0 {when}.",
        )


def _check_arguments(
    layer_cls, init_kwargs, input_shape, input_data, sparsity, mask_seed
):
    """Validates the arguments; returns the input data."""
    if not (isinstance(layer_cls, type) and issubclass(layer_cls, SparseLayer)):
        raise ValueError(
            "`layer_cls` must be a subclass of `keras_dst.layers.SparseLayer`"
            f" (listed first in its bases). Received: layer_cls={layer_cls!r}."
        )
    if not isinstance(init_kwargs, dict):
        raise ValueError(
            "`init_kwargs` must be a dict. "
            f"Received: init_kwargs={init_kwargs!r}."
        )
    given = [k for k in ("sparsity", "mask_seed") if k in init_kwargs]
    if given:
        raise ValueError(
            f"`init_kwargs` must not hold {given}: pass `sparsity` and "
            "`mask_seed` as arguments of `run_sparse_layer_test`."
        )
    if isinstance(sparsity, bool) or not (
        isinstance(sparsity, float) and 0.0 < sparsity < 1.0
    ):
        raise ValueError(
            "`sparsity` must be a float in (0, 1). "
            f"Received: sparsity={sparsity!r}."
        )
    if isinstance(mask_seed, bool) or not isinstance(mask_seed, int):
        raise ValueError(
            f"`mask_seed` must be an int. Received: mask_seed={mask_seed!r}."
        )
    if (input_shape is None) == (input_data is None):
        raise ValueError(
            "Give exactly one of `input_shape` and `input_data`. Received: "
            f"input_shape={input_shape!r}, input_data of type "
            f"{type(input_data).__name__}."
        )
    if input_data is not None:
        return np.asarray(input_data)
    rng = np.random.default_rng(0)
    return rng.normal(size=tuple(input_shape)).astype("float32")


def _parent_class(layer_cls):
    """The first Keras layer class after `SparseLayer` in the MRO."""
    for cls in layer_cls.__mro__[1:]:
        if issubclass(cls, keras.layers.Layer) and not issubclass(
            cls, SparseLayer
        ):
            return cls
    raise ValueError(
        f"`{layer_cls.__name__}` has no Keras layer among its bases. "
        "Subclass `SparseLayer` first, then a Keras layer."
    )


def _core_weights(layer):
    """The weights a plain Keras layer also has, in Keras's order."""
    if not isinstance(layer, SparseLayer):
        return list(layer.weights)
    extras = {id(v) for v in layer.sparse_state_variables}
    return [v for v in layer.weights if id(v) not in extras]


def _plain_twin(check, layer, parent_cls, x):
    """`parent_cls` built on `x`, holding `layer`'s weights, kernel masked."""
    config = {
        k: v for k, v in layer.get_config().items() if k not in SPARSE_ARGUMENTS
    }
    try:
        plain = parent_cls.from_config(config)
        plain(x)
    except Exception as error:
        raise AssertionError(
            f"{check.prefix}`{parent_cls.__name__}.from_config` on its config "
            "(less the sparse arguments) failed or does not take the input "
            f"({type(error).__name__}, see above). Is `{parent_cls.__name__}`"
            " its Keras parent?"
        ) from error
    core = _core_weights(layer)
    check.that(
        [(v.name, tuple(v.shape)) for v in core]
        == [(v.name, tuple(v.shape)) for v in plain.weights],
        "its weights, less mask and probe, are not those of "
        f"`{parent_cls.__name__}`: {[v.name for v in core]} vs "
        f"{[v.name for v in plain.weights]}.",
    )
    mask = layer.get_mask()
    for variable, target in zip(core, plain.weights, strict=True):
        value = _numpy(variable)
        if variable is layer.kernel_variable:
            value = value * mask
        target.assign(value)
    return plain


def _wrap(layer, x):
    """A functional model around one built layer."""
    inputs = keras.Input(x.shape[1:], dtype=str(x.dtype))
    return keras.Model(inputs, layer(inputs))


def _is_float(variable):
    return "float" in keras.backend.standardize_dtype(variable.dtype)


def _numpy(value):
    if hasattr(value, "value") and isinstance(value, keras.Variable):
        value = value.value
    return np.array(keras.ops.convert_to_numpy(value))
