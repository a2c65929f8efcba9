"""The user's Keras optimizer, seen from sparse training: which optimizer
variables shadow a kernel (to reset them with its mask), and which
optimizers keep zero weights at zero."""
