"""Ticket superposition (Sup-tickets): averaging and global re-pruning."""

from keras_dst.superposition.averaging import AVERAGES
from keras_dst.superposition.averaging import caa
from keras_dst.superposition.averaging import cima
from keras_dst.superposition.averaging import global_magnitude_masks
from keras_dst.superposition.batchnorm import recalibrate_batchnorm
