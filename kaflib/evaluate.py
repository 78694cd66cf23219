"""Evaluation: clean accuracy, robust accuracy under ART's PGD and APGD, intervals.

The reported robust accuracy uses the IBM Adversarial Robustness Toolbox:
`ProjectedGradientDescent` (L-inf) on the LOGITS model wrapped in a
`TensorFlowV2Classifier` with a from-logits cross-entropy, attacking the TRUE
labels. APGD-T takes AutoAttack's targeted DLR loss (`TargetedDifferenceLogitsRatio`)
or ART's (`DifferenceLogitsRatio`). Several attacks (restarts, APGD's target classes, AutoAttack's list)
run as a per-image cascade (`attack_survivors`): each attacks only the images
that survived the ones before, and an image counts as robust only if it is
classified correctly after all of them.

`python -m kaflib.evaluate MODEL --attack autoattack` is AutoAttack's command
(`kaflib.autoattack.main`, beside the cascade it runs): this module's main guard
runs `kaflib.autoattack` as the program and imports nothing of it.
"""

import numpy as np

from kaflib.checks import is_int

__all__ = ["APGD_LOSSES", "DifferenceLogitsRatio", "TargetedDifferenceLogitsRatio", "accuracy_under_attack",
           "apgd_robust", "art_classifier", "attack_survivors", "clean_accuracy", "label_and_target",
           "judged_by", "memoised_classifier", "pgd_robust",
           "predict_classes", "robust_accuracy", "square_robust", "wilson_interval"]


def wilson_interval(successes, n, z=1.96):
    """95% Wilson score interval `(low, high)` of a proportion `successes / n`."""
    if n <= 0:
        raise ValueError(f"n must be >= 1, got {n!r}.")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def predict_classes(model, images, batch_size=256):
    """Predicted classes `(N,)` of an ART classifier or a Keras model."""
    if hasattr(model, "nb_classes"):
        return np.argmax(model.predict(images, batch_size=batch_size), -1)
    return np.argmax(model.predict(images, batch_size=batch_size, verbose=0), -1)


def attack_survivors(generate, judge, images, labels, robust, batch_size=256):
    """One step of the per-image cascade: attack the images still robust, score on `judge`.

    Args:
        generate: callable(images `(n, H, W, C)`, labels `(n,)`, index `(n,)`) ->
            adversarial images `(n, H, W, C)`, for the survivors only (`index`
            are their positions in `images`).
        judge: ART classifier or Keras model whose predictions decide correctness.
        robust: bool `(N,)`, the images that survived so far (not modified).

    Returns:
        bool `(N,)`: `robust`, with every survivor the attack fooled set to False.
    """
    robust = np.array(robust, bool)
    todo = np.flatnonzero(robust)
    if len(todo):
        adversarial = generate(images[todo], labels[todo], todo)
        robust[todo] = predict_classes(judge, adversarial, batch_size) == labels[todo]
    return robust


def clean_accuracy(model, images, labels, batch_size=256):
    """Fraction of `images` `(N, H, W, C)` in [0, 1] that `model` classifies as `labels` `(N,)`."""
    logits = model.predict(images, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(logits, -1) == labels))


def art_classifier(model, num_classes=None, clip_values=(0.0, 1.0), estimator=None):
    """Wrap a Keras logits model for ART (`TensorFlowV2Classifier`, from-logits loss).

    The forward pass is compiled with `tf.function` (ART differentiates through
    it), which makes ART's attacks several times faster than eager calls.
    `estimator`: a subclass of `TensorFlowV2Classifier` to build instead.
    """
    import keras
    import tensorflow as tf
    from art.estimators.classification import TensorFlowV2Classifier

    forward = tf.function(lambda x, training=False: tf.cast(model(x, training=training), tf.float32))
    return (estimator or TensorFlowV2Classifier)(
        model=forward,
        nb_classes=num_classes or int(model.output_shape[-1]),
        input_shape=tuple(model.input_shape[1:]),
        loss_object=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        clip_values=clip_values,
    )


