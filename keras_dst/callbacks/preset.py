"""`Preset`: a `DynamicSparsityCallback` whose settings are data."""

import inspect

from keras_dst.callbacks.dynamic_sparsity_callback import (
    DynamicSparsityCallback,
)

_ARGUMENTS = tuple(
    inspect.signature(DynamicSparsityCallback.__init__).parameters
)[2:]  # after `self` and `sparsity`


class Preset(DynamicSparsityCallback):
    """A DST method as data: a paper's settings for the base callback.

    A subclass sets two class dicts and writes its docstring:

    * `FIXED`: the arguments that define the method (e.g. SET's
      `growth="random"`); passing one is an error, since the result would
      no longer be that method.
    * `DEFAULTS`: the paper's values where they differ from
      `DynamicSparsityCallback`'s; any of them can be overridden.

    Every other `DynamicSparsityCallback` argument is accepted as a
    keyword.
    """

    FIXED = {}
    DEFAULTS = {}

    def __init__(self, sparsity, **kwargs):
        name = type(self).__name__
        for key, value in self.FIXED.items():
            if key in kwargs:
                raise ValueError(
                    f"`{name}` fixes `{key}={value!r}`: that is what makes "
                    f"it {name}. Received: {key}={kwargs[key]!r}. For "
                    f"another `{key}`, use the preset of that method or "
                    f"`keras_dst.DynamicSparsityCallback({key}=...)`."
                )
        unknown = sorted(set(kwargs) - set(_ARGUMENTS))
        if unknown:
            raise TypeError(
                f"`{name}` got unknown arguments {unknown}. It accepts "
                "`sparsity` and the keywords of "
                f"`DynamicSparsityCallback`: {list(_ARGUMENTS)}."
            )
        arguments = {**self.defaults(kwargs), **kwargs, **self.FIXED}
        super().__init__(sparsity, **arguments)

    @classmethod
    def defaults(cls, kwargs):
        """The defaults for these keyword arguments (a subclass may make
        one depend on another, as ITOP's ΔT on its growth)."""
        return dict(cls.DEFAULTS)
