"""`Static`: a preset of `DynamicSparsityCallback`."""

from keras_dst.callbacks.dynamic_sparsity_callback import (
    DynamicSparsityCallback,
)


class Static(DynamicSparsityCallback):
    """Static sparse training: masks drawn once, never changed.

    The baseline every DST method must beat: same allocation and budget,
    no exploration (R_s stays at 1 - sparsity).

    Args:
        sparsity: global sparsity in [0, 1).
        distribution: `"erk"` (default), `"er"`, `"uniform"` or a map.
        **kwargs: other `DynamicSparsityCallback` arguments.

    Example:

    ```python
    model.fit(x, y, callbacks=[keras_dst.Static(0.9)])
    ```

    Reference:
        - [Evci et al., 2020](https://arxiv.org/abs/1911.11134) (baseline)
    """

    def __init__(
        self,
        sparsity,
        distribution="erk",
        **kwargs,
    ):
        kwargs.setdefault("update_end", 0)
        super().__init__(sparsity, distribution=distribution, **kwargs)
