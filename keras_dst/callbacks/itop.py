"""`ITOP`: a preset of `DynamicSparsityCallback`."""

from keras_dst.callbacks.dynamic_sparsity_callback import (
    DynamicSparsityCallback,
)


class ITOP(DynamicSparsityCallback):
    """ITOP: in-time over-parameterization (SET-ITOP or RigL-ITOP).

    Sparse training that explores enough of the parameter space over time
    (high R_s) and reliably (each new connection trains ΔT steps before its
    fate is decided). Defaults are the reference's CIFAR settings (batch
    128): ERK, drop fraction 0.5 cosine-annealed to 0.005, updates through
    all of training, ΔT = 1500 steps for random growth (SET-ITOP) and 4000
    for gradient growth (RigL-ITOP). On short runs or small datasets choose
    `update_interval` so that training sees enough updates (R_s is logged
    as `itop_rate`).

    Args:
        sparsity: global sparsity in [0, 1).
        growth: `"random"` (SET-ITOP, default) or `"gradient"` (RigL-ITOP).
        update_interval: steps between updates; `None` = reference default.
        drop_fraction: initial fraction replaced per update.
        drop_fraction_end: final fraction of the cosine schedule.
        update_end: fraction of training (float) or step (int).
        **kwargs: other `DynamicSparsityCallback` arguments.

    Example:

    ```python
    model.fit(x, y, callbacks=[keras_dst.ITOP(sparsity=0.9)])
    ```

    Reference:
        - [Liu et al., 2021](https://arxiv.org/abs/2102.02887)
    """

    # Reference ΔT for CIFAR, batch 128 (Liu et al., 2021, code).
    REFERENCE_INTERVALS = {"random": 1500, "gradient": 4000}

    def __init__(
        self,
        sparsity,
        growth="random",
        update_interval=None,
        drop_fraction=0.5,
        drop_fraction_end=0.005,
        update_end=1.0,
        **kwargs,
    ):
        if update_interval is None:
            update_interval = self.REFERENCE_INTERVALS.get(growth, 1500)
        super().__init__(
            sparsity,
            growth=growth,
            drop_fraction=drop_fraction,
            drop_fraction_end=drop_fraction_end,
            update_interval=update_interval,
            update_end=update_end,
            **kwargs,
        )
