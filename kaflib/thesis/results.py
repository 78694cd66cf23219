"""The results as tables, next to the numbers the thesis reports.

The book's chapters read their tables here: `compare_with_thesis` sets a grid's runs
(`kaflib.thesis.runs.load_grid`) beside the thesis' own numbers
(`kaflib.thesis.runs.reported_results`), `kaf_versus_fixed` averages KAFs against fixed
activations, and the study tables (`masking_table`, `checkpoint_audit_table`,
`autoattack_table`, `lr_range_table`, `deep_kaf_table`, `compute_time`) read the studies'
files. Loading is `kaflib.thesis.runs`', the statistics `kaflib.thesis.statistics`', the
words that report the tables `kaflib.thesis.findings`' and `kaflib.thesis.verdicts`';
where results live is `kaflib.thesis.store`'s. The tables are for display: their
accuracies are in percent (fractions everywhere else, thresholds included).
"""

import pandas as pd

from kaflib.activations import KAF_ACTIVATIONS
from kaflib.thesis import store
from kaflib.thesis.runs import (MIN_TRAINED_CLEAN, leaderboard_entries, load_grid, load_pgd_curves, load_run,
                                read_grid_study, reported_results, train_seconds)
from kaflib.thesis.statistics import MASKING_FLAGS, split_current
# Re-exported for callers of this module from before it was split (see __all__).
from kaflib.thesis.findings import PROTOCOL_FIXED, PROTOCOL_THESIS, autoattack_findings

__all__ = ["PROTOCOL_THESIS", "PROTOCOL_FIXED", "compare_with_thesis", "kaf_versus_fixed", "scale_caption",
           "masking_table", "checkpoint_audit_table", "autoattack_table", "lr_range_tests", "lr_range_table",
           "deep_kaf_table", "compute_time",
           # re-exported for callers of the module before it was split (`kaflib.thesis.runs`, `.findings`)
           "reported_results", "leaderboard_entries", "autoattack_findings"]



def compare_with_thesis(measured, grid):
    """Measured vs reported accuracies per activation, in the thesis' row order.

    Returns a DataFrame indexed by activation with columns `clean (ours)`,
    `robust (ours)` (the mean over seeds), `clean sd (ours)`, `robust sd (ours)`
    (the standard deviation over seeds, NaN for one seed), `seeds`, `clean (thesis)`,
    `robust (thesis)`; activations missing on either side have NaN there.
    `attrs["runs"]` holds the runs themselves (act, seed, clean_acc, robust_acc),
    for figures that draw one point per seed.
    """
    reported = reported_results(grid).set_index("activation")
    ours = measured.groupby("act").agg(clean=("clean_acc", "mean"), robust=("robust_acc", "mean"),
                                       clean_sd=("clean_acc", "std"), robust_sd=("robust_acc", "std"),
                                       seeds=("seed", "count")) if len(measured) else \
        pd.DataFrame(columns=["clean", "robust", "clean_sd", "robust_sd", "seeds"])
    from kaflib.activations import ACTIVATIONS

    rank = {a: i for i, a in enumerate(ACTIVATIONS)}
    order = list(reported.index) + sorted((a for a in ours.index if a not in reported.index),
                                          key=lambda a: (rank.get(a, len(rank)), a))
    table = pd.DataFrame(index=pd.Index(order, name="activation"))
    table["clean (ours)"] = ours["clean"]
    table["robust (ours)"] = ours["robust"]
    table["clean sd (ours)"] = ours["clean_sd"]
    table["robust sd (ours)"] = ours["robust_sd"]
    table["seeds"] = ours["seeds"]
    table["clean (thesis)"] = reported["clean_acc"]
    table["robust (thesis)"] = reported["robust_acc"]
    table = table.astype(float)
    table.attrs["runs"] = measured[["act", "seed", "clean_acc", "robust_acc", "momentum", "recipe",
                                    "kaf_random_stddev"]].copy()
    return table


