"""Sparsity reports: per-layer active counts, the total, the real
parameter count and size estimates."""

import math
import re

import numpy as np

from keras_dst.backend.keras_internals import sublayers
from keras_dst.layers.model_walk import layer_path
from keras_dst.layers.model_walk import layer_tree
from keras_dst.layers.model_walk import sparse_layers
from keras_dst.layers.sparse_layer import SparseLayer
from keras_dst.layers.sparse_state import read_counts
from keras_dst.layers.twins import SPARSE_TWINS
from keras_dst.layers.twins import sparse_twin


def sparsity_report(model):
    """Per-layer and total sparsity of `model`'s sparse layers, as data.

    Args:
        model: a model, a layer, or a list of layers.

    Returns:
        dict with `"layers"`: a list of dicts (name, path, class, shape,
        size, active, density, sparsity), `"total"`: size, active,
        density, sparsity over all sparse layers, and, for a model or
        layer, `"params"`:

        * `weights`: the model's own weights (what `count_params` would be
          without keras_dst: kernels at full size, biases, ...);
        * `active`: the weights that really exist, i.e. `weights` minus
          the inactive kernel entries (what a deployed model needs);
        * `sparse_state`: the variables of the sparse mechanism (masks,
          the explored unions behind R_s, gradient probes), which
          `keras.Model.count_params()` also counts: it reports
          `weights + sparse_state`, for an MLP about 3x `weights`
          (4x with the gradient probes of `dense_gradient=True`);

        `"dense_kernels"`: every trainable weight of 2 or more dimensions
        that no mask covers, so nothing is dense silently: a list of
        dicts (`path`, the variable's path; `layer`, its layer's class;
        `shape`, `size`, `reason`); `"coverage"`: `sparse_weights` (the
        masked kernels' entries), `dense_weights` (the entries of
        `dense_kernels`) and `sparse_share`, the masked fraction of all
        trainable weights of 2 or more dimensions;

        and `"sizes"`: estimates in bytes computed from these counts (no
        file is written; a real file adds its format's overhead):

        * `dense_float32_bytes`: `4 * weights`, the dense model's weights;
        * `active_float32_bytes`: `4 * active`, the values a deployed
          sparse model must store;
        * `active_float16_bytes`: `2 * active`, the same values in float16
          (`keras_dst.save_model(..., values="float16")`);
        * `index_floor_bytes`: the least any encoding can spend on which
          kernel entries are active: log2 C(size, active) bits per sparse
          layer (a bitmask needs `size / 8` bytes, CSR more);
        * `sparse_state_bytes`: the sparse state variables at their
          dtypes, which `model.save` also writes.

        Measured (784-300-100-10, random masks, 0.9 sparsity): the
        deflated `keras_dst.save_model` file of `keras_dst.strip(model)`
        is about 1.2x `active_float32_bytes + index_floor_bytes`. A
        training checkpoint adds the compressed sparse state; after
        training, gradient probes hold dense float32 gradients, which
        barely compress.
    """
    rows = []
    layers = sparse_layers(model)
    # Counted on the device: no mask comes to the host (it may be sharded
    # over processes).
    counts = read_counts(layers)[0] if layers else []
    for layer, active in zip(layers, counts, strict=True):
        shape = tuple(int(d) for d in layer.kernel_variable.shape)
        size = math.prod(shape)
        rows.append(
            {
                "name": layer.name,
                "path": layer_path(layer),
                "class": type(layer).__name__,
                "shape": shape,
                "size": size,
                "active": active,
                "density": active / size if size else 1.0,
                "sparsity": 1.0 - active / size if size else 0.0,
            }
        )
    size = sum(r["size"] for r in rows)
    active = sum(r["active"] for r in rows)
    total = {
        "size": size,
        "active": active,
        "density": active / size if size else 1.0,
        "sparsity": 1.0 - active / size if size else 0.0,
    }
    report = {"layers": rows, "total": total}
    if hasattr(model, "weights"):
        layers = sparse_layers(model)
        state = {
            id(v) for layer in layers for v in layer.sparse_state_variables
        }
        counted = {}
        for v in model.weights:
            counted.setdefault(id(v), v)
        weights = sum(
            int(np.prod(v.shape)) for k, v in counted.items() if k not in state
        )
        mechanism = sum(
            int(np.prod(v.shape)) for k, v in counted.items() if k in state
        )
        dense = dense_kernels(model)
        dense_size = sum(row["size"] for row in dense)
        report["dense_kernels"] = dense
        report["coverage"] = {
            "sparse_weights": size,
            "dense_weights": dense_size,
            "sparse_share": size / (size + dense_size)
            if size + dense_size
            else 0.0,
        }
        report["params"] = {
            "weights": weights,
            "active": weights - (size - active),
            "sparse_state": mechanism,
        }
        index_bits = sum(_log2_binomial(r["size"], r["active"]) for r in rows)
        report["sizes"] = {
            "dense_float32_bytes": 4 * weights,
            "active_float32_bytes": 4 * (weights - (size - active)),
            "active_float16_bytes": 2 * (weights - (size - active)),
            "index_floor_bytes": math.ceil(index_bits / 8),
            "sparse_state_bytes": sum(
                int(np.prod(v.shape)) * _itemsize(v.dtype)
                for k, v in counted.items()
                if k in state
            ),
        }
    return report


