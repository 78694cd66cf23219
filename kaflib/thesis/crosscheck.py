"""Cross-check of kaflib's AutoAttack against an independent implementation: torchattacks'.

Three commands on one model, a float32 `.keras` file (a thesis checkpoint's twin:
``python -m kaflib.thesis.checkpoints ZIP --no-accuracy --save-keras DIR``):

    python -m kaflib.evaluate DIR/NAME.keras --n 128 --out results/autoattack-crosscheck/NAME-kaflib.json
    pip install --no-deps torchattacks==3.5.1    # its requests pin clashes with the set-up; it needs only torch
    KERAS_BACKEND=torch python -m kaflib.thesis.crosscheck DIR/NAME.keras --n 128 \\
        --out results/autoattack-crosscheck/NAME-torchattacks.json

The second runs the same Keras model on the PyTorch backend, as a `torch.nn.Module`,
through torchattacks' standard AutoAttack (APGD-CE, APGD-T, FAB-T, Square 5000; its
own per-image cascade) on the same first N test images. torchattacks 3.5.1 builds its
APGD, APGD-T and FAB-T with their default 10 iterations (`AutoAttack.__init__` passes no
`steps`), where AutoAttack's reference and kaflib run 100: its white-box attacks are
weaker than kaflib's. It writes the accuracy
with its 95% interval and which images stayed robust ("per_image"). It resumes per
batch of `--batch-size` images from `<out>.partial.json` when interrupted. Square's 5000
queries take most of the time, about 5 minutes per batch while any image of it stays robust
(ReLU twin, 128 images in two batches of 64: 11 minutes on one CPU core, `OMP_NUM_THREADS=1`).
`cross_check_table` sets the two records side by side, image by image.

FAB-T alone, kaflib's (`kaflib.fab`, TensorFlow) against torchattacks' ``FAB`` with
AutoAttack's settings (``multi_targeted=True``, 9 target classes, 100 steps, 1 restart,
alpha_max 0.1, eta 1.05, beta 0.9), on the same model, images and target classes:

    python -m kaflib.evaluate DIR/NAME.keras --attack fab-t --n 32 --batch-size 32 \\
        --out results/autoattack-crosscheck/fab-t/NAME-kaflib.json
    KERAS_BACKEND=torch python -m kaflib.thesis.crosscheck DIR/NAME.keras --attack fab-t --n 32 \\
        --out results/autoattack-crosscheck/fab-t/NAME-torchattacks.json

The second writes, beside torchattacks' per-image outcomes, their agreement with the
first's record when it is there (``agreement``: images robust to both, to only one);
``cross_check_table("results/autoattack-crosscheck/fab-t")`` reads the pair too.

One attack of a kaflib cascade, image by image, on the images it was given there:
``--from RECORD`` (kaflib's AutoAttack record of the same model, finished or its
``.partial.json``) attacks only those of the first N images still robust before
``--attack`` in RECORD's cascade (FAB-T: APGD-T's survivors; APGD-T: APGD-CE's), and
compares torchattacks' outcome on each with RECORD's (``agreement``):

    KERAS_BACKEND=torch python -m kaflib.thesis.crosscheck DIR/NAME.keras --attack fab-t --n 128 \
        --from results/autoattack-standard/NAME.json --out results/autoattack-crosscheck/standard/NAME-fab-t.json
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["attack_agreement_findings", "attack_agreement_table", "cascade_outcomes", "cross_check_findings",
           "cross_check_table", "fab_t_alone_findings", "fab_t_alone_table", "main", "torchattacks_apgd_t", "torchattacks_autoattack", "torchattacks_fab_t"]

#: What `main` can run on the PyTorch backend, and how its record describes it.
IMPLEMENTATIONS = {
    "autoattack": "AutoAttack(version='standard'): APGD-CE, APGD-T, FAB-T (10 iterations each, torchattacks' "
                  "defaults), Square 5000",
    "fab-t": "FAB(norm='Linf', multi_targeted=True, n_classes=10, steps=100, n_restarts=1, alpha_max=0.1, "
             "eta=1.05, beta=0.9): AutoAttack's standard FAB-T",
    "apgd-t": "APGDT(norm='Linf', n_classes=10, steps=100, n_restarts=1, rho=0.75, eot_iter=1): AutoAttack's "
              "standard APGD-T (targeted DLR loss, the 9 most likely wrong classes in turn)",
}


def torchattacks_autoattack(model, images, labels, eps=8 / 255, seed=0, batch_size=32, done=None, save=None,
                            progress=True):
    """Per-image robustness `(N,)` under torchattacks' standard AutoAttack, batch by batch, resumably.

    `model`: a Keras logits model on the PyTorch backend (images NHWC); images
    float32 `(N, H, W, C)` in [0, 1]; labels `(N,)`. `done`: {batch start (str):
    bool list} of batches already attacked (resumed, not redone); `save(done)` is
    called after every batch, so an interruption loses at most one batch.
    """
    import torchattacks

    def attack(wrapped, start):
        return torchattacks.AutoAttack(wrapped, norm="Linf", eps=eps, version="standard",
                                       n_classes=int(model.output_shape[-1]), seed=seed + start)

    return _torchattacks_robust(attack, model, images, labels, batch_size, done, save, progress,
                                "torchattacks AutoAttack")


def torchattacks_fab_t(model, images, labels, eps=8 / 255, steps=100, seed=0, batch_size=32, done=None, save=None,
                       progress=True):
    """Per-image robustness `(N,)` under torchattacks' FAB with AutoAttack's standard FAB-T settings
    (the 9 most likely wrong classes in turn, `steps` per target, 1 restart from the clean image,
    alpha_max 0.1, eta 1.05, beta 0.9; a success is any wrong class within L-inf `eps`).
    Arguments and resuming as in `torchattacks_autoattack`."""
    import torchattacks

    def attack(wrapped, start):
        return torchattacks.FAB(wrapped, norm="Linf", eps=eps, steps=steps, n_restarts=1, alpha_max=0.1, eta=1.05,
                                beta=0.9, seed=seed + start, multi_targeted=True,
                                n_classes=int(model.output_shape[-1]))

    return _torchattacks_robust(attack, model, images, labels, batch_size, done, save, progress, "torchattacks FAB-T")


def torchattacks_apgd_t(model, images, labels, eps=8 / 255, steps=100, seed=0, batch_size=32, done=None, save=None,
                        progress=True):
    """Per-image robustness `(N,)` under torchattacks' APGDT with AutoAttack's standard APGD-T
    settings (targeted DLR loss, the 9 most likely wrong classes in turn, `steps` per target,
    1 restart, rho 0.75). Arguments and resuming as in `torchattacks_autoattack`."""
    import torchattacks

    def attack(wrapped, start):
        return torchattacks.APGDT(wrapped, norm="Linf", eps=eps, steps=steps, n_restarts=1, seed=seed + start,
                                  eot_iter=1, rho=0.75, n_classes=int(model.output_shape[-1]))

    return _torchattacks_robust(attack, model, images, labels, batch_size, done, save, progress,
                                "torchattacks APGD-T")


def cascade_outcomes(record, attack, n):
    """From kaflib's AutoAttack record (a finished record, or a `.partial.json` dict),
    the first `n` images' outcomes around `attack`: (before, after), bool `(n,)`, the
    images still robust before it in the record's cascade and after it.

    Raises:
        ValueError when the record did not run `attack`, or has not finished it on the first `n` images.
    """
    if "state" in record:  # an interrupted run: per-batch masks
        state, attacks = record["state"], record["parameters"]["attacks"]

        def after(name):
            if name == "clean":
                return np.array(state["clean"][:n], bool)
            batches = state["attacks"].get(name, {}).get("robust", {})
            found = np.concatenate([np.array(batches[k], bool) for k in sorted(batches, key=int)]) if batches else []
            starts = sorted(map(int, batches))
            if len(found) < n or starts != list(range(0, len(starts) * record["parameters"]["batch_size"],
                                                      record["parameters"]["batch_size"])):
                raise ValueError(f"the record has not finished {name} on the first {n} images.")
            return found[:n]
    else:
        attacks, marks_ = record["kaflib"]["parameters"]["attacks"], record["kaflib"]["per_image"]

        def after(name):
            return np.array([c == "1" for c in marks_[name][:n]], bool)
    if attack not in attacks:
        raise ValueError(f"attack={attack!r}: the record's cascade is {', '.join(attacks)}.")
    at = attacks.index(attack)
    return after(attacks[at - 1] if at else "clean"), after(attack)


def _torchattacks_robust(make_attack, model, images, labels, batch_size, done, save, progress, description):
    """Run `make_attack(wrapped model, batch start)` batch by batch, resumably (see
    `torchattacks_autoattack`): bool `(N,)`, True where the model still classifies correctly."""
    import keras
    import torch
    from tqdm.auto import tqdm

    if keras.backend.backend() != "torch":
        raise RuntimeError(f"KERAS_BACKEND is {keras.backend.backend()!r}: this cross-check runs on 'torch' "
                           "(set KERAS_BACKEND=torch).")

    class ChannelsFirst(torch.nn.Module):
        """torchattacks works on NCHW images; the Keras model takes NHWC."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x.permute(0, 2, 3, 1))

    wrapped = ChannelsFirst(model).eval()
    done = dict(done or {})
    for start in tqdm(range(0, len(labels), batch_size), desc=description, disable=not progress):
        if str(start) in done:
            continue
        # a fresh attack per batch, seeded by the batch's position: a resumed run draws what a whole one does
        attack = make_attack(wrapped, start)
        x = torch.tensor(images[start:start + batch_size]).permute(0, 3, 1, 2).contiguous()
        y = torch.tensor(labels[start:start + batch_size], dtype=torch.long)
        adversarial = attack(x, y)
        with torch.no_grad():
            done[str(start)] = [bool(r) for r in (wrapped(adversarial).argmax(1) == y).cpu().numpy()]
        if save:
            save(done)
    return np.concatenate([np.array(done[k], bool) for k in sorted(done, key=int)])[:len(labels)]


