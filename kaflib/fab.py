"""FAB-T: the targeted, L-inf Fast Adaptive Boundary attack (Croce and Hein 2020), as AutoAttack runs it.

FAB looks for the adversarial example closest to the clean image. At every step it
linearises the gap between the target's logit and the label's, ``f = z_t - z_y``,
around the current point ``x1``, which makes the decision boundary the hyperplane
``g . x = g . x1 - f`` (g the input gradient of f); it projects both ``x1`` and the
clean image ``x0`` onto that hyperplane within the box [0, 1] (`projection_linf`),
steps to a mix of the two projections, overshooting by ``eta``, and whenever the step
lands on a misclassified point it keeps the point if it is the closest so far and
moves back towards the clean image by ``beta``.

AutoAttack's standard FAB-T (``FABAttack_PT`` of the reference, fra31/auto-attack,
with ``set_version("standard")``), which `fab_robust` runs:

==================  ============================================================
n_target_classes    9: the 2nd to 10th most likely classes on the clean image, in turn
n_iter              100 steps per target class
n_restarts          1, from the clean image (no random start)
alpha_max           0.1, the largest weight of the clean image's projection
eta                 1.05, the overshoot of each step
beta                0.9, the step back towards the clean image after a success
success             any wrong class (not only the target), within L-inf ``eps``
==================  ============================================================

Here the gradient of ``z_t - z_y`` comes from one batched pass per step (a tape on
its sum over the batch), and an image leaves the batch as soon as a misclassified
point within ``eps`` is found: the reference goes on shrinking it, which cannot
change whether an example within ``eps`` exists, the only thing the cascade asks.
"""

import numpy as np

from kaflib.checks import check, is_int, is_number

__all__ = ["ALPHA_MAX", "BETA", "ETA", "STEPS", "TARGETS", "fab_robust", "fab_targeted", "projection_linf"]

ALPHA_MAX = 0.1  #: AutoAttack's largest weight of the clean image's projection in a step
ETA = 1.05       #: AutoAttack's overshoot of each projection step
BETA = 0.9       #: AutoAttack's step back towards the clean image after a success
STEPS = 100      #: AutoAttack's iterations per target class
TARGETS = 9      #: AutoAttack's target classes (the 9 most likely wrong ones)


def projection_linf(points, w, b):
    """The smallest L-inf step from each point onto its hyperplane, within the box [0, 1].

    Solves, row by row, ``min ||d||_inf`` subject to ``w . (points + d) = b`` and
    ``0 <= points + d <= 1`` (the reference's ``projection_linf``, in TensorFlow).
    Where the box does not reach the hyperplane, ``d`` goes to the box corner that
    comes closest to it. Coordinates with ``w = 0`` do not move.

    Args:
        points: float32 `(B, D)` in [0, 1].
        w: float32 `(B, D)`, the hyperplanes' normals (need not be unit).
        b: float32 `(B,)`, the hyperplanes' offsets.

    Returns:
        float32 tensor `(B, D)`: the steps ``d``, in the units of ``points``.
    """
    import tensorflow as tf

    t, w, b = (tf.convert_to_tensor(v, tf.float32) for v in (points, w, b))
    side = tf.where(tf.reduce_sum(w * t, 1) - b >= 0, 1.0, -1.0)  # orient w so that w . t >= b
    w, b = w * side[:, None], b * side
    moves = tf.cast(w != 0, tf.float32)
    up = tf.cast(w < 0, tf.float32)              # 1 where lowering w . x means moving the pixel up
    corner = (up - t) * moves                    # the step to the box corner that lowers w . x most
    room = up - t * (2 * up - 1)                 # how far each coordinate can move that way
    gap = b - tf.reduce_sum(w * t, 1)            # w . d must equal gap (<= 0)
    deepest = tf.reduce_sum(w * corner, 1)       # the lowest w . d the box allows
    order = tf.argsort(room, axis=1, direction="DESCENDING")
    weight = tf.abs(tf.gather(w, order, batch_dims=1))
    room_sorted = tf.gather(room, order, batch_dims=1)
    slope = tf.cumsum(weight, axis=1)                                # coordinates not yet at their bound
    offset = tf.cumsum(weight * room_sorted, axis=1) + deepest[:, None]
    reached = offset - slope * room_sorted       # w . d at radius room_sorted[k], increasing in k
    inside = gap > reached[:, -1]                # the radius is below every coordinate's room
    between = (gap > deepest) & ~inside          # the box bounds some coordinates
    k = tf.clip_by_value(tf.reduce_sum(tf.cast(reached < gap[:, None], tf.int32), 1) - 1, 0, tf.shape(t)[1] - 1)
    k = tf.where(inside, tf.shape(t)[1] - 1, k)
    rate = tf.gather(slope, k[:, None], batch_dims=1)[:, 0]
    radius = tf.maximum(tf.math.divide_no_nan(gap - tf.gather(offset, k[:, None], batch_dims=1)[:, 0], -rate), 0.0)
    radius = radius[:, None]
    bounded = tf.minimum(radius, corner) * up + tf.maximum(-radius, corner) * (1 - up)
    free = (2 * up - 1) * radius
    d = tf.where(inside[:, None], free, tf.where(between[:, None], bounded, corner))
    return d * moves


