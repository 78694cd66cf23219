"""Compiled L-inf attacks used inside training: FGSM with random start and PGD.

These are TensorFlow functions (the training loop is TensorFlow); the
reported evaluation uses ART (`kaflib.evaluate`). Images are float32 in
[0, 1]; `eps` and step sizes are in the same units (8/255 = 8 grey levels).
"""

import tensorflow as tf

__all__ = ["cross_entropy", "random_start", "fgsm_rs_perturb", "pgd_steps", "pgd_perturb"]


def cross_entropy(labels, logits):
    """Per-example softmax cross-entropy from logits, in float32: `(B,)`."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=tf.cast(logits, tf.float32))


def _project(x, delta, eps):
    """Clip delta to the eps-ball and x + delta to [0, 1]."""
    delta = tf.clip_by_value(delta, -eps, eps)
    return tf.clip_by_value(x + delta, 0.0, 1.0) - x


def random_start(x, eps, seed):
    """delta ~ U(-eps, eps), projected so that x + delta stays in [0, 1]."""
    delta = tf.random.stateless_uniform(tf.shape(x), seed, -eps, eps)
    return _project(x, delta, eps)


def _input_gradient(model, x, delta, y, training):
    with tf.GradientTape() as tape:
        tape.watch(delta)
        loss = tf.reduce_sum(cross_entropy(y, model(x + delta, training=training)))
    return tape.gradient(loss, delta)


def fgsm_rs_perturb(model, x, y, eps, step_size, seed, training=True):
    """Wong et al.'s FGSM with random start: the adversarial images `(B, H, W, C)`.

    delta ~ U(-eps, eps); delta += step_size * sign(grad); project onto the
    eps-ball and [0, 1]. The thesis and Wong et al. use step_size = 1.25 eps.
    """
    delta = random_start(x, eps, seed)
    delta = delta + step_size * tf.sign(_input_gradient(model, x, delta, y, training))
    return tf.stop_gradient(x + _project(x, delta, eps))


def pgd_steps(model, x, y, delta, eps, step_size, steps, training=False):
    """`steps` L-inf PGD steps from the perturbation `delta` `(B, H, W, C)`: the new delta."""
    for _ in tf.range(steps):
        grad = _input_gradient(model, x, delta, y, training)
        delta = _project(x, delta + step_size * tf.sign(grad), eps)
    return delta


def pgd_perturb(model, x, y, eps, step_size, steps, seed, training=False):
    """L-inf PGD (Madry et al.) from a random start: the adversarial images."""
    delta = pgd_steps(model, x, y, random_start(x, eps, seed), eps, step_size, steps, training)
    return tf.stop_gradient(x + delta)
