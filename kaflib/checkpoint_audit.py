"""Re-evaluate the thesis' published ResNet20 checkpoints with the thesis' attack and stronger ones.

    python -m kaflib.checkpoint_audit ../shared/thesis/checkpoints --test-size 1017

For each checkpoint, on the CIFAR-10 test images (robust = correct after every attack):

* ``pgd``: ART `ProjectedGradientDescent`, L-inf, eps 8/255, step 2/255, 50
  iterations, on the logits with the true labels (`kaflib.evaluate.pgd_robust`);
* ``apgd_ce``: ART `AutoProjectedGradientDescent` with the cross-entropy loss,
  100 iterations (AutoAttack's APGD-CE);
* ``apgd_dlr_t``: targeted APGD with ART's difference-of-logits-ratio loss, 100
  iterations per target, the targets being the 2nd..(1 + targets)-th most likely
  classes on the clean image (AutoAttack's APGD-T uses 9). ART's DLR with the
  target as label is -(z_t - z_i) / (z_1 - z_3), z_i the largest other logit;
  AutoAttack's own targeted DLR uses (z_3 + z_4) / 2 instead of z_3 and the
  true class instead of z_i (the same while the image is still classified
  correctly). ART's `AutoAttack` class runs a different default list, so the
  list here is explicit;
* ``worst``: robust against all three;
* the thesis' own protocol, PGD-50 on every image (not only the correct ones),
  with the true labels or with none (ART then attacks the model's own
  predictions), on the logits or on the softmax probabilities with a
  cross-entropy-on-probabilities loss.

Accuracies come with 95% Wilson intervals. Results go to one JSON file that is
rewritten atomically after each checkpoint; finished checkpoints are skipped.
"""

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

from kaflib.files import write_atomic

__all__ = ["wilson_interval", "DifferenceLogitsRatio", "probability_classifier", "apgd_robust", "pgd_protocol_accuracy",
           "audit_checkpoint", "audit_checkpoints"]


def wilson_interval(successes, n, z=1.96):
    """95% Wilson score interval `(low, high)` of a proportion `successes / n`."""
    if n <= 0:
        raise ValueError(f"n must be >= 1, got {n!r}.")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


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
        if self.reduction in ("mean", "sum_over_batch_size"):
            return tf.reduce_mean(dlr)
        if self.reduction == "sum":
            return tf.reduce_sum(dlr)
        if self.reduction == "none":
            return dlr
        raise ValueError(f"reduction={self.reduction!r} is invalid: 'mean', 'sum' or 'none'.")


def _dlr_classifier(logits):
    """The ART logits classifier `logits` (same compiled forward pass) with the `DifferenceLogitsRatio` loss."""
    from art.estimators.classification import TensorFlowV2Classifier

    return TensorFlowV2Classifier(model=logits.model, nb_classes=logits.nb_classes,
                                  input_shape=logits.input_shape, loss_object=DifferenceLogitsRatio(),
                                  clip_values=logits.clip_values)


def probability_classifier(model):
    """ART classifier of `softmax(model)` with a cross-entropy-on-probabilities loss (the thesis' set-up)."""
    import keras
    import tensorflow as tf
    from art.estimators.classification import TensorFlowV2Classifier

    forward = tf.function(lambda x, training=False: tf.nn.softmax(tf.cast(model(x, training=training), tf.float32)))
    return TensorFlowV2Classifier(model=forward, nb_classes=int(model.output_shape[-1]),
                                  input_shape=tuple(model.input_shape[1:]),
                                  loss_object=keras.losses.SparseCategoricalCrossentropy(from_logits=False),
                                  clip_values=(0.0, 1.0))


def _predict(classifier, images, batch_size):
    return np.argmax(classifier.predict(images, batch_size=batch_size), -1)


