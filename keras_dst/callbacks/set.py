"""`SET`: a preset of `DynamicSparsityCallback`."""

from keras_dst.callbacks.preset import Preset


class SET(Preset):
    """SET: magnitude pruning and random regrowth.

    Defaults follow RigL's SET baseline (Evci et al., 2020), where they
    differ from `DynamicSparsityCallback`'s: an update every 100 steps
    replacing 30% of the active weights, annealed by cosine, updates stop
    at 75% of training; ERK allocation. Growth is fixed to `"random"`.

    Args:
        sparsity: global sparsity in [0, 1).
        **kwargs: any other `DynamicSparsityCallback` argument (keywords
            only), e.g. `drop_fraction=0.3`, `update_interval=100`,
            `update_end=0.75`, `distribution="erk"`, `seed`.

    Example:

    ```python
    model.fit(x, y, callbacks=[keras_dst.SET(0.9)])
    ```

    Reference:
        - [Mocanu et al., 2018](https://arxiv.org/abs/1707.04780)
    """

    FIXED = {"growth": "random"}
    DEFAULTS = {
        "drop_fraction": 0.3,
        "update_interval": 100,
        "update_end": 0.75,
    }