def judged_by(classifier, judge):
    """`classifier` (an ART classifier), with `judge`'s `predict` in place of its own.

    ART's APGD and Square first drop the images their classifier already
    misclassifies and keep an iterate as a success by the same predictions.
    Attacked through a float32 twin, a float16 model the twin disagrees with
    on a clean image would have that image skipped and counted robust without
    an attack; judged by the model itself, it is attacked like the others.
    Returns `classifier`, modified.
    """
    if judge is not classifier:
        classifier.predict = judge.predict
    return classifier


def memoised_classifier(model, generations=3):
    """`art_classifier(model)` whose `predict` computes each distinct image once.

    ART's L-inf `SquareAttack` makes three forward passes per query: the current
    images (to find the ones still robust), their loss again, and the candidates'
    loss; AutoAttack's reference makes one. The first two are images the
    previous query already scored, so this classifier keeps the logits of the images
    of its last `generations` calls (keyed by a digest of each image's bytes) and
    sends only unseen images to the model: one forward per query, the same attack.
    Its `forward_images` counts the images the model actually saw (`square_robust`
    takes one as `classifier`, so a caller can read the count after the attack).
    """
    import hashlib

    from art.estimators.classification import TensorFlowV2Classifier

    class MemoisedClassifier(TensorFlowV2Classifier):
        def predict(self, x, batch_size=128, training_mode=False, **kwargs):
            if training_mode:
                return super().predict(x, batch_size=batch_size, training_mode=True, **kwargs)
            x = np.ascontiguousarray(x)
            keys = [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in x]
            known = {}
            for cache in self.caches:
                known.update(cache)
            todo = [i for i, k in enumerate(keys) if k not in known]
            fresh = dict(zip((keys[i] for i in todo),
                             super().predict(x[todo], batch_size=batch_size, **kwargs) if todo else []))
            self.forward_images += len(todo)
            known.update(fresh)
            self.caches = [*self.caches[-(generations - 1):], {k: known[k] for k in keys}]
            return np.stack([known[k] for k in keys]) if keys else np.zeros((0, self.nb_classes), np.float32)

    classifier = art_classifier(model, estimator=MemoisedClassifier)
    classifier.caches, classifier.forward_images = [], 0
    return classifier


def pgd_robust(model, images, labels, eps=8 / 255, step=2 / 255, steps=50, restarts=1,
               batch_size=256, seed=0, progress=True, judge=None, robust=None):
    """Per-image robustness under ART's L-inf PGD: bool array `(N,)`.

    Args:
        model: Keras logits model; images `(N, H, W, C)` float32 in [0, 1];
            labels `(N,)` ints (the attack uses the true labels).
        eps, step: L-inf radius and step size in pixel units (8/255, 2/255).
        steps: PGD iterations (the thesis used 50).
        restarts: independent random starts; an image is robust only if it
            survives all of them (the thesis used 10).
        seed: NumPy seed for ART's random starts.
        judge: Keras model whose predictions decide what counts as correct,
            clean and adversarial (default `model`). Attacking a float32 twin
            and judging the float16 original measures the original without
            float16 gradients (which can underflow to zero and mask it).
        robust: bool `(N,)` of images still to attack (default: the correctly
            classified ones); the others stay as given.
    """
    from art.attacks.evasion import ProjectedGradientDescent
    from tqdm.auto import tqdm

    for name, value, ok in [("eps", eps, 0 <= eps <= 1), ("step", step, 0 < step <= 1),
                            ("steps", steps, is_int(steps) and steps >= 1),
                            ("restarts", restarts, is_int(restarts) and restarts >= 1)]:
        if not ok:
            raise ValueError(f"PGD {name}={value!r} is invalid: eps in [0, 1], step in (0, 1], "
                             "steps and restarts integers >= 1.")
    labels = np.asarray(labels)
    classifier = art_classifier(model)
    judged = classifier if judge is None else art_classifier(judge)
    attack = ProjectedGradientDescent(classifier, norm=np.inf, eps=eps, eps_step=step, max_iter=steps,
                                      targeted=False, num_random_init=1, batch_size=batch_size, verbose=False)
    if robust is None:
        robust = np.argmax(judged.predict(images, batch_size=batch_size), -1) == labels
    np.random.seed(seed)  # ART draws its random starts from NumPy's global generator
    for _ in tqdm(range(restarts), desc=f"PGD-{steps} restarts", disable=not progress, leave=False):
        robust = attack_survivors(lambda x, y, _: attack.generate(x, y=y), judged, images, labels, robust,
                                  batch_size)
    return robust


