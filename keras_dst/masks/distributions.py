"""Per-layer sparsity allocation: uniform, ER, ERK and custom maps.

Given a global sparsity over the sparse layers, every rule below scores each
layer, finds the scale `eps` with

    sum_l min(1, eps * score_l) * n_l = (1 - sparsity) * sum_l n_l,

makes dense any layer whose density would exceed 1 and re-solves over the
rest (Evci et al., 2020, appendix), then rounds each layer to an exact count.

* uniform: score_l = 1 (same density for every layer not kept dense).
* ER (Mocanu et al., 2018): score_l = (n_in + n_out) / (n_in * n_out) with
  n_in, n_out the kernel's last two dimensions.
* ERK (Evci et al., 2020): score_l = (sum of dims / product of dims) ** p.
"""

import numpy as np

from keras_dst.masks.initial_masks import active_count

DISTRIBUTIONS = ("uniform", "er", "erk")


def er_densities(shape):
    """Raw ER score of a kernel shape."""
    if len(shape) < 2:
        return 1.0
    n_in, n_out = shape[-2], shape[-1]
    return (n_in + n_out) / (n_in * n_out)


def erk_densities(shape, power_scale=1.0):
    """Raw ERK score of a kernel shape."""
    return (np.sum(shape) / np.prod(shape)) ** power_scale


def _scores(shapes, distribution, power_scale):
    if distribution == "uniform":
        return {name: 1.0 for name in shapes}
    if distribution == "er":
        return {name: er_densities(s) for name, s in shapes.items()}
    return {name: erk_densities(s, power_scale) for name, s in shapes.items()}


def _solve(sizes, scores, density, dense):
    """Densities from scores; RigL's iterative dense-capping."""
    dense = set(dense)
    total = sum(sizes.values())
    while True:
        free = [name for name in sizes if name not in dense]
        budget = density * total - sum(sizes[name] for name in dense)
        if not free:
            if budget < -0.5:
                raise ValueError(
                    "The requested `sparsity` cannot be reached: the layers "
                    f"kept dense ({sorted(dense)}) already hold more than "
                    f"the budget of {density * total:.0f} active weights."
                )
            break
        if budget <= 0:
            raise ValueError(
                "The requested `sparsity` cannot be reached: the layers kept "
                f"dense ({sorted(dense)}) use the whole budget of "
                f"{density * total:.0f} active weights. Lower `sparsity` or "
                "keep fewer layers dense."
            )
        divisor = sum(scores[name] * sizes[name] for name in free)
        eps = budget / divisor
        max_score = max(scores[name] for name in free)
        if eps * max_score <= 1.0:
            break
        dense.update(name for name in free if scores[name] == max_score)
    out = {}
    for name in sizes:
        out[name] = 1.0 if name in dense else eps * scores[name]
    return out


def allocate(
    shapes,
    sparsity=None,
    distribution="erk",
    *,
    power_scale=1.0,
    keep_dense=(),
    overrides=None,
):
    """Per-layer sparsities that together meet a global budget.

    Args:
        shapes: mapping (ordered) of layer name -> kernel shape.
        sparsity: the global sparsity in [0, 1) over all layers in `shapes`.
            May be `None` only when `distribution` is a full custom map.
        distribution: `"uniform"`, `"er"`, `"erk"`, or a dict
            `{layer_name: sparsity}` listing every layer (custom map).
        power_scale: ERK exponent (`1.0` default; `0.0` gives uniform).
        keep_dense: names of layers kept dense (counted in the budget).
        overrides: optional `{layer_name: sparsity}` fixed for those layers;
            they are left out of the budget and the others share `sparsity`
            (as RigL's `custom_sparsity_map`).

    Returns:
        dict layer name -> sparsity, each such that
        `active_count(size, s)` is the layer's exact active count. The total
        active count is the budget to within one weight per layer.

    Raises:
        ValueError: unknown distribution, unknown layer names, sparsity out
            of range, or a budget that cannot be met.
    """
    from keras_dst.utils.checks import validate_sparsity

    shapes = {name: tuple(int(d) for d in s) for name, s in shapes.items()}
    if not shapes:
        raise ValueError(
            "`shapes` is empty: there are no sparse layers to allocate "
            "sparsity to. Build the model with `keras_dst.layers` or call "
            "`keras_dst.sparsify(model)`."
        )
    sizes = {name: int(np.prod(s)) for name, s in shapes.items()}

    def check_names(names, arg):
        unknown = sorted(set(names) - set(shapes))
        if unknown:
            raise ValueError(
                f"`{arg}` names layers that are not sparse layers of the "
                f"model: {unknown}. Sparse layers: {list(shapes)}."
            )

    if isinstance(distribution, dict):
        check_names(distribution, "distribution")
        missing = [name for name in shapes if name not in distribution]
        if missing:
            raise ValueError(
                "A custom `distribution` map must give a sparsity for every "
                f"sparse layer; missing: {missing}."
            )
        return {
            name: validate_sparsity(s, f"distribution['{name}']")
            for name, s in distribution.items()
        }
    if distribution not in DISTRIBUTIONS:
        raise ValueError(
            f"`distribution` must be one of {DISTRIBUTIONS} or a dict "
            "{layer_name: sparsity}. "
            f"Received: distribution={distribution!r}."
        )
    sparsity = validate_sparsity(sparsity)
    if sparsity is None:
        raise ValueError(
            "`sparsity` is required (a float in [0, 1)) unless "
            "`distribution` is a custom {layer_name: sparsity} map."
        )
    if (
        isinstance(power_scale, bool)
        or not isinstance(power_scale, (int, float))
        or not np.isfinite(power_scale)
        or power_scale < 0
    ):
        raise ValueError(
            "`power_scale` must be a finite float >= 0. "
            f"Received: power_scale={power_scale!r}."
        )
    keep_dense = list(keep_dense)
    check_names(keep_dense, "keep_dense")
    overrides = dict(overrides or {})
    check_names(overrides, "overrides")
    result = {
        name: validate_sparsity(s, f"overrides['{name}']")
        for name, s in overrides.items()
    }
    free = {name: sizes[name] for name in shapes if name not in overrides}
    if not free:
        return result
    scores = _scores({n: shapes[n] for n in free}, distribution, power_scale)
    dense = [name for name in keep_dense if name not in overrides]
    densities = _solve(free, scores, 1.0 - sparsity, dense)
    for name, density in densities.items():
        count = active_count(free[name], 1.0 - min(1.0, density))
        result[name] = 1.0 - count / free[name]
    return {name: result[name] for name in shapes}
