"""AutoAttack's standard evaluation (Croce and Hein 2020) for any Keras logits model.

    python -m kaflib.evaluate MODEL --attack autoattack --n 1000

The standard version runs four attacks as a per-image cascade on the logits,
with the true labels, at L-inf eps 8/255: each attack sees only the images every
attack before it failed on, and an image is robust only if it survives them all.

``--reuse RECORD`` starts a run from a finished record of the same model, images,
seed and batch size (`reused_progress`): the attacks both cascades begin with, with
the same settings, are not run again; their per-image outcomes and seconds come
from the record, and the new record says so (``kaflib.reused``). A later attack
the record also ran with the same settings (`reused_outcomes`) keeps its outcome on
every image the record's run of it attacked, and runs only on the others: each
attack of the cascade starts from the clean image, so its outcome on an image does
not depend on the attacks before it, only on whether it is reached.

==========  ==========================================================  ========================
attack      what it is                                                  here
==========  ==========================================================  ========================
apgd-ce     APGD, cross-entropy loss, 100 iterations, 1 restart          ART
apgd-t      targeted APGD, AutoAttack's DLR loss, 100 iterations per     ART, AutoAttack's loss
            target class, the 9 most likely wrong classes in turn        (`TargetedDifferenceLogitsRatio`)
fab-t       targeted FAB, L-inf, 100 iterations per target class, the    kaflib (`kaflib.fab`),
            9 most likely wrong classes in turn, alpha_max 0.1, eta      TensorFlow
            1.05, beta 0.9, no random start
square      Square, black box, 5000 queries, margin loss                 ART, one forward pass
                                                                         per query (`square_robust`)
==========  ==========================================================  ========================

Also available, outside the standard list: ``apgd-t-art`` (ART's targeted APGD
with ART's DLR loss, kaflib's APGD-T before it took AutoAttack's loss, kept to
compare with ART) and ``pgd`` (the thesis' PGD-50).

AutoAttack's targeted DLR is -(z_y - z_t) / (z_1 - (z_3 + z_4) / 2), maximised,
any wrong class counting as a success; ART's is -(z_t - z_i) / (z_1 - z_3), z_i
the largest logit other than the target, minimised, a success only at the target.
Both push the target logit above all others; they differ in the normaliser and
in what counts as a success.

A record is AutoAttack's standard version (``version: "standard"``, and the
robust accuracy in ``autoattack_acc``) only when the four attacks ran in that
order with those settings; otherwise it says ``version: "custom"``, lists the
departures (`departures`) and puts the number in ``robust_acc``.

Attacks can take their gradients from one model and be scored on another
(`judge`): a mixed-precision model is attacked through its float32 twin, since
float16 input gradients of a confident model underflow to zero and hide
adversarial examples, and the adversarial images are scored on the model itself.
The judge's predictions also decide inside each attack (which images it starts
on, which iterate counts as a success; `evaluate.judged_by`), and Square, which
needs no gradient, queries the judge: an image the twin alone misclassifies is
attacked like any other, not taken as already fooled.
"""

import dataclasses
import time

import numpy as np

from kaflib.checks import check, is_int, is_number
from kaflib.evaluate import apgd_robust, pgd_robust, predict_classes, square_robust, wilson_interval
from kaflib.fab import fab_robust

__all__ = ["ATTACKS", "LEFT_OUT", "STANDARD", "USED_BY", "AttackSettings", "CascadeProgress", "default_out",
           "departures", "evaluate_file", "format_eps", "format_summary", "main", "marks", "per_image",
           "record_attacks", "reused_outcomes", "reused_progress", "robustbench_record", "run_attack", "run_cascade",
           "summarise"]

#: The attacks `run_attack` knows, in AutoAttack's cascade order (apgd-t-art: APGD-T
#: with ART's DLR loss; pgd: PGD-50, step 2/255, the thesis' attack; neither is part of AutoAttack).
ATTACKS = ("apgd-ce", "apgd-t", "apgd-t-art", "fab-t", "square", "pgd")

#: AutoAttack's standard list, as run here.
STANDARD = ("apgd-ce", "apgd-t", "fab-t", "square")

#: Attacks of AutoAttack's standard list that are not run, and why (none).
LEFT_OUT = {}