class DifferenceLogitsRatio:
    """ART's difference-of-logits-ratio loss, vectorised: `-(z_y - z_i) / (z_1 - z_3)`.

    `y_true` one-hot `(B, K)`, `y_pred` logits `(B, K)`; z_1 >= z_2 >= z_3 are the
    sorted logits, z_y the label's logit and z_i the largest other one.
    The same values and gradients as the loss ART builds for
    `AutoProjectedGradientDescent(loss_type="difference_logits_ratio")`, which
    loops over the batch in Python (eagerly) on every gradient call and made
    targeted APGD about as slow as all other attacks together.
    `reduction`: "mean", "sum" or "none" (ART sets it).
    """

    def __init__(self, reduction="mean"):
        self.reduction = reduction

    def __call__(self, y_true, y_pred, *args, **kwargs):
        import tensorflow as tf

        y_pred = tf.cast(y_pred, tf.float32)
        label = tf.argmax(y_true, axis=1, output_type=tf.int32)
        order = tf.argsort(y_pred, axis=1, direction="DESCENDING")
        ranked = tf.gather(y_pred, order[:, :3], batch_dims=1)
        z_y = tf.gather(y_pred, label[:, None], batch_dims=1)[:, 0]
        z_i = tf.where(order[:, 0] == label, ranked[:, 1], ranked[:, 0])
        dlr = -(z_y - z_i) / (ranked[:, 0] - ranked[:, 2])
        return _reduce(dlr, self.reduction)


class TargetedDifferenceLogitsRatio:
    """AutoAttack's targeted DLR loss, to be maximised: `-(z_y - z_t) / (z_1 - (z_3 + z_4) / 2 + 1e-12)`.

    z_1 >= z_2 >= ... are the sorted logits, z_y the label's and z_t the
    target's (the reference's ``dlr_loss_targeted``). `y_true` `(B, K)` carries
    both classes, as `label_and_target` writes them: 1 at the label, 0.5 at the
    target (so its argmax is the label, which ART's untargeted APGD needs to
    tell a misclassified image); `y_pred` logits `(B, K)`, K >= 4.
    `reduction`: "mean", "sum" or "none" (ART sets it).
    """

    def __init__(self, reduction="mean"):
        self.reduction = reduction

    def __call__(self, y_true, y_pred, *args, **kwargs):
        import tensorflow as tf

        y_pred, y_true = tf.cast(y_pred, tf.float32), tf.cast(y_true, tf.float32)
        label = tf.argmax(y_true, axis=1, output_type=tf.int32)
        target = tf.argmax(tf.where(y_true < 1, y_true, 0.0), axis=1, output_type=tf.int32)
        ranked = tf.sort(y_pred, axis=1, direction="DESCENDING")
        z_y = tf.gather(y_pred, label[:, None], batch_dims=1)[:, 0]
        z_t = tf.gather(y_pred, target[:, None], batch_dims=1)[:, 0]
        dlr = -(z_y - z_t) / (ranked[:, 0] - (ranked[:, 2] + ranked[:, 3]) / 2 + 1e-12)
        return _reduce(dlr, self.reduction)


def label_and_target(labels, targets, classes):
    """The `y_true` of `TargetedDifferenceLogitsRatio`: float32 `(N, classes)`, 1 at each
    label `(N,)`, 0.5 at each target `(N,)` (which must differ from the label)."""
    labels, targets = np.asarray(labels), np.asarray(targets)
    if np.any(labels == targets):
        raise ValueError("targets must differ from the labels: a targeted attack needs a wrong class.")
    rows = np.arange(len(labels))
    y = np.zeros((len(labels), classes), np.float32)
    y[rows, labels], y[rows, targets] = 1.0, 0.5
    return y