def _check(steps, alpha_max, eta, beta):
    """A ValueError naming the first of FAB's settings that is out of range."""
    check("steps", steps, is_int(steps) and steps >= 1, "an integer >= 1", owner="FAB-T")
    check("alpha_max", alpha_max, is_number(alpha_max) and 0 <= alpha_max <= 1, "in [0, 1]", owner="FAB-T")
    check("eta", eta, is_number(eta) and eta >= 1, "a number >= 1 (1: no overshoot)", owner="FAB-T")
    check("beta", beta, is_number(beta) and 0 < beta <= 1, "in (0, 1]", owner="FAB-T")


def _step_function(model, alpha_max, eta, beta, judge=None):
    """One compiled FAB step on `model` (`judge`, default `model`, decides which
    points are misclassified), for any batch size.

    The returned callable takes, all flattened to `(B, D)` float32 in [0, 1]:
    ``x1`` (the current points), ``x0`` (the clean images), ``best`` (the closest
    misclassified points so far), and ``labels``, ``targets`` int32 `(B,)` and
    ``distance`` float32 `(B,)` (``best``'s L-inf distance to ``x0``, inf if none);
    it returns the updated ``x1``, ``best`` and ``distance``.
    """
    import tensorflow as tf

    judge = judge or model
    shape = [-1, *model.input_shape[1:]]
    flat = tf.TensorSpec([None, int(np.prod(model.input_shape[1:]))], tf.float32)
    index = tf.TensorSpec([None], tf.int32)

    def logits(x, of=model):
        return tf.cast(of(tf.reshape(x, shape), training=False), tf.float32)

    @tf.function(input_signature=[flat, flat, index, index, flat, tf.TensorSpec([None], tf.float32)])
    def step(x1, x0, labels, targets, best, distance):
        n = tf.shape(x1)[0]
        with tf.GradientTape() as tape:
            tape.watch(x1)
            z = logits(x1)
            gap = tf.gather(z, targets[:, None], batch_dims=1)[:, 0] - tf.gather(z, labels[:, None], batch_dims=1)[:, 0]
            total = tf.reduce_sum(gap)  # one pass gives every image's gradient: the images are independent
        w = tape.gradient(total, x1)
        b = tf.reduce_sum(w * x1, 1) - gap  # the linearised boundary: w . x = b
        d = projection_linf(tf.concat([x1, x0], 0), tf.concat([w, w], 0), tf.concat([b, b], 0))
        size = tf.maximum(tf.reduce_max(tf.abs(d), 1, keepdims=True), 1e-8)
        alpha = tf.clip_by_value(size[:n] / (size[:n] + size[n:]), 0.0, alpha_max)
        moved = tf.clip_by_value((x1 + eta * d[:n]) * (1 - alpha) + (x0 + eta * d[n:]) * alpha, 0.0, 1.0)
        wrong = tf.argmax(logits(moved, judge), -1, output_type=tf.int32) != labels
        far = tf.reduce_max(tf.abs(moved - x0), 1)
        closer = wrong & (far < distance)
        best = tf.where(closer[:, None], moved, best)
        distance = tf.where(closer, far, distance)
        x1 = tf.where(wrong[:, None], x0 + (moved - x0) * beta, moved)
        return x1, best, distance

    return step


