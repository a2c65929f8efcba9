"""CIFAR-100 in the ITOP / Sup-tickets setting: ResNet-34 or VGG-16.

    python examples/cifar100.py --method itop_set --sparsity 0.9
    KERAS_BACKEND=jax python examples/cifar100.py --model vgg16 \\
        --method sup_tickets --sparsity 0.95 --cycle_epochs 8
    python examples/cifar100.py --data_dir ~/data/cifar-100-python  # offline
    python examples/cifar100.py --smoke --method rigl   # seconds, generated

Methods (`--method`): dense (plain Keras layers, no callback), static,
set, rigl, itop_set (`keras_dst.ITOP(growth="random")`), itop_rigl
(`ITOP(growth="gradient")`), snfs, sup_tickets (`keras_dst.SupTickets` over
ITOP; with `--cycle_epochs 8` the reference command's setting end to end:
base updates every 1000 steps with a constant 50% drop until the cycles,
3 cycles of 8 epochs, gradient re-exploration, the average re-pruned
after every cycle, BatchNorm recalibrated with one pass over the augmented
training set, SGD without Nesterov) and gmp (dense-to-sparse
gradual magnitude pruning, `keras_dst.GMP`). `--sparsity` and
`--distribution` (erk, er, uniform) set the budget over every conv and
dense kernel; `--update_interval` overrides each method's ΔT (default: the
presets', i.e. the reference values for batch 128).

Setting (the reference code of Liu et al., 2021 and Yin et al., 2022):

* ResNet-34, CIFAR variant: 3x3 stem conv (64), no max-pool, basic blocks
  [3, 4, 6, 3] of widths 64-128-256-512 (stride 2 from the second stage,
  1x1 conv + BN projection shortcuts), global average pooling, dense 100.
  VGG-16 with BatchNorm, CIFAR variant: 13 3x3 conv-BN-ReLU layers
  (64, 64, M, 128, 128, M, 256 x3, M, 512 x3, M, 512 x3, M), flatten,
  dense 100.
* SGD, momentum 0.9, Nesterov (not for sup_tickets, as in its reference),
  batch 128, 250 epochs, learning rate 0.1
  x0.1 at 50% and 75% of the optimizer steps (a `PiecewiseConstantDecay`;
  for sup_tickets the decay spans the steps before the cyclic phase, as in
  the Sup-tickets code, and the cycles run from 1e-3 to 5e-3).
* Weight decay 5e-4 as a coupled L2 penalty: `keras.regularizers.L2(2.5e-4)`
  on every kernel, bias and BatchNorm scale/offset, i.e. the gradient gains
  `5e-4 * w` exactly as with the references' `torch.optim.SGD(...,
  weight_decay=5e-4)`, and the decay goes through the momentum like
  theirs. Keras's `SGD(weight_decay=...)` is decoupled (`w -= lr * wd *
  w`), about 10x weaker at momentum 0.9, so it would not be the reference
  setting. On masked kernels both are safe: inactive weights are stored
  as 0, so the penalty's gradient there is 0 and they stay exactly 0 (the
  tests check that every inactive weight of the saved model is 0.0).
* Augmentation: random crop 32x32 from the image zero-padded by 4, and a
  random horizontal flip, done on the host with numpy in a
  `keras.utils.PyDataset` (same on TensorFlow and JAX; the saved model is
  the plain classifier). Pixels enter the model as floats in [0, 255]; the
  model rescales them and normalizes with the CIFAR-100 channel mean/std.

Data: `keras.datasets.cifar100` (downloads), or `--data_dir` with the
standard python-pickle files `train` and `test` of `cifar-100-python.tar.gz`
(the folder itself or its parent). Only point it at files you trust: they
are unpickled.

Output: Keras's progress bar with `itop_rate` (R_s) and `sparsity` in each
epoch's logs; then test accuracy, final sparsity and R_s, and in
`--output_dir` a `.keras` model and a JSON summary (configuration, accuracy,
sparsity, R_s, per-layer counts, history, every update's per-layer metrics,
wall time, backend, versions). `--plot` adds a PNG of the run
(`keras_dst.plot_history`); `--tensorboard DIR` logs to TensorBoard, with
per-layer R_s, sparsity, moves, survival and mask images
(`keras_dst.SparsitySummaries`).
"""

