"""Per-layer metrics of the engine, TensorBoard summaries and plots."""

import csv
import glob
import math
import os

import keras
import numpy as np
from absl.testing import absltest

import keras_dst
from tests.selection_test import reference_select
from tests.selection_test import reference_uniform
from tests.test_case import TestCase


def compile_model(model):
    model.compile(
        keras.optimizers.SGD(0.05, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


class MaskRecorder(keras.callbacks.Callback):
    """Masks at the start of every step and at the end (test only)."""

    def __init__(self):
        super().__init__()
        self.masks = []

    def on_train_batch_begin(self, batch, logs=None):
        layers = keras_dst.sparse_layers(self.model)
        self.masks.append([layer.get_mask().copy() for layer in layers])


def read_events(run_dir):
    """{tag: [(step, numpy value, plugin)]} from a run's event files."""
    import tensorflow as tf

    events = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "events.out.*"))):
        for raw in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(raw.numpy())
            for value in event.summary.value:
                events.setdefault(value.tag, []).append(
                    (
                        event.step,
                        tf.make_ndarray(value.tensor),
                        value.metadata.plugin_data.plugin_name,
                    )
                )
    return events


class EngineMetricsTest(TestCase):
    def fit(self, callback, epochs=3, extra=(), **kwargs):
        x, y = self.classification_data()
        model = compile_model(self.mlp())
        history = model.fit(
            x,
            y,
            batch_size=32,
            epochs=epochs,
            verbose=0,
            callbacks=[callback, *extra],
            **kwargs,
        )
        return model, history

    def test_update_records_match_recorded_masks(self):
        # 8 steps per epoch, an update every 2. The recorder runs after the
        # DST callback: the mask it sees at step t is the state right after
        # the update at step t.
        callback = keras_dst.SET(
            0.8, update_interval=2, update_end=1.0, drop_fraction=0.5, seed=0
        )
        recorder = MaskRecorder()
        model, _ = self.fit(callback, epochs=2, extra=[recorder])
        layers = keras_dst.sparse_layers(model)
        history = callback.updater.history
        self.assertLen(history, 7)  # steps 2, 4, ..., 14
        union = [m.astype(bool) for m in recorder.masks[0]]
        for record in history:
            after = recorder.masks[record["step"]]
            union = [u | (m == 1) for u, m in zip(union, after, strict=True)]
            for layer, mask, u in zip(layers, after, union, strict=True):
                metrics = record["layers"][keras_dst.layer_path(layer)]
                self.assertEqual(metrics["active"], int(mask.sum()))
                self.assertEqual(
                    metrics["sparsity"], 1 - mask.sum() / mask.size
                )
                self.assertEqual(metrics["itop_rate"], u.sum() / u.size)
                self.assertEqual(
                    metrics["pruned"], record["k"][keras_dst.layer_path(layer)]
                )
                self.assertEqual(
                    metrics["grown"], record["k"][keras_dst.layer_path(layer)]
                )
            total = sum(u.sum() for u in union) / sum(u.size for u in union)
            self.assertAlmostEqual(record["itop_rate"], total, places=12)
        self.assertIsNone(
            history[0]["layers"][keras_dst.layer_path(layers[0])]["survival"]
        )

    def test_survival_matches_numpy(self):
        # A custom loop with random growth: every update's grown set and
        # survivors are recomputed in numpy from the recorded weights.
        model = compile_model(self.mlp((6, 8, 3), sparsity=0.5, mask_seed=0))
        x, y = self.classification_data(features=6, classes=3)
        layers = keras_dst.sparse_layers(model)
        updater = keras_dst.SparseUpdater(growth="random", seed=5)
        updater.prepare(model)
        grown_before = [np.zeros(m.get_mask().size, bool) for m in layers]
        checked = 0
        for update, step in enumerate((10, 20, 30, 40)):
            model.fit(x, y, batch_size=32, epochs=1, verbose=0)
            before = [
                (x.get_mask(), self.to_numpy(x.kernel_variable)) for x in layers
            ]
            # A quarter: grown weights then survive often enough for the
            # rates to be informative on every backend's random init.
            self.assertTrue(updater.update(model, step, drop_fraction=0.25))
            record = updater.history[-1]
            for i, (layer, (mask, kernel)) in enumerate(
                zip(layers, before, strict=True)
            ):
                mask = mask.reshape(-1).astype(bool)
                k = int(np.floor(0.25 * mask.sum()))
                pruned = reference_select(
                    np.abs(kernel.reshape(-1)), mask, k, largest=False
                )
                survive = mask & ~pruned
                score = reference_uniform(updater.seed, step, i, mask.size)
                grown = reference_select(score, ~survive, k)
                metrics = record["layers"][keras_dst.layer_path(layer)]
                previous = int(grown_before[i].sum())
                survived = int((grown_before[i] & survive).sum())
                self.assertEqual(metrics["previous_grown"], previous)
                self.assertEqual(metrics["survived"], survived)
                if update == 0:
                    self.assertIsNone(metrics["survival"])
                else:
                    self.assertEqual(previous, k)
                    self.assertEqual(metrics["survival"], survived / previous)
                    checked += 1
                np.testing.assert_array_equal(
                    layer.get_mask().reshape(-1).astype(bool), survive | grown
                )
                grown_before[i] = grown
        self.assertEqual(checked, 6)
        # Survival is informative here: neither always 0 nor always 1.
        rates = [
            m["survival"]
            for r in updater.history[1:]
            for m in r["layers"].values()
        ]
        self.assertTrue(any(0.0 < r < 1.0 for r in rates), rates)

    def test_survival_across_no_move_and_skipped_updates(self):
        model = compile_model(self.mlp((6, 8, 3), sparsity=0.5, mask_seed=0))
        x, y = self.classification_data(features=6, classes=3)
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        layers = keras_dst.sparse_layers(model)
        updater = keras_dst.SparseUpdater(growth="random", seed=0)
        updater.prepare(model)
        self.assertTrue(updater.update(model, 1, 0.5))
        grown = {
            keras_dst.layer_path(x): updater.history[-1]["k"][
                keras_dst.layer_path(x)
            ]
            for x in layers
        }
        # A fraction too small to move anything: every grown entry
        # survives, and the next update has nothing to judge.
        self.assertTrue(updater.update(model, 2, 1e-6))
        for path, metrics in updater.history[-1]["layers"].items():
            self.assertEqual(metrics["grown"], 0)
            self.assertEqual(metrics["previous_grown"], grown[path])
            self.assertEqual(metrics["survived"], grown[path])
            self.assertEqual(metrics["survival"], 1.0)
        self.assertTrue(updater.update(model, 3, 0.5))
        for metrics in updater.history[-1]["layers"].values():
            self.assertEqual(metrics["previous_grown"], 0)
            self.assertIsNone(metrics["survival"])
        # A skipped update grows nothing: the next one judges nothing.
        kernel = layers[0].kernel_variable
        saved = self.to_numpy(kernel)
        kernel.assign(np.where(layers[0].get_mask() == 1, np.nan, 0.0))
        with self.assertWarnsRegex(RuntimeWarning, "step 4 skipped"):
            self.assertFalse(updater.update(model, 4, 0.5))
        kernel.assign(saved)
        self.assertTrue(updater.update(model, 5, 0.5))
        self.assertEqual(updater.history[-1]["step"], 5)
        for metrics in updater.history[-1]["layers"].values():
            self.assertEqual(metrics["previous_grown"], 0)
        self.assertLen(updater.history, 4)

    def test_per_layer_logs(self):
        callback = keras_dst.ITOP(
            0.8, update_interval=3, seed=0, per_layer_logs=True
        )
        path = os.path.join(self.temp_dir(), "log.csv")
        model, history = self.fit(
            callback, extra=[keras.callbacks.CSVLogger(path)]
        )
        logs = history.history
        layers = keras_dst.sparse_layers(model)
        names = [layer.name for layer in layers]
        records = callback.updater.history
        steps = 8
        for epoch in range(3):
            mine = [r for r in records if r["step"] // steps == epoch]
            self.assertNotEmpty(mine)
            for layer, name in zip(layers, names, strict=True):
                moves = [r["layers"][keras_dst.layer_path(layer)] for r in mine]
                self.assertEqual(
                    logs[f"pruned/{name}"][epoch],
                    sum(m["pruned"] for m in moves),
                )
                self.assertEqual(
                    logs[f"grown/{name}"][epoch],
                    sum(m["grown"] for m in moves),
                )
                before = sum(m["previous_grown"] for m in moves)
                want = (
                    sum(m["survived"] for m in moves) / before
                    if before
                    else math.nan
                )
                np.testing.assert_equal(logs[f"survival/{name}"][epoch], want)
        for layer, name in zip(layers, names, strict=True):
            self.assertAlmostEqual(
                logs[f"itop_rate/{name}"][-1],
                callback.itop_rate_per_layer[keras_dst.layer_path(layer)],
                places=12,
            )
            mask = layer.get_mask()
            self.assertAlmostEqual(
                logs[f"sparsity/{name}"][-1], 1 - mask.sum() / mask.size
            )
        # The first epoch's first update has nothing to judge, its later
        # ones do: survival is a number from epoch 1 on.
        self.assertTrue(all(np.isfinite(logs[f"survival/{names[0]}"])))
        with open(path) as f:
            rows = list(csv.DictReader(f))
        self.assertLen(rows, 3)
        self.assertIn(f"survival/{names[1]}", rows[0])

    def test_per_layer_logs_off_by_default(self):
        _, history = self.fit(keras_dst.SET(0.8, update_interval=3, seed=0))
        self.assertEqual(
            sorted(history.history),
            ["accuracy", "itop_rate", "loss", "sparsity"],
        )

    def test_gmp_per_layer_logs(self):
        callback = keras_dst.GMP(
            0.8, begin=0.0, end=1.0, update_interval=2, per_layer_logs=True
        )
        model, history = self.fit(callback, epochs=2)
        name = keras_dst.sparse_layers(model)[0].name
        logs = history.history
        self.assertEqual(logs[f"grown/{name}"], [0.0, 0.0])
        self.assertTrue(np.isnan(logs[f"survival/{name}"]).all())
        path = keras_dst.layer_path(keras_dst.sparse_layers(model)[0])
        pruned = sum(
            r["layers"][path]["pruned"] for r in callback.updater.history
        )
        self.assertEqual(sum(logs[f"pruned/{name}"]), pruned)
        mask = keras_dst.sparse_layers(model)[0].get_mask()
        self.assertEqual(pruned, mask.size - mask.sum())


class SparsitySummariesTest(TestCase):
    def test_summaries_written_and_readable(self):
        log_dir = self.temp_dir()
        x, y = self.classification_data()
        model = compile_model(self.mlp())
        itop = keras_dst.ITOP(0.8, update_interval=3, seed=0)
        summaries = keras_dst.SparsitySummaries(itop, log_dir, image_freq=2)
        model.fit(
            x,
            y,
            batch_size=32,
            epochs=2,
            verbose=0,
            validation_split=0.25,
            callbacks=[
                summaries,  # before the DST callback: order does not matter
                itop,
                keras.callbacks.TensorBoard(log_dir),
            ],
        )
        self.assertCountEqual(
            os.listdir(log_dir), ["sparsity", "train", "validation"]
        )
        events = read_events(summaries.run_dir)
        layers = keras_dst.sparse_layers(model)
        records = itop.updater.history
        self.assertNotEmpty(records)
        for layer in layers:
            for metric in ("itop_rate", "active", "pruned", "grown"):
                got = events[f"{metric}/{layer.name}"]
                self.assertEqual(
                    [(s, float(v)) for s, v, _ in got],
                    [  # TensorBoard stores scalars as float32
                        (
                            r["step"],
                            float(
                                np.float32(
                                    r["layers"][keras_dst.layer_path(layer)][
                                        metric
                                    ]
                                )
                            ),
                        )
                        for r in records
                    ],
                    metric,
                )
                self.assertEqual(got[0][2], "scalars")
            survival = events[f"survival/{layer.name}"]
            self.assertEqual(
                [s for s, _, _ in survival], [r["step"] for r in records[1:]]
            )
            # image_freq=2: one mask image, at the end of epoch 2 (step 12).
            (image,) = events[f"mask/{layer.name}"]
            self.assertEqual(image[0], 12)
            self.assertEqual(image[2], "images")
            decoded = self.decode_png(image[1][2])
            mask = layer.get_mask()
            np.testing.assert_array_equal(decoded, (mask != 0) * 255)
            histograms = events[f"active_magnitude/{layer.name}"]
            self.assertEqual([s for s, _, _ in histograms], [6, 12])
            # Buckets (left, right, count): they count the active weights.
            self.assertEqual(histograms[-1][1][:, 2].sum(), mask.sum())
        self.assertEqual(
            [float(v) for _, v, _ in events["itop_rate"]],
            [float(np.float32(r["itop_rate"])) for r in records],
        )

    def decode_png(self, data):
        import tensorflow as tf

        return tf.io.decode_png(data).numpy()[:, :, 0]

    def test_works_with_sup_tickets_and_updater(self):
        base = keras_dst.ITOP(0.8, update_interval=3, seed=0)
        sup = keras_dst.SupTickets(base, num_tickets=2, cyclic_fraction=0.5)
        summaries = keras_dst.SparsitySummaries(sup, self.temp_dir())
        self.assertIs(summaries.updater, base.updater)
        updater = keras_dst.SparseUpdater()
        self.assertIs(
            keras_dst.SparsitySummaries(updater, self.temp_dir()).updater,
            updater,
        )

    def test_bad_arguments(self):
        with self.assertRaisesRegex(TypeError, "`source` must be"):
            keras_dst.SparsitySummaries(keras.callbacks.History(), "logs")
        itop = keras_dst.ITOP(0.9)
        for name in ("image_freq", "histogram_freq"):
            with self.assertRaisesRegex(ValueError, f"`{name}` must be"):
                keras_dst.SparsitySummaries(itop, "logs", **{name: -1})


class PlotHistoryTest(TestCase):
    def setUp(self):
        super().setUp()
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            self.fail(
                "matplotlib is in the `test` extra: "
                'pip install -e ".[tensorflow,jax,test]"'
            )

    def test_plot_file_and_panels(self):
        x, y = self.classification_data()
        model = compile_model(self.mlp())
        itop = keras_dst.ITOP(0.8, update_interval=3, seed=0)
        history = model.fit(
            x, y, batch_size=32, epochs=2, verbose=0, callbacks=[itop]
        )
        path = os.path.join(self.temp_dir(), "plots", "run.png")
        figure = keras_dst.plot_history(history, path, callback=itop)
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        visible = [ax for ax in figure.axes if ax.get_visible()]
        # loss, accuracy, R_s + sparsity, one per sparse layer (3).
        self.assertLen(visible, 6)
        titles = [ax.get_title() for ax in visible]
        for layer in keras_dst.sparse_layers(model):
            self.assertIn(keras_dst.layer_path(layer), titles)
        panel = visible[
            titles.index(
                keras_dst.layer_path(keras_dst.sparse_layers(model)[0])
            )
        ]
        r_s = panel.get_lines()[0].get_ydata()
        self.assertEqual(
            list(r_s),
            [
                r["layers"][
                    keras_dst.layer_path(keras_dst.sparse_layers(model)[0])
                ]["itop_rate"]
                for r in itop.updater.history
            ],
        )
        # Without the callback: the epoch logs alone (R_s from the logs).
        figure = keras_dst.plot_history(history.history)
        self.assertLen([ax for ax in figure.axes if ax.get_visible()], 3)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(TypeError, "`history` must be"):
            keras_dst.plot_history("history.json")
        with self.assertRaisesRegex(TypeError, "`callback` must be"):
            keras_dst.plot_history({"loss": [1.0]}, callback=object())
        with self.assertRaisesRegex(ValueError, "Nothing to plot"):
            keras_dst.plot_history(None, callback=keras_dst.ITOP(0.9))


if __name__ == "__main__":
    absltest.main()