def fab_targeted(model, images, labels, targets, steps=STEPS, alpha_max=ALPHA_MAX, eta=ETA, beta=BETA,
                 stop_below=None, step=None, judge=None):
    """One targeted FAB run per image, from the clean image: the closest misclassified point found.

    Args:
        model: Keras logits model (it is differentiated, and decides "misclassified"
            unless `judge` is given).
        images: float32 `(N, ...)` (the model's input shape) in [0, 1];
            labels, targets: ints `(N,)`, the true classes and the classes
            whose logit FAB pushes above them.
        steps, alpha_max, eta, beta: FAB's settings (AutoAttack's by default).
        stop_below: an image stops as soon as a misclassified point within this
            L-inf distance (pixel units) is found; None: all run `steps` steps.
        step: a compiled step of `model` from `_step_function` to reuse (built if None,
            with `judge`).
        judge: Keras model that decides "misclassified" (default `model`): a
            float16 model attacked through its float32 twin is judged by itself.

    Returns:
        (adversarial float32 `(N, ...)`, distance float32 `(N,)`): the closest
        misclassified point found and its L-inf distance to the image in pixel
        units; the image itself and 0 where `model` already misclassifies it, the
        image itself and inf where no misclassified point was found.
    """
    import tensorflow as tf

    _check(steps, alpha_max, eta, beta)
    check("stop_below", stop_below, stop_below is None or (is_number(stop_below) and stop_below >= 0),
          "None or a number >= 0 (pixel units)", owner="FAB-T")
    images = np.asarray(images, np.float32)
    labels, targets = np.asarray(labels, np.int32), np.asarray(targets, np.int32)
    if images.shape[1:] != tuple(model.input_shape[1:]) or not len(images) == len(labels) == len(targets):
        raise ValueError(f"images {images.shape}, labels {labels.shape} and targets {targets.shape} must be "
                         f"(N, {', '.join(map(str, model.input_shape[1:]))}), (N,) and (N,).")
    step = step or _step_function(model, alpha_max, eta, beta, judge)
    flat = images.reshape(len(images), -1)
    adversarial, distance = flat.copy(), np.full(len(images), np.inf, np.float32)
    wrong = np.argmax((judge or model).predict(images, batch_size=256, verbose=0), -1) != labels
    distance[wrong] = 0.0
    active = np.flatnonzero(~wrong)
    x0 = tf.constant(flat[active])
    x1, best, close = x0, x0, tf.fill([len(active)], np.float32(np.inf))
    y, t = tf.constant(labels[active]), tf.constant(targets[active])
    for _ in range(steps):
        if not len(active):
            break
        x1, best, close = step(x1, x0, y, t, best, close)
        if stop_below is not None:
            done = close.numpy() <= stop_below
            if done.any():
                adversarial[active[done]], distance[active[done]] = best.numpy()[done], close.numpy()[done]
                keep = tf.constant(np.flatnonzero(~done), tf.int32)
                active = active[~done]
                x1, x0, best, close, y, t = (tf.gather(v, keep) for v in (x1, x0, best, close, y, t))
    if len(active):
        adversarial[active], distance[active] = best.numpy(), close.numpy()
    return adversarial.reshape(images.shape), distance


def fab_robust(model, images, labels, eps=8 / 255, targets=TARGETS, steps=STEPS, alpha_max=ALPHA_MAX, eta=ETA,
               beta=BETA, batch_size=256, robust=None, judge=None):
    """Per-image robustness `(N,)` under AutoAttack's FAB-T at L-inf radius `eps`.

    Each target class in turn (the most likely wrong class on the clean image
    first, by `judge`'s logits, as `apgd_robust` ranks them; in the reference the
    attacked model is the judge) attacks the images every earlier one left
    robust; an image is fooled when FAB finds a point within `eps` that `judge`
    misclassifies. `judge` decides "misclassified" inside FAB too, so an image
    that `model` alone gets wrong is attacked, not taken as already fooled.

    Args:
        model: Keras logits model FAB differentiates.
        images: float32 `(N, H, W, C)` in [0, 1]; labels: ints `(N,)`.
        eps: L-inf radius in pixel units (8/255).
        targets: how many of the most likely wrong classes to target (9).
        steps, alpha_max, eta, beta: as in `fab_targeted` (AutoAttack's by default).
        robust: bool `(N,)` of images still to attack (default: those `judge`
            classifies correctly); the others stay as given.
        judge: model whose predictions decide correctness (default `model`).

    Returns:
        bool `(N,)`: True where the image stayed correctly classified.
    """
    from kaflib.evaluate import attack_survivors, predict_classes

    check("eps", eps, is_number(eps) and 0 < eps <= 1, "in (0, 1] (pixel units, e.g. 8/255)", owner="FAB-T")
    _check(steps, alpha_max, eta, beta)
    classes = int(model.output_shape[-1])
    check("targets", targets, is_int(targets) and 1 <= targets <= classes - 1,
          f"an integer in [1, {classes - 1}] (the classes other than the label)", owner="FAB-T")
    check("batch_size", batch_size, is_int(batch_size) and batch_size >= 1, "an integer >= 1", owner="FAB-T")
    labels = np.asarray(labels)
    judge = judge or model
    robust = predict_classes(judge, images, batch_size) == labels if robust is None else np.array(robust, bool)
    ranked = np.argsort(-judge.predict(images, batch_size=batch_size, verbose=0), axis=1, kind="stable")
    step = _step_function(model, alpha_max, eta, beta, judge)

    def attack(x, y, index, rank):
        found = []
        for start in range(0, len(y), batch_size):
            part = slice(start, start + batch_size)
            adversarial, distance = fab_targeted(model, x[part], y[part], ranked[index[part], rank], steps,
                                                 alpha_max, eta, beta, stop_below=eps, step=step, judge=judge)
            found.append(np.where((distance <= eps).reshape(-1, *[1] * (x.ndim - 1)), adversarial, x[part]))
        return np.concatenate(found)

    for rank in range(1, targets + 1):
        robust = attack_survivors(lambda x, y, index: attack(x, y, index, rank), judge, images, labels, robust,
                                  batch_size)
    return robust