import functools
import os
import pickle
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from examples import common  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "data_dir",
    None,
    "cifar100.py: folder with the CIFAR-100 python pickles `train` and "
    "`test` (offline); default: keras.datasets.cifar100.",
)

MODELS = ("resnet34", "vgg16")
DEFAULTS = {
    "epochs": 250,
    "batch_size": 128,
    "learning_rate": 0.1,
    "weight_decay": 5e-4,
    "update_interval": None,  # the presets' reference ΔT
}
CLASSES = 100
MEAN = (0.5071, 0.4865, 0.4409)  # CIFAR-100 training set, per channel
STD = (0.2673, 0.2564, 0.2762)
RESNET34_BLOCKS = (3, 4, 6, 3)
VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M")
VGG16 += (512, 512, 512, "M", 512, 512, 512, "M")
SMOKE_WIDTH_DIVISOR = 8  # --smoke: 8-16-32-64 channels
SMOKE_RESNET_BLOCKS = (1, 1, 1, 1)


# -- data --------------------------------------------------------------------


def load_cifar100_pickles(data_dir):
    """((x_train, y_train), (x_test, y_test)) from the python pickles.

    Args:
        data_dir: the `cifar-100-python` folder (holding `train` and
            `test`) or its parent.

    Returns:
        uint8 images (N, 32, 32, 3) and int32 fine labels (N,).
    """
    nested = os.path.join(data_dir, "cifar-100-python")
    if not os.path.exists(os.path.join(data_dir, "train")) and os.path.isdir(
        nested
    ):
        data_dir = nested
    out = []
    for split in ("train", "test"):
        path = os.path.join(data_dir, split)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"`--data_dir` must hold the CIFAR-100 python pickles "
                f"`train` and `test`. Missing: {path}."
            )
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        x = np.asarray(batch[b"data"], dtype=np.uint8)
        x = x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        y = np.asarray(batch[b"fine_labels"], dtype=np.int32)
        out.append((np.ascontiguousarray(x), y))
    return tuple(out)


def load_data(config):
    if config["smoke"]:
        return common.smoke_images(
            (32, 32, 3),
            CLASSES,
            config["train_size"],
            config["test_size"],
            config["seed"],
        )
    if config["data_dir"]:
        return load_cifar100_pickles(config["data_dir"])
    (x_train, y_train), (x_test, y_test) = keras.datasets.cifar100.load_data()
    return (x_train, y_train.reshape(-1).astype("int32")), (
        x_test,
        y_test.reshape(-1).astype("int32"),
    )


class AugmentedImages(keras.utils.PyDataset):
    """Shuffled batches with random crop (padding 4) and horizontal flip.

    numpy on the host, so the same on every backend. Images stay uint8
    until the batch is cut; batches are float32 in [0, 255].
    """

    def __init__(self, x, y, batch_size, seed, pad=4, **kwargs):
        super().__init__(**kwargs)
        self.pad = pad
        self.x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        self.y = np.asarray(y)
        self.height, self.width = x.shape[1:3]
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self):
        return -(-len(self.y) // self.batch_size)

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.y))

    def __getitem__(self, index):
        size = self.batch_size
        idx = self.order[index * size : (index + 1) * size]
        n = len(idx)
        dy = self.rng.integers(0, 2 * self.pad + 1, n)
        dx = self.rng.integers(0, 2 * self.pad + 1, n)
        rows = dy[:, None] + np.arange(self.height)
        cols = dx[:, None] + np.arange(self.width)
        batch = self.x[idx[:, None, None], rows[:, :, None], cols[:, None, :]]
        flip = self.rng.random(n) < 0.5
        batch[flip] = batch[flip, :, ::-1]
        return batch.astype("float32"), self.y[idx]


# -- models ------------------------------------------------------------------


