"""Ticket superposition (Sup-tickets): the phase planner, averaging and
global re-pruning, BatchNorm recalibration."""

from keras_dst.superposition.averaging import AVERAGES
from keras_dst.superposition.averaging import caa
from keras_dst.superposition.averaging import cima
from keras_dst.superposition.averaging import global_magnitude_masks
from keras_dst.superposition.batchnorm import recalibrate_batchnorm
from keras_dst.superposition.phases import CyclicPhases
from keras_dst.superposition.phases import plan_cycles
from keras_dst.superposition.tickets import TicketAverager

__all__ = [
    "AVERAGES",
    "CyclicPhases",
    "TicketAverager",
    "caa",
    "cima",
    "global_magnitude_masks",
    "plan_cycles",
    "recalibrate_batchnorm",
]
