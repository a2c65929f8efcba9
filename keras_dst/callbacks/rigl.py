"""`RigL`: a preset of `DynamicSparsityCallback`."""

from keras_dst.callbacks.preset import Preset


class RigL(Preset):
    """RigL: magnitude pruning and regrowth by the dense gradient.

    Grows the inactive connections with the largest |dL/d(w * mask)|, the
    dense gradient of the last training step, read from each layer's
    `kernel_gradient` probe (filled by `model.fit` itself: no data argument
    needed). Defaults follow the paper, where they differ from
    `DynamicSparsityCallback`'s: drop fraction 0.3 with cosine decay,
    ΔT = 100, updates until 75% of training; ERK. Growth is fixed to
    `"gradient"`.

    Args:
        sparsity: global sparsity in [0, 1).
        **kwargs: any other `DynamicSparsityCallback` argument (keywords
            only), e.g. `drop_fraction=0.3`, `update_interval=100`,
            `update_end=0.75`, `distribution="erk"`, `seed`.

    Example:

    ```python
    model.fit(x, y, callbacks=[keras_dst.RigL(0.9)])
    ```

    Reference:
        - [Evci et al., 2020](https://arxiv.org/abs/1911.11134)
    """

    FIXED = {"growth": "gradient"}
    DEFAULTS = {
        "drop_fraction": 0.3,
        "update_interval": 100,
        "update_end": 0.75,
    }