#: The settings each attack uses (a setting that differs from AutoAttack's is a
#: departure from the standard version when one of its attacks runs).
USED_BY = {"apgd_steps": ("apgd-ce", "apgd-t", "apgd-t-art"), "targets": ("apgd-t", "apgd-t-art"),
           "fab_steps": ("fab-t",), "fab_targets": ("fab-t",), "square_queries": ("square",),
           "pgd_steps": ("pgd",), "pgd_step": ("pgd",)}


@dataclasses.dataclass(frozen=True)
class AttackSettings:
    """AutoAttack's standard settings (eps in pixel units)."""

    eps: float = 8 / 255
    apgd_steps: int = 100        #: iterations of APGD-CE and of APGD-T per target
    targets: int = 9             #: APGD-T target classes
    fab_steps: int = 100         #: FAB-T iterations per target
    fab_targets: int = 9         #: FAB-T target classes
    square_queries: int = 5000   #: Square queries per image
    pgd_steps: int = 50          #: for the optional `pgd` attack
    pgd_step: float = 2 / 255

    def __post_init__(self):
        for name, ok, allowed in [
            ("eps", is_number(self.eps) and 0 < self.eps <= 1, "in (0, 1] (pixel units, e.g. 8/255)"),
            ("apgd_steps", is_int(self.apgd_steps) and self.apgd_steps >= 1, "an integer >= 1"),
            ("targets", is_int(self.targets) and 1 <= self.targets <= 9, "an integer in [1, 9]"),
            ("fab_steps", is_int(self.fab_steps) and self.fab_steps >= 1, "an integer >= 1"),
            ("fab_targets", is_int(self.fab_targets) and 1 <= self.fab_targets <= 9, "an integer in [1, 9]"),
            ("square_queries", is_int(self.square_queries) and self.square_queries >= 1, "an integer >= 1"),
            ("pgd_steps", is_int(self.pgd_steps) and self.pgd_steps >= 1, "an integer >= 1"),
            ("pgd_step", is_number(self.pgd_step) and 0 < self.pgd_step <= 1, "in (0, 1]"),
        ]:
            check(name, getattr(self, name), ok, allowed, owner="")


def run_attack(name, model, images, labels, robust, settings=AttackSettings(), judge=None, seed=0,
               batch_size=256):
    """One attack of the cascade on the images still `robust`.

    Args:
        name: one of `ATTACKS`.
        model: Keras logits model the attack differentiates (or queries).
        images: float32 `(N, H, W, C)` in [0, 1]; labels: ints `(N,)`.
        robust: bool `(N,)`, the images that survived so far; the others are
            not attacked and stay False.
        judge: model whose predictions decide correctness (default `model`).

    Returns:
        bool `(N,)`: `robust` with every image the attack fooled set to False.
    """
    if name not in ATTACKS:
        raise ValueError(f"attack={name!r} is invalid: must be one of {', '.join(ATTACKS)}.")
    s = settings
    common = dict(batch_size=batch_size, seed=seed, robust=np.asarray(robust, bool), judge=judge)
    if name == "apgd-ce":
        return apgd_robust(model, images, labels, "cross_entropy", eps=s.eps, steps=s.apgd_steps, **common)
    if name in ("apgd-t", "apgd-t-art"):
        loss = "dlr_targeted_autoattack" if name == "apgd-t" else "dlr_targeted"
        return apgd_robust(model, images, labels, loss, targets=s.targets, eps=s.eps, steps=s.apgd_steps, **common)
    if name == "fab-t":  # deterministic: AutoAttack's FAB-T starts from the clean image
        return fab_robust(model, images, labels, eps=s.eps, targets=s.fab_targets, steps=s.fab_steps,
                          batch_size=batch_size, robust=common["robust"], judge=judge)
    if name == "square":
        return square_robust(model, images, labels, eps=s.eps, max_iter=s.square_queries, **common)
    return pgd_robust(model, images, labels, eps=s.eps, step=s.pgd_step, steps=s.pgd_steps, progress=False,
                      **common)


