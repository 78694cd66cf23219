"""Gradient-masking checks (Carlini et al. 2019's checklist) for a set of models.

A defence that only hides its gradients shows tell-tale signs:

* accuracy under PGD does not fall to 0 as eps grows large (an image can be
  turned into any other at eps = 0.5, so accuracy must reach 0);
* a black-box attack, which needs no gradient (Square, Andriushchenko et al.
  2020, queries only the model's outputs), beats the white-box PGD;
* adversarial images crafted on another model (transfer) beat the model's own
  white-box PGD.

For KAF networks it adds an adaptive attack (`surrogate_robust`): PGD whose
gradients come from a twin with every KAF smoothed by Gaussian input noise
(`smoothed_twin`, exact for Gaussian kernels), evaluated on the real model.

`masking_checks` runs the three on every model and flags each sign. All
attacks are L-inf, on the logits, with the true labels, on the same images;
an image counts as robust only if it survives.
"""

import numpy as np
import pandas as pd

from kaflib.checks import check, is_int
from kaflib.evaluate import art_classifier, attack_survivors, pgd_robust, predict_classes, square_robust

__all__ = ["EPS_SWEEP", "pgd_images", "transfer_robust", "eps_sweep", "pgd_iteration_curve",
           "masking_checks", "smoothed_twin", "surrogate_robust"]

#: Radii of the eps sweep, in pixel units (2/255 .. 128/255).
EPS_SWEEP = tuple(k / 255 for k in (2, 4, 8, 16, 32, 64, 128))


def pgd_images(model, images, labels, eps=8 / 255, step=2 / 255, steps=50, seed=0, batch_size=256):
    """ART's L-inf PGD-`steps` adversarial images `(N, H, W, C)` crafted on `model`
    (one random start, true labels, logits)."""
    from art.attacks.evasion import ProjectedGradientDescent

    np.random.seed(seed)  # ART draws its random starts from NumPy's global generator
    attack = ProjectedGradientDescent(art_classifier(model), norm=np.inf, eps=eps, eps_step=step,
                                      max_iter=steps, num_random_init=1, batch_size=batch_size, verbose=False)
    return attack.generate(images, y=np.asarray(labels))


def transfer_robust(source, target, images, labels, eps=8 / 255, step=2 / 255, steps=50, seed=0,
                    batch_size=256):
    """Per-image robustness of `target` `(N,)` bool against ART PGD images crafted on
    `source` (only the images `target` classifies correctly are attacked)."""
    labels = np.asarray(labels)
    judge = art_classifier(target)
    robust = predict_classes(judge, images, batch_size) == labels
    return attack_survivors(lambda x, y, _: pgd_images(source, x, y, eps, step, steps, seed, batch_size), judge,
                            images, labels, robust, batch_size)


def eps_sweep(model, images, labels, eps_values=EPS_SWEEP, steps=20, seed=0, batch_size=256):
    """Accuracy under kaflib's compiled PGD-`steps` (step 2.5 eps / steps) at each radius.

    The radii are taken in increasing order and only the images that survived
    the previous radius are attacked again: an adversarial image found at a
    smaller eps lies inside every larger ball, so the accuracy can only fall.
    Returns a DataFrame with columns eps (pixel units), steps, accuracy
    (fraction of all `N` images).
    """
    import tensorflow as tf

    from kaflib.attacks import pgd_perturb

    check("steps", steps, is_int(steps) and steps >= 1, "an integer >= 1", owner="eps_sweep")
    labels = np.asarray(labels)
    attack = tf.function(lambda x, y, eps, step, seed: pgd_perturb(model, x, y, eps, step, int(steps), seed),
                         reduce_retracing=True)
    robust = np.argmax(model.predict(images, batch_size=batch_size, verbose=0), -1) == labels
    rows = []
    for eps in sorted(float(e) for e in eps_values):
        todo = np.flatnonzero(robust)
        for start in range(0, len(todo), batch_size):
            index = todo[start:start + batch_size]
            padded = np.resize(index, batch_size)  # one batch shape: one trace
            adversarial = attack(tf.constant(images[padded]), tf.constant(labels[padded]), tf.constant(eps),
                                 tf.constant(2.5 * eps / steps), tf.constant([seed, start]))
            predicted = np.argmax(model.predict_on_batch(adversarial), -1)[:len(index)]
            robust[index] = predicted == labels[index]
        rows.append(dict(eps=eps, steps=int(steps), accuracy=float(robust.mean())))
    return pd.DataFrame(rows)


