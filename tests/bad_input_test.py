"""Bad-input sweep: every public entry point, each invalid value.

Each row: a call, the exception type and a pattern the message must
contain (the argument's name, and where useful the allowed range). Rows
that need a model get a fresh, built one. After a failure at fit or update
time, weights and masks must be exactly as before. The docs sum it up in
"Bad inputs" (docs/guarantees.md).
"""

import warnings

import keras
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

import keras_dst
from keras_dst.layers import SparseDense
from keras_dst.masks import allocate
from keras_dst.schedules import CyclicLearningRate
from tests.test_case import TestCase

DSC = keras_dst.DynamicSparsityCallback
NAN = float("nan")
INF = float("inf")


def sup(**kwargs):
    return keras_dst.SupTickets(keras_dst.SET(0.8), **kwargs)


def generator(x, y, batch_size=16):
    """Batches of (x, y) forever: `fit` does not know the steps."""
    while True:
        for start in range(0, len(x), batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]


# (name, callable, exception, message pattern)
CONSTRUCTION = [
    # DynamicSparsityCallback and presets
    ("sparsity_neg", lambda: DSC(-0.1), ValueError, r"sparsity.*\[0, 1\)"),
    ("sparsity_one", lambda: DSC(1.0), ValueError, r"sparsity.*\[0, 1\)"),
    ("sparsity_nan", lambda: DSC(NAN), ValueError, "sparsity"),
    ("sparsity_str", lambda: DSC("0.9"), TypeError, "sparsity"),
    ("sparsity_none", lambda: DSC(None), ValueError, "sparsity"),
    ("sparsity_bool", lambda: DSC(True), TypeError, "sparsity"),
    (
        "interval_zero",
        lambda: DSC(0.9, update_interval=0),
        ValueError,
        r"update_interval.*> 0",
    ),
    (
        "interval_float",
        lambda: DSC(0.9, update_interval=1.5),
        ValueError,
        "update_interval",
    ),
    (
        "interval_none",
        lambda: DSC(0.9, update_interval=None),
        ValueError,
        "update_interval",
    ),
    (
        "drop_high",
        lambda: DSC(0.9, drop_fraction=1.01),
        ValueError,
        r"drop_fraction.*\[0, 1\]",
    ),
    (
        "drop_nan",
        lambda: DSC(0.9, drop_fraction=NAN),
        ValueError,
        "drop_fraction",
    ),
    (
        "drop_str",
        lambda: DSC(0.9, drop_fraction="half"),
        TypeError,
        "drop_fraction",
    ),
    (
        "drop_end",
        lambda: DSC(0.9, drop_fraction_end=2.0),
        ValueError,
        "drop_fraction_end",
    ),
    ("end_high", lambda: DSC(0.9, update_end=1.5), ValueError, "update_end"),
    ("end_neg", lambda: DSC(0.9, update_end=-1), ValueError, "update_end"),
    ("end_str", lambda: DSC(0.9, update_end="all"), TypeError, "update_end"),
    (
        "growth",
        lambda: DSC(0.9, growth="best"),
        ValueError,
        r"growth.*random.*gradient.*momentum",
    ),
    ("prune", lambda: DSC(0.9, prune="random"), ValueError, "prune"),
    (
        "schedule",
        lambda: DSC(0.9, drop_schedule="linear"),
        ValueError,
        "drop_schedule",
    ),
    (
        "distribution",
        lambda: DSC(0.9, distribution="erdos"),
        ValueError,
        "distribution",
    ),
    (
        "momentum_one",
        lambda: DSC(0.9, growth="momentum", momentum=1.0),
        ValueError,
        r"momentum.*\[0, 1\)",
    ),
    ("seed_float", lambda: DSC(0.9, seed=1.5), TypeError, "seed"),
    ("set_sparsity", lambda: keras_dst.SET(1.2), ValueError, "sparsity"),
    (
        "rigl_interval",
        lambda: keras_dst.RigL(0.9, update_interval=-1),
        ValueError,
        "update_interval",
    ),
    (
        "itop_growth",
        lambda: keras_dst.ITOP(0.9, growth="momentum?"),
        ValueError,
        "growth",
    ),
    (
        "snfs_momentum",
        lambda: keras_dst.SNFS(0.9, momentum=-0.5),
        ValueError,
        "momentum",
    ),
    ("static_sparsity", lambda: keras_dst.Static(-1), ValueError, "sparsity"),
    # SupTickets
    ("sup_base", lambda: keras_dst.SupTickets("set"), TypeError, "base"),
    (
        "sup_tickets0",
        lambda: sup(num_tickets=0),
        ValueError,
        r"num_tickets.*>= 1",
    ),
    (
        "sup_tickets_float",
        lambda: sup(num_tickets=2.5),
        ValueError,
        "num_tickets",
    ),
    (
        "sup_fraction1",
        lambda: sup(cyclic_fraction=1.0),
        ValueError,
        r"cyclic_fraction.*\(0, 1\)",
    ),
    (
        "sup_fraction0",
        lambda: sup(cyclic_fraction=0.0),
        ValueError,
        "cyclic_fraction",
    ),
    ("sup_epochs0", lambda: sup(cyclic_epochs=0), ValueError, "cyclic_epochs"),
    (
        "sup_lr_order",
        lambda: sup(lr_low=0.1, lr_high=0.01),
        ValueError,
        "lr_low.*lr_high",
    ),
    ("sup_lr_zero", lambda: sup(lr_low=0.0), ValueError, "lr_low"),
    (
        "sup_reexplore",
        lambda: sup(reexplore_fraction=1.5),
        ValueError,
        "reexplore_fraction",
    ),
    (
        "sup_average",
        lambda: sup(superposition="mean"),
        ValueError,
        "superposition",
    ),
    ("sup_result", lambda: sup(result="best"), ValueError, "result"),
    # SparseUpdater
    (
        "updater_growth",
        lambda: keras_dst.SparseUpdater(growth="x"),
        ValueError,
        "growth",
    ),
    (
        "updater_seed",
        lambda: keras_dst.SparseUpdater(seed="1"),
        TypeError,
        "seed",
    ),
    # Layers
    (
        "layer_sparsity",
        lambda: SparseDense(4, sparsity=1.0),
        ValueError,
        r"sparsity.*\[0, 1\)",
    ),
    (
        "layer_sparsity_type",
        lambda: SparseDense(4, sparsity=[0.5]),
        TypeError,
        "sparsity",
    ),
    (
        "layer_mask_seed",
        lambda: SparseDense(4, mask_seed="a"),
        TypeError,
        "mask_seed",
    ),
    (
        "layer_dense_gradient",
        lambda: SparseDense(4, dense_gradient=1),
        TypeError,
        "dense_gradient",
    ),
    # Allocation
    (
        "allocate_sparsity",
        lambda: allocate({"a": (4, 4)}, 1.0, "erk"),
        ValueError,
        "sparsity",
    ),
    (
        "allocate_distribution",
        lambda: allocate({"a": (4, 4)}, 0.5, "x"),
        ValueError,
        "distribution",
    ),
    (
        "allocate_all_dense",
        lambda: allocate({"a": (4, 4)}, 0.5, "erk", keep_dense=["a"]),
        ValueError,
        "dense",
    ),
    (
        "allocate_custom_missing",
        lambda: allocate({"a": (4, 4), "b": (4, 4)}, 0.5, {"a": 0.5}),
        ValueError,
        "b",
    ),
    # Schedules
    (
        "cyclic_steps",
        lambda: CyclicLearningRate(0.1, 10, 0, 0.01, 0.1),
        ValueError,
        "cycle_steps",
    ),
    (
        "cyclic_order",
        lambda: CyclicLearningRate(0.1, 10, 5, 0.1, 0.01),
        ValueError,
        "lr_low",
    ),
]

