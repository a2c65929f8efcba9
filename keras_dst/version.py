"""Version of keras_dst."""

__version__ = "0.1.0"
