"""Sparsity reports: per-layer active counts and the total."""

import numpy as np

from keras_dst.layers.model_walk import sparse_layers


def sparsity_report(model):
    """Per-layer and total sparsity of `model`'s sparse layers, as data.

    Args:
        model: a model, a layer, or a list of layers.

    Returns:
        dict with `"layers"`: a list of dicts (name, path, class, shape,
        size, active, density, sparsity), and `"total"`: size, active,
        density, sparsity over all sparse layers.
    """
    rows = []
    for layer in sparse_layers(model):
        mask = layer.get_mask()
        size, active = int(mask.size), int(np.count_nonzero(mask))
        rows.append(
            {
                "name": layer.name,
                "path": layer.path,
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
    return {"layers": rows, "total": total}


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
    return "\n".join(lines)


def summary(model, print_fn=print):
    """Prints the sparsity table of `model` and returns the report dict."""
    report = sparsity_report(model)
    print_fn(format_report(report))
    return report
