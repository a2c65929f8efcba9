"""`plot_history`: one PNG of a sparse training run."""

import math
import os

import numpy as np

from keras_dst.report.sources import updater_of


def _pyplot_free_figure(**kwargs):
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "`keras_dst.plot_history` draws with matplotlib: "
            'pip install "keras-dst[plot]" (or `pip install matplotlib`).'
        ) from error
    return Figure(**kwargs)


def _epoch_logs(history):
    if history is None:
        return {}
    if isinstance(history, dict):
        logs = history
    elif isinstance(getattr(history, "history", None), dict):
        logs = history.history  # keras.callbacks.History
    else:
        raise TypeError(
            "`history` must be the History returned by `model.fit`, its "
            "`.history` dict, or None. "
            f"Received: history={type(history).__name__}."
        )
    return {
        key: np.asarray(values, dtype=float)
        for key, values in logs.items()
        if np.ndim(values) == 1 and len(values)
    }


def _updates_of(callback):
    """(records, steps per epoch or None) of a DST callback or updater."""
    if callback is None:
        return [], None
    updater = updater_of(callback, "callback")
    params = getattr(callback, "params", None) or {}
    return updater.history, params.get("steps")


def plot_history(history, path=None, callback=None):
    """Plots a sparse training run: loss, accuracy, R_s, sparsity, layers.

    Panels: the epoch logs' losses; their accuracy-like metrics; the
    global R_s (`itop_rate`) and sparsity; and, given the DST `callback`,
    one panel per sparse layer with its R_s and the survival of grown
    connections at every update (`SparseUpdater.history`). Update steps
    are shown in epochs when the callback knows the steps per epoch.

    Needs matplotlib (`pip install "keras-dst[plot]"`); draws without
    `pyplot`, so it changes no global matplotlib state.

    Args:
        history: the `History` returned by `model.fit`, its `.history`
            dict, or None (plot only the callback's updates).
        path: where to save the figure (PNG, or any format matplotlib
            knows from the extension); None does not save.
        callback: optional DST callback (`ITOP`, `DynamicSparsityCallback`,
            `GMP`, `SupTickets`) or `SparseUpdater` whose per-update
            records to plot.

    Returns:
        The `matplotlib.figure.Figure`.

    Example:

    ```python
    itop = keras_dst.ITOP(0.9)
    history = model.fit(x, y, epochs=20, callbacks=[itop])
    keras_dst.plot_history(history, "run.png", callback=itop)
    ```
    """
    logs = _epoch_logs(history)
    records, steps_per_epoch = _updates_of(callback)
    if not logs and not records:
        raise ValueError(
            "Nothing to plot: `history` has no epoch logs and `callback` "
            "(if given) has no updates yet."
        )
    losses = [k for k in logs if k.endswith("loss")]
    metrics = [
        k
        for k in logs
        if "acc" in k.split("/")[-1] and "/" not in k and k not in losses
    ]
    layer_paths = list(records[0]["layers"]) if records else []
    panels = 1 + bool(metrics) + 1 + len(layer_paths)
    columns = min(3, panels)
    rows = math.ceil(panels / columns)
    figure = _pyplot_free_figure(
        figsize=(4.2 * columns, 3.2 * rows), layout="constrained"
    )
    axes = iter(figure.subplots(rows, columns, squeeze=False).ravel())

    def epochs(values):
        return np.arange(1, len(values) + 1)

    if steps_per_epoch:
        update_x = np.asarray([r["step"] for r in records]) / steps_per_epoch
        update_label = "epoch (updates)"
    else:
        update_x = np.asarray([r["step"] for r in records], dtype=float)
        update_label = "optimizer step (updates)"

    ax = next(axes)
    for key in losses:
        ax.plot(epochs(logs[key]), logs[key], marker=".", label=key)
    ax.set(title="loss", xlabel="epoch")
    if losses:
        ax.legend(fontsize="small")
    if metrics:
        ax = next(axes)
        for key in metrics:
            ax.plot(epochs(logs[key]), logs[key], marker=".", label=key)
        ax.set(title="accuracy", xlabel="epoch")
        ax.legend(fontsize="small")

    ax = next(axes)
    if records:
        ax.plot(update_x, [r["itop_rate"] for r in records], label="R_s")
        ax.plot(update_x, [r["sparsity"] for r in records], label="sparsity")
        ax.set_xlabel(update_label)
    else:
        for key, label in (("itop_rate", "R_s"), ("sparsity", "sparsity")):
            if key in logs:
                ax.plot(epochs(logs[key]), logs[key], marker=".", label=label)
        ax.set_xlabel("epoch")
    ax.set(title="R_s and sparsity (all sparse layers)")
    ax.set_ylim(0.0, 1.02)
    ax.legend(fontsize="small")

    for layer_path in layer_paths:
        ax = next(axes)
        metrics_of = [r["layers"][layer_path] for r in records]
        ax.plot(update_x, [m["itop_rate"] for m in metrics_of], label="R_s")
        survival = [
            np.nan if m["survival"] is None else m["survival"]
            for m in metrics_of
        ]
        ax.plot(update_x, survival, linestyle="--", label="survival of grown")
        ax.set(title=layer_path, xlabel=update_label)
        ax.set_ylim(0.0, 1.02)
        ax.legend(fontsize="small")
    for ax in axes:  # unused grid cells
        ax.set_visible(False)
    if path is not None:
        directory = os.path.dirname(os.fspath(path))
        if directory:
            os.makedirs(directory, exist_ok=True)
        figure.savefig(path, dpi=110)
    return figure
