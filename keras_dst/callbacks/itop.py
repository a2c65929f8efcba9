"""`ITOP`: a preset of `DynamicSparsityCallback`."""

from keras_dst.callbacks.preset import Preset


class ITOP(Preset):
    """ITOP: in-time over-parameterization (SET-ITOP or RigL-ITOP).

    Sparse training that explores enough of the parameter space over time
    (high R_s) and reliably (each new connection trains ΔT steps before its
    fate is decided). Defaults are the reference's CIFAR settings (batch
    128), where they differ from `DynamicSparsityCallback`'s: ERK, drop
    fraction 0.5 cosine-annealed to 0.005, updates through all of training,
    ΔT = 1500 steps for random growth (SET-ITOP, the default) and 4000 for
    gradient growth (RigL-ITOP). The reference has no ΔT for other growth
    criteria: pass `update_interval` with them. On short runs or small
    datasets choose `update_interval` so that training sees enough updates
    (R_s is logged as `itop_rate`).

    Args:
        sparsity: global sparsity in [0, 1).
        **kwargs: any other `DynamicSparsityCallback` argument (keywords
            only), e.g. `growth="gradient"` (RigL-ITOP),
            `update_interval`, `drop_fraction=0.5`,
            `drop_fraction_end=0.005`, `update_end=1.0`, `seed`.

    Example:

    ```python
    model.fit(x, y, callbacks=[keras_dst.ITOP(sparsity=0.9)])
    ```

    Reference:
        - [Liu et al., 2021](https://arxiv.org/abs/2102.02887)
    """

    DEFAULTS = {
        "growth": "random",
        "drop_fraction": 0.5,
        "drop_fraction_end": 0.005,
        "update_end": 1.0,
    }
    # Reference ΔT for CIFAR, batch 128 (Liu et al., 2021, code).
    REFERENCE_INTERVALS = {"random": 1500, "gradient": 4000}

    @classmethod
    def defaults(cls, kwargs):
        defaults = dict(cls.DEFAULTS)
        if "update_interval" not in kwargs:
            growth = kwargs.get("growth", defaults["growth"])
            if growth not in cls.REFERENCE_INTERVALS:
                raise ValueError(
                    "ITOP's reference ΔT is known for growth 'random' (1500 "
                    "steps) and 'gradient' (4000): pass `update_interval` "
                    f"for growth={growth!r}."
                )
            defaults["update_interval"] = cls.REFERENCE_INTERVALS[growth]
        return defaults
