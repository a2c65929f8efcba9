"""Suite-wide pytest hooks: the suite's time budget.

The full suite has a time budget (well under 20 minutes on 2 cores, the
three backends side by side):

* After each test, the Keras session is cleared, its garbage collected
  and what is still alive frozen (`gc.freeze`), so Python's full
  collections stop walking it again. Graphs that TensorFlow keeps alive
  forever pile up over a session: every trace through
  `tf.custom_gradient` (a sparse layer's masked gradient) registers a
  closure that pins the traced graph (tensorflow/tensorflow#97697).
  Measured on TensorFlow, engine, examples, layers and keras_internals
  tests in one session: 210 s, 92 s of them in full collections (40 of
  layers_test's 54 s; 24 s when run alone); with the freeze 120 s, 3 s
  collecting.
* Every run ends with the seconds spent per test file (setup, call and
  teardown together), largest first: CI's log then says which files to
  look at when the budget tightens.
"""

import collections
import gc
import os

import keras
import pytest

_SECONDS = collections.Counter()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield
    # Cleared before freezing: what the session still holds would
    # otherwise be frozen, and never freed once the next test clears it.
    keras.backend.clear_session()
    gc.collect()
    gc.freeze()


def pytest_runtest_logreport(report):
    _SECONDS[report.nodeid.split("::", 1)[0]] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _SECONDS:
        return
    backend = os.environ.get("KERAS_BACKEND", "?")
    total = sum(_SECONDS.values())
    terminalreporter.write_sep(
        "=", f"seconds per test file, KERAS_BACKEND={backend}"
    )
    for path, seconds in _SECONDS.most_common(15):
        share = 100 * seconds / total
        terminalreporter.write_line(f"{seconds:8.1f} s {share:5.1f}%  {path}")
    terminalreporter.write_line(f"{total:8.1f} s in {len(_SECONDS)} files")
