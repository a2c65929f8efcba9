"""keras_dst: dynamic sparse training for Keras 3 (TensorFlow, JAX, PyTorch).

The public API is what this module and its public subpackages list in
`__all__`: `keras_dst.layers`, `keras_dst.masks`, `keras_dst.criteria`,
`keras_dst.schedules`, `keras_dst.superposition`, `keras_dst.optimizers`
and `keras_dst.testing`. Every other module is implementation and may
change without notice (tests/api_test.py guards the list).
"""

from keras_dst import criteria
from keras_dst import layers
from keras_dst import masks
from keras_dst import optimizers
from keras_dst import schedules
from keras_dst import superposition
from keras_dst import testing
from keras_dst.callbacks.dynamic_sparsity_callback import (
    DynamicSparsityCallback,
)
from keras_dst.callbacks.gmp import GMP
from keras_dst.callbacks.itop import ITOP
from keras_dst.callbacks.methods import Method
from keras_dst.callbacks.methods import get_method
from keras_dst.callbacks.methods import method_names
from keras_dst.callbacks.methods import register_method
from keras_dst.callbacks.preset import Preset
from keras_dst.callbacks.rigl import RigL
from keras_dst.callbacks.set import SET
from keras_dst.callbacks.snfs import SNFS
from keras_dst.callbacks.sparse_updater import SparseUpdater
from keras_dst.callbacks.sparsity_summaries import SparsitySummaries
from keras_dst.callbacks.static import Static
from keras_dst.callbacks.sup_tickets import SupTickets
from keras_dst.callbacks.update_record import LayerOutcome
from keras_dst.callbacks.update_record import UpdateRecord
from keras_dst.convert.model_masks import initialize_masks
from keras_dst.convert.sparsify import sparsify
from keras_dst.export.litert import LiteRTExport
from keras_dst.export.litert import export_litert
from keras_dst.export.save import save_model
from keras_dst.export.strip import strip
from keras_dst.layers.model_walk import layer_path
from keras_dst.layers.model_walk import sparse_layers
from keras_dst.report.plot_history import plot_history
from keras_dst.report.summary import sparsity_report
from keras_dst.report.summary import summary
from keras_dst.version import __version__

__all__ = [
    "DynamicSparsityCallback",
    "GMP",
    "ITOP",
    "LayerOutcome",
    "LiteRTExport",
    "Method",
    "Preset",
    "RigL",
    "SET",
    "SNFS",
    "SparseUpdater",
    "SparsitySummaries",
    "Static",
    "SupTickets",
    "UpdateRecord",
    "__version__",
    "criteria",
    "export_litert",
    "get_method",
    "initialize_masks",
    "layer_path",
    "layers",
    "masks",
    "method_names",
    "optimizers",
    "plot_history",
    "register_method",
    "save_model",
    "schedules",
    "sparse_layers",
    "sparsify",
    "sparsity_report",
    "strip",
    "summary",
    "superposition",
    "testing",
]
