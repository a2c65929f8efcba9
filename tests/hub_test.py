"""Every Keras model: keras-hub backbones, graphs with ops, subclassed models.

Small random-weight configs of keras-hub's BERT, GPT-2, Gemma, Llama and
ViT backbones and a Functional graph holding Keras ops (`x[:, 0]`,
`keras.ops.multiply`): `sparsify` reaches the layers inside keras-hub's
blocks, the sparse backbone plugs into its keras-hub task and trains with
ITOP inside `fit` with exact counts, `keras_dst.save_model` +
`keras.saving.load_model` restore it exactly, and `strip` gives back the
original classes. Then every method on one small causal LM, an exact
`BackupAndRestore` resume, subclassed models and what fails clearly.
"""

import os

import keras
import keras_hub
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

import keras_dst
from keras_dst.layers import SparseLayer
from tests.test_case import TestCase

VOCAB, LENGTH, BATCH = 100, 16, 8


def tokens(seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCAB, size=(BATCH, LENGTH)).astype("int32")
    return ids, np.ones_like(ids)


def bert():
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=VOCAB,
        num_layers=1,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=LENGTH,
    )
    ids, padding = tokens()
    x = {"token_ids": ids, "segment_ids": 0 * ids, "padding_mask": padding}
    y = np.arange(BATCH) % 2

    def task(sparse):
        return keras_hub.models.BertTextClassifier(
            sparse, num_classes=2, preprocessor=None
        )

    return backbone, task, x, y


def causal_lm(backbone, task_class):
    ids, padding = tokens()
    x = {"token_ids": ids, "padding_mask": padding}

    def task(sparse):
        return task_class(sparse, preprocessor=None)

    return backbone, task, x, ids


def gpt2(num_layers=1, dropout=0.1):
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCAB,
        num_layers=num_layers,
        dropout=dropout,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=LENGTH,
    )
    return causal_lm(backbone, keras_hub.models.GPT2CausalLM)


def gemma():
    backbone = keras_hub.models.GemmaBackbone(
        vocabulary_size=VOCAB,
        num_layers=1,
        num_query_heads=2,
        num_key_value_heads=1,
        hidden_dim=16,
        intermediate_dim=32,
        head_dim=8,
    )
    return causal_lm(backbone, keras_hub.models.GemmaCausalLM)


def llama():
    backbone = keras_hub.models.LlamaBackbone(
        vocabulary_size=VOCAB,
        num_layers=1,
        num_query_heads=2,
        num_key_value_heads=1,
        hidden_dim=16,
        intermediate_dim=32,
    )
    return causal_lm(backbone, keras_hub.models.LlamaCausalLM)


def vit():
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(28, 28, 1),
        patch_size=7,
        num_layers=1,
        num_heads=2,
        hidden_dim=16,
        mlp_dim=32,
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH, 28, 28, 1)).astype("float32")
    y = np.arange(BATCH) % 3

    def task(sparse):
        return keras_hub.models.ViTImageClassifier(
            sparse, num_classes=3, preprocessor=None
        )

    return backbone, task, x, y


def ops_graph():
    """A Functional model whose graph holds Keras ops between layers."""
    inputs = keras.Input((LENGTH,), dtype="int32", name="ids")
    h = keras.layers.Embedding(VOCAB, 16, name="emb")(inputs)
    h = keras.layers.Dense(16, activation="relu", name="mix")(h)
    h = keras.ops.multiply(h, keras.layers.Dense(16, name="gate")(h))
    pooled = keras.layers.Dense(24, name="pool")(h[:, 0])
    outputs = keras.layers.Dense(2, name="head")(keras.ops.tanh(pooled))
    model = keras.Model(inputs, outputs, name="ops_graph")
    ids, _ = tokens()
    return model, None, ids, np.arange(BATCH) % 2


MODELS = {
    "bert": bert,
    "gpt2": gpt2,
    "gemma": gemma,
    "llama": llama,
    "vit": vit,
    "ops_graph": ops_graph,
}


def classes(model):
    return [type(layer) for layer in model._flatten_layers(include_self=False)]


def values(variables):
    return [np.array(keras.ops.convert_to_numpy(v.value)) for v in variables]


