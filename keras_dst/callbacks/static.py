"""`Static`: a preset of `DynamicSparsityCallback`."""

from keras_dst.callbacks.preset import Preset


class Static(Preset):
    """Static sparse training: masks drawn once, never changed.

    The baseline every DST method must beat: same allocation and budget,
    no exploration (R_s stays at 1 - sparsity). `update_end` is fixed to
    0 (no update).

    Args:
        sparsity: global sparsity in [0, 1).
        **kwargs: the other `DynamicSparsityCallback` arguments that apply
            (keywords only): `distribution` (`"erk"` by default, `"er"`,
            `"uniform"` or a map), `seed`, `power_scale`,
            `keep_first_dense`, `keep_last_dense`, `per_layer_logs`,
            `verbose`.

    Example:

    ```python
    model.fit(x, y, callbacks=[keras_dst.Static(0.9)])
    ```

    Reference:
        - [Evci et al., 2020](https://arxiv.org/abs/1911.11134) (baseline)
    """

    FIXED = {"update_end": 0}
