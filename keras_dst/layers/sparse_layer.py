"""The one mechanism shared by every sparse layer: a mask on one weight.

A sparse layer is its Keras parent plus three things:

* ``kernel_mask``: a non-trainable ``uint8`` variable of the kernel's shape,
  exactly 0 or 1. The layer computes with ``kernel * kernel_mask``: every
  write of a mask stores inactive kernel entries as exact zeros, and the
  backward pass masks the kernel's gradient (with the optimizer slots of
  inactive entries at zero, they stay zero), so the forward pass reads the
  kernel as it is, without a multiply.
* ``kernel_gradient`` (optional, on by default): a zero-initialised "gradient
  probe" created with ``overwrite_with_gradient=True``. Its forward
  contribution is exactly zero, and a custom gradient reports
  ``dL/d(kernel * mask)`` for it, the DENSE gradient of the loss with respect
  to the effective kernel, so Keras overwrites it with that gradient at every
  step of ``fit`` on every backend. Gradient-based growth (RigL) reads it at
  update steps. With ``kernel_gradient_momentum > 0`` the probe holds an
  exponential moving average of that gradient instead (SNFS).
* ``kernel_explored``: a non-trainable ``uint8`` variable, the union of all
  masks the layer has had since its masks were initialised (R_s, the
  in-time over-parameterization rate, is its mean), packed 8 entries per
  byte along one kernel axis (`keras_dst.masks.packed`): only updates,
  counts and reports read it, never the train step. `get_explored()`
  returns it unpacked. A variable, so it is saved and restored with the
  model like the mask; files saved before it was packed (one byte per
  entry) load too.
* a property that returns the masked weight wherever the parent layer reads
  it (``kernel`` or ``embeddings``), so the parent's ``call`` is untouched.

Subclasses only name the parent and the attribute; see ``SparseDense``.
"""

import keras
import numpy as np
from keras import ops

from keras_dst.backend import VariableState
from keras_dst.backend import check_distribution
from keras_dst.backend import to_numpy
from keras_dst.backend.keras_internals import own_variables
from keras_dst.backend.keras_internals import raw_weight
from keras_dst.backend.keras_internals import store_raw_weight
from keras_dst.layers.layouts import kernel_shards
from keras_dst.layers.layouts import layouts_like
from keras_dst.layers.sparse_state import masked_values
from keras_dst.layers.sparse_state import write_sparse_state
from keras_dst.masks.blocks import check_block_shape
from keras_dst.masks.blocks import is_block_mask
from keras_dst.masks.initial_masks import WEIGHT_INITS
from keras_dst.masks.initial_masks import random_mask
from keras_dst.masks.initial_masks import sparse_init_scale
from keras_dst.masks.packed import convert_stored
from keras_dst.masks.packed import pack_axis
from keras_dst.masks.packed import packed_shape
from keras_dst.masks.packed import unpack_numpy
from keras_dst.optimizers.slots import slot_variables
from keras_dst.utils.checks import check_choice
from keras_dst.utils.checks import check_optional_int
from keras_dst.utils.checks import validate_sparsity

MASK_DTYPE = "uint8"
# The sparse state variables: kernel-shaped ones take the kernel's layout
# under `keras.distribution`, scalars are replicated.
_KERNEL_SHAPED = ("kernel_mask", "kernel_explored", "kernel_gradient")
_SCALARS = ("kernel_gradient_momentum",)
# The arguments every sparse layer adds to its Keras parent's (config keys).
SPARSE_ARGUMENTS = (
    "sparsity",
    "mask_seed",
    "dense_gradient",
    "block_shape",
    "weight_init",
)


def scale_kernel(layer, scale):
    """Multiplies a sparse layer's raw kernel by `scale` (1.0: untouched).

    How `weight_init="sparse_scaled"` starts a random mask's active
    weights, in a layer's own build and in `initialize_masks`.
    """
    if scale != 1.0:
        kernel = layer.kernel_variable
        kernel.assign(ops.multiply(kernel.value, ops.cast(scale, kernel.dtype)))


def _read(variable):
    """The current value as a tensor (TF would otherwise pass the variable,
    which `tf.custom_gradient` rejects in eager mode)."""
    value = ops.convert_to_tensor(variable)
    if keras.backend.backend() == "tensorflow":
        value = ops.copy(value)  # tf.identity: a read, not a data copy
    return value


