"""`SparsitySummaries`: per-layer sparse-training curves in TensorBoard."""

import os

import keras
import numpy as np

from keras_dst.backend import to_numpy
from keras_dst.callbacks.layer_logs import layer_keys
from keras_dst.report.sources import updater_of

# Scalars written per sparse layer at every update, as `<metric>/<layer>`.
SCALARS = ("itop_rate", "sparsity", "active", "pruned", "grown", "survival")


def _summary_api():
    """`tf.summary` with TensorBoard's ops, or a clear ImportError."""
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(
            "`SparsitySummaries` writes TensorBoard event files with "
            "`tf.summary` (as `keras.callbacks.TensorBoard` does, on every "
            "backend) and needs TensorFlow and TensorBoard: "
            'pip install "keras-dst[tensorflow,tensorboard]".'
        ) from error
    if not hasattr(tf.summary, "scalar"):
        raise ImportError(
            "`SparsitySummaries` needs the `tensorboard` package (it "
            "provides `tf.summary.scalar`, `image` and `histogram`): "
            'pip install "keras-dst[tensorboard]".'
        )
    return tf.summary


def _check_freq(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"`{name}` must be an int >= 0 (epochs between writes; 0 never "
            f"writes). Received: {name}={value!r}."
        )
    return value


def mask_image(mask):
    """A kernel mask as a `(1, rows, columns, 1)` uint8 image (255 active).

    Rows are all kernel axes but the last (Dense: inputs; Conv: kh*kw*in),
    columns the last axis (output units or channels).
    """
    mask = np.asarray(mask)
    columns = mask.shape[-1] if mask.ndim else 1
    image = np.reshape(mask != 0, (-1, columns)).astype(np.uint8) * 255
    return image[None, :, :, None]


class SparsitySummaries(keras.callbacks.Callback):
    """Writes per-layer sparse-training summaries for TensorBoard.

    It writes to the run `<log_dir>/sparsity`, so it sits beside
    `keras.callbacks.TensorBoard` in the same `log_dir` (whose runs are
    `train` and `validation`); the x axis is the optimizer step.

    * At every update of the engine (read at the end of each epoch, from
      the records the update already returns: no extra device work), per
      sparse layer `<metric>/<layer>` for `itop_rate` (R_s), `sparsity`,
      `active`, `pruned`, `grown` and `survival` (the fraction of the
      previous update's grown connections that this update kept; see
      `SparseUpdater.history`), and the totals `itop_rate` and `sparsity`.
    * Every `image_freq` epochs: an image of each layer's mask
      (`mask/<layer>`; rows: kernel axes but the last, columns: the last
      axis; white = active).
    * Every `histogram_freq` epochs: a histogram of the magnitudes of each
      layer's active weights (`active_magnitude/<layer>`).

    Images and histograms copy each mask and kernel to the host, once per
    `image_freq` / `histogram_freq` epochs.

    Works on every backend: event files are written with `tf.summary`, as
    Keras's own TensorBoard callback does, so TensorFlow and TensorBoard
    must be installed (`pip install "keras-dst[tensorflow,tensorboard]"`).

    Args:
        source: the callback whose updates to report: a
            `DynamicSparsityCallback` (or preset), `GMP`, `SupTickets`, or
            a `SparseUpdater`.
        log_dir: the TensorBoard log directory.
        image_freq: epochs between mask images; 0 never writes them.
        histogram_freq: epochs between weight histograms; 0 never.

    Example:

    ```python
    itop = keras_dst.ITOP(0.9)
    model.fit(x, y, epochs=20, callbacks=[
        itop,
        keras_dst.SparsitySummaries(itop, "logs"),
        keras.callbacks.TensorBoard("logs"),
    ])
    # tensorboard --logdir logs
    ```
    """

    def __init__(self, source, log_dir="logs", image_freq=1, histogram_freq=1):
        super().__init__()
        self.updater = updater_of(source, "source")
        self.source = source
        self.log_dir = os.fspath(log_dir)
        self.image_freq = _check_freq(image_freq, "image_freq")
        self.histogram_freq = _check_freq(histogram_freq, "histogram_freq")
        self._summary = _summary_api()
        self._writer = None
        self._written = 0

    @property
    def run_dir(self):
        """Where the event files go: `<log_dir>/sparsity`."""
        return os.path.join(self.log_dir, "sparsity")

    def on_train_begin(self, logs=None):
        if self._writer is None:
            self._writer = self._summary.create_file_writer(self.run_dir)

    def on_epoch_end(self, epoch, logs=None):
        if self.updater.layers is None:
            return  # the source has not started (e.g. GMP before t0)
        summary = self._summary
        history = self.updater.history
        layers, paths = self.updater.layers, self.updater.paths
        keys = layer_keys(layers, paths)
        with self._writer.as_default():
            for record in history[self._written :]:
                step = record["step"]
                summary.scalar("itop_rate", record["itop_rate"], step=step)
                summary.scalar("sparsity", record["sparsity"], step=step)
                for path, key in zip(paths, keys, strict=True):
                    metrics = record["layers"].get(path)
                    if metrics is None:
                        continue
                    for name in SCALARS:
                        value = metrics[name]
                        if value is not None:
                            summary.scalar(
                                f"{name}/{key}", float(value), step=step
                            )
            self._written = len(history)
            step = int(to_numpy(self.model.optimizer.iterations))
            images = self.image_freq and (epoch + 1) % self.image_freq == 0
            histograms = (
                self.histogram_freq and (epoch + 1) % self.histogram_freq == 0
            )
            for layer, key in zip(layers, keys, strict=True):
                if not (images or histograms):
                    break
                mask = layer.get_mask()
                if images:
                    summary.image(f"mask/{key}", mask_image(mask), step=step)
                if histograms:
                    kernel = to_numpy(layer.kernel_variable)
                    summary.histogram(
                        f"active_magnitude/{key}",
                        np.abs(kernel[mask != 0]),
                        step=step,
                    )
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
