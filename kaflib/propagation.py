"""How much of the input reaches each activation layer: forward signal propagation at initialisation.

A network learns nothing from an image its activations do not depend on. `activation_signal`
measures, layer by layer, how large the activations are and which share of their variation
comes from the image, in training mode (batch normalization with the batch's statistics) and
in inference mode (with its moving statistics, which start at mean 0 and variance 1).
"""

import numpy as np
import pandas as pd

__all__ = ["activation_signal"]


def activation_signal(model, images, layer_types=None):
    """Scale and image dependence of every activation layer's output, and of the logits.

    Args:
        model: a Keras functional logits model.
        images: float32 `(N, H, W, C)` in [0, 1], N >= 2 (one batch: it is what batch
            normalization sees in training mode).
        layer_types: class names of the layers measured (default: the activation
            layers, `kaflib.activations.activation_layers`).

    Returns:
        DataFrame with one row per (mode, measured layer, then the logits): mode
        ("training" or "inference"), layer (name; "logits" for the output), depth
        (1 = nearest the input), scale (standard deviation of all its outputs),
        image_share (for each unit, the standard deviation of its output over the N
        images, averaged over units, divided by `scale`: 0 when the output is the same
        for every image; NaN when `scale` is 0).
    """
    import keras

    from kaflib.activations import activation_layers

    images = np.asarray(images, dtype="float32")
    if images.ndim != 4 or len(images) < 2:
        raise ValueError(f"images must be a (N, H, W, C) array with N >= 2, got shape {images.shape}.")
    layers = (activation_layers(model) if layer_types is None
              else [layer for layer in model.layers if type(layer).__name__ in layer_types])
    probe = keras.Model(model.input, [layer.output for layer in layers] + [model.output])
    names = [layer.name for layer in layers] + ["logits"]
    rows = []
    # a training-mode call moves batch normalization's moving statistics: they are put back
    saved = [keras.ops.convert_to_numpy(v) for v in model.non_trainable_variables]
    for mode, training in (("training", True), ("inference", False)):
        outputs = probe(images, training=training)
        for variable, value in zip(model.non_trainable_variables, saved):
            variable.assign(value)
        for depth, (name, value) in enumerate(zip(names, outputs), start=1):
            value = keras.ops.convert_to_numpy(value).astype("float64").reshape(len(images), -1)
            scale = float(value.std())
            share = float(value.std(axis=0).mean() / scale) if scale > 0 else float("nan")
            rows.append(dict(mode=mode, layer=name, depth=depth, scale=scale, image_share=share))
    return pd.DataFrame(rows)