def cross_check_table(folder=None):
    """kaflib's and torchattacks' records in `folder` (`<name>-kaflib.json`, `<name>-torchattacks.json`;
    default `results/autoattack-crosscheck/`) side by side: one row per model with clean and robust
    accuracy (%), their 95% intervals and, where both records have them, the per-image counts; or None."""
    import pandas as pd

    from kaflib.thesis.store import crosscheck_path, crosscheck_records, read_json

    rows = []
    for name, ours in crosscheck_records("kaflib", folder).items():
        theirs = read_json(crosscheck_path(name, "torchattacks", folder))
        record = read_json(ours)
        s = record["kaflib"]["summary"]
        row = dict(model=name, n=record["n_images"], clean=100 * s["clean"]["accuracy"],
                   kaflib=100 * s["worst"]["accuracy"], kaflib_ci95=[round(100 * v, 1) for v in s["worst"]["ci95"]],
                   kaflib_fab_t="fab-t" in record["attacks"])
        if theirs is not None:
            row.update(torchattacks=100 * theirs["robust"]["accuracy"],
                       torchattacks_ci95=[round(100 * v, 1) for v in theirs["robust"]["ci95"]],
                       agree_within_intervals=bool(theirs["robust"]["ci95"][0] <= s["worst"]["accuracy"]
                                                   <= theirs["robust"]["ci95"][1]))
            if "per_image" in record["kaflib"] and "per_image" in theirs:
                row.update(_per_image_agreement(record["kaflib"]["per_image"][record["attacks"][-1]],
                                                theirs["per_image"]["robust"]))
        rows.append(row)
    return pd.DataFrame(rows).set_index("model") if rows else None