def _masked_gradient(kernel, mask):
    """Identity on `kernel`; its gradient is masked: dL/dw * mask."""

    @ops.custom_gradient
    def masked(kernel, mask):
        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            return ops.multiply(upstream, ops.cast(mask, upstream.dtype)), None

        return kernel, grad

    return masked(kernel, mask)


def _masked_gradient_with_probe(kernel, mask, probe, momentum):
    """Identity on `kernel`; masked gradient, and the probe's gradient is
    the dense dL/d(kernel * mask).

    Keras overwrites `overwrite_with_gradient` variables with their
    gradient, so after each step the probe holds
    `momentum * probe + (1 - momentum) * dL/d(kernel * mask)`.
    """

    @ops.custom_gradient
    def probed(kernel, mask, probe, momentum):
        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            dense = ops.cast(upstream, probe.dtype)
            probe_grad = momentum * probe + (1.0 - momentum) * dense
            kernel_grad = ops.multiply(upstream, ops.cast(mask, upstream.dtype))
            return kernel_grad, None, probe_grad, ops.zeros_like(momentum)

        return kernel, grad

    return probed(kernel, mask, probe, momentum)


def masked_weight_property(parent_cls, name):
    """Builds the property that replaces ``parent_cls.<name>``.

    The raw variable lives where Keras keeps it for ``Dense``, ``Conv*``
    and ``Embedding`` (``keras_internals.raw_weight``); for layers that
    assign ``self.kernel = ...`` the setter below stores it there.
    """
    parent = getattr(parent_cls, name, None)

    def fget(self):
        if isinstance(parent, property):
            value = parent.fget(self)
        else:
            value = raw_weight(self, name)
            if value is None:  # AttributeError, as TF's tracking expects.
                raise AttributeError(f"`{name}` is not created yet.")
        mask = self.__dict__.get("kernel_mask")
        if mask is None:  # still building
            return value
        # Inactive entries are stored as exact zeros (every write of a mask
        # zeroes them, and a masked gradient with zeroed optimizer slots
        # keeps them there), so the forward pass reads the kernel as it is
        # and only the backward pass applies the mask.
        value = ops.convert_to_tensor(value)
        probe = self.__dict__.get("kernel_gradient")
        if probe is None:
            return _masked_gradient(value, mask.value)
        probe_value = _read(probe)
        momentum = ops.cast(
            _read(self.kernel_gradient_momentum), probe_value.dtype
        )
        return _masked_gradient_with_probe(
            value, mask.value, probe_value, momentum
        )

    def fset(self, value):
        # Layer.__setattr__ already tracked `value`; only store it.
        store_raw_weight(self, name, value)

    return property(
        fget,
        fset,
        doc=f"The masked `{name}`: the raw weight, exactly 0 where the mask "
        "is 0, with a masked gradient.",
    )


# The five arguments every sparse layer adds, documented once; a layer's
# docstring says `{sparse_arguments}` where they belong in its Args.
SPARSE_ARGUMENTS_DOC = """\
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
        block_shape: `None` (default: any entry can be active on its own)
            or a tuple with one entry per kernel axis, e.g. `(4, 1)` on a
            Dense kernel: every mask of the layer is then made of whole
            blocks (4 consecutive input rows of one output column), which
            LiteRT runs as block-sparse (see `keras_dst.masks.blocks`).
            Initial masks, every DST update, GMP, Sup-tickets and
            `set_mask` keep it; counts are whole blocks.
        weight_init: `"sparse_scaled"` (default) or `"unscaled"`: with a
            `sparsity`, whether the initial random mask's active weights
            are scaled by `1 / sqrt(density)` to the variance of their
            active fan-in (see `keras_dst.masks.sparse_init_scale`).
"""


def document_sparse_arguments(cls):
    """Class decorator: puts `SPARSE_ARGUMENTS_DOC` in `cls`'s docstring
    where it says `{sparse_arguments}` (a line of its own in Args)."""
    marker = "        {sparse_arguments}\n"
    if cls.__doc__ is not None and marker in cls.__doc__:
        cls.__doc__ = cls.__doc__.replace(marker, SPARSE_ARGUMENTS_DOC)
    return cls