def apgd_robust(model, images, labels, loss="cross_entropy", targets=9, eps=8 / 255, steps=100,
                batch_size=256, seed=0, robust=None):
    """Per-image robustness `(N,)` under ART's APGD on the logits.

    Args:
        loss: ``"cross_entropy"`` (untargeted APGD-CE) or ``"dlr_targeted"``
            (APGD with ART's DLR loss, one targeted run per target class).
        targets: for ``"dlr_targeted"``: how many of the most likely wrong
            classes (on the clean image) to target, in order.
        robust: bool `(N,)` of images still to attack (default: the correctly
            classified ones); the others stay as given.
    """
    from art.attacks.evasion import AutoProjectedGradientDescent

    from kaflib.evaluate import art_classifier

    if loss not in ("cross_entropy", "dlr_targeted"):
        raise ValueError(f"loss={loss!r} is invalid: 'cross_entropy' or 'dlr_targeted'.")
    if not isinstance(targets, (int, np.integer)) or not 1 <= targets <= 9:
        raise ValueError(f"targets={targets!r} is invalid: an integer in [1, 9].")
    if not 0 < eps <= 1:
        raise ValueError(f"eps={eps!r} is invalid: in (0, 1] (pixel units, e.g. 8/255).")
    classifier = art_classifier(model)
    labels = np.asarray(labels)
    logits = classifier.predict(images, batch_size=batch_size)
    robust = (np.argmax(logits, -1) == labels) if robust is None else robust.copy()
    if loss == "cross_entropy":
        attack_on, loss_type = classifier, "cross_entropy"
    else:  # ART's own DLR loss gives the same numbers, slowly (see DifferenceLogitsRatio)
        attack_on, loss_type = _dlr_classifier(classifier), None
    attack = AutoProjectedGradientDescent(
        attack_on, norm=np.inf, eps=eps, eps_step=2 * eps, max_iter=steps, targeted=loss == "dlr_targeted",
        nb_random_init=1, batch_size=batch_size, verbose=False, loss_type=loss_type)
    np.random.seed(seed)
    ranked = np.argsort(-logits, axis=1)
    for rank in range(1, 1 + (targets if loss == "dlr_targeted" else 1)):
        todo = np.flatnonzero(robust)
        if len(todo) == 0:
            break
        goal = labels[todo] if loss == "cross_entropy" else ranked[todo, rank]
        adversarial = attack.generate(images[todo], y=np.eye(logits.shape[1])[goal])
        robust[todo] &= _predict(classifier, adversarial, batch_size) == labels[todo]
    return robust


def pgd_protocol_accuracy(model, images, labels, use_labels=True, output="logits", eps=8 / 255,
                          step=2 / 255, steps=50, restarts=1, batch_size=256, seed=0):
    """Accuracy under PGD run the thesis' way: every image attacked, one `generate` call.

    `use_labels=False` calls `generate(x)` without labels (ART then attacks the
    model's own predictions); `output="probabilities"` attacks the softmax
    output with a cross-entropy-on-probabilities loss.
    """
    from art.attacks.evasion import ProjectedGradientDescent

    from kaflib.evaluate import art_classifier

    if output not in ("logits", "probabilities"):
        raise ValueError(f"output={output!r} is invalid: 'logits' or 'probabilities'.")
    classifier = art_classifier(model) if output == "logits" else probability_classifier(model)
    attack = ProjectedGradientDescent(classifier, norm=np.inf, eps=eps, eps_step=step, max_iter=steps,
                                      num_random_init=restarts, batch_size=batch_size, verbose=False)
    np.random.seed(seed)
    adversarial = attack.generate(images, y=np.asarray(labels) if use_labels else None)
    return float(np.mean(_predict(classifier, adversarial, batch_size) == labels))


def _with_interval(robust):
    robust = np.asarray(robust, bool)
    low, high = wilson_interval(int(robust.sum()), len(robust))
    return dict(accuracy=float(robust.mean()), ci95=[low, high], robust=int(robust.sum()))


