"""Evaluation: clean accuracy and robust accuracy under ART's PGD.

The reported robust accuracy uses the IBM Adversarial Robustness Toolbox:
`ProjectedGradientDescent` (L-inf) on the LOGITS model wrapped in a
`TensorFlowV2Classifier` with a from-logits cross-entropy, attacking the TRUE
labels. With several random restarts, an image counts as robust only if it
is classified correctly after every restart.
"""

import numpy as np

__all__ = ["accuracy_under_attack", "art_classifier", "clean_accuracy", "pgd_robust", "robust_accuracy"]


def clean_accuracy(model, images, labels, batch_size=256):
    """Fraction of `images` `(N, H, W, C)` in [0, 1] that `model` classifies as `labels` `(N,)`."""
    logits = model.predict(images, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(logits, -1) == labels))


def art_classifier(model, num_classes=None, clip_values=(0.0, 1.0)):
    """Wrap a Keras logits model for ART (`TensorFlowV2Classifier`, from-logits loss).

    The forward pass is compiled with `tf.function` (ART differentiates through
    it), which makes ART's attacks several times faster than eager calls.
    """
    import keras
    import tensorflow as tf
    from art.estimators.classification import TensorFlowV2Classifier

    forward = tf.function(lambda x, training=False: tf.cast(model(x, training=training), tf.float32))
    return TensorFlowV2Classifier(
        model=forward,
        nb_classes=num_classes or int(model.output_shape[-1]),
        input_shape=tuple(model.input_shape[1:]),
        loss_object=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        clip_values=clip_values,
    )


def pgd_robust(model, images, labels, eps=8 / 255, step=2 / 255, steps=50, restarts=1,
               batch_size=256, seed=0, progress=True, judge=None):
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
    """
    from art.attacks.evasion import ProjectedGradientDescent
    from tqdm.auto import tqdm

    for name, value, ok in [("eps", eps, 0 <= eps <= 1), ("step", step, 0 < step <= 1),
                            ("steps", steps, isinstance(steps, (int, np.integer)) and steps >= 1),
                            ("restarts", restarts, isinstance(restarts, (int, np.integer)) and restarts >= 1)]:
        if not ok:
            raise ValueError(f"PGD {name}={value!r} is invalid: eps in [0, 1], step in (0, 1], "
                             "steps and restarts integers >= 1.")
    labels = np.asarray(labels)
    classifier = art_classifier(model)
    judged = classifier if judge is None else art_classifier(judge)
    attack = ProjectedGradientDescent(classifier, norm=np.inf, eps=eps, eps_step=step, max_iter=steps,
                                      targeted=False, num_random_init=1, batch_size=batch_size, verbose=False)
    robust = np.argmax(judged.predict(images, batch_size=batch_size), -1) == labels
    np.random.seed(seed)  # ART draws its random starts from NumPy's global generator
    for _ in tqdm(range(restarts), desc=f"PGD-{steps} restarts", disable=not progress, leave=False):
        todo = np.flatnonzero(robust)  # only images that survived so far can still fall
        if len(todo) == 0:
            break
        adversarial = attack.generate(images[todo], y=labels[todo])
        robust[todo] &= np.argmax(judged.predict(adversarial, batch_size=batch_size), -1) == labels[todo]
    return robust


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