def check_sparse_options(
    sparsity=None,
    mask_seed=None,
    dense_gradient=True,
    block_shape=None,
    weight_init="sparse_scaled",
):
    """The sparse arguments checked, as a dict in `SPARSE_ARGUMENTS` order.

    Raises:
        ValueError, TypeError: naming the argument and what it accepts.
    """
    check_choice(weight_init, WEIGHT_INITS, "weight_init")
    sparsity = validate_sparsity(sparsity)
    block_shape = check_block_shape(block_shape)
    mask_seed = check_optional_int(mask_seed, "mask_seed")
    if not isinstance(dense_gradient, bool):
        raise TypeError(
            "`dense_gradient` must be a bool. "
            f"Received: dense_gradient={dense_gradient!r}."
        )
    return {
        "sparsity": sparsity,
        "mask_seed": mask_seed,
        "dense_gradient": dense_gradient,
        "block_shape": block_shape,
        "weight_init": weight_init,
    }


@document_sparse_arguments
class SparseOptions:
    """The five arguments every sparse layer takes: checked, kept, saved.

    A cooperative mixin, listed before the Keras layer in the bases. It
    takes ``sparsity``, ``mask_seed``, ``dense_gradient``, ``block_shape``
    and ``weight_init`` out of the constructor's keyword arguments,
    checks them, keeps them as attributes of the same names and adds them
    to ``get_config()`` (so saved configs and ``.keras`` files carry them).
    ``SparseLayer`` builds on it;
    ``SparseMultiHeadAttention``, whose masks live on its sub-layers, uses
    it alone.

    Args:
        {sparse_arguments}
        *args, **kwargs: the Keras layer's own arguments.
    """

    def __init__(
        self,
        *args,
        sparsity=None,
        mask_seed=None,
        dense_gradient=True,
        block_shape=None,
        weight_init="sparse_scaled",
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self._set_sparse_options(
            sparsity=sparsity,
            mask_seed=mask_seed,
            dense_gradient=dense_gradient,
            block_shape=block_shape,
            weight_init=weight_init,
        )

    def _set_sparse_options(self, **options):
        """Checks the arguments above and keeps them as attributes (also
        used when `sparsify` turns a built Keras layer sparse in place)."""
        for name, value in check_sparse_options(**options).items():
            setattr(self, name, value)

    @property
    def sparse_options(self):
        """The sparse arguments as a dict (`SPARSE_ARGUMENTS` order)."""
        return {name: getattr(self, name) for name in SPARSE_ARGUMENTS}

    def get_config(self):
        return {**super().get_config(), **self.sparse_options}


class SparseLayer(SparseOptions):
    """Mixin that gives a Keras layer a mask on its main weight.

    Not for direct use: subclass it first, then the Keras layer, and replace
    the weight the parent computes with by the masked property (see the
    example). The mixin supplies ``__init__`` (the arguments of
    ``SparseOptions``), ``build`` (the parent's, then the mask and probe)
    and ``get_config``. Set ``_sparse_weight_name`` when the weight is not
    ``"kernel"`` (e.g. ``"embeddings"``).
    ``keras_dst.testing.run_sparse_layer_test`` checks a new layer.

    Public attributes on every sparse layer:

    * ``kernel_variable``: the raw weight variable (zeros where masked).
    * ``kernel_mask``: the 0/1 ``uint8`` mask variable.
    * ``kernel_gradient``: the gradient probe variable, or ``None``.
    * ``kernel_explored``: the union of all masks so far (``uint8``,
      packed 8 entries per byte; ``get_explored()`` unpacks it).
    * ``sparsity``, ``mask_seed``, ``dense_gradient``, ``block_shape``,
      ``weight_init``: the arguments.

    Example:

    ```python
    @keras.saving.register_keras_serializable(package="my_package")
    class SparseConv1DTranspose(SparseLayer, keras.layers.Conv1DTranspose):
        kernel = masked_weight_property(keras.layers.Conv1DTranspose, "kernel")
    ```
    """

    _sparse_weight_name = "kernel"

    def build(self, input_shape):
        # Named `input_shape` like the parent's: Keras records build
        # arguments by name (`get_build_config`) for saved models.
        super().build(input_shape)
        self._build_sparse()

    @property
    def kernel_variable(self):
        """The raw (unmasked) weight variable."""
        name = self._sparse_weight_name
        variable = raw_weight(self, name)
        if variable is None:
            raise ValueError(
                f"Sparse layer '{self.name}' has no raw `{name}` variable: "
                f"it is not built yet, or its class does not replace `{name}`"
                f" with `masked_weight_property(<Keras parent>, '{name}')`."
            )
        return variable

    def _build_sparse(self, draw=True):
        """Creates the mask, union and probe; call at the end of ``build``.

        With ``draw`` and a ``sparsity``, also draws the initial random
        mask (`sparsify` turning a built layer sparse passes False: the
        model-wide allocation sets the masks afterwards).
        """
        check_distribution()  # TF multi-worker: a clear error, not a hang
        kernel = self.kernel_variable
        shape = tuple(kernel.shape)
        try:
            check_block_shape(self.block_shape, shape)
        except ValueError as error:
            raise ValueError(f"Sparse layer '{self.name}': {error}") from None
        # The union packed along an axis its layout does not split.
        union_shape = packed_shape(
            shape, pack_axis(shape, kernel_shards(kernel))
        )
        with layouts_like(kernel, _KERNEL_SHAPED, _SCALARS):
            mask = self.add_weight(
                name="kernel_mask",
                shape=shape,
                initializer="ones",
                trainable=False,
                dtype=MASK_DTYPE,
                autocast=False,
            )
            explored = self.add_weight(
                name="kernel_explored",
                shape=union_shape,
                initializer="zeros",
                trainable=False,
                dtype=MASK_DTYPE,
                autocast=False,
            )
            if self.dense_gradient:
                probe = self.add_weight(
                    name="kernel_gradient",
                    shape=shape,
                    initializer="zeros",
                    trainable=True,
                    dtype=kernel.dtype,
                    autocast=False,
                )
                probe.overwrite_with_gradient = True
                momentum = self.add_weight(
                    name="kernel_gradient_momentum",
                    shape=(),
                    initializer="zeros",
                    trainable=False,
                    dtype=kernel.dtype,
                    autocast=False,
                )
        # Assigned last: the masked property switches on when it exists.
        self.kernel_gradient = probe if self.dense_gradient else None
        if self.dense_gradient:
            self.kernel_gradient_momentum = momentum
        self.kernel_explored = explored
        self.kernel_mask = mask
        if draw and self.sparsity is not None:
            mask = random_mask(
                shape, self.sparsity, self.mask_seed, self.block_shape
            )
            if self.weight_init == "sparse_scaled":
                scale_kernel(self, sparse_init_scale(mask))
            self.set_mask(mask, reset_explored=True)

    def set_mask(self, mask, reset_explored=False, optimizer=None):
        """Sets the mask and zeroes the kernel where the mask is 0.

        The mask is added to ``kernel_explored`` (the union of masks so
        far), or replaces it if ``reset_explored`` (a new run's first mask).

        Pass the model's ``optimizer`` when it already has state (e.g.
        pruning during training): its slots (momentum, Adam moments, ...)
        are zeroed where the mask is 0. Without it, a later step can move
        a just-masked weight off zero through its leftover momentum.

        Args:
            mask: array of the kernel's shape with values in {0, 1}.
            reset_explored: restart the explored union from this mask.
            optimizer: `None` or the optimizer whose slots to reset.
        """
        mask = np.asarray(mask)
        kernel = self.kernel_variable
        shape = tuple(kernel.shape)
        if mask.shape != shape:
            raise ValueError(
                f"`mask` must have the kernel's shape {shape} for layer "
                f"'{self.name}'. Received: mask.shape={mask.shape}."
            )
        if not np.isin(mask, (0, 1)).all():
            raise ValueError(
                f"`mask` must contain only 0 and 1 (layer '{self.name}')."
            )
        if not is_block_mask(mask, self.block_shape):
            raise ValueError(
                f"`mask` must be made of whole {self.block_shape} blocks "
                f"for layer '{self.name}' (its `block_shape`): each block "
                "all 0 or all 1."
            )
        mask = ops.convert_to_tensor(mask.astype(bool))
        slots = [] if optimizer is None else slot_variables(optimizer, kernel)
        state = VariableState()
        values = masked_values(
            mask,
            mask,
            state.read(kernel),
            [state.read(slot) for slot in slots],
            state.read(self.kernel_explored),
            reset_explored=reset_explored,
        )
        write_sparse_state(state, self, slots, values)

    def get_mask(self):
        """Returns the mask as a numpy ``uint8`` array.

        Under JAX multi-process training a mask sharded over processes is
        gathered from all of them: call it in every process.
        """
        return to_numpy(self.kernel_mask)

    def get_explored(self):
        """The union of all masks so far, as a numpy ``uint8`` 0/1 array of
        the kernel's shape (``kernel_explored`` unpacked; see `get_mask`
        for multi-process training)."""
        return unpack_numpy(
            to_numpy(self.kernel_explored), self.kernel_variable.shape
        )

    @property
    def sparse_state_variables(self):
        """The variables of the sparse mechanism (not the layer's weights):
        mask, explored union and, if present, the gradient probe."""
        state = [self.kernel_mask, self.kernel_explored]
        if self.kernel_gradient is not None:
            state += [self.kernel_gradient, self.kernel_gradient_momentum]
        return state

    # Keras's Dense/Conv/Embedding save only their own named weights; save
    # and load every variable of the layer (mask and probe included).
    def save_own_variables(self, store):
        """Saves every variable of the layer, the gradient probe as zeros.

        Without momentum the probe holds the last step's dense gradient:
        as much incompressible data as a dense kernel, and no state, since
        the next train step overwrites it before any update reads it. So
        it is written as zeros (which compress to almost nothing, see
        `keras_dst.save_model`) and resuming stays exact. Two cases keep
        it: with `kernel_gradient_momentum > 0` (SNFS) it holds a moving
        average that the next steps build on; and between the last train
        step before a gradient-based update and that update (the update
        runs as its step begins and reads the previous step's gradient),
        the callback marks the probe live (`mark_probes_live`), so a
        checkpoint taken at that epoch end holds what the update reads.
        """
        probe = self.kernel_gradient
        live = self.__dict__.get("_probe_live", False)
        if probe is not None and not live and not _has_momentum(self):
            store = _ZeroedOnSave(store, probe)
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        # The union as this layer stores it, whatever the file holds (one
        # byte per entry before unions were packed, or another packing).
        key = next(
            str(i)
            for i, v in enumerate(own_variables(self))
            if v is self.kernel_explored
        )
        store = _ConvertedOnLoad(
            store,
            key,
            lambda value: convert_stored(
                value,
                self.kernel_variable.shape,
                self.kernel_explored.shape,
            ),
        )
        keras.layers.Layer.load_own_variables(self, store)
        # The forward pass reads the kernel unmasked: whatever a file holds
        # at inactive entries, they are exact zeros once loaded.
        kernel = self.kernel_variable
        kernel.assign(
            ops.where(
                ops.cast(self.kernel_mask.value, "bool"),
                kernel.value,
                ops.zeros((), kernel.dtype),
            )
        )

    def enable_lora(self, *args, **kwargs):
        raise NotImplementedError(
            f"LoRA is not supported on sparse layer '{self.name}'. "
            "Call `keras_dst.strip(model)` first to get plain Keras layers."
        )

    def quantize(self, *args, **kwargs):
        raise NotImplementedError(
            f"Quantization is not supported on sparse layer '{self.name}'. "
            "Call `keras_dst.strip(model)` first to get plain Keras layers."
        )


def _has_momentum(layer):
    """Whether the probe holds a moving average (one scalar read)."""
    momentum = to_numpy(layer.kernel_gradient_momentum)
    return float(momentum) != 0.0


class _ZeroedOnSave:
    """A save store that receives zeros in place of one variable."""

    def __init__(self, store, variable):
        self.store = store
        self.variable = variable

    def __setitem__(self, key, value):
        if value is self.variable:
            value = np.zeros(
                tuple(value.shape), keras.backend.standardize_dtype(value.dtype)
            )
        self.store[key] = value


class _ConvertedOnLoad:
    """A load store that converts the value of one key."""

    def __init__(self, store, key, convert):
        self.store = store
        self.key = key
        self.convert = convert

    def __getitem__(self, key):
        value = self.store[key]
        return self.convert(value) if key == self.key else value

    def keys(self):
        return self.store.keys()


def mark_probes_live(layers, live):
    """Tells `layers` whether their probes hold a gradient that an update
    will read (then `save_own_variables` writes them as they are)."""
    for layer in layers:
        object.__setattr__(layer, "_probe_live", bool(live))
