"""The DST engine: the callbacks and the updater they share.

Implementation: the public names are exported by `keras_dst` itself
(`keras_dst.SET`, `keras_dst.SparseUpdater`, ...).
"""