def kaf_versus_fixed(grids=("thesis-vgg", "thesis-resnet20"), path=None, min_clean=MIN_TRAINED_CLEAN, runs="current"):
    """Mean clean and robust accuracy (%) of the KAF runs vs the fixed-activation runs, per grid.

    One row per grid and source (``ours`` / ``thesis``), with the number of runs
    behind the means (every seed counts; an activation's seeds are averaged before the
    activations are). Runs whose clean accuracy is below `min_clean` (a fraction) did not
    train (10 classes: chance is 0.1); they are left out of the means and named in
    the column ``did not train``, so one failed run does not pass for a
    robustness result. With `runs="current"` our runs trained with an earlier recipe
    (not `is_current`) are left out too and named in ``earlier recipe``; `runs="all"`
    keeps them. The thesis' claim (KAFs no more robust than fixed smooth
    activations) is read off this table.
    """
    rows = []
    for grid in grids:
        measured, stale = split_current(load_grid(grid, path), runs)
        earlier = ", ".join(sorted({r.act + (f" seed {r.seed}" if r.seed else "") for r in stale.itertuples()}))
        table = compare_with_thesis(measured, grid)
        for who in ("ours", "thesis"):
            failed = table[f"clean ({who})"] < 100 * min_clean
            trained = table[table[f"robust ({who})"].notna() & ~failed]
            is_kaf = trained.index.isin(KAF_ACTIVATIONS)
            rows.append({"grid": grid, "source": who,
                         "KAFs: mean robust (%)": trained.loc[is_kaf, f"robust ({who})"].mean(),
                         "fixed: mean robust (%)": trained.loc[~is_kaf, f"robust ({who})"].mean(),
                         "KAFs: mean clean (%)": trained.loc[is_kaf, f"clean ({who})"].mean(),
                         "fixed: mean clean (%)": trained.loc[~is_kaf, f"clean ({who})"].mean(),
                         "runs": int(trained["seeds"].sum()) if who == "ours" else len(trained),
                         "did not train": ", ".join(table.index[failed]),
                         "earlier recipe": earlier if who == "ours" else ""})
    return pd.DataFrame(rows)


def scale_caption(measured):
    """A caption fragment stating the data scale and attack of the measured runs."""
    if not len(measured):
        return "no runs yet"
    part = [" and ".join(sorted(set(measured["data"]))),
            "/".join(str(int(v)) for v in sorted(set(measured["epochs"]))) + " epochs"]
    steps = "/".join(str(int(v)) for v in sorted(set(measured["pgd_steps"])))
    restarts = "/".join(str(int(v)) for v in sorted(set(measured["pgd_restarts"])))
    tests = "/".join(str(int(v)) for v in sorted(set(measured["test_size"])))
    presets = "/".join(sorted(set(measured["preset"])))
    momenta = "/".join(f"{m:g}" for m in sorted(set(measured["momentum"])))
    recipes = "/".join(sorted(set(measured["recipe"])))
    stds = sorted({s for s in measured["kaf_random_stddev"] if s == s and s is not None})
    random_kafs = f", random KAFs N(0, {'/'.join(f'{s:g}' for s in stds)}²)" if stds else ""
    return (f"this project: {', '.join(part)} ({presets} preset: SGD momentum {momenta}, {recipes} "
            f"layers{random_kafs}), PGD-{steps} with {restarts} restart(s) on {tests} test images; "
            f"thesis: CIFAR-10 full (50000/10000), SGD momentum 0, thesis layers, random KAFs N(0, 0.05²)")


