"""Lipschitz constants: of each KAF, and an upper bound for a whole network.

The thesis (ch. 4.1, 6.1) names the Lipschitz constant as a robustness measure
it did not pursue: a network whose logits move by at most L per unit of input
change cannot be flipped by a perturbation much smaller than its margin / L.

One Gaussian KAF channel, f(x) = sum_i alpha_i exp(-gamma (x - d_i)^2), has

    |f'(x)| <= sum_i |alpha_i| * max_u |d/du exp(-gamma u^2)| = sum_i |alpha_i| sqrt(2 gamma / e)

(`kaf_lipschitz(..., method="analytic")`, an upper bound); the ReLU and
softplus kernels have |k'| <= 1, so sum_i |alpha_i|. `method="numeric"` is
max |f'| over a dense grid covering the dictionary and 8 kernel widths beyond
it (the derivative's formula in float64): the constant itself, to grid resolution.

`network_lipschitz` bounds the L2 Lipschitz constant of a functional Keras
model (input image -> logits, inference mode) by walking its graph: each
layer multiplies the bound of its input by its own constant (convolutions and
dense layers: spectral norm, by power iteration for convolutions; batch
normalization: max |gamma| / sqrt(variance + eps); activations: their
constant; global average pooling over n positions: 1 / sqrt(n)), and an
addition (a residual connection) sums the bounds of its inputs. Such product
bounds are loose, often by orders of magnitude, but they are upper bounds.
"""

import math

import keras
import numpy as np
import pandas as pd
from keras import ops

from kaflib.activations import is_activation_layer
from kaflib.kaf import KAF, kaf_geometry
from kaflib.kwta import KWTA

__all__ = ["FIXED_LIPSCHITZ", "kaf_lipschitz", "conv_spectral_norm", "network_lipschitz",
           "lipschitz_epoch_metrics"]

#: Lipschitz constants of the fixed activations (max |f'| on the real line).
FIXED_LIPSCHITZ = {"relu": 1.0, "elu": 1.0, "tanh": 1.0, "softplus": 1.0, "linear": 1.0,
                   "swish": 1.0998, "silu": 1.0998, "gelu": 1.1289}


def kaf_lipschitz(layer, method="numeric", points=4001):
    """Per-channel Lipschitz constant of a built `KAF` layer, shape `(C,)`.

    Args:
        layer: a built `kaflib.KAF` (or `DirectKAF`).
        method: ``"numeric"`` (max |f'| on a dense grid) or ``"analytic"``
            (the upper bound sum |alpha_i| sqrt(2 gamma / e); sum |alpha_i|
            for the ReLU and softplus kernels).
        points: grid size of the numeric method. (The ReLU kernel's f' jumps
            at the dictionary points; the grid sees the plateaus between them.)
    """
    if not isinstance(layer, KAF) or not layer.built:
        raise ValueError(f"kaf_lipschitz needs a built KAF layer, got {layer!r}.")
    if method not in ("numeric", "analytic"):
        raise ValueError(f"method must be 'numeric' or 'analytic', got {method!r}.")
    alpha = np.abs(np.asarray(ops.convert_to_numpy(layer.alpha), np.float64))
    dictionary, gamma = kaf_geometry(layer)
    if method == "analytic":
        if layer.kernel != "gaussian":
            return alpha.sum(axis=1)
        return alpha.sum(axis=1) * np.sqrt(2.0 * gamma / math.e)
    width = 1.0 / np.sqrt(gamma.min()) if layer.kernel == "gaussian" else 1.0
    x = np.linspace(dictionary.min() - 8 * width, dictionary.max() + 8 * width, points)
    signed = np.asarray(ops.convert_to_numpy(layer.alpha), np.float64)
    constants = np.empty(len(gamma))
    for c in range(len(gamma)):  # f'(x) from the formula, in float64: (points, D) at a time
        u = x[:, None] - dictionary[c]
        if layer.kernel == "gaussian":
            slopes = -2.0 * gamma[c] * u * np.exp(-gamma[c] * u * u)
        elif layer.kernel == "relu":
            slopes = (u > 0).astype(np.float64)
        else:
            slopes = 0.5 * (1.0 + np.tanh(u / 2.0))
        constants[c] = np.abs(slopes @ signed[c]).max()
    return constants


def conv_spectral_norm(layer, input_shape, iterations=50, seed=0):
    """Largest singular value of a Conv2D's linear map (kernel, strides, padding;
    bias ignored) on inputs of `input_shape` `(H, W, C_in)`, by power iteration."""
    import tensorflow as tf

    kernel = tf.cast(layer.kernel, tf.float32)
    strides, padding = layer.strides, layer.padding.upper()

    def apply(v):
        return tf.nn.conv2d(v, kernel, strides=strides, padding=padding)

    v = tf.random.stateless_normal((1, *input_shape), (seed, 0))
    sigma = 0.0
    for _ in range(iterations):
        v = v / tf.norm(v)
        with tf.GradientTape() as tape:
            tape.watch(v)
            u = apply(v)
        sigma = float(tf.norm(u))
        v = tape.gradient(u, v, output_gradients=u)  # A^T A v
    return sigma