def audit_checkpoint(path, images, labels, pgd_restarts=1, targets=9, protocol=True, seed=0):
    """Every measurement of the module docstring for one checkpoint: a JSON-ready dict."""
    from kaflib.evaluate import clean_accuracy, pgd_robust
    from kaflib.thesis import load_checkpoint

    started = time.perf_counter()
    model = load_checkpoint(path)
    seconds = {}
    tic = time.perf_counter()
    pgd = pgd_robust(model, images, labels, steps=50, restarts=pgd_restarts, seed=seed, progress=False)
    seconds["pgd"] = time.perf_counter() - tic
    tic = time.perf_counter()
    ce = apgd_robust(model, images, labels, "cross_entropy", seed=seed)
    seconds["apgd_ce"] = time.perf_counter() - tic
    tic = time.perf_counter()
    dlr = apgd_robust(model, images, labels, "dlr_targeted", targets=targets, seed=seed)
    seconds["apgd_dlr_t"] = time.perf_counter() - tic
    result = dict(checkpoint=Path(path).name, activation=model.activation_name,
                  clean=clean_accuracy(model, images, labels),
                  pgd=_with_interval(pgd), apgd_ce=_with_interval(ce),
                  apgd_dlr_t=_with_interval(dlr),
                  worst=_with_interval(pgd & ce & dlr))
    if protocol:
        tic = time.perf_counter()
        result["protocol"] = {f"{'true labels' if use else 'no labels'}, {output}": pgd_protocol_accuracy(
            model, images, labels, use_labels=use, output=output, restarts=pgd_restarts, seed=seed)
            for use in (True, False) for output in ("logits", "probabilities")}
        seconds["protocol"] = time.perf_counter() - tic
    seconds["total"] = time.perf_counter() - started
    result["seconds"] = seconds
    return result


def audit_checkpoints(paths, out, test_size=None, data_dir=None, pgd_restarts=1, targets=9, seed=0,
                      progress=True):
    """Audit each checkpoint not yet in `out` (JSON), rewriting `out` after each one."""
    from tqdm.auto import tqdm

    from kaflib.data import load_cifar10
    from kaflib.experiment import _json_default, environment

    out = Path(out)
    done = json.loads(out.read_text()) if out.is_file() else None
    _, (images, labels) = load_cifar10(data_dir, train_size=1, test_size=test_size)
    parameters = dict(test_size=len(labels), eps=8 / 255, pgd=dict(step=2 / 255, steps=50, restarts=pgd_restarts),
                      apgd=dict(steps=100, eps_step="2 eps", restarts=1, targets=targets,
                                attacks=["APGD-CE (untargeted)", "APGD with ART's DLR loss, targeted"]),
                      seed=seed, labels="true", output="logits")
    if done is None or done.get("parameters") != parameters:
        done = dict(parameters=parameters, checkpoints={})
    for path in tqdm(paths, desc="checkpoints", disable=not progress):
        name = Path(path).name
        if name in done["checkpoints"]:
            continue
        done["checkpoints"][name] = audit_checkpoint(path, images, labels, pgd_restarts, targets, seed=seed)
        done.update(environment=environment(),
                    updated=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, lambda p: p.write_text(json.dumps(done, indent=1, default=_json_default) + "\n"))
    return done


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m kaflib.checkpoint_audit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", help="a folder of checkpoint zips, or one zip")
    parser.add_argument("--out", default="results/thesis-checkpoints.json")
    parser.add_argument("--test-size", type=int)
    parser.add_argument("--data-dir")
    parser.add_argument("--pgd-restarts", type=int, default=1)
    parser.add_argument("--targets", type=int, default=9)
    args = parser.parse_args(argv)
    source = Path(args.checkpoints)
    paths = sorted(source.glob("*.zip")) if source.is_dir() else [source]
    if not paths:
        print(f"error: no checkpoint zips in {source}", file=sys.stderr)
        return 2
    done = audit_checkpoints(paths, args.out, args.test_size, args.data_dir, args.pgd_restarts, args.targets)
    for name, r in done["checkpoints"].items():
        print(f"{name:45s} clean {100 * r['clean']:5.1f}  PGD {100 * r['pgd']['accuracy']:5.1f}  "
              f"APGD-CE {100 * r['apgd_ce']['accuracy']:5.1f}  APGD-DLR-T {100 * r['apgd_dlr_t']['accuracy']:5.1f}  "
              f"worst {100 * r['worst']['accuracy']:5.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
