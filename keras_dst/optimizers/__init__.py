"""The user's Keras optimizer, seen from sparse training: which optimizer
variables shadow a kernel (to reset them with its mask), and which
optimizers keep zero weights at zero (see `slots` for what happens with an
optimizer keras_dst does not know, and `register_zero_preserving` to
declare one)."""

from keras_dst.optimizers.slots import register_zero_preserving
from keras_dst.optimizers.slots import slot_variables

__all__ = ["register_zero_preserving", "slot_variables"]