def _activation_constant(layer, kaf_method):
    if isinstance(layer, KAF):
        return float(kaf_lipschitz(layer, kaf_method).max())
    if isinstance(layer, KWTA):
        return math.inf  # discontinuous: no Lipschitz constant
    if isinstance(layer, keras.layers.ReLU):  # slope 1 above the threshold, negative_slope below
        return max(1.0, abs(float(layer.negative_slope)))
    if isinstance(layer, keras.layers.ELU):  # slope 1 above 0, alpha e^x below
        return max(1.0, abs(float(layer.alpha)))
    name = getattr(layer.activation, "__name__", str(layer.activation))
    if name not in FIXED_LIPSCHITZ:
        raise ValueError(f"No Lipschitz constant known for activation {name!r} (layer {layer.name}).")
    return FIXED_LIPSCHITZ[name]


def _layer_constant(layer, kaf_method):
    """(kind, constant) of one layer with one input."""
    L = keras.layers
    if is_activation_layer(layer):
        return "activation", _activation_constant(layer, kaf_method)
    if isinstance(layer, L.Conv2D):
        return "conv", conv_spectral_norm(layer, tuple(layer.input.shape[1:]))
    if isinstance(layer, L.Dense):
        return "dense", float(np.linalg.norm(np.asarray(ops.convert_to_numpy(layer.kernel), np.float64), 2))
    if isinstance(layer, L.BatchNormalization):
        scale = 1.0 / np.sqrt(np.asarray(ops.convert_to_numpy(layer.moving_variance), np.float64) + layer.epsilon)
        if layer.scale:
            scale = scale * np.asarray(ops.convert_to_numpy(layer.gamma), np.float64)
        return "batch norm", float(np.abs(scale).max())
    if isinstance(layer, L.GlobalAveragePooling2D):
        return "pooling", 1.0 / math.sqrt(layer.input.shape[1] * layer.input.shape[2])
    if isinstance(layer, (L.MaxPooling2D, L.Flatten, L.Dropout)):
        return "pooling" if isinstance(layer, L.MaxPooling2D) else "identity", 1.0
    raise ValueError(f"network_lipschitz does not know layer {layer.name!r} ({type(layer).__name__}).")


def network_lipschitz(model, kaf_method="numeric"):
    """Upper bound on the L2 Lipschitz constant of `model` (inputs -> outputs, inference).

    Args:
        model: a functional `keras.Model` of the layers listed in the module
            docstring (every model of `kaflib.models` without k-WTA qualifies;
            with k-WTA the bound is inf).
        kaf_method: how KAF constants are computed (see `kaf_lipschitz`).

    Returns:
        `(bound, table)`: the bound for the model's output, and a DataFrame with
        one row per layer: layer, kind, constant (the layer's own), bound (of
        its output).
    """
    bounds, rows = {}, []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            bounds[layer.name] = 1.0
            continue
        parents = [t._keras_history.operation.name for t in layer._inbound_nodes[0].input_tensors]
        if isinstance(layer, keras.layers.Add):
            kind, constant, bound = "add", 1.0, sum(bounds[p] for p in parents)
        else:
            if len(parents) != 1:
                raise ValueError(f"network_lipschitz: layer {layer.name!r} has {len(parents)} inputs.")
            kind, constant = _layer_constant(layer, kaf_method)
            bound = constant * bounds[parents[0]]
        bounds[layer.name] = bound
        rows.append(dict(layer=layer.name, kind=kind, constant=constant, bound=bound))
    output = model.outputs[0]._keras_history.operation.name
    return bounds[output], pd.DataFrame(rows)


def lipschitz_epoch_metrics(model, kaf_method="numeric"):
    """The Lipschitz columns `fit(..., epoch_metrics=lipschitz_epoch_metrics)` adds to each epoch.

    Returns ``{"lipschitz_bound_log10": log10 of network_lipschitz(model)``
    (the product bound; inf for k-WTA), ``"activation_lipschitz_max":`` the
    largest activation constant in the network (over every KAF channel and
    fixed activation)``}``. One `network_lipschitz` walk: a few seconds for a
    ResNet20 on a CPU.
    """
    bound, layers = network_lipschitz(model, kaf_method)
    activations = layers.loc[layers["kind"] == "activation", "constant"]
    return {"lipschitz_bound_log10": math.log10(bound) if bound > 0 else -math.inf,
            "activation_lipschitz_max": float(activations.max()) if len(activations) else math.nan}