BUILT_MODEL = [
    (
        "init_masks_sparsity",
        lambda m: keras_dst.initialize_masks(m, 1.5),
        ValueError,
        "sparsity",
    ),
    (
        "init_masks_init",
        lambda m: keras_dst.initialize_masks(m, 0.5, mask_init="best"),
        ValueError,
        "mask_init",
    ),
    (
        "init_masks_unknown_layer",
        lambda m: keras_dst.initialize_masks(m, 0.5, overrides={"nope": 0.1}),
        ValueError,
        "nope",
    ),
    (
        "set_mask_shape",
        lambda m: keras_dst.sparse_layers(m)[0].set_mask(np.ones((2, 2))),
        ValueError,
        "shape",
    ),
    (
        "set_mask_values",
        lambda m: keras_dst.sparse_layers(m)[0].set_mask(
            np.full(keras_dst.sparse_layers(m)[0].kernel_variable.shape, 2)
        ),
        ValueError,
        "0 and 1",
    ),
    (
        "sparsify_sparsity",
        lambda m: keras_dst.sparsify(m, sparsity=2.0),
        ValueError,
        "sparsity",
    ),
    (
        "sparsify_distribution",
        lambda m: keras_dst.sparsify(m, 0.5, distribution="xyz"),
        ValueError,
        "distribution",
    ),
    (
        "updater_not_prepared",
        lambda m: keras_dst.SparseUpdater().update(m, 1, 0.3),
        RuntimeError,
        "prepare",
    ),
    (
        "updater_drop_fraction",
        lambda m: keras_dst.SparseUpdater().prepare(m).update(m, 1, 1.5),
        ValueError,
        "drop_fraction",
    ),
    (
        "lora",
        lambda m: keras_dst.sparse_layers(m)[0].enable_lora(2),
        NotImplementedError,
        "strip",
    ),
]