def masking_table(grids=("thesis-vgg", "thesis-resnet20", "thesis-checkpoints"), path=None):
    """The `masking-checks` studies of `grids` as one table, or None if none exists.

    One row per (grid, model). Columns (percent): clean, pgd (ART PGD-50),
    square, surrogate (KAF models), worst (robust to all of them), acc_at_max_eps,
    transfer_in, transfer_out; apgd_ce and apgd_dlr_t (robust to APGD-CE and
    APGD-T) from `results/apgd/<grid>.json`, or for `thesis-checkpoints` from the
    checkpoint audit (same 256 test images); where the grid has
    `pgd-curves`, pgd_curve_50 and pgd_curve_last (kaflib PGD after 50
    iterations and after the curve's last count); then the flags of
    `MASKING_FLAGS` (bool). `table.attrs["skipped"]` maps (grid, model) to why
    a run was not checked; `table.attrs["parameters"]` maps grid to its study's
    parameters and `table.attrs["test_images"]` to its number of test images.

    A study that rests on a superseded run (`runs.read_grid_study`) is left out: its
    grid has no rows (masking checks) or no APGD or curve columns.
    """
    root = store.results_dir(path)
    tables, skipped, parameters, test_images = [], {}, {}, {}
    for grid in grids:
        study = read_grid_study("masking", grid, root)
        if study is None:
            continue
        payload, rows = study
        parameters[grid] = payload["parameters"]
        test_images[grid] = payload["data"]["test"]
        skipped.update({(grid, m): why for m, why in payload["parameters"].get("skipped", {}).items()})
        rows = rows.assign(grid=grid)
        if grid == "thesis-checkpoints":
            audit = checkpoint_audit_table(store.audit_path(root))
            if audit is not None:  # the audit row of the very checkpoint each model was loaded from
                stems = rows["model"].map(payload["parameters"]["checkpoints"])
                for attack in ("apgd_ce", "apgd_dlr_t"):
                    rows[attack] = stems.map(audit[attack] / 100)
        elif (apgd := read_grid_study("apgd", grid, root)) is not None:
            apgd = apgd[1].set_index("model")
            for attack in ("apgd_ce", "apgd_dlr_t"):
                rows[attack] = rows["model"].map(apgd[attack])
        curves = load_pgd_curves(grid, root)
        if curves:
            last = {m: c.iloc[-1] for m, c in curves.items()}
            at_50 = {m: c.set_index("iterations")["robust_acc"].get(50, float("nan")) for m, c in curves.items()}
            rows["pgd_curve_50"] = rows["model"].map(at_50)
            rows["pgd_curve_last"] = rows["model"].map({m: r["robust_acc"] for m, r in last.items()})
            rows["not_converged"] = rows["pgd_curve_50"] - rows["pgd_curve_last"] > 0.01
        tables.append(rows)
    if not tables:
        return None
    table = pd.concat(tables, ignore_index=True).set_index(["grid", "model"])
    flags = [f for f in MASKING_FLAGS if f in table]
    accuracies = [c for c in ("clean", "pgd", "apgd_ce", "apgd_dlr_t", "square", "surrogate", "worst",
                              "acc_at_max_eps", "transfer_in", "transfer_out", "pgd_curve_50", "pgd_curve_last")
                   if c in table]
    table = pd.concat([table[accuracies] * 100, table[flags].fillna(False).astype(bool)], axis=1)
    table.attrs.update(skipped=skipped, parameters=parameters, test_images=test_images)
    return table


