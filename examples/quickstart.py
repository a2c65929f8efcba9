"""ITOP on Fashion-MNIST in about a minute: sparse from the first step.

    python examples/quickstart.py            # default backend
    KERAS_BACKEND=jax python examples/quickstart.py

Trains a 90%-sparse MLP (784-512-256-10, ERK allocation) with SET-ITOP:
every `update_interval` steps half of each layer's connections (cosine
annealed) are pruned by magnitude and regrown at random, so the network
explores the parameter space in time. Prints test accuracy, the final
sparsity and R_s, the in-time over-parameterization rate.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_float("sparsity", 0.9, "Global sparsity in [0, 1).")
flags.DEFINE_integer("epochs", 10, "Training epochs.")
flags.DEFINE_integer("update_interval", 100, "Steps between updates (ΔT).")
flags.DEFINE_integer("seed", 0, "Random seed.")


def main(argv):
    del argv
    import keras

    import keras_dst
    from examples.datasets import load_fashion_mnist

    keras.utils.set_random_seed(FLAGS.seed)
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    x_train = x_train.reshape(-1, 784).astype("float32") / 255.0
    x_test = x_test.reshape(-1, 784).astype("float32") / 255.0

    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras_dst.layers.SparseDense(512, activation="relu"),
            keras_dst.layers.SparseDense(256, activation="relu"),
            keras_dst.layers.SparseDense(10),
        ]
    )
    model.compile(
        keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    itop = keras_dst.ITOP(
        sparsity=FLAGS.sparsity,
        update_interval=FLAGS.update_interval,
        seed=FLAGS.seed,
    )
    start = time.time()
    model.fit(
        x_train,
        y_train,
        batch_size=128,
        epochs=FLAGS.epochs,
        validation_split=0.1,
        callbacks=[itop],
        verbose=2,
    )
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"\nbackend: {keras.backend.backend()}, {time.time() - start:.0f} s")
    keras_dst.summary(model)
    print(f"test accuracy: {accuracy:.4f}")
    print(f"final sparsity: {itop.sparsity:.4f}")
    print(f"R_s (in-time over-parameterization rate): {itop.itop_rate:.4f}")
    print(f"updates: {len(itop.updater.history)}")


if __name__ == "__main__":
    app.run(main)
