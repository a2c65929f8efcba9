"""Shared pieces of the example scripts: flags, methods, GMP, summaries.

`examples/cifar100.py` and `examples/fashion_mnist.py` differ only in their
data and models. Everything else lives here, once:

* the flags both scripts take (defined here, once, so that one process can
  import both scripts, as the tests do, without a `DuplicateFlagError`);
* `--method` -> the layers to build with and the keras_dst callback;
* the dense-to-sparse GMP baseline (`keras_dst.GMP`, Zhu & Gupta, 2017);
* SGD with step decay and L2 weight decay;
* training, evaluation, the `.keras` file and the JSON summary.
"""

import functools
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
import time

import keras
import numpy as np
from absl import app
from absl import flags

import keras_dst
from keras_dst.layers import SparseLayer

# "dense" and every method of keras_dst's registry.
METHODS = ("dense",) + keras_dst.method_names()

FLAGS = flags.FLAGS
flags.DEFINE_enum("method", "itop_set", METHODS, "Training method.")
flags.DEFINE_string(
    "model", None, "Architecture; choices and default depend on the script."
)
flags.DEFINE_float(
    "sparsity", 0.9, "Global target sparsity in [0, 1) (ignored for dense)."
)
flags.DEFINE_enum(
    "distribution", "erk", ["erk", "er", "uniform"], "Per-layer allocation."
)
flags.DEFINE_enum(
    "weight_init",
    "sparse_scaled",
    ["sparse_scaled", "unscaled"],
    "How the active weights of the initial random masks start: scaled to "
    "the variance of their active fan-in (keras_dst's default; a deep "
    "sparse MLP trains) or the dense initialization (the papers' code).",
)
flags.DEFINE_integer("epochs", None, "Training epochs (script default).")
flags.DEFINE_integer("seed", 0, "Random seed (weights, masks, data order).")
flags.DEFINE_integer("batch_size", None, "Batch size (default 128).")
flags.DEFINE_float("learning_rate", None, "Initial SGD learning rate.")
flags.DEFINE_float(
    "weight_decay",
    None,
    "Weight decay (coupled L2, as torch.optim.SGD's weight_decay).",
)
flags.DEFINE_integer(
    "update_interval",
    None,
    "Steps between mask updates (ΔT) for DST methods and between pruning "
    "steps for gmp; default: the script's choice.",
)
flags.DEFINE_integer(
    "num_tickets", 3, "sup_tickets: number of cycles / tickets."
)
flags.DEFINE_float(
    "cyclic_fraction",
    0.1,
    "sup_tickets: fraction of epochs in cycles (the reference: 0.1).",
)
flags.DEFINE_integer(
    "cycle_epochs",
    None,
    "sup_tickets: epochs per cycle; the cyclic phase is then num_tickets x "
    "cycle_epochs epochs (the reference's CIFAR command: 3 x 8 of 250).",
)
flags.DEFINE_enum(
    "sup_growth",
    "random",
    ["random", "gradient"],
    "sup_tickets: growth of the ITOP base (SET-ITOP or RigL-ITOP).",
)
flags.DEFINE_string(
    "output_dir",
    os.path.join(tempfile.gettempdir(), "keras_dst_examples"),
    "Where the .keras model and the JSON summary are written.",
)
flags.DEFINE_bool(
    "smoke",
    False,
    "A few steps of a tiny model on generated data (seconds; for tests).",
)
flags.DEFINE_integer("verbose", 1, "fit verbosity: 0, 1 (progress bar), 2.")
flags.DEFINE_bool(
    "validate",
    False,
    "Evaluate on the test set after every epoch (val_accuracy in the "
    "history: learning curves; nothing is selected on it).",
)
flags.DEFINE_bool(
    "plot",
    False,
    "Also write <output_dir>/<run>.png: loss, accuracy, R_s, sparsity and "
    "per-layer R_s and survival of grown connections "
    "(keras_dst.plot_history; needs matplotlib).",
)
flags.DEFINE_string(
    "tensorboard",
    None,
    "A TensorBoard log directory: adds keras.callbacks.TensorBoard and "
    "keras_dst.SparsitySummaries (per-layer R_s, sparsity, moves, survival, "
    "mask images; needs tensorboard).",
)