def pgd_iteration_curve(model, images, labels, eps=8 / 255, step=2 / 255, iterations=(5, 10, 20, 50, 100),
                        seed=0, batch_size=256):
    """Accuracy under kaflib's compiled L-inf PGD after each count of `iterations`.

    One PGD run per image (one random start, fixed `step`), checked after each
    count: PGD-k with a fixed step is the first k steps of a longer run, so the
    curve costs one run of `max(iterations)` steps. An image counts as robust
    at k iterations only if no checked iterate up to k fooled it; only the
    images the model classifies correctly are attacked. Returns a DataFrame
    with columns iterations, accuracy (fraction of all `N` images); a curve
    still falling at its end means the attack has not converged.
    """
    import tensorflow as tf

    from kaflib.attacks import pgd_steps, random_start

    counts = sorted(int(k) for k in iterations)
    if not counts or counts[0] < 1 or not 0 < step <= 1 or not 0 <= eps <= 1:
        raise ValueError(f"pgd_iteration_curve: iterations={iterations!r}, step={step!r}, eps={eps!r} are invalid: "
                         "iterations must be integers >= 1, step in (0, 1], eps in [0, 1] (pixel units).")
    labels = np.asarray(labels)
    run = tf.function(lambda x, y, delta, steps: pgd_steps(model, x, y, delta, eps, step, steps),
                      reduce_retracing=True)
    robust = np.argmax(model.predict(images, batch_size=batch_size, verbose=0), -1) == labels
    alive = np.repeat(robust[None], len(counts), 0)  # alive[i]: robust after counts[i] iterations
    todo = np.flatnonzero(robust)
    for start in range(0, len(todo), batch_size):
        index = todo[start:start + batch_size]
        padded = np.resize(index, batch_size)  # one batch shape: one trace
        x, y = tf.constant(images[padded]), tf.constant(labels[padded])
        delta, done, survived = random_start(x, eps, [seed, start]), 0, np.ones(len(index), bool)
        for i, k in enumerate(counts):
            delta = run(x, y, delta, tf.constant(k - done))
            done = k
            predicted = np.argmax(model.predict_on_batch(x + delta), -1)[:len(index)]
            survived &= predicted == labels[index]
            alive[i, index] = survived
    return pd.DataFrame(dict(iterations=counts, accuracy=alive.mean(1)))


def masking_checks(models, images, labels, eps=8 / 255, step=2 / 255, steps=50, eps_values=EPS_SWEEP,
                   sweep_steps=20, square_iter=1000, reference="relu", surrogate_sigma=0.3, seed=0,
                   progress=True, done=None, on_model=None):
    """The three checks on every model.

    Args:
        models: dict name -> Keras logits model (e.g. one grid's activations).
        images, labels: the test images `(N, H, W, C)` in [0, 1] and labels `(N,)`.
        eps, step, steps: the white-box ART PGD and the transfer attack.
        eps_values, sweep_steps: radii and iterations of `eps_sweep`.
        square_iter: queries per image of the Square attack.
        reference: the model whose adversarial images are transferred to every
            other model, and which receives every other model's (None: no transfer).
        surrogate_sigma: noise level of the adaptive attack on models with
            Gaussian KAFs (`surrogate_robust`; 0 or None: not run).
        done: {name: (row dict, sweep DataFrame)} of models already checked
            (e.g. by an interrupted call); they are not attacked again.
        on_model: called as `on_model(name, row, sweep)` after each model, so a
            caller can save progress.

    Returns:
        `(summary, sweep)`: summary has one row per model with clean, pgd,
        square, surrogate (the adaptive attack; KAF models only), worst (robust
        to all of them), transfer_in (accuracy on images crafted
        on `reference`), transfer_out (the reference's accuracy on images crafted
        on this model), acc_at_max_eps and the flags `not_to_zero` (accuracy at
        the largest eps > 1%), `black_box_wins` (Square accuracy below PGD's by
        more than 1 image in 100), `transfer_wins` (transfer accuracy below
        PGD's, same margin); sweep has model, eps, steps, accuracy. Accuracies
        are fractions.
    """
    from tqdm.auto import tqdm

    labels = np.asarray(labels)
    rows, sweeps, crafted_on_reference = [], [], None
    for name, model in tqdm(models.items(), desc="masking checks", disable=not progress):
        if done and name in done:
            rows.append(done[name][0])
            sweeps.append(done[name][1])
            continue
        clean = np.argmax(art_classifier(model).predict(images), -1) == labels
        pgd = pgd_robust(model, images, labels, eps=eps, step=step, steps=steps, seed=seed, progress=False)
        square = square_robust(model, images, labels, eps=eps, max_iter=square_iter, seed=seed)
        sweep = eps_sweep(model, images, labels, eps_values, steps=sweep_steps, seed=seed)
        sweeps.append(sweep.assign(model=name))
        worst = pgd & square
        row = dict(model=name, clean=clean.mean(), pgd=pgd.mean(), square=square.mean())
        if surrogate_sigma and _has_gaussian_kafs(model):
            surrogate = surrogate_robust(model, images, labels, surrogate_sigma, eps, step, steps, seed)
            row["surrogate"] = surrogate.mean()
            worst &= surrogate
        row.update(worst=worst.mean(), acc_at_max_eps=float(sweep["accuracy"].iloc[-1]))
        if reference is not None and reference in models and name != reference:
            if crafted_on_reference is None:  # the same images for every model
                crafted_on_reference = pgd_images(models[reference], images, labels, eps, step, steps, seed)
            predicted = np.argmax(art_classifier(model).predict(crafted_on_reference), -1)
            row["transfer_in"] = np.mean(clean & (predicted == labels))
            row["transfer_out"] = transfer_robust(model, models[reference], images, labels, eps, step, steps,
                                                  seed).mean()
        rows.append(row)
        if on_model is not None:
            on_model(name, row, sweeps[-1])
    summary = pd.DataFrame(rows).set_index("model")
    margin = 0.01
    summary["not_to_zero"] = summary["acc_at_max_eps"] > 0.01
    summary["black_box_wins"] = summary["square"] < summary["pgd"] - margin
    transfer = summary["transfer_in"] if "transfer_in" in summary else pd.Series(np.nan, summary.index)
    summary["transfer_wins"] = transfer < summary["pgd"] - margin
    if "surrogate" in summary:
        summary["surrogate_wins"] = summary["surrogate"] < summary["pgd"] - margin
    return summary, pd.concat(sweeps, ignore_index=True)[["model", "eps", "steps", "accuracy"]]