def plain_mlp():
    return keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(5), keras.layers.Dense(3)]
    )


class BadInputTest(TestCase):
    def sparse_mlp(self, sparsity=0.5):
        model = self.mlp((6, 8, 3), sparsity=sparsity, mask_seed=0)
        model.compile(
            keras.optimizers.SGD(0.05, momentum=0.9),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model

    def snapshot(self, model):
        return [self.to_numpy(v).copy() for v in model.weights]

    def assertUnchanged(self, model, before):
        for v, b in zip(model.weights, before, strict=True):
            np.testing.assert_array_equal(self.to_numpy(v), b, v.path)

    @parameterized.named_parameters(*CONSTRUCTION)
    def test_construction(self, make, error, pattern):
        with self.assertRaisesRegex(error, pattern):
            make()

    @parameterized.named_parameters(*BUILT_MODEL)
    def test_on_built_model(self, call, error, pattern):
        model = self.sparse_mlp()
        if call.__code__.co_names and "sparsify" in call.__code__.co_names:
            model = plain_mlp()
        before = self.snapshot(model)
        with self.assertRaisesRegex(error, pattern):
            call(model)
        self.assertUnchanged(model, before)

    def fit(self, model, callbacks, **kwargs):
        x, y = self.classification_data(features=6, classes=3)
        return model.fit(
            x, y, batch_size=32, verbose=0, callbacks=callbacks, **kwargs
        )

    def test_model_without_sparse_layers(self):
        model = plain_mlp()
        model.compile("sgd", "mse")
        x = np.zeros((4, 6), "float32")
        with self.assertRaisesRegex(ValueError, "keras_dst.sparsify"):
            model.fit(x, np.zeros((4, 3)), callbacks=[keras_dst.SET(0.9)])
        with self.assertRaisesRegex(ValueError, "no sparse layers"):
            keras_dst.sparse_layers(model) or keras_dst.initialize_masks(
                model, 0.5
            )

    def test_empty_model(self):
        with self.assertRaisesRegex(ValueError, "no sparse layers"):
            keras_dst.SparseUpdater().prepare(keras.Sequential([]))

    def test_unbuilt_layers(self):
        model = keras.Sequential([SparseDense(3)])
        with self.assertRaisesRegex(ValueError, "not built"):
            keras_dst.initialize_masks(model, 0.5)

    def test_subclassed_model_sparsify(self):
        class Net(keras.Model):
            def __init__(self):
                super().__init__()
                self.d = keras.layers.Dense(3)

            def call(self, x):
                return self.d(x)

        net = Net()
        net(np.zeros((1, 4), "float32"))
        # Keras cannot rebuild it from its config (its constructor takes
        # no `trainable`): the error says so, short, and what works.
        with self.assertRaises(ValueError) as raised:
            keras_dst.sparsify(net, 0.5)
        message = str(raised.exception)
        self.assertIn("cannot rebuild model 'net' (Net)", message)
        self.assertIn("in_place=True", message)
        self.assertLess(len(message), 800)

    def test_layer_too_small_for_density(self):
        # 0.999 of a 6x8 kernel rounds to 0 active weights: each layer keeps
        # at least one active weight (documented), never an empty layer.
        model = self.mlp((6, 8, 3))
        keras_dst.initialize_masks(model, 0.999, "uniform", seed=0)
        for layer in keras_dst.sparse_layers(model):
            self.assertEqual(int(layer.get_mask().sum()), 1)

    def dense_mask_model(self, dense_gradient=True, learning_rate=0.05):
        """Masks still all ones (the README's normal case), optimizer
        built, so a snapshot covers its slots too."""
        model = self.mlp((6, 8, 3), dense_gradient=dense_gradient)
        model.compile(
            keras.optimizers.SGD(learning_rate, momentum=0.9),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.optimizer.build(model.trainable_variables)
        return model

    def full_snapshot(self, model):
        """Weights, masks, unions, probes and optimizer variables."""
        variables = list(model.weights) + list(model.optimizer.variables)
        return [(v, self.to_numpy(v).copy()) for v in variables]

    def assertSnapshotEqual(self, snapshot):
        for variable, value in snapshot:
            np.testing.assert_array_equal(
                self.to_numpy(variable), value, variable.path
            )

    @parameterized.named_parameters(
        (
            "set_fraction_unknown_steps",
            "unknown_steps",
            ValueError,
            "steps_per_epoch",
        ),
        ("rigl_without_probe", "no_probe", ValueError, "dense_gradient"),
        (
            "sup_tickets_cycles_too_long",
            "long_cycles",
            ValueError,
            "cyclic phase",
        ),
        (
            "sup_tickets_callable_rate",
            "callable_rate",
            TypeError,
            "LearningRateSchedule",
        ),
        (
            "gmp_unknown_steps",
            "gmp_unknown_steps",
            ValueError,
            "steps_per_epoch",
        ),
    )
    def test_failed_fit_changes_nothing(self, case, error, pattern):
        x, y = self.classification_data(n=64, features=6, classes=3)
        model = self.dense_mask_model(dense_gradient=case != "no_probe")
        fit = dict(x=x, y=y, batch_size=16, epochs=3, verbose=0)
        if case == "unknown_steps":
            callbacks = [keras_dst.SET(0.5, seed=0)]
            fit = dict(x=generator(x, y), epochs=3, verbose=0)
        elif case == "no_probe":
            callbacks = [keras_dst.RigL(0.5, seed=0)]
        elif case == "long_cycles":
            callbacks = [sup(cyclic_epochs=3)]
        elif case == "callable_rate":
            model.optimizer.learning_rate = lambda: 0.05
            callbacks = [sup()]
        else:
            callbacks = [keras_dst.GMP(0.5)]
            fit = dict(x=generator(x, y), epochs=3, verbose=0)
        self.assertTrue(
            all(
                int(layer.get_mask().min()) == 1
                for layer in keras_dst.sparse_layers(model)
            )
        )
        before = self.full_snapshot(model)
        with self.assertRaisesRegex(error, pattern):
            model.fit(callbacks=callbacks, **fit)
        self.assertSnapshotEqual(before)

    def test_fraction_update_end_with_unknown_steps(self):
        # A dataset of unknown length: `fit` cannot say how many steps a
        # fractional `update_end` means.
        model = self.sparse_mlp()
        callback = keras_dst.SET(0.5)
        callback.set_model(model)
        callback.set_params({"epochs": 1, "steps": None, "verbose": 0})
        callback.on_train_begin()
        with self.assertRaisesRegex(ValueError, "steps_per_epoch"):
            callback.on_epoch_begin(0)

    def test_sup_tickets_cyclic_phase_longer_than_training(self):
        model = self.sparse_mlp()
        with self.assertRaisesRegex(ValueError, "cyclic phase"):
            self.fit(model, [sup(cyclic_epochs=3)], epochs=3)

    def test_sup_tickets_bn_model_without_data(self):
        inputs = keras.Input((6,))
        x = SparseDense(8)(inputs)
        x = keras.layers.BatchNormalization()(x)
        model = keras.Model(inputs, SparseDense(3)(x))
        model.compile("sgd", "mse")
        with self.assertRaisesRegex(ValueError, "recalibration_data"):
            model.fit(
                np.zeros((8, 6)),
                np.zeros((8, 3)),
                epochs=5,
                verbose=0,
                callbacks=[sup()],
            )

    def test_momentum_growth_without_probe(self):
        model = keras.Sequential(
            [keras.Input((6,)), SparseDense(3, dense_gradient=False)]
        )
        model.compile("sgd", "mse")
        with self.assertRaisesRegex(ValueError, "dense_gradient"):
            keras_dst.SparseUpdater(growth="momentum").prepare(model)

    def test_gradient_growth_with_gradient_accumulation_warns(self):
        model = self.mlp((6, 3))
        model.compile(
            keras.optimizers.SGD(0.1, gradient_accumulation_steps=2), "mse"
        )
        with self.assertWarnsRegex(RuntimeWarning, "elementwise maximum"):
            keras_dst.SparseUpdater(growth="gradient").prepare(model)

    @parameterized.parameters(NAN, INF, -INF)
    def test_non_finite_weights_at_update_step(self, bad):
        model = self.sparse_mlp()
        self.fit(model, [], epochs=1)
        layer = keras_dst.sparse_layers(model)[1]
        kernel = self.to_numpy(layer.kernel_variable)
        kernel[tuple(np.argwhere(layer.get_mask())[0])] = bad  # an active one
        layer.kernel_variable.assign(kernel)
        updater = keras_dst.SparseUpdater(seed=0).prepare(model)
        before = self.snapshot(model)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.assertFalse(updater.update(model, 10, 0.3))
        self.assertTrue(any("skipped" in str(w.message) for w in caught))
        self.assertEqual(updater.history, [])
        for v, b in zip(model.weights, before, strict=True):
            np.testing.assert_array_equal(self.to_numpy(v), b)

    def test_non_finite_gradient_at_update_step(self):
        model = self.sparse_mlp()
        self.fit(model, [], epochs=1)
        layer = keras_dst.sparse_layers(model)[0]
        probe = self.to_numpy(layer.kernel_gradient)
        probe[0, 0] = NAN
        layer.kernel_gradient.assign(probe)
        updater = keras_dst.SparseUpdater(growth="gradient", seed=0)
        updater.prepare(model)
        before = self.snapshot(model)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.assertFalse(updater.update(model, 10, 0.3))
        messages = [str(w.message) for w in caught]
        self.assertTrue(any("step 10 skipped" in m for m in messages))
        self.assertEqual(updater.history, [])
        self.assertUnchanged(model, before)

    def test_nan_loss_during_fit_skips_updates_and_keeps_masks(self):
        # A NaN input makes every gradient and weight NaN (inactive ones
        # too: NaN * 0 is NaN, as in any Keras model; use
        # `keras.callbacks.TerminateOnNaN`). The callback must not crash or
        # change masks: updates are skipped with a warning.
        model = self.sparse_mlp()
        masks = [x.get_mask() for x in keras_dst.sparse_layers(model)]
        x, y = self.classification_data(features=6, classes=3)
        x[40] = NAN  # batch 1 (step 1): every update (steps 3, 6, ...) after
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(
                x,
                y,
                batch_size=32,
                epochs=2,
                shuffle=False,
                verbose=0,
                callbacks=[keras_dst.SET(0.5, update_interval=3, seed=0)],
            )
        skipped = [w for w in caught if "skipped" in str(w.message)]
        self.assertLen(skipped, 3)  # steps 3, 6, 9 (SET stops at 75%: 12)
        # Not only the counts (SET keeps those anyway): the masks.
        for layer, mask in zip(
            keras_dst.sparse_layers(model), masks, strict=True
        ):
            np.testing.assert_array_equal(layer.get_mask(), mask)


if __name__ == "__main__":
    absltest.main()
