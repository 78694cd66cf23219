"""k-winners-take-all activation (Xiao et al., ICLR 2020)."""

import math

import keras
from keras import ops

from kaflib.checks import is_number

__all__ = ["KWTA"]


@keras.saving.register_keras_serializable(package="kaflib")
class KWTA(keras.layers.Layer):
    """Keep the k largest values of each sample, zero the rest.

    `k = ceil(ratio * N)` where N is the number of values per sample (all
    non-batch axes together: `C` for dense inputs, `H * W * C` for conv
    inputs, as in Xiao et al.). Values tied with the k-th largest are kept.
    The mask is treated as a constant in the backward pass, so the gradient
    flows only through the winners.

    Args:
        ratio: fraction of values kept per sample, in (0, 1].

    Input shape:
        `(batch, ...)`, rank >= 2: `(batch, C)` or `(batch, H, W, C)`.

    Output shape:
        Same as the input.
    """

    def __init__(self, ratio=0.2, **kwargs):
        super().__init__(**kwargs)
        if not is_number(ratio) or not 0 < ratio <= 1:
            raise ValueError(f"KWTA ratio must be in (0, 1], got {ratio!r}.")
        self.ratio = float(ratio)

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(
                f"KWTA expects inputs of rank >= 2, (batch, ...); got shape {input_shape}.")
        if any(dim is None for dim in input_shape[1:]):
            raise ValueError(
                f"KWTA needs all non-batch dimensions known; got shape {input_shape}.")
        self.num_values = math.prod(input_shape[1:])
        self.k = max(1, math.ceil(self.ratio * self.num_values))

    def call(self, inputs):
        flat = ops.reshape(inputs, (-1, self.num_values))
        kth_largest = ops.top_k(flat, self.k, sorted=True)[0][:, -1:]
        mask = ops.cast(flat >= ops.stop_gradient(kth_largest), flat.dtype)
        return ops.reshape(flat * ops.stop_gradient(mask), ops.shape(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(ratio=self.ratio)
        return config