# --smoke: 256 generated training images, 64 test images, 2 epochs of
# 8 steps, an update (or pruning step) every 2 steps.
SMOKE = {
    "train_size": 256,
    "test_size": 64,
    "epochs": 2,
    "batch_size": 32,
    "update_interval": 2,
}


def resolve_config(dataset, default_model, models, defaults):
    """The run's configuration: flags, else smoke values, else `defaults`.

    Args:
        dataset: dataset name (for file names and the summary).
        default_model: the script's default `--model`.
        models: the script's allowed `--model` values.
        defaults: dict with the script's `epochs`, `batch_size`,
            `learning_rate`, `weight_decay`, `update_interval` (None = the
            method's preset).

    Returns:
        dict, also written to the JSON summary.
    """
    model = FLAGS.model or default_model
    if model not in models:
        raise app.UsageError(
            f"`--model` must be one of {tuple(models)} for this script. "
            f"Received: --model={model}."
        )
    if FLAGS.method != "dense" and not 0.0 <= FLAGS.sparsity < 1.0:
        raise app.UsageError(
            "`--sparsity` must be in [0, 1). "
            f"Received: --sparsity={FLAGS.sparsity}."
        )
    base = dict(defaults)
    if FLAGS.smoke:
        base.update(SMOKE)

    def pick(name):
        value = getattr(FLAGS, name)
        return base.get(name) if value is None else value

    config = {
        "dataset": dataset,
        "model": model,
        "method": FLAGS.method,
        "sparsity": 0.0 if FLAGS.method == "dense" else FLAGS.sparsity,
        "distribution": FLAGS.distribution,
        "weight_init": FLAGS.weight_init,
        "epochs": pick("epochs"),
        "batch_size": pick("batch_size"),
        "learning_rate": pick("learning_rate"),
        "weight_decay": pick("weight_decay"),
        "update_interval": pick("update_interval"),
        "seed": FLAGS.seed,
        "smoke": FLAGS.smoke,
        "output_dir": FLAGS.output_dir,
        "verbose": FLAGS.verbose,
        "validate": FLAGS.validate,
        "plot": FLAGS.plot,
        "tensorboard": FLAGS.tensorboard,
    }
    if FLAGS.method == "sup_tickets":
        config.update(
            num_tickets=FLAGS.num_tickets,
            cyclic_fraction=FLAGS.cyclic_fraction,
            cycle_epochs=FLAGS.cycle_epochs,
            sup_growth=FLAGS.sup_growth,
        )
    for name in ("train_size", "test_size"):
        if name in base:
            config[name] = base[name]
    return config


# -- layers ------------------------------------------------------------------


def layer_classes(config):
    """(Dense, Conv2D) constructors for the run's method.

    `dense` uses plain Keras layers: the baseline pays nothing for masks.
    Sparse methods use keras_dst's layers; only gradient and momentum
    growth, and sup_tickets' gradient re-exploration, need the
    dense-gradient probe (`dense_gradient=True`).
    """
    method = config["method"]
    if method == "dense":
        return keras.layers.Dense, keras.layers.Conv2D
    probe = keras_dst.get_method(method).needs_gradient
    return (
        functools.partial(keras_dst.layers.SparseDense, dense_gradient=probe),
        functools.partial(keras_dst.layers.SparseConv2D, dense_gradient=probe),
    )


def l2(config):
    """The weight-decay regularizer: L2 with gradient `weight_decay * w`.

    keras's `L2(l)` adds `l * sum(w**2)`, whose gradient is `2 * l * w`,
    so `l = weight_decay / 2` reproduces torch.optim.SGD's (coupled)
    `weight_decay`, which the reference implementations use.
    """
    decay = config["weight_decay"]
    return keras.regularizers.L2(decay / 2.0) if decay else None


# -- optimizer ---------------------------------------------------------------


def step_decay(learning_rate, decay_steps):
    """LR x0.1 at 50% and 75% of `decay_steps` optimizer steps."""
    boundaries = [max(1, int(0.5 * decay_steps))]
    boundaries.append(max(boundaries[0] + 1, int(0.75 * decay_steps)))
    values = [learning_rate, learning_rate * 0.1, learning_rate * 0.01]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def make_optimizer(config, steps_per_epoch):
    """SGD, momentum 0.9, Nesterov, with the step decay.

    For sup_tickets, as in the Sup-tickets reference code: no Nesterov, and
    the decay spans the DST phase only, so the cyclic phase starts at the
    final rate, which is the low end of its cycles.
    """
    total = config["epochs"] * steps_per_epoch
    sup_tickets = config["method"] == "sup_tickets"
    if sup_tickets:
        total = sup_tickets_start(config, steps_per_epoch)
    return keras.optimizers.SGD(
        step_decay(config["learning_rate"], total),
        momentum=0.9,
        nesterov=not sup_tickets,
    )


