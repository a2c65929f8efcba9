"""`SNFS`: a preset of `DynamicSparsityCallback`."""

from keras_dst.callbacks.preset import Preset


class SNFS(Preset):
    """SNFS-style growth: regrow by the momentum of the dense gradient.

    Like `RigL`, but the score is |EMA of the dense gradient| (factor
    `momentum`, 0.9), kept by the layers' gradient probes at every step.
    Unlike the original SNFS, densities are not redistributed across layers:
    each layer keeps its exact allocation (as in RigL's SNFS baseline).
    Defaults as `RigL`'s (drop fraction 0.3, cosine, ΔT = 100, updates
    until 75% of training); growth is fixed to `"momentum"`.

    Args:
        sparsity: global sparsity in [0, 1).
        **kwargs: any other `DynamicSparsityCallback` argument (keywords
            only), e.g. `momentum=0.9` (the EMA factor),
            `update_interval=100`, `seed`.

    Example:

    ```python
    model.fit(x, y, callbacks=[keras_dst.SNFS(0.9)])
    ```

    Reference:
        - [Dettmers & Zettlemoyer, 2019](https://arxiv.org/abs/1907.04840)
    """

    FIXED = {"growth": "momentum"}
    DEFAULTS = {
        "drop_fraction": 0.3,
        "update_interval": 100,
        "update_end": 0.75,
    }