def _reduce(values, reduction):
    import tensorflow as tf

    if reduction in ("mean", "sum_over_batch_size"):
        return tf.reduce_mean(values)
    if reduction == "sum":
        return tf.reduce_sum(values)
    if reduction == "none":
        return values
    raise ValueError(f"reduction={reduction!r} is invalid: 'mean', 'sum' or 'none'.")


def _classifier_with_loss(logits, loss):
    """The ART logits classifier `logits` (same compiled forward pass) with another loss object."""
    from art.estimators.classification import TensorFlowV2Classifier

    return TensorFlowV2Classifier(model=logits.model, nb_classes=logits.nb_classes,
                                  input_shape=logits.input_shape, loss_object=loss,
                                  clip_values=logits.clip_values)


#: `apgd_robust`'s losses: untargeted cross-entropy, ART's targeted DLR, AutoAttack's targeted DLR.
APGD_LOSSES = ("cross_entropy", "dlr_targeted", "dlr_targeted_autoattack")


def apgd_robust(model, images, labels, loss="cross_entropy", targets=9, eps=8 / 255, steps=100,
                batch_size=256, seed=0, robust=None, judge=None):
    """Per-image robustness `(N,)` under ART's APGD on the logits.

    Args:
        loss: ``"cross_entropy"`` (untargeted APGD-CE), ``"dlr_targeted_autoattack"``
            (APGD-T as AutoAttack runs it: maximise AutoAttack's targeted DLR,
            `TargetedDifferenceLogitsRatio`, and count any wrong class as a success)
            or ``"dlr_targeted"`` (ART's targeted APGD with ART's DLR,
            `DifferenceLogitsRatio`: minimise it, a success only at the target);
            the targeted ones make one run per target class.
        targets: for the targeted losses: how many of the most likely wrong
            classes (on the clean image) to target, in order.
        robust: bool `(N,)` of images still to attack (default: the correctly
            classified ones); the others stay as given.
        judge: model whose predictions decide correctness (default `model`),
            as in `pgd_robust`.
    """
    from art.attacks.evasion import AutoProjectedGradientDescent

    if loss not in APGD_LOSSES:
        raise ValueError(f"loss={loss!r} is invalid: one of {', '.join(map(repr, APGD_LOSSES))}.")
    if not is_int(targets) or not 1 <= targets <= 9:
        raise ValueError(f"targets={targets!r} is invalid: an integer in [1, 9].")
    if not 0 < eps <= 1:
        raise ValueError(f"eps={eps!r} is invalid: in (0, 1] (pixel units, e.g. 8/255).")
    classifier = art_classifier(model)
    judged = classifier if judge is None else art_classifier(judge)
    labels = np.asarray(labels)
    logits = judged.predict(images, batch_size=batch_size)
    robust = (np.argmax(logits, -1) == labels) if robust is None else robust.copy()
    classes = logits.shape[1]
    if loss == "cross_entropy":
        attack_on, loss_type = classifier, "cross_entropy"
        goal = lambda y, index, rank: np.eye(classes)[y]
    elif loss == "dlr_targeted":  # ART's own DLR loss gives the same numbers, slowly (see DifferenceLogitsRatio)
        attack_on, loss_type = _classifier_with_loss(classifier, DifferenceLogitsRatio()), None
        goal = lambda y, index, rank: np.eye(classes)[ranked[index, rank]]
    else:
        attack_on, loss_type = _classifier_with_loss(classifier, TargetedDifferenceLogitsRatio()), None
        goal = lambda y, index, rank: label_and_target(y, ranked[index, rank], classes)
    attack = AutoProjectedGradientDescent(
        attack_on, norm=np.inf, eps=eps, eps_step=2 * eps, max_iter=steps, targeted=loss == "dlr_targeted",
        nb_random_init=1, batch_size=batch_size, verbose=False, loss_type=loss_type)
    judged_by(attack.estimator, judged)  # ART builds its own classifier for the cross-entropy: judge it too
    np.random.seed(seed)
    ranked = np.argsort(-logits, axis=1)
    for rank in range(1, 1 + (1 if loss == "cross_entropy" else targets)):
        robust = attack_survivors(lambda x, y, index: attack.generate(x, y=goal(y, index, rank)),
                                  judged, images, labels, robust, batch_size)
    return robust