def _checkpoint(name):
    """"KAF (`resnet20_kaf_ocrob_lrfinder`)" for a model name: the published checkpoint's words
    (`tables.checkpoint_label`) where it is one of `studies.THESIS_CHECKPOINTS`, else the name."""
    from kaflib.thesis.studies import THESIS_CHECKPOINTS
    from kaflib.thesis.tables import checkpoint_label

    activation = {checkpoint: act for act, checkpoint in THESIS_CHECKPOINTS.items()}.get(name)
    return f"`{name}`" if activation is None else f"{checkpoint_label(name, activation)} (`{name}`)"


def fab_t_alone_table(results=None):
    """`cross_check_table` of FAB-T alone: kaflib's and torchattacks' records in
    `<results>/autoattack-crosscheck/fab-t/` (the module docstring has their commands); or None."""
    from kaflib.thesis.store import results_dir

    return cross_check_table(results_dir(results) / "autoattack-crosscheck" / "fab-t")


def fab_t_alone_findings(table):
    """Plain sentences (Markdown) on `cross_check_table()` of FAB-T alone (its `fab-t/`
    folder): per model, how many images kaflib's FAB-T broke of those the model classifies
    correctly (kaflib's clean pass), how many stayed robust under both implementations and
    under one only, and on how many images the two agree; or that torchattacks' record (or
    its per-image outcomes) is missing."""
    import pandas as pd
    from IPython.display import Markdown

    lines = []
    for name, row in table.iterrows():
        if pd.isna(row.get("both_robust")):
            lines.append(f"- {_checkpoint(name)}: torchattacks' per-image record is missing (the module docstring "
                         "has its command).")
            continue
        n, robust = int(row["n"]), int(row["both_robust"])
        only_ours, only_theirs = int(row["only_kaflib_robust"]), int(row["only_torchattacks_robust"])
        correct = round(n * row["clean"] / 100)
        lines.append(f"- {_checkpoint(name)}, the first {n} test images, {correct} classified correctly: kaflib's "
                     f"FAB-T broke {correct - robust - only_ours} of them; {robust} stayed robust under both "
                     f"implementations, {only_ours} under kaflib's only and {only_theirs} under torchattacks' only: "
                     f"the two agree on {n - only_ours - only_theirs} of the {n} images.")
    return Markdown("\n".join(lines))