class HubModelTest(TestCase):
    def assertSavedEqual(self, model, loaded):
        """Every variable equal after a save and load, but gradient
        probes, which are saved as zeros unless an update is about to read
        them (tests/save_test.py checks which)."""
        self.assertLen(loaded.weights, len(model.weights))
        for v, a, b in zip(
            model.weights,
            values(model.weights),
            values(loaded.weights),
            strict=True,
        ):
            if v.path.endswith("/kernel_gradient") and not np.any(b):
                continue
            np.testing.assert_array_equal(a, b)

    def assertOptimizerRestored(self, model, loaded):
        self.assertLen(
            loaded.optimizer.variables, len(model.optimizer.variables)
        )
        for a, b in zip(
            values(model.optimizer.variables),
            values(loaded.optimizer.variables),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)

    def compile(self, model):
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model

    @parameterized.named_parameters((name, name) for name in MODELS)
    def test_sparsify_train_save_strip(self, name):
        original, make_task, x, y = MODELS[name]()
        plain = classes(original)
        sparse = keras_dst.sparsify(original, 0.9, seed=0)
        # The same class (a backbone stays that backbone), the original
        # untouched.
        self.assertIs(type(sparse), type(original))
        self.assertEqual(classes(original), plain)
        self.assertEmpty(keras_dst.sparse_layers(original))
        report = keras_dst.sparsity_report(sparse)
        share = report["coverage"]["sparse_share"]
        self.assertGreaterEqual(share, 0.9, f"{name}: {share:.3f} masked")
        for row in report["dense_kernels"]:
            self.assertTrue(row["reason"], row)
        self.assertAlmostEqual(report["total"]["sparsity"], 0.9, delta=0.005)

        model = self.compile(sparse if make_task is None else make_task(sparse))
        counts = self.active_counts(model)
        itop = keras_dst.ITOP(0.9, update_interval=2, seed=0)
        model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[itop])
        self.assertLen(itop.history, 1)
        self.assertGreater(itop.itop_rate, 1 - 0.9)  # connections moved
        self.assertModelExactSparsity(model, counts)
        before = model.predict(x, verbose=0)

        path = os.path.join(self.temp_dir(), "model.keras")
        keras_dst.save_model(model, path)
        loaded = keras.saving.load_model(path)
        self.assertIs(type(loaded), type(model))
        self.assertEqual(self.active_counts(loaded), counts)
        for a, b in zip(
            keras_dst.sparse_layers(model),
            keras_dst.sparse_layers(loaded),
            strict=True,
        ):
            np.testing.assert_array_equal(a.get_mask(), b.get_mask())
            np.testing.assert_array_equal(a.get_explored(), b.get_explored())
        self.assertSavedEqual(model, loaded)
        if type(model).compile is keras.Model.compile:
            # keras-hub tasks override `compile`, so Keras does not compile
            # them on load (nor restore their optimizer), sparse or not:
            # see test_optimizer_state_restored for a backbone's.
            self.assertOptimizerRestored(model, loaded)
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), before)

        stripped = keras_dst.strip(model)
        self.assertIs(type(stripped), type(model))
        self.assertFalse(
            any(issubclass(c, SparseLayer) for c in classes(stripped))
        )
        np.testing.assert_allclose(
            stripped.predict(x, verbose=0), before, rtol=1e-5, atol=1e-6
        )

    def test_optimizer_state_restored(self):
        # A sparse backbone inside a Functional model: the record covers
        # the backbone's layers, Keras compiles on load, every variable of
        # the optimizer comes back.
        backbone, _, x, y = gpt2(num_layers=1, dropout=0.0)
        sparse = keras_dst.sparsify(backbone, 0.8, seed=0)
        inputs = {
            name: keras.Input((LENGTH,), dtype="int32", name=name)
            for name in ("token_ids", "padding_mask")
        }
        hidden = sparse(inputs)
        logits = keras.layers.Dense(VOCAB, name="lm_head")(hidden)
        model = self.compile(keras.Model(inputs, logits))
        model.fit(
            x,
            y,
            batch_size=4,
            verbose=0,
            callbacks=[keras_dst.RigL(0.8, update_interval=1, seed=0)],
        )
        path = os.path.join(self.temp_dir(), "lm.keras")
        keras_dst.save_model(model, path)
        loaded = keras.saving.load_model(path)
        self.assertOptimizerRestored(model, loaded)
        self.assertSavedEqual(model, loaded)
        # Training goes on identically from both.
        for m in (model, loaded):
            m.fit(x, y, batch_size=4, verbose=0, shuffle=False)
        for a, b in zip(
            values(model.weights), values(loaded.weights), strict=True
        ):
            np.testing.assert_array_equal(a, b)


