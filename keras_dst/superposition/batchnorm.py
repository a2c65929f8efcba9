"""BatchNorm recalibration: statistics for weights no step trained with.

A superposed network (an average of tickets) has BatchNorm statistics that
belong to none of its tickets; Sup-tickets recomputes them with one pass
over training data, as torch's `swa_utils.update_bn` does for SWA.
"""

import warnings

import keras
import numpy as np

from keras_dst.backend.keras_internals import walk_layers


def batchnorm_layers(model):
    """Every `BatchNormalization` layer of `model`, nested ones included."""
    return [
        layer
        for layer in walk_layers(model)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def _inputs(batch):
    """The model inputs of a batch: `x` of `(x, y, ...)`, else the batch."""
    if isinstance(batch, (tuple, list)):
        return batch[0]
    return batch


def _batches(data, batch_size):
    """`(iterator of input batches, batch count or None)`."""
    if isinstance(data, tuple) and data and isinstance(data[0], np.ndarray):
        data = data[0]  # (x, y) or (x, y, sample_weight) arrays
    if isinstance(data, np.ndarray):
        starts = range(0, len(data), batch_size)
        return (data[i : i + batch_size] for i in starts), len(starts)
    if isinstance(data, keras.utils.PyDataset):
        count = len(data)
        return (_inputs(data[i]) for i in range(count)), count
    try:
        count = len(data)
    except TypeError:  # generators, datasets of unknown length
        count = None
    return (_inputs(batch) for batch in data), count


def recalibrate_batchnorm(model, data, batch_size=128, verbose=0):
    """Recomputes every BatchNorm's moving statistics from `data`.

    One pass over `data` in training mode, without any weight update: each
    layer's moving mean and variance become the plain mean over batches of
    the batch statistics (every batch weighs the same; momentum `(n-1)/n`
    at batch `n`, from mean 0 and variance 1). Momenta are restored after.

    Args:
        model: a built model.
        data: the inputs: an array (split into batches of `batch_size`),
            a tuple `(x, y, ...)` of arrays, a `tf.data.Dataset`, a
            `keras.utils.PyDataset`, a generator, or any iterable of `x` or
            `(x, y, ...)` batches.
        batch_size: batch size for arrays.
        verbose: 1 shows a progress bar.

    Returns:
        The number of batches used. With none (e.g. an exhausted
        generator) the statistics are left as they were, with a warning.

    Example:

    ```python
    keras_dst.superposition.recalibrate_batchnorm(model, x_train)
    ```
    """
    norms = batchnorm_layers(model)
    if not norms:
        return 0
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(f"`batch_size` must be an int. Received: {batch_size}")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1. Received: {batch_size}.")
    momenta = [layer.momentum for layer in norms]
    saved = [
        (
            keras.ops.convert_to_numpy(layer.moving_mean),
            keras.ops.convert_to_numpy(layer.moving_variance),
        )
        for layer in norms
    ]
    for layer in norms:
        layer.moving_mean.assign(np.zeros(layer.moving_mean.shape))
        layer.moving_variance.assign(np.ones(layer.moving_variance.shape))
    batches, count = _batches(data, batch_size)
    progress = None
    if verbose:
        print("keras_dst: recalibrating BatchNorm statistics")
        progress = keras.utils.Progbar(count, unit_name="batch")
    n = 0
    try:
        for n, batch in enumerate(batches, start=1):
            # moving = moving * (n-1)/n + batch / n: the plain mean.
            for layer in norms:
                layer.momentum = (n - 1) / n
            model(batch, training=True)
            if progress is not None:
                progress.update(n)
        if progress is not None and count is None and n:
            progress.update(n, finalize=True)
    finally:
        for layer, momentum in zip(norms, momenta, strict=True):
            layer.momentum = momentum
        if n == 0:
            for layer, (mean, variance) in zip(norms, saved, strict=True):
                layer.moving_mean.assign(mean)
                layer.moving_variance.assign(variance)
    if n == 0:
        warnings.warn(
            "keras_dst: the recalibration data gave no batch; BatchNorm "
            "statistics are left as they were (e.g. a generator that was "
            "already consumed).",
            RuntimeWarning,
            stacklevel=2,
        )
    return n
