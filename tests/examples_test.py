"""Example scripts: every method end to end in --smoke mode, data helpers.

Each run drives the script's `main()` (or `run()`, its body) through absl's
flagsaver on generated data, then checks the JSON summary against the
model reloaded from the `.keras` file, independently of the script.
"""

import glob
import json
import os
import pickle

import keras
import numpy as np
from absl import app
from absl import flags
from absl.testing import absltest
from absl.testing import flagsaver
from absl.testing import parameterized

import keras_dst
from examples import cifar100
from examples import common
from examples import fashion_mnist
from examples import vit_fashion_mnist
from tests.test_case import TestCase

FLAGS = flags.FLAGS
SCRIPTS = {"cifar100": cifar100, "fashion_mnist": fashion_mnist}
DYNAMIC = ("set", "rigl", "itop_set", "itop_rigl", "snfs", "sup_tickets")

# Every method at least once (gmp below), each architecture once. Conv
# models are slow to compile on JAX on a small CPU (one XLA compile per
# kernel shape just to initialize), so they run the cheaper methods, and
# SupTickets's BatchNorm recalibration runs on the small CNN.
RUNS = (
    ("fashion_mnist", "mlp", "dense"),
    ("fashion_mnist", "mlp", "static"),
    ("fashion_mnist", "mlp", "set"),
    ("fashion_mnist", "mlp", "rigl"),
    ("fashion_mnist", "mlp", "itop_set"),
    ("fashion_mnist", "mlp", "itop_rigl"),
    ("fashion_mnist", "mlp", "snfs"),
    ("fashion_mnist", "cnn", "sup_tickets"),
    ("cifar100", "resnet34", "static"),
    ("cifar100", "vgg16", "dense"),
)  # gmp: test_gmp_cubic_schedule_and_reload_predictions


def keras_hub_vit_classifier():
    import keras_hub

    return keras_hub.models.ViTImageClassifier


def setUpModule():
    # Under pytest nobody parses the flags; absltest.main does.
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()