def checkpoint_audit_table(path=None):
    """`results/thesis-checkpoints.json` as a table, one row per checkpoint, or None if absent.

    Columns (percent): clean, pgd, apgd_ce, apgd_dlr_t, worst, each attack's
    `<attack>_low` / `<attack>_high` (95% Wilson interval), `float32 agreement`
    (clean predictions of the float32 twin equal to the published model's),
    the thesis' protocol variants (`protocol: ...`, where run), `thesis clean` /
    `thesis robust` (the thesis' reported numbers for the checkpoint's
    activation) and `thesis in PGD interval` (whether the thesis' robust
    accuracy lies inside our PGD-50 95% interval; None without a thesis number).
    """
    audit = store.read_json(path if path is not None else store.audit_path())
    if audit is None:
        return None
    reported = reported_results("resnet_fast_at").set_index("activation")
    rows = []
    for name, r in audit["checkpoints"].items():
        row = dict(checkpoint=name.removesuffix(".zip"), activation=r["activation"], clean=100 * r["clean"])
        for attack in ("pgd", "apgd_ce", "apgd_dlr_t", "worst"):
            row[attack] = 100 * r[attack]["accuracy"]
            row[f"{attack}_low"], row[f"{attack}_high"] = (100 * v for v in r[attack]["ci95"])
        if "float32_agreement" in r:
            row["float32 agreement"] = 100 * r["float32_agreement"]
        for variant, accuracy in r.get("protocol", {}).items():
            row[f"protocol: {variant}"] = 100 * accuracy
        known = r["activation"] in reported.index
        row["thesis clean"] = reported.loc[r["activation"], "clean_acc"] if known else float("nan")
        row["thesis robust"] = reported.loc[r["activation"], "robust_acc"] if known else float("nan")
        row["thesis in PGD interval"] = (bool(row["pgd_low"] <= row["thesis robust"] <= row["pgd_high"])
                                         if known else None)
        rows.append(row)
    table = pd.DataFrame(rows).set_index("checkpoint")
    table.attrs["parameters"] = audit["parameters"]
    return table


def lr_range_tests(model="resnet20"):
    """{activation: (metadata, rows)} of the committed LR range tests behind the `quick`
    preset's ranges (the thesis' layers, plain SGD), in `ACTIVATIONS` order."""
    from kaflib.activations import ACTIVATIONS
    from kaflib.thesis.studies import lr_range_name

    found = {}
    for act in ACTIVATIONS:
        if (study := store.read_study("lr-range", lr_range_name(model, act, "thesis", "thesis", 0.0))) is not None:
            found[act] = study
    return found


def lr_range_table(model="resnet20"):
    """Per activation with an LR range test (`lr_range_tests`): the range `suggest_lr_range` reads
    from it, the range the `quick` preset uses, and the thesis' range where one is on record
    (`experiment.RESNET20_LEARNING_RATES`); None without tests."""
    from kaflib.thesis.experiment import QUICK_RESNET20_LEARNING_RATES, RESNET20_LEARNING_RATES
    from kaflib.train import suggest_lr_range

    rows = []
    for act, (meta, table) in lr_range_tests(model).items():
        low, high, rule = suggest_lr_range(table)
        quick = QUICK_RESNET20_LEARNING_RATES.get(act, (None, None))
        thesis = RESNET20_LEARNING_RATES.get(act, (None, None))
        rows.append({"activation": act, "test: min_lr": low, "test: max_lr": high, "loss": rule,
                     "quick: min_lr": quick[0], "quick: max_lr": quick[1],
                     "thesis: min_lr": thesis[0], "thesis: max_lr": thesis[1],
                     "steps": len(table), "minutes": meta["seconds"] / 60})
    return pd.DataFrame(rows).set_index("activation") if rows else None