def _stem(inputs):
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    return keras.layers.Normalization(
        mean=list(MEAN), variance=[s * s for s in STD]
    )(x)


def _blocks(dense_cls, conv_cls, reg):
    conv = functools.partial(
        conv_cls,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=reg,
    )
    # momentum 0.9 = PyTorch's BatchNorm2d(momentum=0.1).
    norm = functools.partial(
        keras.layers.BatchNormalization,
        momentum=0.9,
        epsilon=1e-5,
        gamma_regularizer=reg,
        beta_regularizer=reg,
    )
    dense = functools.partial(
        dense_cls, kernel_regularizer=reg, bias_regularizer=reg
    )
    return conv, norm, dense


def resnet34(dense_cls, conv_cls, reg, width=64, blocks=RESNET34_BLOCKS):
    """ResNet-34, CIFAR variant (basic blocks, no stem max-pool)."""
    conv, norm, dense = _blocks(dense_cls, conv_cls, reg)
    inputs = keras.Input((32, 32, 3))
    x = conv(width, 3)(_stem(inputs))
    x = keras.layers.ReLU()(norm()(x))
    channels = width
    for stage, count in enumerate(blocks):
        filters = width * 2**stage
        for block in range(count):
            stride = 2 if stage > 0 and block == 0 else 1
            shortcut = x
            y = conv(filters, 3, strides=stride)(x)
            y = keras.layers.ReLU()(norm()(y))
            y = norm()(conv(filters, 3)(y))
            if stride != 1 or channels != filters:
                shortcut = norm()(conv(filters, 1, strides=stride)(x))
            x = keras.layers.ReLU()(keras.layers.Add()([y, shortcut]))
            channels = filters
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = dense(CLASSES)(x)
    return keras.Model(inputs, outputs, name="resnet34")


def vgg16(dense_cls, conv_cls, reg, divisor=1):
    """VGG-16 with BatchNorm, CIFAR variant (one dense classifier)."""
    conv, norm, dense = _blocks(dense_cls, conv_cls, reg)
    inputs = keras.Input((32, 32, 3))
    x = _stem(inputs)
    for item in VGG16:
        if item == "M":
            x = keras.layers.MaxPooling2D(2)(x)
        else:
            x = keras.layers.ReLU()(norm()(conv(item // divisor, 3)(x)))
    x = keras.layers.Flatten()(x)
    outputs = dense(CLASSES)(x)
    return keras.Model(inputs, outputs, name="vgg16")


def build_model(config):
    dense_cls, conv_cls = common.layer_classes(config)
    reg = common.l2(config)
    smoke = config["smoke"]
    if config["model"] == "resnet34":
        if smoke:
            return resnet34(
                dense_cls,
                conv_cls,
                reg,
                width=64 // SMOKE_WIDTH_DIVISOR,
                blocks=SMOKE_RESNET_BLOCKS,
            )
        return resnet34(dense_cls, conv_cls, reg)
    divisor = SMOKE_WIDTH_DIVISOR if smoke else 1
    return vgg16(dense_cls, conv_cls, reg, divisor=divisor)


# -- main --------------------------------------------------------------------


def run():
    """Trains and evaluates as the flags say; returns (model, summary)."""
    config = common.resolve_config("cifar100", "resnet34", MODELS, DEFAULTS)
    config["data_dir"] = FLAGS.data_dir
    keras.utils.set_random_seed(config["seed"])
    (x_train, y_train), (x_test, y_test) = load_data(config)
    train = AugmentedImages(
        x_train, y_train, config["batch_size"], seed=config["seed"]
    )
    model = build_model(config)
    model.compile(
        common.make_optimizer(config, len(train)),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    # BatchNorm recalibration: one pass over the augmented training set,
    # as the reference (`swa_utils.update_bn` over its train loader).
    callback = common.make_callback(config, recalibration_data=train)
    return common.train_and_report(
        model, callback, train, (x_test.astype("float32"), y_test), config
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    run()


if __name__ == "__main__":
    app.run(main)
