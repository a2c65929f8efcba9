"""Griffe extension: the docstrings keras_dst completes at import time.

mkdocstrings reads the sources without importing them, but a few
docstrings are finished when their module is imported: the sparse layers'
`{sparse_arguments}` line becomes the shared description of `sparsity`,
`mask_seed`, `dense_gradient`, `block_shape` and `weight_init`
(`document_sparse_arguments`). For a class so decorated, this extension
takes the docstring from the imported class, as `help()` shows it.
"""

import importlib
import inspect

import griffe

DECORATORS = ("document_sparse_arguments",)


class RuntimeDocstrings(griffe.Extension):
    def on_class_instance(self, *, node, cls, agent, **kwargs):
        names = [str(d.value).rsplit(".", 1)[-1] for d in cls.decorators]
        if cls.docstring is None or not set(names) & set(DECORATORS):
            return
        module = importlib.import_module(cls.module.path)
        cls.docstring.value = inspect.cleandoc(
            getattr(module, cls.name).__doc__
        )
