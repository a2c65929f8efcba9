"""Guards for the private Keras internals keras_dst relies on.

Each test checks one function of `keras_dst.backend.keras_internals`
against the installed Keras and fails with "Keras changed X: keras_dst
needs ..." if Keras changed the internal it wraps. Also: what keras_dst
does with optimizers it does not know (`keras_dst.optimizers.slots`).
"""

import warnings

import keras
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

import keras_dst
from keras_dst.backend import keras_internals
from keras_dst.optimizers import slots
from keras_dst.superposition.batchnorm import batchnorm_layers
from tests.test_case import TestCase


def changed(what, needs):
    return f"Keras changed {what}: keras_dst needs {needs}"


class Pair(keras.layers.Layer):
    """Creates `zeta` before `alpha`: creation order, not names, counts."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.zeta = keras.layers.Dense(2, name="zeta")
        self.alpha = keras.layers.Dense(2, name="alpha")

    def call(self, x):
        return self.alpha(self.zeta(x))


class LayerInternalsTest(TestCase):
    def test_sublayers_in_creation_order(self):
        pair = Pair()
        self.assertEqual(
            [x.name for x in keras_internals.sublayers(pair)],
            ["zeta", "alpha"],
            changed(
                "`Layer._layers`",
                "a layer's direct sub-layers in creation order",
            ),
        )

    def test_walk_follows_data_flow_into_nested_models(self):
        inner = keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(3, name="in_first"),
                keras.layers.BatchNormalization(name="in_norm"),
                keras.layers.Dense(3, name="in_last"),
            ],
            name="inner",
        )
        shared = keras.layers.Dense(3, name="shared")
        x = keras.Input((4,))
        y = shared(inner(keras.layers.Dense(4, name="head")(x)))
        outer = keras.Model(x, shared(y))
        names = [
            x.name
            for x in keras_internals.walk_layers(outer)
            if not isinstance(x, keras.layers.InputLayer)
        ]
        self.assertEqual(
            names,
            ["head", "inner", "in_first", "in_norm", "in_last", "shared"],
            changed(
                "`Layer._layers` of models",
                "sub-layers in data-flow order, each once",
            ),
        )
        norms = batchnorm_layers(outer)
        self.assertEqual([x.name for x in norms], ["in_norm"])

    def test_sparse_layers_in_data_flow_order(self):
        inner = self.mlp((4, 5, 6), sparsity=0.5)
        x = keras.Input((4,))
        outer = keras.Model(
            x, keras_dst.layers.SparseDense(2, sparsity=0.5)(inner(x))
        )
        shapes = [
            tuple(x.kernel_variable.shape)
            for x in keras_dst.sparse_layers(outer)
        ]
        self.assertEqual(shapes, [(4, 5), (5, 6), (6, 2)])

    def test_sublayers_rejects_a_non_layer(self):
        with self.assertRaisesRegex(TypeError, "keras.layers.Layer"):
            keras_internals.sublayers("dense")

    def test_unlocked_lets_a_built_layer_take_variables(self):
        layer = keras.layers.Dense(2)
        layer.build((None, 3))
        with self.assertRaisesRegex(ValueError, "already built"):
            layer.add_weight(name="extra", shape=(1,))
        with keras_internals.unlocked(layer):
            layer.add_weight(name="extra", shape=(1,))
        self.assertLen(
            layer.weights,
            3,
            changed("`Layer._tracker`", "to unlock a built layer's state"),
        )
        with self.assertRaisesRegex(ValueError, "already built"):
            layer.add_weight(name="more", shape=(1,))  # locked again
        keras_internals.untrack_variable(layer, layer.weights[-1])
        self.assertLen(
            layer.weights,
            2,
            changed("`Layer._untrack_variable`", "to drop a variable"),
        )

    def test_change_class_drops_the_quantize_wrapper(self):
        layer = keras.layers.Dense(2)
        layer.build((None, 3))
        undo = keras_internals.change_class(layer, keras_dst.layers.SparseDense)
        self.assertIs(type(layer), keras_dst.layers.SparseDense)
        # The sparse class's refusal, not the wrapper of Dense.quantize.
        with self.assertRaisesRegex(NotImplementedError, "strip"):
            layer.quantize("int8")
        undo()
        self.assertIs(type(layer), keras.layers.Dense)
        layer.quantize("int8")  # Keras's own wrapper again
        self.assertEqual(layer.quantization_mode, "int8")

    def test_raw_weight_is_what_the_public_property_reads(self):
        # (Conv*Transpose and DepthwiseConv2D assign `self.kernel = ...`:
        # the sparse twin's property setter stores it, no internal read.)
        layers = {
            "kernel": [
                keras.layers.Dense(2),
                keras.layers.EinsumDense("ab,bc->ac", output_shape=2),
                keras.layers.Conv1D(2, 1),
                keras.layers.Conv2D(2, 1),
                keras.layers.Conv3D(2, 1),
            ],
            "embeddings": [keras.layers.Embedding(5, 2)],
        }
        for name, found in layers.items():
            for layer in found:
                if name == "embeddings":
                    layer.build((None,))
                elif hasattr(layer, "rank"):  # convolutions
                    layer.build((4,) + (3,) * (layer.rank + 1))
                else:
                    layer.build((4, 3))
                variable = keras_internals.raw_weight(layer, name)
                self.assertIsInstance(variable, keras.Variable, layer)
                self.assertIs(getattr(layer, name), variable)

    def test_own_variables_are_numbered_as_the_save_store(self):
        # Keras's `save_own_variables` writes key str(i) for the i-th of
        # them; a sparse layer converts its union's key on load.
        layer = keras_dst.layers.SparseDense(3)
        layer.build((None, 4))
        layer.trainable = False  # the order must not depend on it
        store = {}
        keras.layers.Layer.save_own_variables(layer, store)
        own = keras_internals.own_variables(layer)
        self.assertEqual(sorted(store), [str(i) for i in range(len(own))])
        for i, variable in enumerate(own):
            self.assertIs(store[str(i)], variable)
        self.assertTrue(any(v is layer.kernel_explored for v in own))

    def test_is_graph_model(self):
        x = keras.Input((3,))
        functional = keras.Model(x, keras.layers.Dense(2)(x))
        sequential = keras.Sequential(
            [keras.Input((3,)), keras.layers.Dense(2)]
        )

        class OwnConfig(keras.Model):
            def get_config(self):
                return {}

        self.assertTrue(keras_internals.is_graph_model(functional))
        self.assertTrue(keras_internals.is_graph_model(sequential))
        self.assertFalse(keras_internals.is_graph_model(keras.layers.Dense(2)))
        self.assertFalse(keras_internals.is_graph_model(OwnConfig()))

    def test_is_functional(self):
        x = keras.Input((3,))
        functional = keras.Model(x, keras.layers.Dense(2)(x))
        self.assertTrue(
            keras_internals.is_functional(functional),
            changed(
                "the class `keras.Model(inputs, outputs)` returns",
                "`keras.src.models.functional.Functional`",
            ),
        )
        sequential = keras.Sequential(
            [keras.Input((3,)), keras.layers.Dense(2)]
        )
        self.assertFalse(keras_internals.is_functional(sequential))

        class Subclassed(keras.Model):
            def call(self, x):
                return x

        self.assertFalse(keras_internals.is_functional(Subclassed()))


# name: (optimizer, kernel-shaped slots per kernel). Built-in optimizers,
# and the options that add per-variable lists (EMA, gradient accumulation).
BUILT_IN = {
    "sgd": (lambda: keras.optimizers.SGD(), 0),
    "momentum": (lambda: keras.optimizers.SGD(momentum=0.9), 1),
    "adam": (lambda: keras.optimizers.Adam(), 2),
    "adam_ema": (lambda: keras.optimizers.Adam(use_ema=True), 3),
    "accumulation": (
        lambda: keras.optimizers.SGD(
            momentum=0.9, gradient_accumulation_steps=2
        ),
        2,
    ),
    "adamw": (lambda: keras.optimizers.AdamW(), 2),
    "adamax": (lambda: keras.optimizers.Adamax(), 2),
    "nadam": (lambda: keras.optimizers.Nadam(), 2),
    "rmsprop": (lambda: keras.optimizers.RMSprop(), 1),
    "rmsprop_centered": (
        lambda: keras.optimizers.RMSprop(momentum=0.9, centered=True),
        3,
    ),
    "adagrad": (lambda: keras.optimizers.Adagrad(), 1),
    "adadelta": (lambda: keras.optimizers.Adadelta(), 2),
    "lion": (lambda: keras.optimizers.Lion(), 1),
    "lamb": (lambda: keras.optimizers.Lamb(), 2),
    "adafactor": (lambda: keras.optimizers.Adafactor(), 1),
    "ftrl": (lambda: keras.optimizers.Ftrl(), 2),
    "muon": (lambda: keras.optimizers.Muon(), 1),
    "loss_scale": (
        lambda: keras.mixed_precision.LossScaleOptimizer(
            keras.optimizers.Adam()
        ),
        2,
    ),
}


def two_kernel_model():
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, name="first"),
            keras.layers.Dense(2, name="second"),
        ]
    )


class OptimizerInternalsTest(TestCase):
    @parameterized.named_parameters(*[(k, k) for k in BUILT_IN])
    def test_slots_of_built_in_optimizers(self, name):
        make, count = BUILT_IN[name]
        optimizer = make()
        model = two_kernel_model()
        optimizer.build(model.trainable_variables)
        opt = keras_internals.base_optimizer(optimizer)
        self.assertTrue(
            all(
                a is b
                for a, b in zip(
                    keras_internals.built_variables(optimizer),
                    model.trainable_variables,
                    strict=True,
                )
            ),
            changed(
                "`Optimizer._trainable_variables`",
                "the variables of `build`, in order",
            ),
        )
        # Every optimizer variable with a shape is in a per-variable list:
        # none is missed (scalars: iterations, learning rate, ...).
        listed = {
            id(v)
            for entries in keras_internals.slot_lists(optimizer)
            for v in entries
            if v is not None
        }
        missed = [
            v.path
            for v in opt.variables
            if len(v.shape) and id(v) not in listed
        ]
        self.assertEqual(
            missed,
            [],
            changed(
                f"how {type(opt).__name__} keeps its slots",
                "them in lists aligned with the variables of `build`",
            ),
        )
        first, second = model.layers[0].kernel, model.layers[1].kernel
        for kernel, other in ((first, second), (second, first)):
            found = slots.slot_variables(optimizer, kernel)
            self.assertLen(
                found,
                count,
                changed(
                    f"the slots of {type(opt).__name__}",
                    f"{count} kernel-shaped slot(s) per kernel",
                ),
            )
            for slot in found:
                # `add_variable_from_reference` names a slot after its
                # variable: the lists are aligned, not just equally long.
                mine = kernel.path.replace("/", "_")
                theirs = other.path.replace("/", "_")
                self.assertIn(mine, slot.path)
                self.assertNotIn(theirs, slot.path)

    def test_not_built_and_untrained_variables_have_no_slots(self):
        optimizer = keras.optimizers.Adam()
        model = two_kernel_model()
        kernel = model.layers[0].kernel
        self.assertEqual(keras_internals.built_variables(optimizer), [])
        self.assertEqual(slots.slot_variables(optimizer, kernel), [])
        optimizer.build(model.layers[1].trainable_variables)
        self.assertEqual(slots.slot_variables(optimizer, kernel), [])
        self.assertEqual(slots.slot_variables(None, kernel), [])


def regression(n=16):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, x @ rng.normal(size=(4, 1)).astype("float32")


def zero():
    return keras.ops.convert_to_tensor(0.0, "float32")


class LearningRateTest(TestCase):
    def compiled(self, loss_scale=False, learning_rate=0.1):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        optimizer = keras.optimizers.SGD(learning_rate)
        if loss_scale:
            optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
        model.compile(optimizer, "mse")
        return model

    def step(self, model):
        x, y = regression()
        before = [self.to_numpy(w) for w in model.weights]
        model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
        after = [self.to_numpy(w) for w in model.weights]
        return any(
            not np.array_equal(a, b) for a, b in zip(before, after, strict=True)
        )

    @parameterized.named_parameters(("plain", False), ("loss_scale", True))
    def test_optimizer_learning_rate(self, loss_scale):
        model = self.compiled(loss_scale)
        rate = keras_internals.optimizer_learning_rate(model.optimizer)
        inner = keras_internals.base_optimizer(model.optimizer)
        self.assertIsInstance(
            rate,
            keras.Variable,
            changed("`Optimizer._learning_rate`", "a float rate's variable"),
        )
        self.assertTrue(any(rate is v for v in inner.variables))
        self.assertAlmostEqual(float(self.to_numpy(rate)), 0.1, places=6)
        schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
        optimizer = keras.optimizers.Adam(schedule)
        self.assertIs(
            keras_internals.optimizer_learning_rate(optimizer),
            schedule,
            changed("`Optimizer._learning_rate`", "the schedule object"),
        )

    @parameterized.named_parameters(("plain", False), ("loss_scale", True))
    def test_override_then_restore(self, loss_scale):
        model = self.compiled(loss_scale)
        self.assertTrue(self.step(model))  # builds the optimizer
        optimizer = model.optimizer
        inner = keras_internals.base_optimizer(optimizer)
        count, config = len(optimizer.variables), optimizer.get_config()
        keras_internals.override_learning_rate(optimizer, zero)
        model.make_train_function(force=True)
        self.assertFalse(
            self.step(model),
            changed(
                "how optimizers read their learning rate "
                "(`Optimizer._get_current_learning_rate`)",
                "an instance attribute of that name to replace the rate",
            ),
        )
        self.assertEqual(float(self.to_numpy(inner.learning_rate)), 0.0)
        self.assertLen(optimizer.variables, count)
        self.assertEqual(optimizer.get_config(), config)
        self.assertTrue(keras_internals.restore_learning_rate(optimizer))
        self.assertFalse(keras_internals.restore_learning_rate(optimizer))
        model.make_train_function(force=True)
        self.assertTrue(self.step(model))
        self.assertAlmostEqual(
            float(self.to_numpy(inner.learning_rate)), 0.1, places=6
        )

    def test_override_is_read_at_every_step(self):
        model = self.compiled()
        model.optimizer.build(model.trainable_variables)
        optimizer = model.optimizer

        def rate():  # 0 at the first step, 0.1 after
            step = keras.ops.cast(optimizer.iterations, "float32")
            return keras.ops.minimum(step, 1.0) * 0.1

        keras_internals.override_learning_rate(optimizer, rate)
        self.assertFalse(self.step(model))
        # The same compiled step, one iteration later.
        self.assertTrue(
            self.step(model),
            changed(
                "when optimizers read their learning rate",
                "`_get_current_learning_rate()` called inside the step",
            ),
        )
        self.assertTrue(keras_internals.restore_learning_rate(optimizer))

    def test_override_needs_a_callable(self):
        with self.assertRaisesRegex(TypeError, "`fn` must be a callable"):
            keras_internals.override_learning_rate(keras.optimizers.SGD(), 0.0)


def momentum_optimizer(dict_slots):
    """A fresh custom momentum-SGD class (registering it stays local).

    With `dict_slots`, velocities are kept in a dict by variable index
    (a string) instead of the standard aligned list.
    """

    class CustomMomentum(keras.optimizers.Optimizer):
        def __init__(self, learning_rate=0.05, **kwargs):
            super().__init__(learning_rate, name="custom_momentum", **kwargs)

        def build(self, variables):
            if self.built:
                return
            super().build(variables)
            made = [
                self.add_variable_from_reference(v, "velocity")
                for v in variables
            ]
            if dict_slots:
                self.velocity = {str(i): m for i, m in enumerate(made)}
            else:
                self.velocity = made

        def velocity_of(self, variable):
            index = self._get_variable_index(variable)
            return self.velocity[str(index) if dict_slots else index]

        def update_step(self, gradient, variable, learning_rate):
            rate = keras.ops.cast(learning_rate, variable.dtype)
            velocity = self.velocity_of(variable)
            self.assign(velocity, 0.9 * velocity - rate * gradient)
            self.assign_add(variable, velocity)

    return CustomMomentum


class UnknownOptimizerTest(TestCase):
    def fit(self, optimizer):
        model = self.mlp(sparsity=0.8, dense_gradient=False)
        model.compile(
            optimizer,
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        callback = keras_dst.SET(0.8, update_interval=2, seed=0)
        x, y = self.classification_data()
        model.fit(
            x, y, batch_size=32, epochs=2, verbose=0, callbacks=[callback]
        )
        self.assertNotEmpty(callback.updater.history)
        return model

    def assertSlotsZeroWhereInactive(self, model):
        self.assertModelExactSparsity(model)
        for layer in keras_dst.sparse_layers(model):
            found = slots.slot_variables(model.optimizer, layer.kernel_variable)
            self.assertLen(found, 1)
            inactive = self.to_numpy(found[0])[layer.get_mask() == 0]
            self.assertTrue(np.all(inactive == 0))

    def test_standard_custom_optimizer_works_and_warns_until_registered(self):
        cls = momentum_optimizer(dict_slots=False)
        with self.assertWarnsRegex(
            RuntimeWarning,
            r"CustomMomentum is not known.*"
            r"register_zero_preserving\(CustomMomentum\)",
        ):
            model = self.fit(cls())
        self.assertSlotsZeroWhereInactive(model)
        self.assertFalse(slots.keeps_zeros(cls()))
        self.assertIs(keras_dst.optimizers.register_zero_preserving(cls), cls)
        self.assertTrue(slots.keeps_zeros(cls()))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = self.fit(cls())
        self.assertEmpty([w for w in caught if "not known" in str(w.message)])
        self.assertSlotsZeroWhereInactive(model)

    def test_slots_outside_aligned_lists_raise(self):
        cls = momentum_optimizer(dict_slots=True)
        keras_dst.optimizers.register_zero_preserving(cls)
        model = self.mlp(sparsity=0.8)
        optimizer = cls()
        optimizer.build(model.trainable_variables)
        kernel = keras_dst.sparse_layers(model)[0].kernel_variable
        with self.assertRaisesRegex(
            ValueError,
            "cannot find the slots of optimizer CustomMomentum.*"
            r"register_zero_preserving\(CustomMomentum, slots=fn\)",
        ):
            slots.slot_variables(optimizer, kernel)
        # And from `fit`: at the start of training, or at the first update
        # (TensorFlow builds the optimizer at the first step).
        with self.assertRaisesRegex(ValueError, "cannot find the slots"):
            self.fit(cls())

    def test_registered_slots_function(self):
        cls = momentum_optimizer(dict_slots=True)

        def velocity(optimizer, variable):
            built = keras_internals.built_variables(optimizer)
            return [
                optimizer.velocity[str(i)]
                for i, v in enumerate(built)
                if v is variable
            ]

        keras_dst.optimizers.register_zero_preserving(cls, slots=velocity)
        self.assertSlotsZeroWhereInactive(self.fit(cls()))

    def test_register_checks_its_arguments(self):
        register = keras_dst.optimizers.register_zero_preserving
        with self.assertRaisesRegex(TypeError, "`cls` must be a subclass"):
            register(keras.optimizers.SGD())
        with self.assertRaisesRegex(TypeError, "`slots` must be None"):
            register(momentum_optimizer(False), slots="velocity")

    @parameterized.named_parameters(("muon", "Muon"), ("ftrl", "Ftrl"))
    def test_non_zero_preserving_optimizer_warns(self, name):
        model = self.mlp(sparsity=0.5)
        model.compile(getattr(keras.optimizers, name)(), "mse")
        with self.assertWarnsRegex(
            RuntimeWarning,
            f"optimizer {name} is not known to keep.*"
            rf"register_zero_preserving\({name}\)",
        ):
            keras_dst.SparseUpdater().prepare(model)

    def test_built_in_optimizers_do_not_warn(self):
        model = self.mlp(sparsity=0.5)
        model.compile(
            keras.mixed_precision.LossScaleOptimizer(keras.optimizers.AdamW()),
            "mse",
        )
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            keras_dst.SparseUpdater().prepare(model)


if __name__ == "__main__":
    absltest.main()
