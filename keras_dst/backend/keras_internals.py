"""Every use of a private Keras internal, in one place (see tests).

(Provisional: the learning-rate accessors SupTickets needs.)
"""

from keras_dst.optimizers.slots import base_optimizer


def optimizer_learning_rate(optimizer):
    """The rate the optimizer owns: a float variable or a schedule.

    Keras keeps it in `_learning_rate`; the public `learning_rate` reads
    a schedule's current value instead of the schedule.
    """
    return base_optimizer(optimizer)._learning_rate


def override_learning_rate(optimizer, fn):
    """Makes the optimizer read its current rate from `fn()`.

    Keras reads the rate through `_get_current_learning_rate()` inside the
    train step; replacing it on the instance leaves the optimizer's
    variables and config untouched.
    """
    inner = base_optimizer(optimizer)
    inner._get_current_learning_rate = fn


def restore_learning_rate(optimizer):
    """Undoes `override_learning_rate`; True if there was one."""
    inner = base_optimizer(optimizer)
    if "_get_current_learning_rate" in vars(inner):
        del inner._get_current_learning_rate
        return True
    return False
