"""`RigL`: a preset of `DynamicSparsityCallback`."""

from keras_dst.callbacks.dynamic_sparsity_callback import (
    DynamicSparsityCallback,
)


class RigL(DynamicSparsityCallback):
    """RigL: magnitude pruning and regrowth by the dense gradient.

    Grows the inactive connections with the largest |dL/d(w * mask)|, the
    dense gradient of the last training step, read from each layer's
    `kernel_gradient` probe (filled by `model.fit` itself: no data argument
    needed). Defaults follow the paper: drop fraction 0.3 with cosine decay,
    ΔT = 100, updates until 75% of training, ERK.

    Args:
        sparsity: global sparsity in [0, 1).
        drop_fraction: initial fraction replaced per update.
        update_interval: steps between updates.
        update_end: fraction of training (float) or step (int).
        **kwargs: other `DynamicSparsityCallback` arguments.

    Example:

    ```python
    model.fit(x, y, callbacks=[keras_dst.RigL(0.9)])
    ```

    Reference:
        - [Evci et al., 2020](https://arxiv.org/abs/1911.11134)
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
            growth="gradient",
            drop_fraction=drop_fraction,
            update_interval=update_interval,
            update_end=update_end,
            **kwargs,
        )