def sup_tickets_start(config, steps_per_epoch):
    """Optimizer step where SupTickets' cyclic phase begins."""
    return keras_dst.superposition.plan_cycles(
        config["epochs"],
        steps_per_epoch,
        num_tickets=config["num_tickets"],
        cyclic_fraction=config["cyclic_fraction"],
        cycle_epochs=config["cycle_epochs"],
    ).start


# -- methods -----------------------------------------------------------------


def make_callback(config, recalibration_data=None):
    """The keras_dst callback for `config["method"]` (None for dense), from
    keras_dst's method registry with the run's flags.

    `update_interval` None keeps each method's own ΔT.
    """
    if config["method"] == "dense":
        return None
    method = keras_dst.get_method(config["method"])
    options = {
        "distribution": config["distribution"],
        "weight_init": config["weight_init"],
        "seed": config["seed"],
        "update_interval": config["update_interval"],
    }
    if method.name == "sup_tickets":
        # The reference command end to end (`luuyin/Sup-tickets`): an ITOP
        # base updating every ΔT (its 1000 steps unless the script or
        # --update_interval says otherwise) with a constant 50% drop until
        # the cycles; cycles from the step decay's final rate (lr / 100) up
        # to 5x that (CIFAR: 1e-3 -> 5e-3); gradient re-exploration of 50%
        # at each cycle start; the average re-pruned after every cycle;
        # BatchNorm recalibrated with one pass over the training data.
        # These are SupTickets' defaults; SGD without Nesterov is set in
        # `make_optimizer`.
        lr_low = config["learning_rate"] * 0.01
        options["update_interval"] = options["update_interval"] or 1000
        options.update(
            growth=config["sup_growth"],
            num_tickets=config["num_tickets"],
            cyclic_fraction=config["cyclic_fraction"],
            cycle_epochs=config["cycle_epochs"],
            lr_low=lr_low,
            lr_high=5 * lr_low,
            recalibration_data=recalibration_data,
            verbose=1 if config["verbose"] else 0,
        )
    # Each method takes the flags that mean something to it (GMP draws
    # nothing at random: it takes no seed).
    kwargs = {
        k: v
        for k, v in options.items()
        if k in method.parameters and v is not None
    }
    return method(config["sparsity"], **kwargs)


# -- running -----------------------------------------------------------------


def run_name(config):
    sparsity = (
        f"_s{config['sparsity']:g}" if config["method"] != "dense" else ""
    )
    return (
        f"{config['dataset']}_{config['model']}_{config['method']}"
        f"{sparsity}_seed{config['seed']}"
    )


def versions():
    out = {"python": platform.python_version()}
    for name in ("keras", "numpy", "tensorflow", "jax", "jaxlib", "absl-py"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    out["keras_dst"] = keras_dst.__version__
    return out


def network_parameters(model):
    """Trainable parameters of the network (dense count), without
    keras_dst's bookkeeping variables (masks, gradient probes)."""
    probes = {
        id(layer.kernel_gradient) for layer in keras_dst.sparse_layers(model)
    }
    return int(
        sum(
            np.prod(w.shape)
            for w in model.trainable_weights
            if id(w) not in probes
        )
    )


def kernel_zero_fraction(model):
    """Fraction of exact zeros over every Dense / Conv kernel, stored.

    Independent of the masks: counts the stored weights themselves.
    """
    zeros = total = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)):
            continue
        if isinstance(layer, SparseLayer):
            kernel = layer.kernel_variable  # raw weights, not kernel * mask
        else:
            kernel = layer.kernel
        values = keras.ops.convert_to_numpy(kernel)
        zeros += int(values.size - np.count_nonzero(values))
        total += int(values.size)
    return zeros / total if total else 0.0