class CascadeProgress:
    """What a cascade has finished: the robust mask after each attack, per batch.

    `state` is a JSON-ready dict (`run_cascade` saves it after every batch):
    ``clean`` (bool list `(N,)`), per attack ``robust`` {batch start: bool
    list}, ``seconds`` and ``attacked`` (images attacked so far), and, where an
    earlier record's outcomes are reused (`reused_outcomes`), ``known`` {attack:
    {attacked, robust: "0"/"1" strings `(N,)`, seconds_per_image, from}} and per
    attack ``reused`` (images whose outcome came from it).
    """

    def __init__(self, state=None):
        self.state = state or dict(clean=None, attacks={})

    def attack(self, name):
        return self.state["attacks"].setdefault(name, dict(robust={}, seconds=0.0, attacked=0))

    def done(self, name, start):
        """The robust mask of the batch at `start` after attack `name`, or None."""
        found = self.state["attacks"].get(name, {}).get("robust", {}).get(str(start))
        return None if found is None else np.array(found, bool)

    def record(self, name, start, robust, seconds, attacked, reused=0):
        entry = self.attack(name)
        entry["robust"][str(start)] = [bool(r) for r in robust]
        entry["seconds"] += seconds
        entry["attacked"] += int(attacked)
        if reused:
            entry["reused"] = entry.get("reused", 0) + int(reused)

    def known(self, name, start, stop):
        """The earlier record's (attacked, robust) bool masks of images `start:stop` for
        attack `name`, or None where no outcome of it is reused."""
        found = self.state.get("known", {}).get(name)
        if found is None:
            return None
        return tuple(np.array([c == "1" for c in found[key][start:stop]], bool) for key in ("attacked", "robust"))

    def after(self, name, n):
        """The robust mask `(n,)` after attack `name` (every batch must be done)."""
        batches = self.state["attacks"][name]["robust"]
        return np.concatenate([np.array(batches[k], bool) for k in sorted(batches, key=int)])[:n]


def run_cascade(model, images, labels, attacks=STANDARD, settings=AttackSettings(), judge=None, seed=0,
                batch_size=256, state=None, save=None, progress=True):
    """Run `attacks` as AutoAttack's per-image cascade, batch by batch, resumably.

    Each batch goes through the whole cascade before the next begins (each attack
    is seeded by the batch's position, so the order changes no outcome): an
    interrupted run has the final outcomes of its first batches.

    Args:
        model, judge: as in `run_attack`.
        images: float32 `(N, H, W, C)` in [0, 1]; labels: ints `(N,)`.
        attacks: names from `ATTACKS`, in cascade order.
        state: a `CascadeProgress.state` to resume from (None: start afresh).
        save: callable(state) called after the clean pass and after every
            batch of every attack (e.g. an atomic JSON write), so an
            interrupted run loses at most one batch of one attack.

    Returns:
        `CascadeProgress` with every attack done; `summarise` turns it into numbers.
    """
    from tqdm.auto import tqdm

    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown or not attacks or len(set(attacks)) != len(attacks):
        raise ValueError(f"attacks={list(attacks)!r} is invalid: distinct names from {', '.join(ATTACKS)}.")
    labels = np.asarray(labels)
    if images.ndim != 4 or len(images) != len(labels) or not len(labels):
        raise ValueError(f"images {images.shape} and labels {labels.shape} must be (N, H, W, C) and (N,), N >= 1.")
    done = CascadeProgress(state)
    if done.state["clean"] is None:
        done.state["clean"] = [bool(c) for c in predict_classes(judge or model, images, batch_size) == labels]
        if save:
            save(done.state)
    starts = range(0, len(labels), batch_size)
    bar = tqdm(total=len(attacks) * len(starts), desc="autoattack", disable=not progress, leave=False)
    for start in starts:  # batch by batch: a batch's images go through the whole cascade before the next's
        for position, name in enumerate(attacks):
            bar.set_postfix_str(f"{name}, images {start}+")
            if done.done(name, start) is None:
                stop = min(start + batch_size, len(labels))
                before = (np.array(done.state["clean"][start:stop], bool) if position == 0
                          else done.done(attacks[position - 1], start))
                known = done.known(name, start, stop)
                reused = before & known[0] if known else np.zeros_like(before)
                fresh = before & ~reused
                tic = time.perf_counter()
                after = run_attack(name, model, images[start:stop], labels[start:stop], fresh, settings, judge,
                                   seed=seed + start, batch_size=batch_size) if fresh.any() else fresh
                if known:
                    after = after | (reused & known[1])
                done.record(name, start, after, time.perf_counter() - tic, fresh.sum(), reused.sum())
                if save:
                    save(done.state)
            bar.update(1)
    bar.close()
    return done