class ExamplesTest(TestCase):
    def smoke_flags(self, **overrides):
        out = self.create_tempdir().full_path
        values = dict(smoke=True, output_dir=out, verbose=0, sparsity=0.8)
        values.update(overrides)
        return out, flagsaver.flagsaver(**values)

    def read_summary(self, out):
        paths = glob.glob(os.path.join(out, "*.json"))
        self.assertLen(paths, 1)
        with open(paths[0]) as f:
            summary = json.load(f)
        self.assertEqual(summary["files"]["summary"], paths[0])
        self.assertTrue(os.path.exists(summary["files"]["model"]))
        return summary

    def check_summary(self, summary, script, model, method):
        config = summary["config"]
        self.assertEqual(config["dataset"], script)
        self.assertEqual(config["model"], model)
        self.assertEqual(config["method"], method)
        self.assertTrue(config["smoke"])
        self.assertEqual(summary["backend"], self.backend)
        self.assertEqual(summary["versions"]["keras"], keras.__version__)
        self.assertEqual(
            summary["versions"]["keras_dst"], keras_dst.__version__
        )
        self.assertGreater(summary["wall_time_s"], 0.0)
        self.assertBetween(summary["test_accuracy"], 0.0, 1.0)
        self.assertTrue(np.isfinite(summary["test_loss"]))
        self.assertLen(summary["history"]["loss"], config["epochs"])

        sparsity = summary["sparsity"]
        size = summary["sparse_weights"]
        if method == "dense":
            self.assertEqual(sparsity, 0.0)
            self.assertEqual(size, 0)  # plain Keras layers
            self.assertEqual(summary["kernel_zero_fraction"], 0.0)
            self.assertEqual(summary["itop_rate"], 1.0)
            return
        # Exact counts per layer: the global target to within rounding of
        # each layer's count (half a weight per layer).
        n_layers = len(summary["layers"])
        self.assertAlmostEqual(sparsity, 0.8, delta=0.5 * n_layers / size)
        active = sum(layer["active"] for layer in summary["layers"])
        self.assertEqual(active, summary["active_weights"])
        self.assertAlmostEqual(sparsity, 1.0 - active / size, places=12)
        # Stored zeros: at least every inactive weight (grown weights that
        # got no gradient yet are zeros too).
        self.assertGreaterEqual(
            summary["kernel_zero_fraction"], sparsity - 1e-12
        )
        self.assertEqual(summary["history"]["sparsity"][-1], sparsity)
        if method == "static":
            self.assertEqual(summary["updates"], 0)
            self.assertAlmostEqual(summary["itop_rate"], 1.0 - sparsity)
        elif method in DYNAMIC:
            self.assertGreater(summary["updates"], 0)
            self.assertGreater(summary["itop_rate"], 1.0 - sparsity + 0.01)
            self.assertLessEqual(summary["itop_rate"], 1.0)
            self.assertEqual(
                summary["history"]["itop_rate"][-1], summary["itop_rate"]
            )
            updates = summary["update_history"]
            self.assertLen(updates, summary["updates"])
            if method != "sup_tickets":  # superposition moves the masks
                self.assertAlmostEqual(
                    updates[-1]["itop_rate"], summary["itop_rate"], places=12
                )
        if method == "sup_tickets":
            self.assertLen(summary["tickets"], config["num_tickets"])
            self.assertAlmostEqual(
                summary["superposed"]["sparsity"], sparsity, places=12
            )

    def check_saved_model(self, summary, script):
        """The .keras file: exact sparsity, same test loss and accuracy."""
        loaded = keras.saving.load_model(summary["files"]["model"])
        expected = {r["path"]: r["active"] for r in summary["layers"]}
        self.assertEqual(self.active_counts(loaded), expected)
        # Every inactive weight is stored as exactly 0.0: weight decay and
        # momentum did not bring any back.
        self.assertModelExactSparsity(loaded, expected)
        _, (x_test, y_test) = SCRIPTS[script].load_data(summary["config"])
        loss, accuracy = loaded.evaluate(
            x_test.astype("float32"), y_test, batch_size=256, verbose=0
        )
        self.assertAllClose(loss, summary["test_loss"], rtol=1e-5)
        self.assertEqual(accuracy, summary["test_accuracy"])
        return loaded

    def assertAllClose(self, a, b, rtol=1e-6, atol=1e-6):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)

    @parameterized.named_parameters(
        (f"{script}_{model}_{method}", script, model, method)
        for script, model, method in RUNS
    )
    def test_method_end_to_end(self, script, model, method):
        out, saver = self.smoke_flags(model=model, method=method)
        with saver:
            SCRIPTS[script].main(["script"])
        summary = self.read_summary(out)
        self.check_summary(summary, script, model, method)
        self.check_saved_model(summary, script)

    def test_gmp_cubic_schedule_and_reload_predictions(self):
        # Through `run()` to keep the in-memory model: the reloaded model
        # predicts the same.
        out, saver = self.smoke_flags(model="mlp", method="gmp")
        with saver:
            model, returned = fashion_mnist.run()
        summary = self.read_summary(out)
        self.assertEqual(returned["name"], summary["name"])
        self.check_summary(summary, "fashion_mnist", "mlp", "gmp")
        self.assertEqual(summary["itop_rate"], 1.0)  # dense start
        loaded = self.check_saved_model(summary, "fashion_mnist")
        _, (x_test, _) = fashion_mnist.load_data(summary["config"])
        x_test = x_test.astype("float32")
        self.assertAllClose(
            loaded.predict(x_test, verbose=0),
            model.predict(x_test, verbose=0),
            rtol=1e-5,
            atol=1e-5,
        )
        # 2 epochs of 8 steps: pruning from step int(0.1 * 16) = 1 every
        # ΔT = 2 steps, n = (int(0.75 * 16) - 1) // 2 = 5 steps to the
        # target (steps 1, 3, ..., 11). By the end of epoch 1 (steps 0-7)
        # steps 1, 3, 5, 7 ran, k = 3: each layer at s_f * (1 - (1 - 3/5)^3)
        # of its final sparsity s_f.
        self.assertEqual(summary["updates"], 6)
        sizes = [int(np.prod(r["shape"])) for r in summary["layers"]]
        final = [
            1.0 - r["active"] / n
            for r, n in zip(summary["layers"], sizes, strict=True)
        ]
        expected = sum(
            n * s * (1.0 - (1.0 - 3 / 5) ** 3)
            for s, n in zip(final, sizes, strict=True)
        ) / sum(sizes)
        first = summary["history"]["sparsity"][0]
        self.assertAlmostEqual(first, expected, delta=len(sizes) / sum(sizes))
        self.assertLess(first, summary["sparsity"])

    def test_vit_from_keras_hub_trains_sparse(self):
        # keras-hub's ViT classifier, its backbone made sparse in place:
        # the saved file loads with the stock loader (the layers inside
        # keras-hub's blocks come back sparse) and scores the same.
        out, saver = self.smoke_flags(model="vit", method="itop_rigl")
        with saver:
            vit_fashion_mnist.main(["script"])
        summary = self.read_summary(out)
        self.assertEqual(summary["config"]["model"], "vit")
        self.assertLen(summary["layers"], 8)  # patches, positions, 4 + 2
        n_layers, size = len(summary["layers"]), summary["sparse_weights"]
        self.assertAlmostEqual(
            summary["sparsity"], 0.8, delta=0.5 * n_layers / size
        )
        self.assertGreater(summary["updates"], 0)
        self.assertGreater(summary["itop_rate"], 1.0 - summary["sparsity"])
        loaded = keras.saving.load_model(summary["files"]["model"])
        self.assertIsInstance(loaded, keras_hub_vit_classifier())
        expected = {r["path"]: r["active"] for r in summary["layers"]}
        self.assertModelExactSparsity(loaded, expected)
        _, (x_test, y_test) = fashion_mnist.load_data(summary["config"])
        _, accuracy = loaded.evaluate(
            x_test.astype("float32") / 255.0, y_test, verbose=0
        )
        self.assertEqual(accuracy, summary["test_accuracy"])

    def test_plot_and_tensorboard_flags(self):
        logs = self.create_tempdir().full_path
        out, saver = self.smoke_flags(
            model="mlp", method="itop_set", plot=True, tensorboard=logs
        )
        with saver:
            fashion_mnist.main(["script"])
        summary = self.read_summary(out)
        with open(summary["files"]["plot"], "rb") as f:
            self.assertEqual(f.read(4), b"\x89PNG")
        self.assertCountEqual(os.listdir(logs), ["sparsity", "train"])
        for run in ("sparsity", "train"):
            self.assertNotEmpty(glob.glob(os.path.join(logs, run, "events*")))
        layer = summary["layers"][0]["path"]
        survival = [
            r["layers"][layer]["survival"] for r in summary["update_history"]
        ]
        self.assertIsNone(survival[0])
        self.assertTrue(all(0.0 <= v <= 1.0 for v in survival[1:]))

    def test_lenet300_validate_and_weight_init_flags(self):
        out, saver = self.smoke_flags(
            model="lenet300",
            method="itop_set",
            validate=True,
            weight_init="unscaled",
        )
        with saver:
            model, summary = fashion_mnist.run()
        self.assertEqual(summary["config"]["weight_init"], "unscaled")
        epochs = summary["config"]["epochs"]
        self.assertLen(summary["history"]["val_accuracy"], epochs)
        self.assertAlmostEqual(
            summary["history"]["val_accuracy"][-1],
            summary["test_accuracy"],
            places=6,
        )
        units = [layer.units for layer in keras_dst.sparse_layers(model)]
        self.assertEqual(units, [300 // 16, 100 // 16, 10])

    def test_cnn_batchnorm_momentum_is_the_papers(self):
        with self.smoke_flags(model="cnn", method="static")[1]:
            config = common.resolve_config(
                "x", "mlp", fashion_mnist.MODELS, fashion_mnist.DEFAULTS
            )
        norms = [
            layer
            for layer in fashion_mnist.build_model(config).layers
            if isinstance(layer, keras.layers.BatchNormalization)
        ]
        self.assertLen(norms, 2)
        self.assertTrue(all(n.momentum == 0.9 for n in norms))

    def test_sup_tickets_is_the_reference_setting(self):
        # `--method sup_tickets --cycle_epochs 8` on CIFAR-100: the command
        # of the Sup-tickets reference code, piece by piece.
        flags_ = dict(method="sup_tickets", cycle_epochs=8, smoke=False)
        with self.smoke_flags(**flags_)[1]:
            config = common.resolve_config(
                "cifar100", "resnet34", cifar100.MODELS, cifar100.DEFAULTS
            )
        self.assertEqual(config["epochs"], 250)
        sup = common.make_callback(config)
        self.assertEqual(
            sup.phases(250, 391), (250 * 391 - 24 * 391, 8 * 391, 250 * 391)
        )
        self.assertEqual(sup.num_tickets, 3)
        self.assertEqual((sup.lr_low, sup.lr_high), (0.001, 0.005))
        self.assertEqual(sup.reexplore_fraction, 0.5)
        self.assertEqual(sup.reexplore_growth, "gradient")
        self.assertEqual(sup.reprune, "every_cycle")
        self.assertEqual(sup.base_updates, "until_cycles")
        self.assertEqual(sup.superposition, "caa")
        self.assertEqual(sup.base.update_interval, 1000)
        self.assertEqual(sup.base.drop_fraction, 0.5)
        optimizer = common.make_optimizer(config, 391)
        self.assertFalse(optimizer.nesterov)
        self.assertEqual(optimizer.momentum, 0.9)
        # The step decay ends where the cycles begin, at lr_low.
        start = 250 * 391 - 24 * 391
        schedule = keras.optimizers.schedules.deserialize(
            optimizer.get_config()["learning_rate"]
        )
        self.assertAlmostEqual(float(schedule(start - 1)), 0.001, places=7)
        self.assertAlmostEqual(float(schedule(start // 2 - 1)), 0.1, places=7)
        # Its layers carry the probe the gradient re-exploration reads.
        model = cifar100.build_model(dict(config, model="vgg16"))
        self.assertTrue(
            all(
                x.kernel_gradient is not None
                for x in keras_dst.sparse_layers(model)
            )
        )

    def test_dense_method_has_no_sparse_layers(self):
        with self.smoke_flags(method="dense")[1]:
            config = common.resolve_config(
                "x", "mlp", fashion_mnist.MODELS, fashion_mnist.DEFAULTS
            )
        model = fashion_mnist.build_model(config)
        self.assertEmpty(keras_dst.sparse_layers(model))
        with self.smoke_flags(method="set")[1]:
            config = common.resolve_config(
                "x", "mlp", fashion_mnist.MODELS, fashion_mnist.DEFAULTS
            )
        model = fashion_mnist.build_model(config)
        self.assertLen(keras_dst.sparse_layers(model), 4)
        # Random growth: no gradient probe.
        for layer in keras_dst.sparse_layers(model):
            self.assertIsNone(layer.kernel_gradient)

    def test_bad_model_flag(self):
        with self.smoke_flags(model="mlp")[1]:
            with self.assertRaisesRegex(app.UsageError, "--model"):
                cifar100.main(["script"])

    def test_cifar_pickle_reader(self):
        rng = np.random.default_rng(0)
        root = self.create_tempdir().full_path
        folder = os.path.join(root, "cifar-100-python")
        os.makedirs(folder)
        expected = {}
        for split, n in (("train", 5), ("test", 3)):
            data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
            labels = rng.integers(0, 100, n).tolist()
            record = {
                b"filenames": [b"x.png"] * n,
                b"fine_labels": labels,
                b"coarse_labels": [0] * n,
                b"data": data,
            }
            with open(os.path.join(folder, split), "wb") as f:
                pickle.dump(record, f)
            expected[split] = (data, labels)
        for where in (root, folder):
            train, test = cifar100.load_cifar100_pickles(where)
            for (x, y), split in ((train, "train"), (test, "test")):
                data, labels = expected[split]
                self.assertEqual(x.shape, (len(labels), 32, 32, 3))
                self.assertEqual(x.dtype, np.uint8)
                np.testing.assert_array_equal(y, labels)
                # Row-major CHW: channel c, row r, column k at
                # c * 1024 + r * 32 + k.
                for i, c, r, k in ((0, 0, 0, 0), (1, 2, 31, 5), (2, 1, 7, 30)):
                    self.assertEqual(
                        x[i, r, k, c], data[i, c * 1024 + r * 32 + k]
                    )
        with self.assertRaisesRegex(FileNotFoundError, "train"):
            cifar100.load_cifar100_pickles(self.create_tempdir().full_path)

    def test_augmentation_is_crop_of_padded_image_and_flip(self):
        n, size = 16, 8
        rng = np.random.default_rng(0)
        x = rng.integers(1, 256, (n, size, size, 3), dtype=np.uint8)
        y = np.arange(n)  # labels identify the images
        data = cifar100.AugmentedImages(x, y, batch_size=5, seed=0)
        self.assertLen(data, 4)
        padded = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)))
        seen, flips, offsets = [], 0, set()
        for index in range(len(data)):
            batch, labels = data[index]
            self.assertEqual(batch.dtype, np.float32)
            for image, label in zip(batch, labels, strict=True):
                found = [
                    (dy, dx, flip)
                    for dy in range(9)
                    for dx in range(9)
                    for flip in (False, True)
                    if np.array_equal(
                        image,
                        padded[label, dy : dy + size, dx : dx + size][
                            :, :: -1 if flip else 1
                        ],
                    )
                ]
                self.assertNotEmpty(found, f"image {label} is no crop")
                flips += found[0][2]
                offsets.add(found[0][:2])
            seen.extend(labels.tolist())
        self.assertCountEqual(seen, range(n))  # each image once per epoch
        self.assertBetween(flips, 1, n - 1)
        self.assertGreater(len(offsets), 3)


if __name__ == "__main__":
    absltest.main()
