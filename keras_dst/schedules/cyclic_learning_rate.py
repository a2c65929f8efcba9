"""`CyclicLearningRate`: the triangle schedule of the Sup-tickets phase."""

import numbers

import keras
from keras import ops

from keras_dst.backend.keras_internals import optimizer_learning_rate


def check_learning_rate_bounds(lr_low, lr_high):
    """`0 < lr_low <= lr_high`, with errors naming the argument."""
    for name, value in (("lr_low", lr_low), ("lr_high", lr_high)):
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not value > 0
        ):
            raise ValueError(
                f"`{name}` must be a float > 0. Received: {name}={value!r}."
            )
    if lr_low > lr_high:
        raise ValueError(
            "`lr_low` must be <= `lr_high`. "
            f"Received: lr_low={lr_low}, lr_high={lr_high}."
        )


def check_cyclic_learning_rate(optimizer):
    """The optimizer's own rate must be something `CyclicLearningRate`
    can run before its cycles: a float or a `LearningRateSchedule`."""
    rate = optimizer_learning_rate(optimizer)
    if callable(rate) and not isinstance(
        rate, keras.optimizers.schedules.LearningRateSchedule
    ):
        raise TypeError(
            "Sup-tickets' cyclic learning rate needs an optimizer whose "
            "learning rate is a float or a `LearningRateSchedule`; "
            f"{type(optimizer).__name__}'s is a callable "
            f"({type(rate).__name__})."
        )


@keras.saving.register_keras_serializable(package="keras_dst")
class CyclicLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """A base learning rate, then triangle cycles from `cycle_start` on.

    For optimizer step `s >= cycle_start`, with `t` the position in the
    current cycle in [0, 1):

        lr(s) = lr_low + (lr_high - lr_low) * (1 - |2t - 1|)

    i.e. `lr_low` at the start of each cycle, `lr_high` at mid-cycle and
    back towards `lr_low` at its end, where a ticket is taken (Yin et al.,
    2022). Before `cycle_start` the base rate applies: a float or any
    `LearningRateSchedule`. Evaluated inside the compiled train step, so
    it costs no host work.

    Args:
        base: float or `LearningRateSchedule` for steps before the cycles.
        cycle_start: first optimizer step of the cyclic phase.
        cycle_steps: steps per cycle (> 0).
        lr_low: rate at the ends of each cycle.
        lr_high: rate at mid-cycle (>= lr_low).

    Example:

    ```python
    lr = keras_dst.schedules.CyclicLearningRate(0.1, 900, 100, 1e-3, 5e-3)
    float(lr(950))  # 0.005
    ```

    Reference:
        - [Yin et al., 2022](https://arxiv.org/abs/2205.15322)
    """

    def __init__(self, base, cycle_start, cycle_steps, lr_low, lr_high):
        if int(cycle_steps) <= 0:
            raise ValueError(
                "`cycle_steps` must be an int > 0. "
                f"Received: cycle_steps={cycle_steps!r}."
            )
        if int(cycle_start) < 0:
            raise ValueError(
                "`cycle_start` must be an int >= 0. "
                f"Received: cycle_start={cycle_start!r}."
            )
        check_learning_rate_bounds(lr_low, lr_high)
        self.base = base
        self.cycle_start = int(cycle_start)
        self.cycle_steps = int(cycle_steps)
        self.lr_low = float(lr_low)
        self.lr_high = float(lr_high)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        if isinstance(
            self.base, keras.optimizers.schedules.LearningRateSchedule
        ):
            base = ops.cast(self.base(step), "float32")
        else:
            base = ops.cast(self.base, "float32")
        t = ops.mod(step - self.cycle_start, self.cycle_steps)
        t = t / self.cycle_steps
        triangle = self.lr_low + (self.lr_high - self.lr_low) * (
            1.0 - ops.abs(2.0 * t - 1.0)
        )
        return ops.where(step >= self.cycle_start, triangle, base)

    def get_config(self):
        base = self.base
        if isinstance(base, keras.optimizers.schedules.LearningRateSchedule):
            base = keras.saving.serialize_keras_object(base)
        return {
            "base": base,
            "cycle_start": self.cycle_start,
            "cycle_steps": self.cycle_steps,
            "lr_low": self.lr_low,
            "lr_high": self.lr_high,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["base"], dict):
            config["base"] = keras.saving.deserialize_keras_object(
                config["base"]
            )
        return cls(**config)