def autoattack_table(results=None):
    """AutoAttack on the published checkpoints, one row per checkpoint: its standard record
    (`results/autoattack-standard/*.json`: APGD-CE, APGD-T with AutoAttack's DLR loss, FAB-T,
    Square) where there is one, else its earlier record (`results/autoattack/*.json`: no
    FAB-T, and APGD-T with ART's targeted DLR loss); None if there are none.

    Both are written by ``python -m kaflib.evaluate ZIP --n 512 --batch-size 64 --out FILE``
    (the standard one with ``--reuse`` the earlier record).

    Columns (percent): activation, version ("standard" or "without FAB-T"), clean, autoattack
    (the version's worst case), earlier (the earlier record's), each with `<column>_low` /
    `<column>_high` (95% Wilson interval); after each attack the record ran (apgd-ce,
    apgd-t, apgd-t-art, fab-t, square: the cascade so far); n_images; `<attack> images/s`;
    fab-t broke (images FAB-T broke that APGD-CE and APGD-T had not) and fab-t share (% of the
    evaluation's seconds, Square's reused outcomes counted at their first run's rate);
    apgd-t broke and apgd-t-art broke (images each targeted APGD broke after APGD-CE; ART's
    from the earlier record only where the standard one reused its APGD-CE, so both start from
    the same images); reused (the standard record took APGD-CE's outcomes from the earlier
    one, ``--reuse``; False for a record made afresh; None without a standard record); earlier apgd-ce (the earlier record's
    accuracy after APGD-CE, where both records exist);
    minutes (wall time). `attrs`: ``attacks`` (the attack columns present, in cascade
    order), ``per_image`` {checkpoint: (n_images,) bool, robust to the whole cascade} and
    ``selection`` {checkpoint: which test images}, for `autoattack_paired_differences`;
    ``standard`` and ``checkpoints`` (how many rows are standard, and in all).
    """
    import numpy as np

    from kaflib.autoattack import ATTACKS, record_attacks

    earlier, standard = ({r["name"]: r for r in map(store.read_json, store.study_files(kind, results))}
                         for kind in ("autoattack", "autoattack-standard"))
    if not earlier and not standard:
        return None
    rows, per_image, selection, present = [], {}, {}, set()
    for name in sorted(set(earlier) | set(standard)):
        record = standard.get(name, earlier.get(name))
        k, summary = record["kaflib"], record["kaflib"]["summary"]
        names = record_attacks(record)  # today's names: an earlier record's "apgd-t" is ART's
        attacks = dict(zip(names, summary["attacks"].values()))
        present.update(names)
        marks = k.get("per_image")
        if marks:  # the cascade's last attack saw every image still robust: its marks are the worst case
            per_image[name] = np.array([m == "1" for m in marks[list(summary["attacks"])[-1]]])
            selection[name] = k.get("data", {}).get("selection")
        row = dict(checkpoint=name, activation=k["model"].get("activation"), n_images=record["n_images"],
                   version="standard" if record.get("version") == "standard" else "without FAB-T")
        for column, rate in [("clean", summary["clean"]), *attacks.items(), ("autoattack", summary["worst"])]:
            row[column] = 100 * rate["accuracy"]
            row[f"{column}_low"], row[f"{column}_high"] = (100 * v for v in rate["ci95"])
        if name in earlier:
            worst = earlier[name]["kaflib"]["summary"]["worst"]
            row["earlier"] = 100 * worst["accuracy"]
            row["earlier_low"], row["earlier_high"] = (100 * v for v in worst["ci95"])
        for attack, rate in attacks.items():
            row[f"{attack} images/s"] = rate["images_per_second"]
        if "fab-t" in attacks:
            row["fab-t broke"] = attacks["apgd-t"]["robust"] - attacks["fab-t"]["robust"]
            spent = {a: rate["seconds"] + rate.get("seconds_reused", 0.0) for a, rate in attacks.items()}
            row["fab-t share"] = 100 * spent["fab-t"] / sum(spent.values())
        row["reused"] = "apgd-ce" in k.get("reused", {}).get("attacks", []) if name in standard else None
        for version in (record, earlier.get(name)):
            if version is None:
                continue
            done = dict(zip(record_attacks(version), version["kaflib"]["summary"]["attacks"].values()))
            if version is not record:
                row["earlier apgd-ce"] = 100 * done["apgd-ce"]["accuracy"]
                if not row["reused"]:  # another APGD-CE's survivors: its APGD-T counts compare with nothing here
                    continue
            for targeted in ("apgd-t", "apgd-t-art"):
                if targeted in done:
                    row[f"{targeted} broke"] = done["apgd-ce"]["robust"] - done[targeted]["robust"]
        row["minutes"] = k["seconds"]["total"] / 60
        rows.append(row)
    table = pd.DataFrame(rows).set_index("checkpoint")
    table.attrs["attacks"] = [a for a in ATTACKS if a in present]
    table.attrs["per_image"], table.attrs["selection"] = per_image, selection
    table.attrs["standard"], table.attrs["checkpoints"] = int((table["version"] == "standard").sum()), len(table)
    return table


