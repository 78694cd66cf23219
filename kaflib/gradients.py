"""Per-layer gradient norms during training: the exploding-gradient diagnosis of thesis ch. 7.2."""

import numpy as np
import pandas as pd

from kaflib.checks import is_int

__all__ = ["gradient_norm_trace"]


def gradient_norm_trace(model, images, labels, steps=100, batch_size=128, learning_rate=0.05,
                        momentum=0.9, seed=0, progress=True):
    """Train `model` normally (SGD + momentum, constant rate) and log each layer's gradient norm.

    Args:
        model: a Keras logits model (built).
        images, labels: training data, `(N, H, W, C)` float32 in [0, 1] and `(N,)` ints.
        steps: optimizer steps (batches drawn in a seeded random order).
        learning_rate, momentum: SGD settings.

    Returns:
        DataFrame with one row per (step, layer with weights): step, layer
        (name), depth (1 = nearest the input), norm (L2 norm of the layer's
        whole gradient; NaN/inf once it is not finite), loss. Stops after the
        first step whose loss or gradient is not finite.
    """
    import keras
    import tensorflow as tf
    from tqdm.auto import tqdm

    from kaflib.attacks import cross_entropy

    if not is_int(steps) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}.")
    weighted = [layer for layer in model.layers if layer.trainable_weights]
    position = {id(v): i for i, v in enumerate(model.trainable_variables)}
    groups = [[position[id(v)] for v in layer.trainable_weights] for layer in weighted]
    optimizer = keras.optimizers.SGD(learning_rate, momentum=momentum)

    @tf.function
    def step_fn(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(cross_entropy(y, model(x, training=True)))
            if model.losses:
                loss += tf.add_n(model.losses)
        grads = tape.gradient(loss, model.trainable_variables)
        norms = tf.stack([tf.linalg.global_norm([grads[i] for i in group]) for group in groups])
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss, norms

    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(labels)) for _ in range(steps * batch_size // len(labels) + 1)])
    rows = []
    for step in tqdm(range(steps), desc="gradient norms", disable=not progress, leave=False):
        batch = order[step * batch_size:(step + 1) * batch_size]
        loss, norms = step_fn(tf.constant(images[batch]), tf.constant(labels[batch]))
        loss, norms = float(loss), norms.numpy()
        rows += [dict(step=step, layer=layer.name, depth=d + 1, norm=float(n), loss=loss)
                 for d, (layer, n) in enumerate(zip(weighted, norms))]
        if not (np.isfinite(loss) and np.isfinite(norms).all()):
            break
    return pd.DataFrame(rows)
