"""`SNFS`: a preset of `DynamicSparsityCallback`."""

from keras_dst.callbacks.dynamic_sparsity_callback import (
    DynamicSparsityCallback,
)


class SNFS(DynamicSparsityCallback):
    """SNFS-style growth: regrow by the momentum of the dense gradient.

    Like `RigL`, but the score is |EMA of the dense gradient| (factor
    `momentum`, 0.9), kept by the layers' gradient probes at every step.
    Unlike the original SNFS, densities are not redistributed across layers:
    each layer keeps its exact allocation (as in RigL's SNFS baseline).

    Args:
        sparsity: global sparsity in [0, 1).
        drop_fraction: initial fraction replaced per update.
        update_interval: steps between updates.
        update_end: fraction of training (float) or step (int).
        momentum: EMA factor of the dense gradient.
        **kwargs: other `DynamicSparsityCallback` arguments.

    Example:

    ```python
    model.fit(x, y, callbacks=[keras_dst.SNFS(0.9)])
    ```

    Reference:
        - [Dettmers & Zettlemoyer, 2019](https://arxiv.org/abs/1907.04840)
    """

    def __init__(
        self,
        sparsity,
        drop_fraction=0.3,
        update_interval=100,
        update_end=0.75,
        momentum=0.9,
        **kwargs,
    ):
        super().__init__(
            sparsity,
            growth="momentum",
            drop_fraction=drop_fraction,
            update_interval=update_interval,
            update_end=update_end,
            momentum=momentum,
            **kwargs,
        )