def compute_time(path=None):
    """Wall time of every committed result, in minutes: DataFrame(file, kind, minutes).

    Training time is the sum of the per-epoch `seconds` of the history (it
    survives resumed runs, whose `metrics.json` times only the last sitting),
    plus the final attack for grid runs; other studies count their own
    `seconds`, the checkpoint audit the sum over checkpoints. Times are as
    measured, on whatever else was sharing the machine.
    """
    root = store.results_dir(path)
    rows = []

    def add(file, kind, seconds):
        rows.append(dict(file=str(file.relative_to(root)), kind=kind, minutes=seconds / 60))

    for under, kind in ((None, "grid run"), (store.LIPSCHITZ_EVOLUTION, "lipschitz-evolution run")):
        for grid in store.grid_dirs(root, under):
            for folder in store.run_folders(grid.name, root, under):
                if (folder / "metrics.json").is_file():
                    run = load_run(folder)
                    add(folder, kind, train_seconds(run["history"], run) + run["seconds"]["attack"])
    for kind in store.STUDIES:
        for study in store.study_files(kind, root):
            payload = store.read_json(study)
            if kind == "autoattack":  # a RobustBench-format record keeps its times under "kaflib"
                add(study, kind, payload["kaflib"]["seconds"]["total"])
                continue
            epochs = pd.DataFrame(payload.get("rows", []))
            trained = kind == "deep-kaf" and "seconds" in epochs
            add(study, kind, epochs["seconds"].sum() if trained else payload["seconds"])
    audit = store.read_json(store.audit_path(root))
    if audit is not None:
        add(store.audit_path(root), "checkpoint audit", sum(c["seconds"]["total"] for c in audit["checkpoints"].values()))
    return pd.DataFrame(rows, columns=["file", "kind", "minutes"])


def deep_kaf_table(studies):
    """One row per `load_deep_kaf` study: the init gradient ratio (first conv layer's
    norm over the last conv layer's), the median over KAF layers of their max |f'|,
    the best and last clean test accuracy (%), the last one minus that of the same
    model with ReLU when that study is there (points), epochs trained and scheduled
    (the study's `epochs` parameter), divergence,
    training minutes (summed over epochs, so resumed studies count every sitting)."""
    rows = []
    for label, study in studies.items():
        norms = study["init_gradient_norms"]
        convs = norms[norms["layer"].str.startswith("conv")]
        history, slopes = study["rows"], study["init_kaf_slopes"]
        rows.append({
            "run": label,
            "init grad first/last conv": convs["norm"].iloc[0] / convs["norm"].iloc[-1],
            "KAF max |f'| (median layer)": slopes["max_slope"].median() if len(slopes) else float("nan"),
            "best clean %": 100 * history["test_clean_acc"].max() if len(history) else float("nan"),
            "last clean %": 100 * history["test_clean_acc"].iloc[-1] if len(history) else float("nan"),
            "epochs": len(history),
            "scheduled epochs": study.get("parameters", {}).get("epochs", len(history)),
            "diverged": "yes" if study["diverged"] else "no",
            "minutes": (history["seconds"].sum() if "seconds" in history else study["seconds"]) / 60,
        })
    table = pd.DataFrame(rows).set_index("run")
    relu = {label.split(" / ")[0]: row["last clean %"] for label, row in table.iterrows()
            if label.split(" / ")[1] == "relu"}
    table.insert(4, "vs ReLU (points)", [row["last clean %"] - relu.get(label.split(" / ")[0], float("nan"))
                                         for label, row in table.iterrows()])
    return table