def square_robust(model, images, labels, eps=8 / 255, max_iter=1000, restarts=1, batch_size=256, seed=0,
                  robust=None, judge=None, classifier=None):
    """Per-image robustness `(N,)` bool under ART's black-box `SquareAttack`
    (L-inf, `max_iter` queries per image and restart, margin loss on the logits;
    AutoAttack runs it with 5000 queries). `robust` and `judge` as in `apgd_robust`;
    a black-box attack needs no gradient, so the queries go to `judge` when one
    is given (otherwise to `model`), through `classifier` (default: a new
    `memoised_classifier` of it, one forward pass per query; pass one to read
    its `forward_images`, the images the model scored, after the attack)."""
    from art.attacks.evasion import SquareAttack

    if not 0 <= eps <= 1:
        raise ValueError(f"Square eps={eps!r} is invalid: must be in [0, 1] (pixel units).")
    labels = np.asarray(labels)
    if classifier is None:  # one forward pass per query, not ART's three; the queries go to the judge
        classifier = memoised_classifier(model if judge is None else judge)
    judged = art_classifier(model if judge is None else judge)
    if robust is None:
        robust = predict_classes(judged, images, batch_size) == labels
    if eps == 0:
        return np.array(robust, bool)
    np.random.seed(seed)  # ART draws the squares from NumPy's global generator
    attack = SquareAttack(classifier, norm=np.inf, eps=eps, max_iter=max_iter, nb_restarts=restarts,
                          batch_size=batch_size, verbose=False)
    return attack_survivors(lambda x, y, _: attack.generate(x, y=np.eye(classifier.nb_classes)[y]), judged,
                            images, labels, robust, batch_size)


def robust_accuracy(model, images, labels, **pgd_kwargs):
    """Fraction of images robust under `pgd_robust` (same arguments)."""
    return float(np.mean(pgd_robust(model, images, labels, **pgd_kwargs)))


def accuracy_under_attack(model, images, labels, eps_values, steps=(1, 10), batch_size=256, seed=0):
    """Accuracy under kaflib's compiled L-inf PGD for each radius and iteration count.

    `steps=1` is FGSM from a random start (one step of 1.25 eps, Wong et al.);
    `k > 1` is PGD-k with step 2.5 eps / k (Madry et al.'s rule). Returns a
    DataFrame with columns eps (pixel units), steps, accuracy (fraction).
    """
    import pandas as pd
    import tensorflow as tf

    from kaflib.attacks import pgd_perturb

    rows = []
    for k in steps:
        for eps in eps_values:
            step = 1.25 * eps if k == 1 else 2.5 * eps / k
            correct = 0
            for start in range(0, len(labels), batch_size):
                x = tf.constant(images[start:start + batch_size])
                y = tf.constant(labels[start:start + batch_size])
                adversarial = pgd_perturb(model, x, y, float(eps), float(step), int(k), [seed, start])
                correct += int(np.sum(np.argmax(model.predict_on_batch(adversarial), -1) == labels[start:start + batch_size]))
            rows.append(dict(eps=float(eps), steps=int(k), accuracy=correct / len(labels)))
    return pd.DataFrame(rows)


if __name__ == "__main__":
    # `python -m kaflib.evaluate MODEL --attack autoattack` is AutoAttack's command, which lives with
    # the cascade in `kaflib.autoattack` (`autoattack.main`): run that module as the program. It is run,
    # not imported: this module (the attacks) never depends on the cascade built on it.
    import runpy

    runpy.run_module("kaflib.autoattack", run_name="__main__", alter_sys=True)