def train_and_report(model, callback, train, test, config, fit_kwargs=None):
    """Fits, evaluates, saves the model and the JSON summary; prints them.

    Args:
        model: a compiled model.
        callback: the method's callback or None.
        train: `(x, y)` arrays or a `keras.utils.PyDataset`.
        test: `(x, y)` arrays.
        config: from `resolve_config`.
        fit_kwargs: more `fit` arguments.

    Returns:
        `(model, summary)`; the summary is also at `summary["files"]`.
    """
    callbacks = [callback] if callback is not None else []
    if config.get("tensorboard"):
        if callback is not None:
            callbacks.append(
                keras_dst.SparsitySummaries(callback, config["tensorboard"])
            )
        callbacks.append(keras.callbacks.TensorBoard(config["tensorboard"]))
    kwargs = dict(
        epochs=config["epochs"], callbacks=callbacks, verbose=config["verbose"]
    )
    if isinstance(train, tuple):
        kwargs.update(x=train[0], y=train[1], batch_size=config["batch_size"])
    else:
        kwargs.update(x=train)
    if config.get("validate"):
        kwargs.update(validation_data=test, validation_batch_size=256)
    kwargs.update(fit_kwargs or {})
    start = time.time()
    history = model.fit(**kwargs)
    train_time = time.time() - start
    loss, accuracy = model.evaluate(test[0], test[1], batch_size=256, verbose=0)
    report = keras_dst.sparsity_report(model)
    if callback is None:
        itop_rate = 1.0
    else:
        itop_rate = float(callback.itop_rate)
    summary = {
        "name": run_name(config),
        "config": config,
        "test_accuracy": float(accuracy),
        "test_loss": float(loss),
        "sparsity": float(report["total"]["sparsity"]),
        "sparsity_target": config["sparsity"],
        "kernel_zero_fraction": kernel_zero_fraction(model),
        "itop_rate": itop_rate,
        "active_weights": int(report["total"]["active"]),
        "sparse_weights": int(report["total"]["size"]),
        "parameters": network_parameters(model),
        "layers": [
            {k: r[k] for k in ("path", "shape", "active", "sparsity")}
            for r in report["layers"]
        ],
        "history": {
            k: [float(v) for v in values]
            for k, values in history.history.items()
        },
        "train_time_s": train_time,
        "wall_time_s": time.time() - start,
        "backend": keras.backend.backend(),
        "versions": versions(),
        "command": " ".join(sys.argv),
    }
    if callback is not None:
        summary["updates"] = len(callback.history)
        # Per update: step, R_s, sparsity, and per layer the active count,
        # R_s, moves and survival of grown connections.
        summary["update_history"] = callback.history
    if isinstance(callback, keras_dst.SupTickets):
        summary["tickets"] = callback.tickets
        summary["superposed"] = callback.superposed

    os.makedirs(config["output_dir"], exist_ok=True)
    stem = os.path.join(config["output_dir"], summary["name"])
    summary["files"] = {"model": stem + ".keras", "summary": stem + ".json"}
    if config.get("plot"):
        summary["files"]["plot"] = stem + ".png"
        keras_dst.plot_history(
            history, summary["files"]["plot"], callback=callback
        )
    # keras_dst.save_model: deflated, and it records the layers made
    # sparse inside other layers (keras-hub blocks) for load_model.
    keras_dst.save_model(model, summary["files"]["model"])
    with open(summary["files"]["summary"], "w") as f:
        json.dump(summary, f, indent=2, default=_json_default)

    print(
        f"\n{summary['name']} ({summary['backend']}, "
        f"{train_time:.0f} s training)"
    )
    if report["layers"]:
        keras_dst.summary(model)
    print(f"test accuracy: {accuracy:.4f}")
    print(f"final sparsity: {summary['sparsity']:.4f}")
    print(f"R_s (in-time over-parameterization rate): {itop_rate:.4f}")
    print(f"model: {summary['files']['model']}")
    print(f"summary: {summary['files']['summary']}")
    if "plot" in summary["files"]:
        print(f"plot: {summary['files']['plot']}")
    return model, summary


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def smoke_images(shape, classes, train_size, test_size, seed):
    """Generated uint8 images and int labels for --smoke runs."""
    rng = np.random.default_rng(seed)
    n = train_size + test_size
    x = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    y = rng.integers(0, classes, size=n).astype("int32")
    return (x[:train_size], y[:train_size]), (x[train_size:], y[train_size:])