def cross_check_findings(table):
    """Plain sentences (Markdown) on `cross_check_table()`: per model, the two robust accuracies,
    whether they agree within the interval, and which images only one implementation broke."""
    from IPython.display import Markdown

    lines = []
    for name, row in table.iterrows():
        if "torchattacks" not in row or row.isna()["torchattacks"]:
            lines.append(f"- {_checkpoint(name)}: torchattacks' record is missing (the module docstring has its command).")
            continue
        verdict = ("agree within torchattacks' 95% interval" if row["agree_within_intervals"]
                   else "do not agree within torchattacks' 95% interval")
        line = (f"- {_checkpoint(name)}, {row['n']} images: kaflib {row['kaflib']:.1f}%, torchattacks {row['torchattacks']:.1f}% "
                f"[{row['torchattacks_ci95'][0]:.1f}, {row['torchattacks_ci95'][1]:.1f}]: they {verdict}.")
        if "both_robust" in row and not row.isna()["both_robust"]:
            line += (f" Image by image, {int(row['both_robust'])} are robust under both; torchattacks broke "
                     f"{int(row['only_kaflib_robust'])} that kaflib's cascade left robust, and kaflib broke "
                     f"{int(row['only_torchattacks_robust'])} that torchattacks left robust.")
            if int(row["only_kaflib_robust"]) == 0 and not row.get("kaflib_fab_t", False):
                line += (" So on these images torchattacks' cascade, FAB-T included, found no adversarial example "
                         "that kaflib's missed: leaving FAB-T out did not raise kaflib's number here.")
            elif int(row["only_kaflib_robust"]) == 0:
                line += " So on these images torchattacks found no adversarial example that kaflib missed."
        lines.append(line)
    return Markdown("\n".join(lines))


def attack_agreement_table(folder=None):
    """The image-by-image checks of single attacks (``--from``, `--attack` apgd-t or fab-t) in
    `folder` (default `results/autoattack-crosscheck/standard/`), one row per model and attack:
    attacked (images), agree, share (%), both_robust, only_kaflib_robust and
    only_torchattacks_robust (counts; the image indices are in `attrs["disagreements"]`
    {(model, attack): (only kaflib robust, only torchattacks robust)}); or None."""
    import pandas as pd

    from kaflib.thesis.store import read_json, results_dir

    folder = Path(folder) if folder is not None else results_dir() / "autoattack-crosscheck" / "standard"
    rows, disagreements = [], {}
    for path in sorted(folder.glob("*.json")):
        if path.name.endswith(".partial.json"):
            continue
        record = read_json(path)
        agreement = record.get("agreement", {})
        if "attacked" not in agreement:
            continue
        model = record["model"].removesuffix(".keras")
        rows.append(dict(model=model, attack=record["attack"], attacked=agreement["attacked"],
                         agree=agreement["agree"], share=100 * agreement["share"] if agreement["share"] is not None
                         else None, both_robust=agreement["both_robust"],
                         only_kaflib_robust=len(agreement["only_kaflib_robust"]),
                         only_torchattacks_robust=len(agreement["only_torchattacks_robust"]), n=record["n_images"]))
        disagreements[(model, record["attack"])] = (agreement["only_kaflib_robust"],
                                                    agreement["only_torchattacks_robust"])
    if not rows:
        return None
    table = pd.DataFrame(rows).set_index(["model", "attack"])
    table.attrs["disagreements"] = disagreements
    return table


