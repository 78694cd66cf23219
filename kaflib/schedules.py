"""Learning-rate schedules of the thesis: the one-cycle triangle (Smith 2018)."""

import keras
from keras import ops

__all__ = ["OneCycle"]


@keras.saving.register_keras_serializable(package="kaflib")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Triangular one-cycle schedule, linear in the optimizer step.

    The rate rises from `min_lr` to `max_lr` over the first half of `epochs`,
    falls back to `min_lr` over the second half, then (optional) decays
    linearly from `min_lr` to `final_lr` over `extra_epochs` more epochs.

    Args:
        steps_per_epoch: optimizer steps in one epoch (> 0).
        epochs: length of the triangle, in epochs (> 0).
        min_lr, max_lr: 0 <= min_lr <= max_lr.
        extra_epochs: epochs after the triangle (>= 0).
        final_lr: rate at the end of the extra epochs (default min_lr / 10).
    """

    def __init__(self, steps_per_epoch, epochs, min_lr, max_lr, extra_epochs=0, final_lr=None):
        for name, value, ok in [("steps_per_epoch", steps_per_epoch, steps_per_epoch > 0),
                                ("epochs", epochs, epochs > 0),
                                ("min_lr", min_lr, 0 <= min_lr <= max_lr),
                                ("extra_epochs", extra_epochs, extra_epochs >= 0)]:
            if not ok:
                raise ValueError(f"OneCycle {name}={value!r} is invalid: need steps_per_epoch > 0, "
                                 "epochs > 0, 0 <= min_lr <= max_lr, extra_epochs >= 0.")
        self.steps_per_epoch = int(steps_per_epoch)
        self.epochs = float(epochs)
        self.min_lr, self.max_lr = float(min_lr), float(max_lr)
        self.extra_epochs = float(extra_epochs)
        self.final_lr = self.min_lr / 10 if final_lr is None else float(final_lr)

    def __call__(self, step):
        t = ops.cast(step, "float32") / self.steps_per_epoch  # epochs elapsed
        half = self.epochs / 2
        up = self.min_lr + (self.max_lr - self.min_lr) * t / half
        down = self.max_lr - (self.max_lr - self.min_lr) * (t - half) / half
        extra = max(self.extra_epochs, 1e-9)
        tail = self.min_lr + (self.final_lr - self.min_lr) * ops.minimum((t - self.epochs) / extra, 1.0)
        return ops.where(t < half, up, ops.where(t < self.epochs, down, tail))

    def get_config(self):
        return dict(steps_per_epoch=self.steps_per_epoch, epochs=self.epochs, min_lr=self.min_lr,
                    max_lr=self.max_lr, extra_epochs=self.extra_epochs, final_lr=self.final_lr)
