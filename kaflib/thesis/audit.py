"""Re-evaluate the thesis' published ResNet20 checkpoints with the thesis' attack and stronger ones.

    python -m kaflib.thesis.audit CHECKPOINTS_DIR --test-size 1017

For each checkpoint, on the CIFAR-10 test images (robust = correct after every attack):

* the attacks take their input gradients from the checkpoint's float32 twin
  (same weights, `load_checkpoint(..., dtype_policy="float32")`) and every
  adversarial image is scored on the published model (mixed float16, the
  arithmetic it was trained and saved with), which also decides inside APGD
  which images are still correct (`kaflib.evaluate.judged_by`). Float16
  gradients of a confident model underflow to zero, which hides adversarial
  examples: the float16 gradient is itself a form of gradient masking;
* ``pgd``: ART `ProjectedGradientDescent`, L-inf, eps 8/255, step 2/255, 50
  iterations, on the logits with the true labels (`kaflib.evaluate.pgd_robust`);
* ``apgd_ce``: ART `AutoProjectedGradientDescent` with the cross-entropy loss,
  100 iterations (AutoAttack's APGD-CE), on every correctly classified image;
* ``apgd_dlr_t``: targeted APGD with ART's difference-of-logits-ratio loss, 100
  iterations per target, the targets being the 2nd..(1 + targets)-th most likely
  classes on the clean image (AutoAttack's APGD-T uses 9), run as AutoAttack
  does on the images that survived the attacks before it (PGD and APGD-CE), so
  it equals ``worst``, the accuracy under all three. ART's DLR with the
  target as label is -(z_t - z_i) / (z_1 - z_3), z_i the largest other logit;
  AutoAttack's own targeted DLR uses (z_3 + z_4) / 2 instead of z_3 and the
  true class instead of z_i (the same while the image is still classified
  correctly). ART's `AutoAttack` class runs a different default list, so the
  list here is explicit;
* with ``--protocol ZIP...``, the thesis' own protocol (`PROTOCOL`): PGD-50 on
  every image in one `generate` call, with float16 gradients, on the softmax
  probabilities (cross-entropy-on-probabilities loss) and without labels (ART
  then attacks the model's own predictions), and the same with one of those
  choices changed at a time.

Accuracies come with 95% Wilson intervals. Results go to one JSON file that is
rewritten atomically after each checkpoint; finished checkpoints are skipped,
except those named with ``--redo ZIP...`` (audited again, e.g. after a fix to
the attacks; each entry records the kaflib commit that computed it).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from kaflib.evaluate import apgd_robust, predict_classes, wilson_interval
from kaflib.files import utc_now

__all__ = ["probability_classifier", "pgd_protocol_accuracy", "PROTOCOL", "thesis_protocol", "audit_checkpoint",
           "audit_checkpoints"]


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


def pgd_protocol_accuracy(model, images, labels, use_labels=True, output="logits", eps=8 / 255,
                          step=2 / 255, steps=50, restarts=1, batch_size=256, seed=0, judge=None):
    """Accuracy under PGD run the thesis' way: every image attacked, one `generate` call.

    `use_labels=False` calls `generate(x)` without labels (ART then attacks the
    model's own predictions); `output="probabilities"` attacks the softmax
    output with a cross-entropy-on-probabilities loss. `judge` (default
    `model`) is the model whose predictions on the result are scored.
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
    judged = classifier if judge is None else art_classifier(judge)
    return float(np.mean(predict_classes(judged, adversarial, batch_size) == labels))


# The thesis' protocol, then one of its choices changed at a time:
# (name, attack gradients in float16?, labels given?, output attacked)
PROTOCOL = (
    ("thesis: float16 gradients, probabilities, no labels", True, False, "probabilities"),
    ("true labels instead", True, True, "probabilities"),
    ("logits instead", True, False, "logits"),
    ("float32 gradients instead", False, False, "probabilities"),
    ("all three changed", False, True, "logits"),
)


def _with_interval(robust):
    robust = np.asarray(robust, bool)
    low, high = wilson_interval(int(robust.sum()), len(robust))
    return dict(accuracy=float(robust.mean()), ci95=[low, high], robust=int(robust.sum()))


def thesis_protocol(published, twin, images, labels, restarts=1, seed=0):
    """PGD-50 accuracy of `published` under each row of `PROTOCOL`: `{row name: fraction}`.

    Float16 rows take the attack's gradients from `published` itself (as the
    thesis did); float32 rows from `twin`. Every row is scored on `published`.
    """
    return {name: pgd_protocol_accuracy(published if float16 else twin, images, labels, use_labels=use_labels,
                                        output=output, restarts=restarts, seed=seed, judge=published)
            for name, float16, use_labels, output in PROTOCOL}


def audit_checkpoint(path, images, labels, pgd_restarts=1, targets=9, protocol=False, seed=0):
    """Clean, PGD-50, APGD-CE, APGD-T and worst-case accuracy of one checkpoint: a JSON-ready dict.

    The published model (mixed float16, `kaflib.thesis.checkpoints.load_checkpoint`)
    classifies; the attacks take their gradients from its float32 twin (same
    weights), because float16 input gradients of a confident model can
    underflow to zero and hide adversarial examples. APGD-T attacks only the
    images that survived PGD and APGD-CE (AutoAttack's cascade), so
    ``apgd_dlr_t`` is also the worst case. `protocol=True` adds
    `thesis_protocol`. `seconds` holds each part's wall time.
    """
    from kaflib.evaluate import pgd_robust
    from kaflib.thesis.checkpoints import load_checkpoint

    started = time.perf_counter()
    published, twin = load_checkpoint(path), load_checkpoint(path, dtype_policy="float32")
    predicted = predict_classes(published, images), predict_classes(twin, images)
    seconds = {}
    tic = time.perf_counter()
    pgd = pgd_robust(twin, images, labels, steps=50, restarts=pgd_restarts, seed=seed, progress=False,
                     judge=published)
    seconds["pgd"] = time.perf_counter() - tic
    tic = time.perf_counter()
    ce = apgd_robust(twin, images, labels, "cross_entropy", seed=seed, judge=published)
    seconds["apgd_ce"] = time.perf_counter() - tic
    tic = time.perf_counter()
    worst = apgd_robust(twin, images, labels, "dlr_targeted", targets=targets, seed=seed, robust=pgd & ce,
                        judge=published)
    seconds["apgd_dlr_t"] = time.perf_counter() - tic
    result = dict(checkpoint=Path(path).name, activation=published.activation_name,
                  clean=float(np.mean(predicted[0] == labels)),
                  float32_agreement=float(np.mean(predicted[0] == predicted[1])),
                  pgd=_with_interval(pgd), apgd_ce=_with_interval(ce),
                  apgd_dlr_t=_with_interval(worst), worst=_with_interval(worst))
    if protocol:
        tic = time.perf_counter()
        result["protocol"] = thesis_protocol(published, twin, images, labels, pgd_restarts, seed)
        seconds["protocol"] = time.perf_counter() - tic
    seconds["total"] = time.perf_counter() - started
    result["seconds"] = seconds
    return result


def audit_checkpoints(paths, out, test_size=None, data_dir=None, pgd_restarts=1, targets=9, seed=0,
                      protocol=(), redo=(), progress=True):
    """Audit each checkpoint not yet in `out` (JSON), rewriting `out` after each one.

    `protocol`: names of checkpoints (zip file names) that also get
    `thesis_protocol`; it is added to finished checkpoints that lack it.
    `redo`: names of checkpoints whose entries are dropped first (the file is
    rewritten without them), then audited again like the missing ones; an
    interrupted redo resumes without `redo`, skipping those already redone.
    """
    names = {Path(p).name for p in paths}
    for option, given in (("protocol", protocol), ("redo", redo)):
        unknown = set(given) - names
        if unknown:
            raise ValueError(f"{option}={sorted(unknown)} names checkpoints that are not among the "
                             f"{len(paths)} audited: {sorted(names)}.")
    from tqdm.auto import tqdm

    from kaflib.files import source_commit
    from kaflib.thesis.checkpoints import load_checkpoint
    from kaflib.thesis.preset_images import load_preset_images
    from kaflib.thesis.store import audit_path, environment, read_json, write_json

    out = audit_path() if out is None else Path(out)
    done = read_json(out)
    test = load_preset_images("quick", data_dir, train_size=0, test_size=test_size)
    images, labels = test.test
    parameters = dict(test_size=len(labels), eps=8 / 255, pgd=dict(step=2 / 255, steps=50, restarts=pgd_restarts),
                      apgd=dict(steps=100, eps_step="2 eps", restarts=1, targets=targets,
                                attacks=["APGD-CE (untargeted), on every correctly classified image",
                                         "APGD with ART's DLR loss, targeted, on the images that survived "
                                         "PGD and APGD-CE"]),
                      gradients="float32 twin", scored_on="published model (mixed float16)",
                      seed=seed, labels="true", output="logits")
    there = (done or {}).get("parameters") or {}
    if done is not None and done.get("checkpoints") and there != parameters:
        differ = sorted(k for k in {*parameters, *there} if parameters.get(k) != there.get(k))
        raise ValueError(f"out={str(out)!r} holds audits made with other parameters (differing: "
                         f"{', '.join(differ)}; there: {[there.get(k) for k in differ]}, here: "
                         f"{[parameters.get(k) for k in differ]}): pass the same options, or another out.")
    if done is None or there != parameters:
        done = dict(parameters=parameters, checkpoints={})

    order = list(done["checkpoints"])  # a redone checkpoint keeps its place in the file (and the book's tables)

    def save():
        ranked = sorted(done["checkpoints"], key=lambda name: order.index(name) if name in order else len(order))
        done.update(checkpoints={name: done["checkpoints"][name] for name in ranked}, data=test.record(),
                    environment=environment(), updated=utc_now())
        write_json(out, done)

    dropped = [name for name in redo if done["checkpoints"].pop(name, None) is not None]
    if dropped:
        save()

    for path in tqdm(paths, desc="checkpoints", disable=not progress):
        name = Path(path).name
        result = done["checkpoints"].get(name)
        if result is None:
            result = audit_checkpoint(path, images, labels, pgd_restarts, targets, protocol=name in protocol,
                                      seed=seed)
            done["checkpoints"][name] = dict(result, audited=utc_now(), kaflib_commit=source_commit())
            save()
        elif name in protocol and "protocol" not in result:
            tic = time.perf_counter()
            result["protocol"] = thesis_protocol(load_checkpoint(path),
                                                 load_checkpoint(path, dtype_policy="float32"),
                                                 images, labels, pgd_restarts, seed)
            result["seconds"]["protocol"] = time.perf_counter() - tic
            result["seconds"]["total"] += result["seconds"]["protocol"]
            save()
    return done


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m kaflib.thesis.audit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path,
                        help="checkpoint zips, audited in the order given, or a folder of them")
    parser.add_argument("--out", default=None, help="default: <results>/thesis-checkpoints.json")
    parser.add_argument("--test-size", type=int)
    parser.add_argument("--data-dir")
    parser.add_argument("--pgd-restarts", type=int, default=1)
    parser.add_argument("--targets", type=int, default=9)
    parser.add_argument("--protocol", nargs="*", default=[], metavar="ZIP",
                        help="checkpoint file names that also get the thesis-protocol comparison")
    parser.add_argument("--redo", nargs="*", default=[], metavar="ZIP",
                        help="checkpoint file names audited again although finished (rerun without it to resume)")
    args = parser.parse_args(argv)
    paths = [zip_path for source in args.checkpoints
             for zip_path in (sorted(source.glob("*.zip")) if source.is_dir() else [source])]
    missing = [str(p) for p in paths if not p.is_file()]
    if not paths or missing:
        print(f"error: no checkpoint zips in {[str(s) for s in args.checkpoints]}" if not paths
              else f"error: checkpoints={missing} do not exist", file=sys.stderr)
        return 2
    try:
        done = audit_checkpoints(paths, args.out, args.test_size, args.data_dir, args.pgd_restarts, args.targets,
                                 protocol=args.protocol, redo=args.redo)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name, r in done["checkpoints"].items():
        print(f"{name:45s} clean {100 * r['clean']:5.1f}  PGD {100 * r['pgd']['accuracy']:5.1f}  "
              f"APGD-CE {100 * r['apgd_ce']['accuracy']:5.1f}  APGD-DLR-T {100 * r['apgd_dlr_t']['accuracy']:5.1f}  "
              f"worst {100 * r['worst']['accuracy']:5.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