def attack_agreement_findings(table, required=98.0):
    """Plain sentences (Markdown) on `attack_agreement_table()`: per model and attack, how
    many of the images it was given the two implementations judge alike, against the bar
    `required` (percent), and which images they do not."""
    from IPython.display import Markdown

    names = {"apgd-t": "APGD-T", "fab-t": "FAB-T"}
    lines = []
    for (model, attack), row in table.iterrows():
        ours, theirs = table.attrs["disagreements"][(model, attack)]
        line = (f"- {_checkpoint(model)}, {names.get(attack, attack)}: the two agree on {int(row['agree'])} of the "
                f"{int(row['attacked'])} images it was given ({row['share']:.1f}%): "
                + ("it passes" if row["share"] >= required else "it falls short of") + f" the {required:g}% bar")
        if ours or theirs:
            line += "; " + "; ".join(
                f"only {who} broke image{'s' if len(images) > 1 else ''} {', '.join(map(str, images))}"
                for who, images in (("torchattacks'", ours), ("kaflib's", theirs)) if images)
        lines.append(line + ".")
    return Markdown("\n".join(lines))


def _per_image_agreement(ours, theirs):
    """Image-by-image comparison of two "1"/"0" strings (robust or not): how many images both
    call robust, and how many only one of them does (the other found an adversarial example)."""
    if len(ours) != len(theirs):
        raise ValueError(f"the records cover different images: {len(ours)} against {len(theirs)}.")
    pairs = list(zip(ours, theirs))
    return dict(both_robust=pairs.count(("1", "1")), only_kaflib_robust=pairs.count(("1", "0")),
                only_torchattacks_robust=pairs.count(("0", "1")))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="KERAS_BACKEND=torch python -m kaflib.thesis.crosscheck",
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a float32 .keras model")
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch, the unit of resuming")
    parser.add_argument("--attack", choices=sorted(IMPLEMENTATIONS), default="autoattack",
                        help="torchattacks' standard AutoAttack (default), or one of its attacks with AutoAttack's "
                             "standard settings")
    parser.add_argument("--from", dest="from_record", type=Path, metavar="RECORD",
                        help="kaflib's AutoAttack record of this model (or its .partial.json): attack only the images "
                             "still robust before --attack in its cascade, and compare image by image (needed for "
                             "apgd-t)")
    args = parser.parse_args(argv)
    import keras

    import kaflib  # noqa: F401 (registers kaflib's layers)
    from kaflib.autoattack import marks
    from kaflib.data import fingerprint, load_cifar10
    from kaflib.evaluate import wilson_interval
    from kaflib.thesis.store import crosscheck_path, environment, partial_path, read_json, write_json

    try:
        if not args.model.is_file():
            raise ValueError(f"model={str(args.model)!r} does not exist.")
        _, (x, y) = load_cifar10(args.data_dir, train_size=1)
        if not 1 <= args.n <= len(y):
            raise ValueError(f"n={args.n!r} is invalid: an integer in [1, {len(y)}].")
        if args.batch_size < 1:
            raise ValueError(f"batch_size={args.batch_size!r} is invalid: an integer >= 1.")
        if args.attack == "apgd-t" and args.from_record is None:
            raise ValueError("attack='apgd-t' needs --from RECORD (kaflib's record to compare with, image by image).")
        x, y = x[:args.n], y[:args.n]
        attacked, theirs_before = np.ones(args.n, bool), None
        if args.from_record is not None:
            record_from = read_json(args.from_record)
            if record_from is None:
                raise ValueError(f"from={str(args.from_record)!r} does not exist.")
            attacked, kaflib_after = cascade_outcomes(record_from, args.attack, args.n)
            theirs_before = attacked
        model = keras.models.load_model(args.model, compile=False)
        parameters = dict(model=args.model.name, n=args.n, seed=args.seed, batch_size=args.batch_size,
                          **({} if args.attack == "autoattack" else {"attack": args.attack}),
                          **({"from": str(args.from_record)} if args.from_record is not None else {}))
        partial = partial_path(args.out)
        saved = read_json(partial)
        if saved is not None and saved["parameters"] != parameters:
            raise ValueError(f"{partial} holds an interrupted cross-check with other parameters "
                             f"({saved['parameters']}): delete it or choose another --out.")
        seconds, tic = (saved or {}).get("seconds", 0.0), time.perf_counter()
        clean = np.argmax(keras.ops.convert_to_numpy(model.predict(x, verbose=0)), -1) == y
        run = dict(autoattack=torchattacks_autoattack, apgd_t=torchattacks_apgd_t,
                   fab_t=torchattacks_fab_t)[args.attack.replace("-", "_")]
        index = np.flatnonzero(attacked)
        robust = np.zeros(args.n, bool)
        robust[index] = run(
            model, x[index], y[index], seed=args.seed, batch_size=args.batch_size, done=(saved or {}).get("done"),
            save=lambda done: write_json(partial, dict(parameters=parameters, done=done,
                                                       seconds=seconds + time.perf_counter() - tic)))
        robust &= clean
    except (ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    import torch
    import torchattacks

    record = dict(model=args.model.name, n_images=args.n, attack=args.attack,
                  implementation=f"torchattacks {torchattacks.__version__} {IMPLEMENTATIONS[args.attack]}",
                  backend=f"keras {keras.__version__} on torch {torch.__version__}", seed=args.seed,
                  clean=dict(accuracy=float(clean.mean()), ci95=wilson_interval(int(clean.sum()), args.n)),
                  robust=dict(accuracy=float(robust.mean()), ci95=wilson_interval(int(robust.sum()), args.n)),
                  per_image=dict(clean=marks(clean), **({"attacked": marks(attacked)} if theirs_before is not None
                                                        else {}), robust=marks(robust)),
                  data=dict(name=f"CIFAR-10 test, the first {args.n} images", fingerprint=fingerprint(x, y)),
                  parameters=parameters, seconds=seconds + time.perf_counter() - tic, environment=environment())
    if theirs_before is not None:
        record["agreement"] = _agreement_on(attacked, kaflib_after, robust, args.from_record)
    else:
        name = args.out.name.removesuffix("-torchattacks.json")  # the record's own name when it is not a pair's
        ours = read_json(crosscheck_path(name, "kaflib", args.out.parent)) if name != args.out.name else None
        if (ours is not None and "per_image" in ours.get("kaflib", {})
                and ours["n_images"] >= args.n):  # both take the first test images in order
            record["agreement"] = dict(
                kaflib_record=ours["kaflib"]["parameters"],
                **_per_image_agreement(ours["kaflib"]["per_image"][ours["attacks"][-1]][:args.n], marks(robust)))
    write_json(args.out, record)
    partial.unlink(missing_ok=True)
    print(f"{args.model.name}: clean {100 * clean.mean():.1f}%, torchattacks {args.attack} {100 * robust.mean():.1f}% "
          f"[{100 * record['robust']['ci95'][0]:.1f}, {100 * record['robust']['ci95'][1]:.1f}] on {args.n} images"
          + (f"; per image against kaflib's record: {record['agreement']}" if "agreement" in record else ""))
    return 0


def _agreement_on(attacked, ours, theirs, source):
    """Image by image on the `attacked` images (bool `(n,)` each): how often kaflib's outcome
    (`ours`, robust after the attack) and torchattacks' (`theirs`) agree, and where they do not;
    kaflib's outcomes are kept (``kaflib_robust``), so the comparison stands on its own when
    `source` is an interrupted record that later finishes (its finished batches do not change)."""
    index = np.flatnonzero(attacked)
    only_ours = [int(i) for i in index if ours[i] and not theirs[i]]
    only_theirs = [int(i) for i in index if theirs[i] and not ours[i]]
    agree = len(index) - len(only_ours) - len(only_theirs)
    from kaflib.autoattack import marks

    return dict(kaflib_record=str(source), attacked=len(index), agree=agree,
                share=agree / len(index) if len(index) else None, kaflib_robust=marks(ours),
                both_robust=int(np.sum(ours[index] & theirs[index])),
                only_kaflib_robust=only_ours, only_torchattacks_robust=only_theirs)


if __name__ == "__main__":
    sys.exit(main())