def dense_kernels(model):
    """The trainable weights of 2+ dimensions no mask covers, with why.

    Args:
        model: a model or layer.

    Returns:
        A list of dicts: `path` (the variable's path), `layer` (its
        layer's class name), `shape`, `size` and `reason`.
    """
    masked, state = set(), set()
    for layer in sparse_layers(model):
        masked.add(id(layer.kernel_variable))
        state.update(id(v) for v in layer.sparse_state_variables)
    rows, seen = [], set()
    for layer in [model] + [entry[0] for entry in layer_tree(model)]:
        inner = {id(v) for child in sublayers(layer) for v in child.weights}
        for variable in layer.trainable_weights:
            key = id(variable)
            if (
                key in inner
                or key in seen
                or key in masked
                or key in state
                or len(variable.shape) < 2
            ):
                continue
            seen.add(key)
            shape = tuple(int(d) for d in variable.shape)
            rows.append(
                {
                    "path": variable.path,
                    "layer": type(layer).__name__,
                    "shape": shape,
                    "size": int(np.prod(shape)),
                    "reason": _dense_reason(layer, variable),
                }
            )
    return rows


def _dense_reason(layer, variable):
    """Why `variable` of `layer` has no mask, in a few words."""
    cls = type(layer)
    if isinstance(layer, SparseLayer):
        if variable.name == "reverse_embeddings":
            return (
                "untied output projection: keras_dst masks one weight per "
                "layer (the input table)"
            )
        return f"not the kernel of {cls.__name__}: only kernels are masked"
    if cls.__name__ == "PositionEmbedding":
        return (
            "position embeddings, dense on purpose: one vector per position "
            "(sequence length x width, small)"
        )
    if cls in SPARSE_TWINS or sparse_twin(cls) is not None:
        return (
            "supported layer left dense (excluded from sparsify, or added "
            "after it)"
        )
    for base in SPARSE_TWINS:
        if issubclass(cls, base):
            return (
                f"{cls.__name__} subclasses {base.__name__} with its own "
                "behaviour: not converted (build it from keras_dst.layers "
                "or write its sparse twin)"
            )
    return f"{cls.__name__} is not a supported layer type"


def _log2_binomial(n, k):
    """log2 of C(n, k), the bits needed to say which k of n are active."""
    if k <= 0 or k >= n:
        return 0.0
    nats = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    return nats / math.log(2)


def _itemsize(dtype):
    try:
        return np.dtype(dtype).itemsize
    except TypeError:  # bfloat16 and other names numpy does not know
        bits = re.search(r"\d+", str(dtype))
        return int(bits.group()) // 8 if bits else 4


def format_report(report):
    """The report as a text table."""
    header = f"{'layer':<40} {'shape':<22} {'active':>12} {'sparsity':>9}"
    lines = [header, "-" * len(header)]
    for r in report["layers"]:
        shape = "x".join(str(d) for d in r["shape"])
        count = f"{r['active']}/{r['size']}"
        lines.append(
            f"{r['path'][:40]:<40} {shape:<22} {count:>12} "
            f"{r['sparsity']:>9.4f}"
        )
    t = report["total"]
    lines.append("-" * len(header))
    lines.append(
        f"{'total':<40} {'':<22} {t['active']:>12} {t['sparsity']:>9.4f}"
    )
    params = report.get("params")
    if params:
        lines.append(
            f"params: {params['active']:,} active of {params['weights']:,} "
            f"weights (+{params['sparse_state']:,} in masks, unions and "
            "probes, which `count_params()` also counts)"
        )
    coverage, dense = report.get("coverage"), report.get("dense_kernels")
    if dense:
        lines.append(
            f"dense (no mask): {len(dense)} kernels, "
            f"{coverage['dense_weights']:,} weights; masked share of the "
            f"trainable >= 2-D weights: {coverage['sparse_share']:.1%}"
        )
        for row in dense:
            shape = "x".join(str(d) for d in row["shape"])
            lines.append(f"  {row['path']} ({shape}): {row['reason']}")
    sizes = report.get("sizes")
    if sizes:
        lines.append(
            f"size estimate: {sizes['dense_float32_bytes']:,} B dense "
            f"float32; {sizes['active_float32_bytes']:,} B active values "
            f"(float16: {sizes['active_float16_bytes']:,} B) + "
            f">= {sizes['index_floor_bytes']:,} B index"
        )
    return "\n".join(lines)


def summary(model, print_fn=print):
    """Prints the sparsity table of `model` and returns the report dict."""
    report = sparsity_report(model)
    print_fn(format_report(report))
    return report