def _rate(robust):
    robust = np.asarray(robust, bool)
    low, high = wilson_interval(int(robust.sum()), len(robust))
    return dict(accuracy=float(robust.mean()), ci95=[low, high], robust=int(robust.sum()), n=len(robust))


def summarise(progress, attacks):
    """Clean accuracy and the accuracy after each attack of the cascade, with 95% Wilson intervals.

    Returns:
        dict: ``clean`` and ``worst`` ({accuracy (fraction), ci95 [low, high],
        robust, n}), and per attack in ``attacks``: the accuracy after it (the
        cascade so far), ``seconds``, ``images_attacked`` and ``images_per_second``
        (this run's), and where an earlier record's outcomes were reused,
        ``images_reused`` and ``seconds_reused`` (the images' share of that run's seconds).
    """
    n = len(progress.state["clean"])
    rows = {}
    for name in attacks:
        entry = progress.state["attacks"][name]
        seconds, attacked = entry["seconds"], entry["attacked"]
        rows[name] = dict(**_rate(progress.after(name, n)), seconds=seconds, images_attacked=attacked,
                          images_per_second=attacked / seconds if attacked and seconds else None)
        if entry.get("reused"):
            known = progress.state["known"][name]
            rows[name].update(images_reused=entry["reused"],
                              seconds_reused=entry["reused"] * known["seconds_per_image"])
    return dict(clean=_rate(progress.state["clean"]), attacks=rows, worst=_rate(progress.after(attacks[-1], n)))


def per_image(progress, attacks):
    """Which images were classified correctly, clean and after each attack of the cascade:
    {"clean": str, attack: str}, one character per image in test order, "1" correct, "0" not
    (compact in JSON, and comparable image by image with another implementation's record)."""
    n = len(progress.state["clean"])
    masks = {"clean": np.array(progress.state["clean"], bool),
             **{name: progress.after(name, n) for name in attacks}}
    return {name: marks(mask) for name, mask in masks.items()}


def marks(mask):
    """A bool mask `(N,)` as a string of "1" (True) and "0" (False), one character per image."""
    return "".join("1" if r else "0" for r in mask)


def format_eps(eps):
    """`8/255` for eps = 8/255, else the number."""
    k = eps * 255
    return f"{round(k)}/255" if abs(k - round(k)) < 1e-6 else f"{eps:g}"


def departures(attacks, settings):
    """How a run departs from AutoAttack's standard version: a list of plain strings, empty if none.

    A departure is an attack list other than `STANDARD` (in its order), or a
    setting of an attack that ran which differs from AutoAttack's (the defaults of
    `AttackSettings`). The radius is the threat model, not a departure.
    """
    found = []
    if tuple(attacks) != STANDARD:
        found.append(f"attacks: {', '.join(attacks)} (standard: {', '.join(STANDARD)})")
    standard = AttackSettings()
    for name, users in USED_BY.items():
        value, expected = getattr(settings, name), getattr(standard, name)
        if value != expected and any(a in attacks for a in users):
            found.append(f"{name}={value!r} (standard: {expected!r})")
    return found