def _has_gaussian_kafs(model):
    from kaflib.kaf import KAF

    kafs = [layer for layer in model.layers if isinstance(layer, KAF)]
    return bool(kafs) and all(layer.kernel == "gaussian" for layer in kafs)


def smoothed_twin(model, sigma=0.3):
    """A copy of `model` whose Gaussian KAFs are smoothed by Gaussian input noise of
    standard deviation `sigma`: the adaptive attack's surrogate.

    Averaging a kernel exp(-gamma (x - d)^2) over x + N(0, sigma^2) gives, exactly,
    exp(-gamma' (x - d)^2) / sqrt(1 + 2 gamma sigma^2) with gamma' = gamma / (1 +
    2 gamma sigma^2); each KAF becomes a KAF with that bandwidth and scaled
    coefficients (a `KAF(trainable_dictionary=True)` holding the fixed dictionary).
    Its gradients see through the KAFs' wiggles, which a steep trained KAF could
    otherwise use to hide the direction of a real adversarial example. Every other
    layer is the same layer object as in `model` (`clone_model` keeps what its
    `clone_function` returns), so it shares the weights.
    """
    import keras

    from kaflib.kaf import KAF, kaf_geometry

    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0, got {sigma!r}.")

    def smooth(layer):
        if not isinstance(layer, KAF):
            return layer
        if layer.kernel != "gaussian":
            raise ValueError(f"smoothed_twin needs Gaussian KAFs; {layer.name} has kernel={layer.kernel!r}.")
        dictionary, gamma = kaf_geometry(layer)
        widening = 1.0 + 2.0 * gamma * sigma**2
        twin = KAF(dictionary_size=layer.dictionary_size, boundary=layer.boundary, trainable_dictionary=True,
                   name=f"{layer.name}_smoothed")
        twin.build((None, len(gamma)))
        alpha = np.asarray(keras.ops.convert_to_numpy(layer.alpha), np.float64)
        twin.alpha.assign((alpha / np.sqrt(widening)[:, None]).astype("float32"))
        twin.dictionary.assign(dictionary.astype("float32"))
        twin.gamma.assign((gamma / widening).astype("float32"))
        return twin

    return keras.models.clone_model(model, clone_function=smooth)


def surrogate_robust(model, images, labels, sigma=0.3, eps=8 / 255, step=2 / 255, steps=50, seed=0,
                     batch_size=256):
    """Per-image robustness `(N,)` bool of `model` against ART PGD run on
    `smoothed_twin(model, sigma)` (the adaptive attack; evaluated on `model`)."""
    return transfer_robust(smoothed_twin(model, sigma), model, images, labels, eps, step, steps, seed, batch_size)
