"""Batch normalization whose inference output rounds like TensorFlow's fused kernel."""

import keras
from keras import ops

__all__ = ["FusedOrderBatchNormalization"]


@keras.saving.register_keras_serializable(package="kaflib")
class FusedOrderBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` that, at inference, evaluates

        y = (x - moving_mean) * (gamma * rsqrt(moving_variance + epsilon)) + beta

    in float32, in this order, as TensorFlow's `FusedBatchNormV3` kernel (used
    by Keras 2 and so by the thesis' models) does. Keras 3 evaluates the same
    formula as `x * s + (beta - mean * s)`; the two differ only by float32
    rounding, which under a float16 policy flips about 1 in 2,000 outputs by
    one float16 step. That is enough to change the predictions of the thesis'
    ridge-initialised KAF ResNets (coefficients up to ~70, summed in float16),
    so `kaflib.thesis.checkpoints.load_checkpoint` uses this layer to reproduce them.
    Training behaves exactly as the parent class. Only `axis=-1`.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.axis not in (-1,):
            raise ValueError(f"FusedOrderBatchNormalization supports axis=-1 only, got {self.axis!r}.")

    def call(self, inputs, training=None, mask=None):
        if (training and self.trainable) or mask is not None:
            return super().call(inputs, training=training, mask=mask)
        x = ops.cast(inputs, "float32")
        scale = ops.rsqrt(ops.cast(self.moving_variance, "float32") + self.epsilon)
        if self.scale:
            scale = scale * ops.cast(self.gamma, "float32")
        y = (x - ops.cast(self.moving_mean, "float32")) * scale
        if self.center:
            y = y + ops.cast(self.beta, "float32")
        return ops.cast(y, self.compute_dtype)
