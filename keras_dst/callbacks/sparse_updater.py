"""`SparseUpdater`: one prune-and-regrow update of a model's masks.

The engine behind every DST callback, usable on its own in a custom
training loop:

```python
updater = keras_dst.SparseUpdater(growth="random", seed=0)
updater.prepare(model)
for step, (x, y) in enumerate(data):
    train_step(x, y)
    if step and step % 100 == 0:
        updater.update(model, step, drop_fraction=0.3, optimizer=opt)
```

One update, per sparse layer with `n` active weights (Evci et al., 2020):

1. k = floor(drop_fraction * n).
2. Prune the k active weights of smallest |w|.
3. Grow k inactive positions (the just-pruned ones included): random,
   by |dense gradient| or by |its momentum|, ranked over inactive positions
   only.
4. Pruned and grown weights are stored as exactly 0.0 and their optimizer
   slots (momentum, Adam m and v, ...) are reset to 0, so inactive weights
   stay exactly zero between updates with SGD(+momentum), Adam(W), RMSprop.

Selection runs on the host with numpy (`argpartition`, O(n)): on CPU,
XLA's sort/top-k is ~100x slower for 1M-entry kernels (see
benchmarks/results). Every layer's new state is computed before anything
is written, so a failed update leaves weights and masks untouched.

R_s, the in-time over-parameterization rate (Liu et al., 2021), is the
fraction of kernel entries that have ever been active: the union of all
masks so far over the total, per layer and in total. The union is kept in
each layer's `kernel_explored` variable (saved with the model).
"""

import warnings

import keras
import numpy as np

from keras_dst.backend import read_replica_sum
from keras_dst.callbacks.optimizer_slots import slot_variables
from keras_dst.criteria.growth import GROWTH_CRITERIA
from keras_dst.criteria.growth import gradient_score
from keras_dst.criteria.growth import grow
from keras_dst.criteria.growth import random_score
from keras_dst.criteria.prune import PRUNE_CRITERIA
from keras_dst.criteria.prune import prune
from keras_dst.masks.model_masks import require_sparse_layers


def to_numpy(variable):
    """A host copy of a variable's current value."""
    return np.array(keras.ops.convert_to_numpy(variable.value))


def check_choice(value, allowed, name):
    if value not in allowed:
        raise ValueError(
            f"`{name}` must be one of {tuple(allowed)}. "
            f"Received: {name}={value!r}."
        )


def check_seed(seed):
    if seed is None:
        return int(np.random.randint(0, 2**31 - 1))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"`seed` must be None or an int. Received: {seed!r}.")
    return int(seed)


def _loss_scale(optimizer):
    """The loss scale of a `LossScaleOptimizer` (else 1).

    Keras unscales every gradient except those of `overwrite_with_gradient`
    variables, so the probes hold the SCALED gradient. Dividing by the
    current scale is exact unless the scale changed at the last step
    (doubled every `dynamic_growth_steps`, halved on overflow); even then
    all layers are off by the same factor of 2, which leaves each layer's
    gradient ranking, and so growth, unchanged.
    """
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return float(to_numpy(optimizer.dynamic_scale))
    return 1.0


