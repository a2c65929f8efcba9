"""The sparse state takes its kernel's layout under `keras.distribution`.

Under `keras.distribution.ModelParallel` every variable gets its layout
from the user's `LayoutMap`, matched against the variable's path with
`re.fullmatch`. Maps name kernels (keras-hub's `get_layout_map` too):
`.*dense.*kernel` does not match `dense/kernel_mask`, so a mask, its
explored union and its gradient probe would stay replicated (whole-layer
memory on every device) while their kernel is sharded; and a loose
`.*kernel.*` also matches the scalar `kernel_gradient_momentum`, whose
build then fails (a rank-0 variable cannot take a 2-D layout).

So the sparse variables are created under a short-lived distribution of
the same device mesh whose map gives every kernel-shaped one the layout
the active distribution gave the kernel, and every scalar a replicated
layout, whatever the user's map says. Public `keras.distribution` API
only; nothing happens without a distribution.

The explored union is packed 8 entries per byte along an axis the
kernel's layout does not split (`kernel_shards` tells which, see
`keras_dst.masks.packed`), so it keeps the kernel's layout too.
"""

import contextlib
import math
import re

import keras


@contextlib.contextmanager
def layouts_like(kernel, kernel_shaped, scalars):
    """Variables created inside take `kernel`'s layout (or replicated).

    Args:
        kernel: the `keras.Variable` whose layout to copy.
        kernel_shaped: names of the variables (last path component) that
            take `kernel`'s layout.
        scalars: names of rank-0 variables, replicated.
    """
    current = keras.distribution.distribution()
    if current is None:
        yield
        return
    mesh = current.device_mesh
    layout = current.get_variable_layout(kernel)
    layout_map = keras.distribution.LayoutMap(mesh)
    for name in kernel_shaped:
        layout_map[f"(.*/)?{re.escape(name)}"] = layout
    for name in scalars:
        layout_map[f"(.*/)?{re.escape(name)}"] = (
            keras.distribution.TensorLayout([], mesh)
        )
    scoped = keras.distribution.ModelParallel(
        layout_map=layout_map,
        batch_dim_name=current.batch_dim_name,
        auto_shard_dataset=False,
    )
    with scoped.scope():
        yield


def kernel_shards(kernel):
    """Per axis of `kernel`, how many shards its layout splits it into.

    All 1 without a distribution (or where the layout replicates an
    axis); an axis laid out on several mesh axes counts their product.
    """
    current = keras.distribution.distribution()
    rank = len(kernel.shape)
    if current is None:
        return (1,) * rank
    layout = current.get_variable_layout(kernel)
    axes = getattr(layout, "axes", None) or (None,) * rank
    mesh = current.device_mesh
    sizes = dict(zip(mesh.axis_names, mesh.shape, strict=True))
    shards = []
    for axis in tuple(axes) + (None,) * (rank - len(axes)):
        names = () if axis is None else axis
        names = (names,) if isinstance(names, str) else tuple(names)
        shards.append(math.prod(sizes[name] for name in names))
    return tuple(shards)
