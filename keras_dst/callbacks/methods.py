"""The registry of training methods: name -> callback with paper defaults.

One table used by the library, the examples and the benchmarks alike:

```python
method = keras_dst.get_method("itop_rigl")
callback = method(0.9, seed=0)  # keras_dst.ITOP(0.9, growth="gradient")
print(method.citation)
```
"""

import dataclasses
import inspect

from keras_dst.callbacks.dynamic_sparsity_callback import (
    DynamicSparsityCallback,
)
from keras_dst.callbacks.gmp import GMP
from keras_dst.callbacks.itop import ITOP
from keras_dst.callbacks.rigl import RigL
from keras_dst.callbacks.set import SET
from keras_dst.callbacks.snfs import SNFS
from keras_dst.callbacks.static import Static
from keras_dst.callbacks.sup_tickets import SupTickets


@dataclasses.dataclass(frozen=True)
class Method:
    """A named training method.

    Attributes:
        name: its registry name (e.g. `"itop_rigl"`).
        build: `(sparsity, **kwargs) -> callback`.
        citation: the paper, as `Author et al., year (url)`.
        description: one line.
        parameters: the keyword arguments `build` accepts.
        needs_gradient: whether, with its defaults, it reads the layers'
            dense-gradient probe (build sparse layers with
            `dense_gradient=True`; the others can save that variable).
    """

    name: str
    build: object
    citation: str
    description: str
    parameters: tuple
    needs_gradient: bool = False

    def __call__(self, sparsity, **kwargs):
        unknown = sorted(set(kwargs) - set(self.parameters))
        if unknown:
            raise TypeError(
                f"Method {self.name!r} got unknown arguments {unknown}. "
                f"It accepts: {list(self.parameters)}."
            )
        return self.build(sparsity, **kwargs)


_METHODS = {}


def _keywords(*functions):
    names = []
    for fn in functions:
        for name, p in inspect.signature(fn).parameters.items():
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or name in (
                "self",
                "sparsity",
                "base",
            ):
                continue
            if name not in names:
                names.append(name)
    return tuple(names)


def register_method(
    name,
    build,
    parameters=None,
    *,
    citation,
    description,
    needs_gradient=False,
):
    """Adds a method to the registry (a new name only).

    Args:
        name: the registry name.
        build: `(sparsity, **kwargs) -> callback`.
        parameters: the keywords `build` accepts (default: read from its
            signature).
        citation: the paper.
        description: one line.
        needs_gradient: whether it reads the dense-gradient probe.

    Returns:
        The `Method`.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty str. Received: {name!r}.")
    if name in _METHODS:
        raise ValueError(f"Method {name!r} is already registered.")
    if not callable(build):
        raise TypeError(f"`build` must be callable. Received: {build!r}.")
    if parameters is None:
        parameters = _keywords(build)
    method = Method(
        name,
        build,
        citation,
        description,
        tuple(dict.fromkeys(parameters)),
        bool(needs_gradient),
    )
    _METHODS[name] = method
    return method


def get_method(name):
    """The registered `Method` called `name` (see `method_names()`)."""
    if name not in _METHODS:
        raise ValueError(
            f"`method` must be one of {method_names()}. Received: "
            f"method={name!r}. Add one with `keras_dst.register_method`."
        )
    return _METHODS[name]


def method_names():
    """The registered method names, in registration order."""
    return tuple(_METHODS)


def _preset(cls, **fixed):
    def build(sparsity, **kwargs):
        return cls(sparsity, **fixed, **kwargs)

    keywords = _keywords(DynamicSparsityCallback.__init__)
    return build, tuple(
        k for k in keywords if k not in cls.FIXED and k not in fixed
    )


def _sup_tickets(sparsity, growth="random", **kwargs):
    """An ITOP base (SET-ITOP by default; `growth="gradient"`: RigL-ITOP)
    inside `SupTickets`: each keyword goes to the one that takes it."""
    own = set(_keywords(SupTickets.__init__))
    sup = {k: v for k, v in kwargs.items() if k in own}
    base = {k: v for k, v in kwargs.items() if k not in own}
    return SupTickets(ITOP(sparsity, growth=growth, **base), **sup)


_EVCI = "Evci et al., 2020 (https://arxiv.org/abs/1911.11134)"
_LIU = "Liu et al., 2021 (https://arxiv.org/abs/2102.02887)"
register_method(
    "static",
    *_preset(Static),
    citation=_EVCI,
    description="Static sparse masks (the baseline).",
)
register_method(
    "set",
    *_preset(SET),
    citation="Mocanu et al., 2018 (https://arxiv.org/abs/1707.04780)",
    description="Magnitude prune, random regrowth.",
)
register_method(
    "rigl",
    *_preset(RigL),
    citation=_EVCI,
    description="Magnitude prune, gradient regrowth.",
    needs_gradient=True,
)
register_method(
    "snfs",
    *_preset(SNFS),
    citation="Dettmers & Zettlemoyer, 2019 (https://arxiv.org/abs/1907.04840)",
    description="Magnitude prune, gradient-momentum regrowth.",
    needs_gradient=True,
)
register_method(
    "itop_set",
    *_preset(ITOP, growth="random"),
    citation=_LIU,
    description="SET-ITOP: in-time over-parameterization, random regrowth.",
)
register_method(
    "itop_rigl",
    *_preset(ITOP, growth="gradient"),
    citation=_LIU,
    description="RigL-ITOP: in-time over-parameterization, gradient regrowth.",
    needs_gradient=True,
)
register_method(
    "sup_tickets",
    _sup_tickets,
    _keywords(_sup_tickets, DynamicSparsityCallback.__init__)
    + _keywords(SupTickets.__init__),
    citation="Yin et al., 2022 (https://arxiv.org/abs/2205.15322)",
    description="Sup-tickets over an ITOP base (SET-ITOP by default): the "
    "tickets of a cyclic phase superposed; gradient re-exploration.",
    needs_gradient=True,
)
register_method(
    "gmp",
    GMP,
    _keywords(GMP.__init__),
    citation="Zhu & Gupta, 2017 (https://arxiv.org/abs/1710.01878)",
    description="Dense-to-sparse gradual magnitude pruning (the baseline).",
)
