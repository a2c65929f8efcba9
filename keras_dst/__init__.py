"""keras_dst: dynamic sparse training for Keras 3 (TensorFlow and JAX)."""

from keras_dst import criteria
from keras_dst import layers
from keras_dst import masks
from keras_dst import schedules
from keras_dst.callbacks import GMP
from keras_dst.callbacks import ITOP
from keras_dst.callbacks import SET
from keras_dst.callbacks import SNFS
from keras_dst.callbacks import DynamicSparsityCallback
from keras_dst.callbacks import RigL
from keras_dst.callbacks import SparseUpdater
from keras_dst.callbacks import SparsitySummaries
from keras_dst.callbacks import Static
from keras_dst.callbacks import SupTickets
from keras_dst.convert.model_masks import initialize_masks
from keras_dst.convert.sparsify import sparsify
from keras_dst.export.strip import strip
from keras_dst.layers.model_walk import sparse_layers
from keras_dst.report.plot_history import plot_history
from keras_dst.report.summary import sparsity_report
from keras_dst.report.summary import summary
from keras_dst.version import __version__