def robustbench_record(models, summary, attacks, settings, seed, images, parameters, seconds, images_correct=None):
    """A JSON-ready record with RobustBench's leaderboard fields, and kaflib's details.

    RobustBench's fields (model_info/<dataset>/<threat>/<name>.json): name,
    architecture, dataset, eps, clean_acc and autoattack_acc (percent, as
    strings with 2 decimals), additional_data, number_forward_passes.
    ``version`` is "standard" when the run is AutoAttack's standard version
    (`departures` finds none), and then the worst case is `autoattack_acc`;
    otherwise ``version`` is "custom", ``departures`` lists how, and the worst
    case is `robust_acc`. ``kaflib`` holds the per-attack numbers with
    their intervals, the settings, the data, the seed, the library versions and
    the wall time, and (`images_correct`, from `per_image`) which images each attack fooled.
    """
    from kaflib.files import environment

    worst = f"{100 * summary['worst']['accuracy']:.2f}"
    departed = departures(attacks, settings)
    record = dict(name=models.name, architecture=models.architecture, dataset="cifar10", threat_model="Linf",
                  eps=format_eps(settings.eps), clean_acc=f"{100 * summary['clean']['accuracy']:.2f}",
                  **({"robust_acc": worst} if departed else {"autoattack_acc": worst}),
                  additional_data=False, number_forward_passes=1, n_images=len(images["labels"]),
                  attacks=list(attacks), version="custom" if departed else "standard",
                  **({"departures": departed} if departed else {}), left_out=dict(LEFT_OUT), seed=seed)
    record["kaflib"] = dict(summary=summary, settings=dataclasses.asdict(settings), parameters=parameters,
                            data=images["description"],
                            model=dict(source=models.source, notes=models.notes, **models.metadata),
                            seconds=seconds, environment=environment(),
                            **({"per_image": images_correct} if images_correct else {}))
    return record


def _test_images(n, data_dir):
    """The first `n` CIFAR-10 test images, in the official order (as RobustBench takes them)."""
    from kaflib.data import fingerprint, load_cifar10

    _, (x, y) = load_cifar10(data_dir, train_size=1)
    if not is_int(n) or not 1 <= n <= len(y):
        raise ValueError(f"n={n!r} is invalid: an integer in [1, {len(y)}] (the test images found).")
    found, x, y = len(y), x[:n], y[:n]
    return dict(images=x, labels=y,
                description=dict(name=f"CIFAR-10 test, the first {n} images", fingerprint=fingerprint(x, y),
                                 test=n, of=found, selection=f"the first {n} test images, official order"))


def default_out(models, n):
    """`autoattack/<name>-n<n>.json` in the current folder (a run folder: `<run>/autoattack-n<n>.json`)."""
    from pathlib import Path

    source = Path(models.source)
    if source.name == "model.keras":
        return source.parent / f"autoattack-n{n}.json"
    return Path("autoattack") / f"{models.name}-n{n}.json"


def record_attacks(record):
    """The attacks a finished record ran, by today's names: a record without a ``version``
    field predates AutoAttack's targeted DLR, and its "apgd-t" was ART's (now "apgd-t-art")."""
    names = list(record["kaflib"]["parameters"]["attacks"])
    return names if "version" in record else ["apgd-t-art" if a == "apgd-t" else a for a in names]


