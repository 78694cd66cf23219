"""Learning-rate schedules of the thesis: the one-cycle triangle (Smith 2018)."""

import keras
from keras import ops

__all__ = ["OneCycle"]


@keras.saving.register_keras_serializable(package="kaflib")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Triangular one-cycle schedule, linear in the optimizer step.

    The rate rises from `min_lr` to `max_lr` over the first half of `epochs`,
    falls back to `min_lr` over the second half, then (optional) runs
    `extra_epochs` more epochs: by default decaying linearly from `min_lr` to
    `final_lr`; with `extra_lr`, at `extra_lr` halved at the start of every
    `halving_epochs`-th extra epoch, the first included (the thesis' fine-tuning:
    a Keras `LearningRateScheduler` halving at epochs 0, 4, 8, ... of a new
    `fit` with SGD(0.01), so epoch k of it runs at 0.01 / 2^(k // 4 + 1)).

    Args:
        steps_per_epoch: optimizer steps in one epoch (> 0).
        epochs: length of the triangle, in epochs (> 0).
        min_lr, max_lr: 0 <= min_lr <= max_lr.
        extra_epochs: epochs after the triangle (>= 0).
        final_lr: rate at the end of the extra epochs (default min_lr / 10).
        extra_lr: starting rate of step-halving extra epochs (None: linear decay).
        halving_epochs: with `extra_lr`, epochs between halvings (>= 1).
    """

    def __init__(self, steps_per_epoch, epochs, min_lr, max_lr, extra_epochs=0, final_lr=None, extra_lr=None,
                 halving_epochs=4):
        for name, value, ok in [("steps_per_epoch", steps_per_epoch, steps_per_epoch > 0),
                                ("epochs", epochs, epochs > 0),
                                ("min_lr", min_lr, 0 <= min_lr <= max_lr),
                                ("extra_epochs", extra_epochs, extra_epochs >= 0),
                                ("extra_lr", extra_lr, extra_lr is None or extra_lr > 0),
                                ("halving_epochs", halving_epochs, halving_epochs >= 1)]:
            if not ok:
                raise ValueError(f"OneCycle {name}={value!r} is invalid: need steps_per_epoch > 0, "
                                 "epochs > 0, 0 <= min_lr <= max_lr, extra_epochs >= 0, extra_lr None or > 0, "
                                 "halving_epochs >= 1.")
        self.steps_per_epoch = int(steps_per_epoch)
        self.epochs = float(epochs)
        self.min_lr, self.max_lr = float(min_lr), float(max_lr)
        self.extra_epochs = float(extra_epochs)
        self.final_lr = self.min_lr / 10 if final_lr is None else float(final_lr)
        self.extra_lr = None if extra_lr is None else float(extra_lr)
        self.halving_epochs = int(halving_epochs)

    def __call__(self, step):
        t = ops.cast(step, "float32") / self.steps_per_epoch  # epochs elapsed
        half = self.epochs / 2
        up = self.min_lr + (self.max_lr - self.min_lr) * t / half
        down = self.max_lr - (self.max_lr - self.min_lr) * (t - half) / half
        extra = max(self.extra_epochs, 1e-9)
        if self.extra_lr is None:
            tail = self.min_lr + (self.final_lr - self.min_lr) * ops.minimum((t - self.epochs) / extra, 1.0)
        else:
            halvings = ops.floor(ops.maximum(t - self.epochs, 0.0) / self.halving_epochs) + 1
            tail = self.extra_lr * ops.power(0.5, halvings)
        return ops.where(t < half, up, ops.where(t < self.epochs, down, tail))

    def get_config(self):
        return dict(steps_per_epoch=self.steps_per_epoch, epochs=self.epochs, min_lr=self.min_lr,
                    max_lr=self.max_lr, extra_epochs=self.extra_epochs, final_lr=self.final_lr,
                    extra_lr=self.extra_lr, halving_epochs=self.halving_epochs)