# One small causal LM for the methods: GPT-2 with one block. (ITOP trains
# every model of HubModelTest, and is Sup-tickets' base here.)
METHODS = {
    "rigl": lambda: keras_dst.RigL(0.8, update_interval=2, seed=0),
    "set": lambda: keras_dst.SET(0.8, update_interval=2, seed=0),
    "gmp": lambda: keras_dst.GMP(0.8, begin=0.0, end=0.5, update_interval=2),
    "sup_tickets": lambda: keras_dst.SupTickets(
        keras_dst.ITOP(0.8, update_interval=2, seed=0),
        num_tickets=2,
        cyclic_epochs=2,
        verbose=0,
    ),
}


class HubMethodsTest(TestCase):
    @parameterized.named_parameters((name, name) for name in METHODS)
    def test_method_trains_the_causal_lm(self, name):
        backbone, make_task, x, y = gpt2(num_layers=1)
        model = make_task(keras_dst.sparsify(backbone, seed=0))
        model.compile(
            optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        callback = METHODS[name]()
        epochs = 3 if name == "sup_tickets" else 1
        model.fit(
            x, y, batch_size=2, epochs=epochs, verbose=0, callbacks=[callback]
        )
        layers = keras_dst.sparse_layers(model)
        self.assertLen(layers, 7)  # embedding, q, k, v, o, 2 feed-forward
        self.assertModelExactSparsity(model)
        report = keras_dst.sparsity_report(model)
        # Every method ends at its target (GMP's schedule ends at 0.5).
        self.assertAlmostEqual(report["total"]["sparsity"], 0.8, delta=0.01)
        self.assertTrue(np.all(np.isfinite(model.evaluate(x, y, verbose=0))))


class HubResumeAndErrorsTest(TestCase):
    def test_backup_and_restore_resume_is_exact(self):
        def run(interrupt, backup):
            keras.utils.set_random_seed(7)
            backbone, make_task, x, y = gpt2(num_layers=1, dropout=0.0)
            model = make_task(keras_dst.sparsify(backbone, seed=0))
            model.compile(
                optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True
                ),
            )
            callbacks = [keras_dst.RigL(0.8, update_interval=3, seed=1)]
            if backup:
                callbacks.append(keras.callbacks.BackupAndRestore(backup))
            if interrupt:
                callbacks.append(Interrupt())
            try:
                model.fit(
                    x,
                    y,
                    batch_size=2,
                    epochs=3,
                    shuffle=False,
                    verbose=0,
                    callbacks=callbacks,
                )
            except KeyboardInterrupt:
                pass
            return model

        class Interrupt(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == 0:
                    raise KeyboardInterrupt

        straight = run(False, None)
        backup = os.path.join(self.temp_dir(), "backup")
        run(True, backup)
        resumed = run(False, backup)
        for a, b in zip(
            values(straight.weights), values(resumed.weights), strict=True
        ):
            np.testing.assert_array_equal(a, b)

    def test_subclassed_models(self):
        class Block(keras.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.inner = keras.layers.Dense(8, activation="relu")
                self.outer = keras.layers.Dense(4)

            def call(self, x):
                return self.outer(self.inner(x))

        @keras.saving.register_keras_serializable(package="hub_test")
        class WithConfig(keras.Model):
            def __init__(self, units=4, **kwargs):
                super().__init__(**kwargs)
                self.units = units
                self.block = Block()
                self.head = keras.layers.Dense(units)

            def call(self, x):
                return self.head(self.block(x))

            def get_config(self):
                return {**super().get_config(), "units": self.units}

        class WithoutConfig(keras.Model):
            def __init__(self):
                super().__init__()
                self.block = Block()

            def call(self, x):
                return self.block(x)

        x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
        model = WithConfig()
        model(x)
        sparse = keras_dst.sparsify(model, 0.5, seed=0)
        self.assertIsInstance(sparse, WithConfig)
        self.assertLen(keras_dst.sparse_layers(sparse), 3)
        path = os.path.join(self.temp_dir(), "sub.keras")
        keras_dst.save_model(sparse, path)
        loaded = keras.saving.load_model(path)
        np.testing.assert_array_equal(
            loaded.predict(x, verbose=0), sparse.predict(x, verbose=0)
        )
        # Keras cannot rebuild this one from its config: a clear error,
        # and in place works.
        bare = WithoutConfig()
        bare(x)
        with self.assertRaisesRegex(ValueError, "in_place=True"):
            keras_dst.sparsify(bare, 0.5)
        same = keras_dst.sparsify(bare, 0.5, seed=0, in_place=True)
        self.assertIs(same, bare)
        self.assertLen(keras_dst.sparse_layers(bare), 2)
        self.assertModelExactSparsity(bare)

    def test_in_place_refuses_a_trained_model_and_undoes_bad_arguments(self):
        backbone, _, _, _ = gpt2(num_layers=1)
        before = classes(backbone)
        weights = values(backbone.weights)
        with self.assertRaisesRegex(ValueError, "`distribution`"):
            keras_dst.sparsify(backbone, 0.5, "nope", in_place=True)
        self.assertEqual(classes(backbone), before)
        self.assertLen(backbone.weights, len(weights))
        for a, b in zip(values(backbone.weights), weights, strict=True):
            np.testing.assert_array_equal(a, b)

        x = np.ones((2, 3), "float32")
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile("adam", "mse")
        model.fit(x, x[:, :2], verbose=0)
        with self.assertRaisesRegex(ValueError, "Compile it again"):
            keras_dst.sparsify(model, in_place=True)

    def test_untied_output_projection_has_its_own_mask(self):
        backbone, _, _, _ = llama()
        sparse = keras_dst.sparsify(backbone, 0.9, seed=0)
        paths = [
            keras_dst.layer_path(x) for x in keras_dst.sparse_layers(sparse)
        ]
        self.assertEqual(
            paths[:2], ["token_embedding", "token_embedding/reverse_projection"]
        )
        embedding = sparse.token_embedding
        projection = embedding.reverse_projection
        self.assertEqual(projection.kernel_variable.name, "reverse_embeddings")
        report = keras_dst.sparsity_report(sparse)
        self.assertEqual(report["dense_kernels"], [])
        # The reverse call computes with the masked projection.
        hidden = np.random.default_rng(0).normal(size=(2, 3, 16))
        hidden = hidden.astype("float32")
        masked = self.to_numpy(projection.kernel_variable)
        masked = masked * projection.get_mask()
        np.testing.assert_allclose(
            self.to_numpy(embedding(hidden, reverse=True)),
            hidden @ masked,
            rtol=1e-5,
            atol=1e-6,
        )
        projection.set_mask(np.zeros(projection.get_mask().shape, "uint8"))
        self.assertEqual(
            float(np.abs(self.to_numpy(embedding(hidden, reverse=True))).max()),
            0.0,
        )

    def test_a_task_keeps_its_tokenizer(self):
        # The vocabulary is an asset, not config: the copy gets it too.
        vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        vocabulary += [f"w{i}" for i in range(VOCAB - len(vocabulary))]
        tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary)
        preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
            tokenizer, sequence_length=LENGTH
        )
        backbone, _, _, _ = bert()
        task = keras_hub.models.BertTextClassifier(
            backbone, num_classes=2, preprocessor=preprocessor
        )
        sparse = keras_dst.sparsify(task, 0.5, seed=0)
        self.assertEqual(sparse.preprocessor.tokenizer.vocabulary_size(), VOCAB)
        texts = np.array(["w1 w7 w3", "w20 w9"])
        stripped = keras_dst.strip(sparse)
        np.testing.assert_allclose(
            stripped.predict(texts, verbose=0),
            sparse.predict(texts, verbose=0),
            rtol=1e-5,
            atol=1e-6,
        )

    def test_cached_generation_uses_the_sparse_kernels(self):
        # generate() runs keras-hub's cached attention: the same tokens as
        # the stripped model (plain layers, masked weights), other tokens
        # than the dense original.
        backbone, make_task, x, _ = gpt2()
        sparse = keras_dst.sparsify(backbone, 0.8, seed=0)
        prompt = {
            "token_ids": np.pad(x["token_ids"][:2, :4], ((0, 0), (0, 8))),
            "padding_mask": np.pad(np.ones((2, 4), "int32"), ((0, 0), (0, 8))),
        }
        outputs = []
        for model in (sparse, keras_dst.strip(sparse), backbone):
            lm = make_task(model)
            lm.compile(sampler="greedy")
            generated = lm.generate(prompt, max_length=12, stop_token_ids=None)
            outputs.append(np.asarray(generated["token_ids"]))
        np.testing.assert_array_equal(outputs[0], outputs[1])
        self.assertFalse(np.array_equal(outputs[0], outputs[2]))

    def test_a_record_that_does_not_fit_fails_clearly(self):
        backbone, _, _, _ = gpt2(num_layers=1)
        sparse = keras_dst.sparsify(backbone, 0.5, seed=0)
        path = os.path.join(self.temp_dir(), "m.keras")
        keras_dst.save_model(sparse, path, compress=False)
        import json
        import zipfile

        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
        self.assertEqual(config["registered_name"], "keras_dst>SparsifiedModel")
        config["config"]["layers"][1]["index"] = 0  # the token embedding
        with self.assertRaisesRegex(ValueError, "Cannot make layer"):
            keras.saving.deserialize_keras_object(config)


if __name__ == "__main__":
    absltest.main()