def reused_progress(record, parameters, description, settings, source="the record"):
    """A `CascadeProgress.state` seeded from a finished record, for a new run with `parameters`.

    The record must be of the same model, seed, batch size and images (the same
    n, and the same data fingerprint, or for a record without one the same
    selection); it gives the clean outcomes and those of the attacks the two
    cascades begin with, in the same order and with the same settings (eps and
    the settings in `USED_BY`), with their seconds and images attacked.

    Args:
        record: the finished record (a dict, as `evaluate_file` writes it, with ``per_image``).
        parameters: the new run's ``kaflib.parameters`` (model, n, attacks, settings, seed, batch_size).
        description: the new run's ``kaflib.data`` (name, fingerprint, selection, ...).
        settings: the new run's `AttackSettings`.
        source: how to name the record in errors (its path).

    Returns:
        (state, reused): the state for `run_cascade`, and the names of the attacks reused (at least one).

    Raises:
        ValueError naming the first parameter that does not match, or saying nothing can be reused.
    """
    k = record.get("kaflib", {})
    old, marks_ = k.get("parameters", {}), k.get("per_image")
    if not marks_:
        raise ValueError(f"reuse={source!r} is invalid: it has no per-image outcomes (kaflib.per_image) to reuse.")
    for name in ("model", "n", "seed", "batch_size"):
        if old.get(name) != parameters[name]:
            raise ValueError(f"{name}={parameters[name]!r} does not match the record to reuse ({source}: "
                             f"{name}={old.get(name)!r}).")
    data = k.get("data", {})
    if "fingerprint" in data:
        if data["fingerprint"] != description["fingerprint"]:
            raise ValueError(f"data fingerprint={description['fingerprint']!r} does not match the record to "
                             f"reuse ({source}: {data['fingerprint']!r}): other test images.")
    elif data.get("test") != parameters["n"] or data.get("selection") != description["selection"]:
        raise ValueError(f"data selection={description['selection']!r} does not match the record to reuse "
                         f"({source}: {data.get('selection')!r}, {data.get('test')!r} images).")
    n, size, before = parameters["n"], parameters["batch_size"], old.get("settings", {})
    reused, why = [], None
    for new, prior in zip(parameters["attacks"], record_attacks(record)):
        if new != prior:
            why = f"attacks={parameters['attacks']!r}: {new!r} where the record to reuse ran {prior!r}"
            break
        differing = [f for f in ("eps", *(f for f, users in USED_BY.items() if new in users))
                     if before.get(f) != getattr(settings, f)]
        if differing:
            why = (f"{differing[0]}={getattr(settings, differing[0])!r} for {new!r} where the record to reuse "
                   f"has {differing[0]}={before.get(differing[0])!r}")
            break
        reused.append(new)
    if not reused:
        raise ValueError(f"{why or 'attacks'} ({source}): no attack can be reused.")
    if any(len(marks_[name]) != n for name in ("clean", *reused)):
        raise ValueError(f"reuse={source!r} is invalid: its per-image outcomes are not {n} long.")
    summary = k["summary"]["attacks"]
    state = dict(clean=[c == "1" for c in marks_["clean"]], attacks={})
    for new, prior in zip(reused, record["kaflib"]["parameters"]["attacks"]):
        mask = marks_[prior]
        state["attacks"][new] = dict(robust={str(s): [c == "1" for c in mask[s:s + size]] for s in range(0, n, size)},
                                     seconds=summary[prior]["seconds"], attacked=summary[prior]["images_attacked"])
    return state, reused


def reused_outcomes(record, attacks, settings, reused, source="the record"):
    """Per-image outcomes of a finished record for the attacks of a new cascade after
    its reused first attacks (`reused_progress`) that the record also ran, with the
    same settings (eps and the settings in `USED_BY`).

    Args:
        record: the finished record (with ``per_image``), already checked by `reused_progress`.
        attacks: the new cascade's attacks, in order; reused: its first attacks taken whole.
        settings: the new run's `AttackSettings`.

    Returns:
        {attack: {"attacked", "robust": "0"/"1" strings `(N,)` (the images the record's
        run of it attacked, and those that survived it), "seconds_per_image", "from"}}
        for `CascadeProgress.state["known"]`; empty when there are none.
    """
    k = record["kaflib"]
    ran, before, marks_ = record_attacks(record), k.get("settings", {}), k["per_image"]
    names = list(k["parameters"]["attacks"])  # as the record stores them
    found = {}
    for name in attacks[len(reused):]:
        if name not in ran[len(reused):]:
            continue
        if any(before.get(f) != getattr(settings, f) for f in ("eps", *(f for f, u in USED_BY.items() if name in u))):
            continue
        at = ran.index(name)
        previous = marks_[names[at - 1]] if at else marks_["clean"]
        row = k["summary"]["attacks"][names[at]]
        found[name] = {"attacked": previous, "robust": marks_[names[at]], "from": source,
                       "seconds_per_image": row["seconds"] / row["images_attacked"] if row["images_attacked"] else 0.0}
    return found


