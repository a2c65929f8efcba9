"""The DST engine: callbacks and the updater they share."""

from keras_dst.callbacks.dynamic_sparsity_callback import (
    DynamicSparsityCallback,
)
from keras_dst.callbacks.gmp import GMP
from keras_dst.callbacks.itop import ITOP
from keras_dst.callbacks.rigl import RigL
from keras_dst.callbacks.set import SET
from keras_dst.callbacks.snfs import SNFS
from keras_dst.callbacks.sparse_updater import SparseUpdater
from keras_dst.callbacks.sparsity_summaries import SparsitySummaries
from keras_dst.callbacks.static import Static
from keras_dst.callbacks.sup_tickets import SupTickets
