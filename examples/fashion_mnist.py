"""Fashion-MNIST: SET's MLP (784-1000-1000-1000-10) or a small CNN.

    python examples/fashion_mnist.py --method itop_set --sparsity 0.9
    KERAS_BACKEND=jax python examples/fashion_mnist.py --model mlp \\
        --method itop_set --sparsity 0.9 --epochs 2 --train_subset 20000
    python examples/fashion_mnist.py --model cnn --method sup_tickets
    python examples/fashion_mnist.py --smoke --method gmp  # seconds, generated

Methods (`--method`): dense (plain Keras layers, no callback), static,
set, rigl, itop_set (`keras_dst.ITOP(growth="random")`), itop_rigl
(`ITOP(growth="gradient")`), snfs, sup_tickets (`keras_dst.SupTickets` over
ITOP; for the CNN its BatchNorm statistics are recalibrated on the training
images) and gmp (dense-to-sparse gradual magnitude pruning,
`keras_dst.GMP`). `--sparsity` and `--distribution` (erk, er, uniform)
set the budget over every dense and conv kernel.

Models:

* mlp: SET's Fashion-MNIST network (Mocanu et al., 2018), 784-1000-1000-
  1000-10, with ReLU (SET used SReLU).
* lenet300: LeNet-300-100, 784-300-100-10 with ReLU (the small MLP of
  `benchmarks/itop_study.py`).
* cnn: conv 32 3x3-BN-ReLU-maxpool 2, conv 64 3x3-BN-ReLU-maxpool 2,
  flatten, dense 128 ReLU, dense 10 (BatchNorm momentum 0.9, PyTorch's
  default, as in the papers' code).

Sparse methods draw their initial masks with `--weight_init sparse_scaled`
(keras_dst's default: active weights scaled by 1/sqrt(density), so the deep
MLP trains at 98% sparsity); `--weight_init unscaled` reproduces the papers'
dense initialization.

Training: SGD, momentum 0.9, Nesterov, batch 128, 20 epochs, learning rate
0.05 x0.1 at 50% and 75% of the steps, weight decay 5e-4 as a coupled L2
penalty on every weight (see `examples/cifar100.py` for why L2 rather than
the optimizer's decoupled `weight_decay`). Every method updates its masks
(or, for gmp, prunes) every 100 steps (`--update_interval`): the ITOP
presets' ΔT (1500 / 4000) are for 250 CIFAR epochs and would leave a short
Fashion-MNIST run with almost no exploration. `--train_subset N` trains on
N random training images; the test set is always the full 10,000.

Data: `examples/datasets.py`: the idx files of the Debian package
`dataset-fashion-mnist` (or `$FASHION_MNIST_DIR`), offline, else
`keras.datasets.fashion_mnist` (downloads). Pixels enter the model as
floats in [0, 255]; the model rescales them.

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
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from examples import common  # noqa: E402
from examples.datasets import load_fashion_mnist  # noqa: E402
from examples.datasets import random_subset  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer(
    "train_subset",
    0,
    "fashion_mnist.py: train on this many random training images "
    "(0 = all 60,000).",
)

MODELS = ("mlp", "lenet300", "cnn")
DEFAULTS = {
    "epochs": 20,
    "batch_size": 128,
    "learning_rate": 0.05,
    "weight_decay": 5e-4,
    "update_interval": 100,
}
CLASSES = 10
MLP_UNITS = {"mlp": (1000, 1000, 1000), "lenet300": (300, 100)}
CNN_FILTERS, CNN_UNITS = (32, 64), 128
SMOKE_WIDTH_DIVISOR = 16  # --smoke: MLP 62-62-62, CNN 2-4 filters


def load_data(config):
    """uint8 images (N, 28, 28, 1) and int32 labels."""
    if config["smoke"]:
        return common.smoke_images(
            (28, 28, 1),
            CLASSES,
            config["train_size"],
            config["test_size"],
            config["seed"],
        )
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    if config["train_subset"]:
        x_train, y_train = random_subset(
            x_train, y_train, config["train_subset"], config["seed"]
        )
    return (
        (x_train[..., None], y_train.astype("int32")),
        (x_test[..., None], y_test.astype("int32")),
    )


def build_model(config):
    dense_cls, conv_cls = common.layer_classes(config)
    reg = common.l2(config)
    divisor = SMOKE_WIDTH_DIVISOR if config["smoke"] else 1
    dense = functools.partial(
        dense_cls, kernel_regularizer=reg, bias_regularizer=reg
    )
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    if config["model"] in MLP_UNITS:
        x = keras.layers.Flatten()(x)
        for units in MLP_UNITS[config["model"]]:
            x = dense(units // divisor, activation="relu")(x)
    else:
        for filters in CNN_FILTERS:
            x = conv_cls(
                filters // divisor,
                3,
                padding="same",
                use_bias=False,
                kernel_regularizer=reg,
            )(x)
            # momentum 0.9 = PyTorch's BatchNorm2d(momentum=0.1), as in the
            # papers' code; Keras's 0.99 lets the moving statistics lag the
            # weights of a short run by several points of test accuracy.
            x = keras.layers.BatchNormalization(
                momentum=0.9, gamma_regularizer=reg, beta_regularizer=reg
            )(x)
            x = keras.layers.ReLU()(x)
            x = keras.layers.MaxPooling2D(2)(x)
        x = keras.layers.Flatten()(x)
        x = dense(CNN_UNITS // divisor, activation="relu")(x)
    outputs = dense(CLASSES)(x)
    return keras.Model(inputs, outputs, name=config["model"])


def run():
    """Trains and evaluates as the flags say; returns (model, summary)."""
    config = common.resolve_config("fashion_mnist", "mlp", MODELS, DEFAULTS)
    config["train_subset"] = FLAGS.train_subset
    keras.utils.set_random_seed(config["seed"])
    (x_train, y_train), (x_test, y_test) = load_data(config)
    x_train = x_train.astype("float32")
    steps_per_epoch = -(-len(x_train) // config["batch_size"])
    model = build_model(config)
    model.compile(
        common.make_optimizer(config, steps_per_epoch),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    callback = common.make_callback(config, recalibration_data=x_train)
    return common.train_and_report(
        model,
        callback,
        (x_train, y_train),
        (x_test.astype("float32"), y_test),
        config,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    run()


if __name__ == "__main__":
    app.run(main)