def evaluate_file(model, attacks=STANDARD, n=1000, settings=AttackSettings(), out=None, data_dir=None, seed=0,
                  batch_size=256, progress=True, force=False, reuse=None):
    """Run the cascade on a model file (`kaflib.model_files.load_for_evaluation`) and write its record.

    Resumes from `<out>.partial.json` (saved after every batch of every attack),
    which is removed when the record is written. A record already at `out` with
    the same parameters is returned as it is, unless `force`. `reuse`: a finished
    record of the same model, images, seed and batch size whose first attacks
    (those the two cascades share, with the same settings) are not run again
    (`reused_progress`; its clean outcomes are checked against a fresh prediction);
    the new record names it and the attacks in ``kaflib.reused``, and its seconds
    include theirs (``kaflib.seconds.reused``). A later attack the record also ran
    keeps the record's outcome on every image that run attacked (`reused_outcomes`;
    ``kaflib.reused.outcomes``: the images per attack). Returns the record.
    """
    from pathlib import Path

    from kaflib.files import read_json, write_json
    from kaflib.model_files import load_for_evaluation

    started = time.perf_counter()
    models = load_for_evaluation(model)
    data = _test_images(n, data_dir)
    if tuple(models.judge.input_shape[1:]) != data["images"].shape[1:]:
        raise ValueError(f"model={str(model)!r} takes inputs {tuple(models.judge.input_shape[1:])}: the test "
                         f"images are {data['images'].shape[1:]}.")
    out = Path(out) if out else default_out(models, n)
    partial = out.with_name(out.name.removesuffix(".json") + ".partial.json")
    parameters = dict(model=Path(model).name, n=n, attacks=list(attacks), settings=dataclasses.asdict(settings),
                      seed=seed, batch_size=batch_size)
    finished = read_json(out)
    if finished is not None and not force and finished["kaflib"]["parameters"] == parameters:
        return {**finished, "file": str(out)}  # already evaluated with these parameters
    saved = read_json(partial)
    if saved is not None and saved["parameters"] != parameters:
        raise ValueError(f"{partial} holds an interrupted evaluation with other parameters "
                         f"({saved['parameters']}): delete it or choose another --out.")
    state, reused, prior = (saved or {}).get("state"), (saved or {}).get("reused"), None
    if reuse is not None and saved is None:
        prior = read_json(reuse)
        if prior is None:
            raise FileNotFoundError(f"reuse={str(reuse)!r} does not exist.")
        state, names = reused_progress(prior, parameters, data["description"], settings, source=str(reuse))
        clean = predict_classes(models.judge, data["images"], batch_size) == data["labels"]
        if not np.array_equal(clean, state["clean"]):
            raise ValueError(f"reuse={str(reuse)!r} is not of this model and these images: its clean outcomes "
                             f"differ on {int(np.sum(clean != state['clean']))} of {n} images.")
        reused = {"from": str(reuse), "attacks": names,
                  "seconds": sum(state["attacks"][a]["seconds"] for a in names)}
    if reuse is not None and reused and reused["from"] == str(reuse) and "known" not in state:
        # also when resuming a run begun before outcomes were reused: only for attacks not yet begun
        known = reused_outcomes(prior or read_json(reuse), list(attacks), settings, reused["attacks"],
                                source=str(reuse))
        state["known"] = {a: v for a, v in known.items() if a not in state["attacks"]}
    seconds = (saved or {}).get("seconds", reused["seconds"] if reused and saved is None else 0.0)
    tic = time.perf_counter()

    def save(state):
        write_json(partial, dict(parameters=parameters, seconds=seconds + time.perf_counter() - tic, state=state,
                                 **({"reused": reused} if reused else {})))

    if reused and saved is None:
        save(state)
    done = run_cascade(models.attacked, data["images"], data["labels"], attacks, settings, judge=models.judge,
                       seed=seed, batch_size=batch_size, state=state, save=save, progress=progress)
    summary = summarise(done, attacks)
    record = robustbench_record(models, summary, attacks, settings, seed, data, parameters,
                                seconds=dict(total=seconds + time.perf_counter() - tic,
                                             this_sitting=time.perf_counter() - started),
                                images_correct=per_image(done, attacks))
    if reused:
        outcomes = {a: row["images_reused"] for a, row in summary["attacks"].items() if row.get("images_reused")}
        record["kaflib"]["reused"] = {**reused, **({"outcomes": outcomes} if outcomes else {})}
        record["kaflib"]["seconds"]["reused"] = reused["seconds"]
    write_json(out, record)
    partial.unlink(missing_ok=True)
    record["file"] = str(out)
    return record


