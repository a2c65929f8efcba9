"""`SET`: a preset of `DynamicSparsityCallback`."""

from keras_dst.callbacks.dynamic_sparsity_callback import (
    DynamicSparsityCallback,
)


class SET(DynamicSparsityCallback):
    """SET: magnitude pruning and random regrowth.

    Defaults follow RigL's SET baseline (Evci et al., 2020): drop fraction
    0.3 annealed by cosine, an update every 100 steps, updates stop at 75%
    of training, ERK allocation.

    Args:
        sparsity: global sparsity in [0, 1).
        drop_fraction: initial fraction replaced per update.
        update_interval: steps between updates.
        update_end: fraction of training (float) or step (int).
        **kwargs: other `DynamicSparsityCallback` arguments.

    Example:

    ```python
    model.fit(x, y, callbacks=[keras_dst.SET(0.9)])
    ```

    Reference:
        - [Mocanu et al., 2018](https://arxiv.org/abs/1707.04780)
    """

    def __init__(
        self,
        sparsity,
        drop_fraction=0.3,
        update_interval=100,
        update_end=0.75,
        **kwargs,
    ):
        super().__init__(
            sparsity,
            growth="random",
            drop_fraction=drop_fraction,
            update_interval=update_interval,
            update_end=update_end,
            **kwargs,
        )
