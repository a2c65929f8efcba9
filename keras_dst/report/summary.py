"""Sparsity reports: per-layer active counts, the total, and the real
parameter count."""

import numpy as np

from keras_dst.layers.model_walk import layer_path
from keras_dst.layers.model_walk import sparse_layers


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
          (4x with the gradient probes of `dense_gradient=True`).
    """
    rows = []
    for layer in sparse_layers(model):
        mask = layer.get_mask()
        size, active = int(mask.size), int(np.count_nonzero(mask))
        rows.append(
            {
                "name": layer.name,
                "path": layer_path(layer),
                "class": type(layer).__name__,
                "shape": tuple(int(d) for d in mask.shape),
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
        report["params"] = {
            "weights": weights,
            "active": weights - (size - active),
            "sparse_state": mechanism,
        }
    return report


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
    return "\n".join(lines)


def summary(model, print_fn=print):
    """Prints the sparsity table of `model` and returns the report dict."""
    report = sparsity_report(model)
    print_fn(format_report(report))
    return report