def format_summary(record):
    """The record as a few lines of text: clean, then the accuracy after each attack, intervals, speed."""
    s = record["kaflib"]["summary"]
    lines = [f"{record['name']}: {record['n_images']} images, eps {record['eps']}",
             f"  {'clean':10s} {_percent(s['clean'])}"]
    for name, row in s["attacks"].items():
        speed = f"{row['images_per_second']:6.2f} images/s" if row["images_per_second"] else "     - images/s"
        lines.append(f"  {'+ ' + name:10s} {_percent(row)}   {row['seconds']:7.1f} s  "
                     f"{speed} ({row['images_attacked']} attacked)")
    label = "AutoAttack" if "autoattack_acc" in record else "worst case"
    lines.append(f"  {label:10s} {_percent(s['worst'])}")
    lines.append(f"  version: {record.get('version', 'custom')}")
    for departure in record.get("departures", []):
        lines.append(f"  departs from the standard version: {departure}")
    for name, why in record["left_out"].items():
        lines.append(f"  left out: {name}: {why}")
    return "\n".join(lines)


def _percent(rate):
    low, high = rate["ci95"]
    return f"{100 * rate['accuracy']:5.1f}%  [95% CI {100 * low:.1f}, {100 * high:.1f}]"


def _eps_argument(text):
    try:
        value = float(text.split("/")[0]) / float(text.split("/")[1]) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"eps={text!r} is invalid: a number in (0, 1] or a fraction like 8/255.") from None
    return value


def main(argv=None):
    """`python -m kaflib.evaluate MODEL --attack autoattack --n 1000`."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m kaflib.evaluate",
        description="Robust accuracy of a model under AutoAttack's standard cascade (APGD-CE, APGD-T, "
                    "FAB-T, Square; or chosen attacks), on the first N CIFAR-10 test images, with 95% "
                    "intervals; writes a RobustBench-format record (version 'standard', or 'custom' with its "
                    "departures) and resumes per attack and batch when interrupted.")
    parser.add_argument("model", help="a .keras file, a run folder (with model.keras), or a plug-in format "
                                      "such as a thesis checkpoint .zip")
    parser.add_argument("--attack", nargs="+", default=["autoattack"],
                        help=f"'autoattack' (the standard list: {', '.join(STANDARD)}) or attacks from "
                             f"{', '.join(ATTACKS)}, run in the order given as a cascade (apgd-t: AutoAttack's "
                             "targeted DLR loss; apgd-t-art: ART's; pgd: the thesis' PGD-50)")
    parser.add_argument("--n", type=int, default=1000, help="test images (the first N; default 1000)")
    parser.add_argument("--eps", default="8/255", help="L-inf radius in pixel units (default 8/255)")
    parser.add_argument("--targets", type=int, default=9, help="APGD-T target classes (default 9)")
    parser.add_argument("--fab-targets", type=int, default=9, help="FAB-T target classes (default 9)")
    parser.add_argument("--fab-steps", type=int, default=100, help="FAB-T iterations per target (default 100)")
    parser.add_argument("--square-queries", type=int, default=5000, help="Square queries (default 5000)")
    parser.add_argument("--out", help="the record (default: autoattack/<name>-n<N>.json)")
    parser.add_argument("--data-dir", help="CIFAR-10 folder (default: KAFLIB_DATA_DIR, Keras cache, download)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--force", action="store_true", help="redo an evaluation whose record exists")
    parser.add_argument("--reuse", metavar="RECORD",
                        help="a finished record of the same model, images, seed and batch size: the attacks "
                             "both cascades begin with (same settings) are taken from it, not run again")
    args = parser.parse_args(argv)
    attacks = STANDARD if args.attack == ["autoattack"] else tuple(args.attack)
    try:
        for name in attacks:
            if name not in ATTACKS:
                raise ValueError(f"attack={name!r} is invalid: 'autoattack' alone, or names from "
                                 f"{', '.join(ATTACKS)}.")
        if not is_int(args.batch_size) or args.batch_size < 1:
            raise ValueError(f"batch_size={args.batch_size!r} is invalid: an integer >= 1.")
        settings = AttackSettings(eps=_eps_argument(args.eps), targets=args.targets, fab_targets=args.fab_targets,
                                  fab_steps=args.fab_steps, square_queries=args.square_queries)
        record = evaluate_file(args.model, attacks, args.n, settings, args.out, args.data_dir, args.seed,
                               args.batch_size, force=args.force, reuse=args.reuse)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_summary(record))
    print(f"record: {record['file']}")
    return 0


if __name__ == "__main__":  # run by `python -m kaflib.evaluate` (the user's command) or `python -m kaflib.autoattack`
    import sys

    sys.exit(main())
