"""A keras-hub Vision Transformer trained sparse on Fashion-MNIST.

    python examples/vit_fashion_mnist.py --method itop_rigl --sparsity 0.9
    python examples/vit_fashion_mnist.py --method dense   # the dense twin
    python examples/vit_fashion_mnist.py --smoke          # seconds, generated

The model is keras-hub's own `ViTBackbone` (patches of 4x4 pixels, 4
transformer blocks of width 64 with 4 heads and an MLP of 128) under its
`ViTImageClassifier`, built exactly as a keras-hub user builds it. For a
sparse method, `keras_dst.sparsify(backbone)` turns the layers inside
keras-hub's blocks sparse in place (the patch embedding, position
embedding, every attention projection and MLP kernel); the classifier's
head, added by keras-hub after that, stays dense (`keras_dst.summary`
lists it). The method's callback draws the masks at `fit`'s start from
`--sparsity` (ERK) and updates them every `--update_interval` steps.

Training: AdamW (weight decay 1e-4), learning rate 1e-3 with cosine
decay, batch 128, 10 epochs, on the 60,000 training images (or
`--train_subset`); test accuracy on the full 10,000. Pixels are scaled
to [0, 1]. Same data, flags, output files and summary as
`examples/fashion_mnist.py` (see there), whose loader reads Debian's
`dataset-fashion-mnist` offline.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import keras_hub  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import keras_dst  # noqa: E402
from examples import common  # noqa: E402
from examples import fashion_mnist  # noqa: E402

FLAGS = flags.FLAGS

MODELS = ("vit",)
DEFAULTS = {
    "epochs": 10,
    "batch_size": 128,
    "learning_rate": 1e-3,
    "weight_decay": 1e-4,
    "update_interval": 100,
}
VIT = dict(patch_size=4, num_layers=4, num_heads=4, hidden_dim=64, mlp_dim=128)
SMOKE_VIT = dict(
    patch_size=7, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=8
)


def build_model(config):
    """keras-hub's ViT classifier; its backbone made sparse for DST runs."""
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(28, 28, 1), **(SMOKE_VIT if config["smoke"] else VIT)
    )
    if config["method"] != "dense":
        probe = keras_dst.get_method(config["method"]).needs_gradient
        backbone = keras_dst.sparsify(backbone, dense_gradient=probe)
    return keras_hub.models.ViTImageClassifier(
        backbone, num_classes=fashion_mnist.CLASSES, preprocessor=None
    )


def run():
    """Trains and evaluates as the flags say; returns (model, summary)."""
    config = common.resolve_config("fashion_mnist", "vit", MODELS, DEFAULTS)
    config["train_subset"] = FLAGS.train_subset
    keras.utils.set_random_seed(config["seed"])
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(config)
    x_train = x_train.astype("float32") / 255.0
    steps = -(-len(x_train) // config["batch_size"]) * config["epochs"]
    model = build_model(config)
    model.compile(
        optimizer=keras.optimizers.AdamW(
            keras.optimizers.schedules.CosineDecay(
                config["learning_rate"], steps
            ),
            weight_decay=config["weight_decay"],
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    callback = common.make_callback(config, recalibration_data=x_train)
    return common.train_and_report(
        model,
        callback,
        (x_train, y_train),
        (x_test.astype("float32") / 255.0, y_test),
        config,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    run()


if __name__ == "__main__":
    app.run(main)