class SparseUpdater:
    """Prune-and-regrow updates and R_s bookkeeping for one model.

    Args:
        prune: `"magnitude"`: remove the smallest |w|.
        growth: `"random"` (SET), `"gradient"` (RigL) or `"momentum"`
            (SNFS). Gradient-based growth reads each layer's
            `kernel_gradient` probe, which `model.fit` fills with the dense
            gradient of the last step (needs `dense_gradient=True` layers).
        momentum: EMA factor of the gradient probe for `"momentum"` growth.
        seed: `None` or an int. Random growth at step `t` for layer `i` uses
            a generator keyed by `(seed, t, i)`: identical on every replica
            and after a resume.

    Attributes:
        itop_rate: R_s over all sparse layers.
        itop_rate_per_layer: dict layer path -> R_s.
        sparsity: current global sparsity over the sparse layers.
        history: list of dicts, one per update (step, drop fraction, k per
            layer).
    """

    def __init__(
        self, prune="magnitude", growth="random", momentum=0.9, seed=None
    ):
        check_choice(prune, PRUNE_CRITERIA, "prune")
        check_choice(growth, GROWTH_CRITERIA, "growth")
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(
                f"`momentum` must be in [0, 1). Received: momentum={momentum}."
            )
        self.prune = prune
        self.growth = growth
        self.momentum = float(momentum)
        self.seed = check_seed(seed)
        self.layers = None
        self.history = []

    # -- set-up -------------------------------------------------------------

    def prepare(self, model):
        """Reads the model's masks; call once before the first update.

        Also sets the gradient probes' momentum (0 for gradient growth,
        `momentum` for momentum growth) and checks the probes exist.
        """
        layers = require_sparse_layers(model)
        if self.growth in ("gradient", "momentum"):
            missing = [x.name for x in layers if x.kernel_gradient is None]
            if missing:
                raise ValueError(
                    f"`growth={self.growth!r}` needs the dense gradient, but "
                    f"sparse layers {missing} were built with "
                    "`dense_gradient=False`. Rebuild them with "
                    "`dense_gradient=True` (the default) or use "
                    "`growth='random'`."
                )
            optimizer = getattr(model, "optimizer", None)
            if self.growth == "momentum" and isinstance(
                optimizer, keras.optimizers.LossScaleOptimizer
            ):
                raise ValueError(
                    "`growth='momentum'` cannot be used with a "
                    "LossScaleOptimizer (mixed_float16): the gradient "
                    "probe's moving average is computed on the scaled "
                    "gradient and unscaled with it, which would shrink the "
                    "average by the loss scale at every step. Use "
                    "`growth='gradient'` (unaffected by loss scaling), or "
                    "'mixed_bfloat16', which needs no loss scaling."
                )
            inner = getattr(optimizer, "inner_optimizer", optimizer)
            if getattr(inner, "gradient_accumulation_steps", None):
                warnings.warn(
                    f"keras_dst: `growth={self.growth!r}` with "
                    "`gradient_accumulation_steps`: Keras accumulates the "
                    "gradient probes with an elementwise maximum (its rule "
                    "for `overwrite_with_gradient` variables), not a mean, "
                    "so growth ranks by that maximum over micro-batches.",
                    RuntimeWarning,
                    stacklevel=2,
                )
            beta = self.momentum if self.growth == "momentum" else 0.0
            for layer in layers:
                layer.kernel_gradient_momentum.assign(beta)
        self.layers = layers
        self.masks = [layer.get_mask().astype(bool) for layer in layers]
        # The union of masks lives in each layer's `kernel_explored`
        # variable, so R_s survives saving, loading and resuming.
        self.ever_active = [
            layer.get_explored().astype(bool) | mask
            for layer, mask in zip(layers, self.masks)
        ]
        self.active_counts = [int(m.sum()) for m in self.masks]
        return self

    def _check_prepared(self):
        if self.layers is None:
            raise RuntimeError(
                "Call `updater.prepare(model)` before `updater.update(...)`."
            )

    # -- the update ---------------------------------------------------------

    def dense_gradient(self, layer, optimizer=None):
        """The dense gradient dL/d(kernel * mask) of `layer`'s last step.

        Read from the layer's gradient probe: summed over replicas under
        `tf.distribute`, unscaled under a `LossScaleOptimizer` (see
        `_loss_scale`). For `"momentum"` growth, its moving average.
        """
        if layer.kernel_gradient is None:
            raise ValueError(
                f"Layer '{layer.name}' has no gradient probe "
                "(built with `dense_gradient=False`)."
            )
        return read_replica_sum(layer.kernel_gradient) / _loss_scale(optimizer)

    def _plan_layer(self, index, layer, step, drop_fraction, optimizer):
        mask = self.masks[index].reshape(-1)
        weights = to_numpy(layer.kernel_variable).reshape(-1)
        k = int(np.floor(drop_fraction * mask.sum()))
        if not np.all(np.isfinite(weights[mask])):
            raise FloatingPointError(
                f"non-finite weights in layer '{layer.path}'"
            )
        pruned = prune(mask, PRUNE_CRITERIA[self.prune](weights), k)
        if self.growth == "random":
            rng = np.random.default_rng([self.seed, int(step), index])
            score = random_score(rng, mask.size)
        else:
            dense = self.dense_gradient(layer, optimizer)
            score = gradient_score(dense).reshape(-1)
            if not np.all(np.isfinite(score)):
                raise FloatingPointError(
                    f"non-finite dense gradient in layer '{layer.path}'"
                )
        new_mask, grown = grow(pruned, score, k)
        keep = new_mask.copy()
        keep[grown] = False  # grown weights restart at exactly 0
        return new_mask, keep, k, weights

    def update(self, model, step, drop_fraction, optimizer=None):
        """Runs one prune-and-regrow update on every sparse layer.

        Args:
            model: the model passed to `prepare`.
            step: the optimizer step (int); keys the random generator.
            drop_fraction: fraction of each layer's active weights replaced.
            optimizer: the model's optimizer, whose slots of pruned and
                grown weights are reset; defaults to `model.optimizer`.

        Returns:
            True if the update was applied, False if it was skipped because
            of non-finite weights or gradients (a warning says which; the
            model is left exactly as it was).
        """
        self._check_prepared()
        if not 0.0 <= drop_fraction <= 1.0:
            raise ValueError(
                "`drop_fraction` must be in [0, 1]. "
                f"Received: drop_fraction={drop_fraction}."
            )
        if optimizer is None:
            optimizer = getattr(model, "optimizer", None)
        try:
            plans = [
                self._plan_layer(i, layer, step, drop_fraction, optimizer)
                for i, layer in enumerate(self.layers)
            ]
        except FloatingPointError as error:
            warnings.warn(
                f"keras_dst: update at step {step} skipped: {error}. "
                "Weights and masks are unchanged.",
                RuntimeWarning,
                stacklevel=2,
            )
            return False
        # Everything computed: now write.
        for i, (layer, (new_mask, keep, _, weights)) in enumerate(
            zip(self.layers, plans)
        ):
            shape = self.masks[i].shape
            kernel = layer.kernel_variable
            weights[~keep] = 0.0
            layer.kernel_mask.assign(new_mask.reshape(shape).astype("uint8"))
            kernel.assign(weights.reshape(shape))
            for slot in slot_variables(optimizer, kernel):
                values = to_numpy(slot).reshape(-1)
                values[~keep] = 0.0
                slot.assign(values.reshape(shape))
            self.masks[i] = new_mask.reshape(shape)
            self.ever_active[i] |= self.masks[i]
            layer.kernel_explored.assign(self.ever_active[i].astype("uint8"))
        self.history.append(
            {
                "step": int(step),
                "drop_fraction": float(drop_fraction),
                "k": {
                    layer.path: plan[2]
                    for layer, plan in zip(self.layers, plans)
                },
            }
        )
        return True

    # -- reporting ----------------------------------------------------------

    @property
    def itop_rate_per_layer(self):
        self._check_prepared()
        return {
            layer.path: float(e.mean())
            for layer, e in zip(self.layers, self.ever_active)
        }

    @property
    def itop_rate(self):
        self._check_prepared()
        ever = sum(int(e.sum()) for e in self.ever_active)
        total = sum(e.size for e in self.ever_active)
        return ever / total

    @property
    def sparsity(self):
        self._check_prepared()
        active = sum(int(m.sum()) for m in self.masks)
        total = sum(m.size for m in self.masks)
        return 1.0 - active / total
