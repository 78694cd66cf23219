"""Results of runs as tables, next to the numbers the thesis reports.

The book's chapters read everything through this module: `load_grid` collects
the `metrics.json` of a grid's finished runs, `reported_results` is the thesis'
own numbers (its tables, `reported_results.csv` in the thesis' materials that
`kaflib.thesis.store.thesis_materials_dir` finds; the repository has no copy), and
`compare_with_thesis` puts the two side by side. Where results live is
`kaflib.thesis.store`'s to say. The tables are for display: their accuracies are
in percent (fractions everywhere else, thresholds included).
"""

from importlib import resources
from pathlib import Path

import pandas as pd

from kaflib.thesis.audit import PROTOCOL as _PROTOCOL
from kaflib.activations import KAF_ACTIVATIONS
from kaflib.thesis.experiment import read_metrics
from kaflib.thesis.store import (STUDIES, audit_path, read_json, read_study, results_dir, study_path,
                                 thesis_materials_dir)

__all__ = ["KAF_ACTIVATIONS", "MIN_TRAINED_CLEAN", "MASKING_FLAGS", "results_dir", "load_grid", "load_run",
           "load_histories", "lipschitz_histories", "lipschitz_evolution_findings", "bound_robustness_correlation",
           "reported_results", "reported_results_path", "thesis_numbers_note", "mean_sd", "settings_label", "is_current", "kaf_fixed_difference", "kaf_fixed_finding", "lr_range_tests", "lr_range_table", "leaderboard_entries", "autoattack_table", "autoattack_paired_differences", "autoattack_paired_references", "autoattack_paired_finding", "autoattack_findings", "stopped_note", "compare_with_thesis", "kaf_versus_fixed", "scale_caption",
           "missing_note", "runs_newer_than_study", "outdated_study_note", "test_images", "load_model", "checkpoint_audit_table", "checkpoint_audit_findings",
           "load_pgd_curves", "masking_table", "masking_findings", "masking_verdict", "compute_time",
           "load_deep_kaf", "deep_kaf_table", "study_label"]

#: Clean accuracy (a fraction) below which a CIFAR-10 run counts as not trained (chance is 0.1).
MIN_TRAINED_CLEAN = 0.15

# Names of the first and last rows of `kaflib.thesis.audit.PROTOCOL`.
PROTOCOL_THESIS, PROTOCOL_FIXED = _PROTOCOL[0][0], _PROTOCOL[-1][0]

#: The experiments of the thesis' tables (`reported_results.csv`'s `experiment` column).
THESIS_EXPERIMENTS = ("light_standard", "vgg_fast_at", "resnet_standard", "resnet_fast_at")
_REPORTED_COLUMNS = ["experiment", "model", "activation", "training", "epochs", "min_lr", "max_lr", "clean_acc",
                     "robust_acc", "attack", "source"]
_GRID_EXPERIMENT = {"thesis-light": "light_standard", "thesis-vgg": "vgg_fast_at",
                    "thesis-resnet20": "resnet_fast_at"}

_COLUMNS = ["model", "act", "clean_acc", "robust_acc", "preset", "data", "method", "epochs", "epochs_run", "train_size",
            "test_size", "pgd_steps", "pgd_restarts", "eps", "seed", "train_minutes", "stopped", "momentum", "recipe",
            "kaf_random_stddev", "current", "run_dir"]


def _train_seconds(history, metrics):
    """Training wall time over every sitting: the per-epoch `seconds` of the `history`
    DataFrame (or None) when present (`metrics.json` times only the last sitting of a
    resumed run)."""
    if history is not None and "seconds" in history:
        return float(history["seconds"].sum())
    return metrics["seconds"]["train"]


def _row(folder, metrics):
    from kaflib.thesis.experiment import recorded_parameters

    p = recorded_parameters(metrics)
    return dict(model=p["model"], act=p["act"], clean_acc=100 * metrics["clean_acc"],
                robust_acc=100 * metrics["robust_acc"], preset=p["preset"], data=_data_name(metrics), method=p["method"],
                epochs=p["epochs"], epochs_run=metrics.get("epochs_run", p["epochs"]),
                train_size=metrics["data"]["train"],
                test_size=metrics["data"]["test"], pgd_steps=p["pgd_steps"],
                pgd_restarts=p["pgd_restarts"], eps=p["eps"], seed=p["seed"],
                train_minutes=_train_seconds(_read_history(folder), metrics) / 60, stopped=_stopped(metrics),
                momentum=p["momentum"], recipe=p["recipe"], kaf_random_stddev=p["kaf_random_stddev"],
                current=is_current(metrics), run_dir=str(folder))


def _data_name(metrics):
    """The readable name of a run's images ("CIFAR-10, quick subset 5085/1017"; a run that
    recorded none: its sizes)."""
    data = metrics["data"]
    return data.get("name") or f"CIFAR-10, {data['train'] + data.get('guard', 0)}/{data['test']} images"


def is_current(metrics):
    """Whether a finished run is what its preset gives now: True when rerunning its grid
    with the same preset would skip it, False when it was trained with an earlier
    recipe or with parameters set by hand (it would be reported as stale)."""
    from kaflib.thesis.experiment import parameter_differences, recorded_parameters, resolve

    p = recorded_parameters(metrics)
    try:
        now = resolve(model=p["model"], act=p["act"], preset=p["preset"], seed=p["seed"], grid=p["grid"],
                      kaf_kernel=p.get("kaf_kernel", "gaussian"), mixed_precision=p.get("mixed_precision"))
    except (KeyError, ValueError):
        return False
    return not parameter_differences(metrics, now)


def _stopped(metrics):
    """Why a run ended early ("" when it ran every epoch): divergence or catastrophic overfitting."""
    epochs, best = metrics.get("epochs_run"), metrics.get("best_epoch")
    weights = f"epoch {best}'s weights" if best else "its initial weights (no epoch finished)"
    if metrics.get("diverged"):
        return f"diverged (non-finite gradient) in epoch {epochs + 1}; evaluated with {weights}"
    if metrics.get("collapsed_epoch"):
        return f"guard accuracy collapsed in epoch {metrics['collapsed_epoch']}; evaluated with {weights}"
    return ""


def load_run(folder):
    """One finished run as a dict: `metrics.json` plus its `history` (DataFrame) and `run_dir`.

    Raises FileNotFoundError, naming the folder, when the run has not finished.
    """
    folder = Path(folder)
    metrics = read_metrics(folder)
    if metrics is None:
        raise FileNotFoundError(f"No finished run in {folder} (no metrics.json).")
    return dict(metrics, history=_read_history(folder), run_dir=folder)


def _read_history(folder):
    """A run folder's `history.csv` as a DataFrame, or None without one."""
    history = Path(folder) / "history.csv"
    return pd.read_csv(history) if history.is_file() else None


def load_grid(grid, path=None):
    """One row per finished run of `grid` (`<results>/<grid>/<model>-<act>/metrics.json`).

    Columns: model, act, clean_acc and robust_acc (%), preset, data (the images' readable name), method, epochs
    (planned), epochs_run (finished; fewer when the run stopped early),
    train_size and test_size (images), pgd_steps, pgd_restarts, eps,
    seed, train_minutes, stopped (why the run ended early, "" if it did not),
    momentum, recipe, kaf_random_stddev (as recorded, or the values of
    `experiment.UNRECORDED_PARAMETERS` for runs from before they were),
    current (`is_current`: trained with what its preset gives now), run_dir.
    Empty (with these columns) when nothing ran.
    """
    root = results_dir(path) / grid
    rows = []
    for folder in sorted(root.glob("*/")) if root.is_dir() else []:
        metrics = read_metrics(folder)
        if metrics is not None:
            rows.append(_row(folder, metrics))
    return pd.DataFrame(rows, columns=_COLUMNS)


def load_histories(measured):
    """Per-epoch histories of the runs of a `load_grid` table: dict act -> DataFrame (runs
    without one, or with no finished epoch, left out)."""
    runs = {row.act: load_run(row.run_dir)["history"] for row in measured.itertuples()}
    return {act: history for act, history in runs.items() if history is not None and not history.empty}


def lipschitz_histories(grids=("thesis-vgg", "thesis-resnet20"), path=None):
    """{"<model> / <act>": history} of the finished runs whose history has the Lipschitz
    columns (runs trained with `fit(..., epoch_metrics=lipschitz_epoch_metrics)`): the
    grids' own runs, then the reruns in `<results>/lipschitz-evolution/<grid>/` of runs
    trained before those columns existed (a grid's own run wins a shared label)."""
    from kaflib.thesis.grid import GRIDS

    histories, roots = {}, (results_dir(path), results_dir(path) / "lipschitz-evolution")
    for grid in grids:
        found = {}
        for root in roots:
            for row in load_grid(grid, root).itertuples():
                history = load_run(row.run_dir)["history"]
                if history is not None and "lipschitz_bound_log10" in history:
                    found.setdefault(row.act, (row.model, history))
        for act in sorted(found, key=list(GRIDS[grid][1]).index):  # the grid's order
            model, history = found[act]
            histories[f"{model} / {act}"] = history
    return histories


def lipschitz_evolution_findings(histories):
    """Markdown: per run of `lipschitz_histories()`, its network bound, steepest
    activation and training accuracy at the first and the last epoch."""
    from IPython.display import Markdown

    lines = []
    for label, history in histories.items():
        first, last = history.iloc[0], history.iloc[-1]
        lines.append(f"- {label}: bound 10^{first['lipschitz_bound_log10']:.1f} to "
                     f"10^{last['lipschitz_bound_log10']:.1f}; steepest activation "
                     f"{first['activation_lipschitz_max']:.1f} to {last['activation_lipschitz_max']:.1f}; "
                     f"training accuracy {100 * first['train_acc']:.1f}% to {100 * last['train_acc']:.1f}% "
                     f"({len(history)} epochs).")
    return Markdown("\n".join(lines))


def bound_robustness_correlation(runs, min_clean=None):
    """Does a steeper network hold up worse? Per model, over the runs that trained
    (clean accuracy at least `min_clean`, a fraction; default `MIN_TRAINED_CLEAN`),
    the Spearman rank correlation of robust accuracy with the network's log10
    Lipschitz bound and with its largest activation constant (-1: the steeper,
    the less robust). `runs`: the rows of `lipschitz` studies. Columns: model,
    runs, bound_vs_robust, activation_vs_robust."""
    min_clean = MIN_TRAINED_CLEAN if min_clean is None else min_clean
    rows = []
    for model, group in runs[runs["clean_acc"] >= min_clean].groupby("model", sort=False):
        ranks = group[["log10_bound", "max_activation", "robust_acc"]].rank()  # Spearman: Pearson on ranks
        rows.append(dict(model=model, runs=len(group),
                         bound_vs_robust=ranks["log10_bound"].corr(ranks["robust_acc"]),
                         activation_vs_robust=ranks["max_activation"].corr(ranks["robust_acc"])))
    return pd.DataFrame(rows, columns=["model", "runs", "bound_vs_robust", "activation_vs_robust"])


def reported_results_path():
    """`reported_results.csv` of the thesis' materials, or None where this machine has none."""
    folder = thesis_materials_dir()
    path = folder / "reported_results.csv" if folder is not None else None
    return path if path is not None and path.is_file() else None


def reported_results(experiment=None):
    """The thesis' reported numbers (one row per model/activation/experiment), read
    from `reported_results_path()`; an empty table with the same columns where this
    machine has no thesis materials (`thesis_numbers_note` says so in the book).

    Args:
        experiment: None for all rows, or one of ``light_standard``,
            ``vgg_fast_at``, ``resnet_standard``, ``resnet_fast_at``, or a grid
            name (``thesis-light``, ``thesis-vgg``, ``thesis-resnet20``).
    """
    name = _GRID_EXPERIMENT.get(experiment, experiment)
    if experiment is not None and name not in THESIS_EXPERIMENTS:
        raise ValueError(f"experiment={experiment!r} is not in the thesis' results; valid: "
                         f"{', '.join(THESIS_EXPERIMENTS)} or a grid name ({', '.join(_GRID_EXPERIMENT)}).")
    path = reported_results_path()
    table = pd.read_csv(path) if path is not None else pd.DataFrame(columns=_REPORTED_COLUMNS)
    if experiment is None:
        return table
    return table[table["experiment"] == name].reset_index(drop=True)


def thesis_numbers_note():
    """A Markdown note for chapters that set the thesis' numbers beside ours: empty
    when `reported_results.csv` was found, else where it was looked for."""
    from IPython.display import Markdown

    if reported_results_path() is not None:
        return _markdown("")
    return Markdown("> **The thesis' own numbers are not on this machine**, so the `thesis` columns are empty. "
                    "They are read from `reported_results.csv` in the thesis' materials: `shared/thesis/` beside "
                    "the checkout, or the folder `KAFLIB_THESIS_DIR` names.")


def _markdown(text):
    """`IPython.display.Markdown(text)` that shows nothing when `text` is empty (an empty
    Markdown shows its repr, `<IPython.core.display.Markdown object>`); `.data` is `text`."""
    from IPython.display import Markdown, display

    class Note(Markdown):
        def _ipython_display_(self):
            if self.data:
                display(Markdown(self.data))

    return Note(text)


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


#: The layer recipes of `kaflib.models.LAYER_RECIPES` in words.
_RECIPE_WORDS = {"thesis": "thesis layers", "he-bn0.9": "He-normal convs, batch-norm momentum 0.9"}


def settings_label(momentum, recipe, kaf_random_stddev=None):
    """How a run was trained, in a few words: SGD momentum, layer recipe and, for random
    KAFs, their init (e.g. "momentum 0, thesis layers, KAF N(0, 0.05²)"); the layer recipe
    in words (`kaflib.models.LAYER_RECIPES`: "he-bn0.9" reads "He-normal convs, batch-norm
    momentum 0.9")."""
    label = f"momentum {momentum:g}, {_RECIPE_WORDS.get(recipe, f'{recipe} layers')}"
    if kaf_random_stddev is not None and kaf_random_stddev == kaf_random_stddev:
        label += f", KAF N(0, {kaf_random_stddev:g}²)"
    return label


def mean_sd(comparison, digits=1):
    """`compare_with_thesis` for reading: our accuracies as "mean ± sd (n seeds)" strings
    (the mean alone for one seed), the thesis' numbers beside them, and how our runs of
    each activation were trained (`settings_label`; several, joined by " / ", when its
    runs differ), so that runs made with an earlier recipe are never read as current."""
    def cell(mean, sd, n):
        if mean != mean:
            return ""
        return f"{mean:.{digits}f}" + (f" ± {sd:.{digits}f} ({int(n)} seeds)" if n > 1 else "")

    frame = pd.DataFrame({
        "clean (ours)": [cell(*v) for v in comparison[["clean (ours)", "clean sd (ours)", "seeds"]].to_numpy()],
        "robust (ours)": [cell(*v) for v in comparison[["robust (ours)", "robust sd (ours)", "seeds"]].to_numpy()],
        "clean (thesis)": comparison["clean (thesis)"].round(digits),
        "robust (thesis)": comparison["robust (thesis)"].round(digits)}, index=comparison.index)
    runs = comparison.attrs.get("runs")
    if runs is not None and len(runs) and "recipe" in runs:
        labels = {act: " / ".join(sorted({settings_label(r.momentum, r.recipe, r.kaf_random_stddev)
                                          for r in group.itertuples()}))
                  for act, group in runs.groupby("act")}
        frame["trained with (ours)"] = [labels.get(act, "") for act in frame.index]
    return frame


def kaf_fixed_difference(measured, min_clean=MIN_TRAINED_CLEAN, confidence=0.95, runs="current"):
    """KAF minus fixed-activation accuracy, paired by seed, with a t interval over seeds.

    With `runs="current"` only the runs trained with what their preset gives now
    (the `current` column) are compared, so that runs of an earlier recipe never
    enter the interval beside the current ones; they are named in `left_out`.
    `runs="all"` compares every run. The seeds are the most that a KAF and a fixed
    activation both have a trained run (clean accuracy >= `min_clean`) for; for each
    of them, the mean robust (and clean) accuracy of the KAF runs minus that of the
    fixed-activation runs, over the activations trained on all those seeds; then the
    mean of these per-seed differences and its `confidence` t interval (NaN with one
    seed).

    Returns:
        dict: seeds, kafs and fixed (the activations compared), left_out (runs not
        current, as "act seed N"), per_seed (DataFrame: seed, robust_diff,
        clean_diff, in points), and for "robust" and "clean": mean, low, high.
    """
    from scipy import stats

    measured, stale = _split_current(measured, runs)
    left_out = [f"{r.act} seed {r.seed}" for r in stale.itertuples()]
    trained = measured[measured["clean_acc"] >= 100 * min_clean]
    seeds, complete = _paired_seeds({a: set(runs["seed"]) for a, runs in trained.groupby("act")})
    kafs = [a for a in complete if a in KAF_ACTIVATIONS]
    fixed = [a for a in complete if a not in KAF_ACTIVATIONS]
    rows = []
    for seed in seeds:
        runs = trained[(trained["seed"] == seed) & trained["act"].isin(complete)]
        is_kaf = runs["act"].isin(KAF_ACTIVATIONS)
        rows.append(dict(seed=seed, **{f"{k}_diff": runs.loc[is_kaf, f"{k}_acc"].mean()
                                       - runs.loc[~is_kaf, f"{k}_acc"].mean() for k in ("robust", "clean")}))
    per_seed = pd.DataFrame(rows, columns=["seed", "robust_diff", "clean_diff"])
    result = dict(seeds=seeds, kafs=kafs, fixed=fixed, left_out=left_out, per_seed=per_seed)
    for kind in ("robust", "clean"):
        values = per_seed[f"{kind}_diff"].dropna().to_numpy()
        mean = float(values.mean()) if len(values) else float("nan")
        if len(values) > 1:
            half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / len(values) ** 0.5
        else:
            half = float("nan")
        result[kind] = dict(mean=mean, low=mean - half, high=mean + half)
    return result


def _split_current(measured, runs):
    """A `load_grid` table as (runs compared, runs left out): with `runs="current"` the
    `is_current` runs and the others, with `runs="all"` every run and none."""
    if runs not in ("current", "all"):
        raise ValueError(f"runs={runs!r} is invalid: must be 'current' or 'all'.")
    keep = measured["current"].astype(bool) if runs == "current" else pd.Series(True, index=measured.index)
    return measured[keep], measured[~keep]


def _paired_seeds(seeds_of):
    """The seeds to pair on and the activations trained on all of them, from `{act: set of
    seeds}`: the most seeds that at least one KAF and one fixed activation share, then the
    most activations (so a row that has its extra seeds first does not shrink the comparison
    to itself). `([], [])` when no KAF and fixed activation share a seed."""
    candidates = {frozenset(s) for s in seeds_of.values()}
    while True:  # close under intersection: the seed sets several activations share
        more = {a & b for a in candidates for b in candidates if a & b} - candidates
        if not more:
            break
        candidates |= more
    best = ([], [])
    for shared in sorted(candidates, key=sorted):  # ties: the lowest seeds
        members = sorted(a for a, s in seeds_of.items() if shared <= s)
        if not any(a in KAF_ACTIVATIONS for a in members) or all(a in KAF_ACTIVATIONS for a in members):
            continue
        if (len(shared), len(members)) > (len(best[0]), len(best[1])):
            best = (sorted(shared), members)
    return best


def kaf_fixed_finding(difference, grid):
    """The conclusion in words, computed from `kaf_fixed_difference`: the paired difference,
    its interval, and whether it is a measurable difference (the interval excludes 0)."""
    from IPython.display import Markdown

    d, n = difference, len(difference["seeds"])
    left_out = (f" Left out, as trained with an earlier recipe or other settings: {', '.join(d['left_out'])}."
                if d.get("left_out") else "")
    if not d["kafs"] or not d["fixed"]:
        return Markdown(f"{grid}: not enough trained runs on every seed to compare KAFs with fixed activations."
                        + left_out)
    lines = []
    for kind in ("robust", "clean"):
        r = d[kind]
        if n < 2:
            lines.append(f"- {kind} accuracy, KAFs minus fixed: {r['mean']:+.1f} points on one seed; no interval "
                         "(one seed), so no claim either way.")
            continue
        verdict = ("no measurable difference" if r["low"] <= 0 <= r["high"]
                   else ("KAFs measurably higher" if r["low"] > 0 else "KAFs measurably lower"))
        lines.append(f"- {kind} accuracy, KAFs minus fixed: {r['mean']:+.1f} points, 95% t interval "
                     f"[{r['low']:+.1f}, {r['high']:+.1f}] over {n} seeds: {verdict}.")
    return Markdown(f"**{grid}** (KAFs: {', '.join(d['kafs'])}; fixed: {', '.join(d['fixed'])}; paired by "
                    f"seed {', '.join(str(s) for s in d['seeds'])}):\n\n" + "\n".join(lines)
                    + ("\n\n" + left_out.strip() if left_out else ""))


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
        measured, stale = _split_current(load_grid(grid, path), runs)
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


def stopped_note(measured):
    """A Markdown list of the runs of a `load_grid` table that ended before their last epoch, and why."""
    from IPython.display import Markdown

    early = measured[measured["stopped"] != ""]
    if not len(early):
        return Markdown("Every run trained for all its epochs.")
    return Markdown("Runs that ended early:\n\n" + "\n".join(
        f"- **{row.model} / {row.act}**: {row.stopped}." for row in early.itertuples()))


def runs_newer_than_study(study, grid, path=None):
    """The runs of `grid` (as "<act>") that finished after the grid study `study`
    ("lipschitz", "masking", "pgd-curves", "apgd") was measured: its numbers for them
    describe the runs those replaced. Grid studies measure each activation's seed-0 run,
    so runs of other seeds never make one outdated. A study file written before studies
    were time-stamped counts as older than every run that records its recipe (the reruns
    with the thesis' recipe and later). [] when either is missing."""
    from kaflib.thesis.experiment import read_metrics

    found = read_study(study, grid, path)
    if found is None:
        return []
    stamp = found[0].get("finished")
    newer = []
    for folder in sorted((results_dir(path) / grid).glob("*/")):
        metrics = read_metrics(folder)
        parameters = (metrics or {}).get("parameters", {})
        if metrics is None or parameters.get("seed", 0) != 0:
            continue
        recorded = "momentum" in parameters
        if (stamp is None and recorded) or (stamp is not None and metrics.get("finished", "") > stamp):
            newer.append(parameters["act"])
    return newer


def outdated_study_note(study, grids, path=None):
    """A Markdown note naming, per grid, the runs that were rerun after `study` measured
    them (see `runs_newer_than_study`); an empty note when every study is current."""
    from IPython.display import Markdown

    lines = [f"- **{grid}**: {', '.join(newer)}" for grid in grids
             if (newer := runs_newer_than_study(study, grid, path))]
    if not lines:
        return _markdown("")
    return Markdown(f"> The `{study}` study was measured before these runs were rerun, so its numbers for "
                    f"them describe the runs they replaced (for runs rerun with the thesis' recipe: the "
                    f"earlier one, see `results/README.md`). Rerun it with `python -m kaflib.thesis.studies "
                    f"{'masking-checks' if study == 'masking' else study} <grid> --force`.\n\n" + "\n".join(lines))


def missing_note(what, command):
    """A Markdown note for a chapter whose results are missing: what, and the command that makes them."""
    from IPython.display import Markdown

    return Markdown(f"> **No results yet for {what}.** They are produced by `{command}`; "
                    "this page picks them up when the book is rebuilt.")


def test_images(size=None, data_dir=None):
    """`(x, y)`: the first `size` CIFAR-10 test images (stratified), or all of them when the
    data on this machine has fewer (the repo's fallback set has 100), or None when the data
    is not on this machine (never downloads: chapters must build offline). Captions should
    say `len(y)`, not `size`."""
    from kaflib.data import load_cifar10

    try:
        return load_cifar10(data_dir, train_size=1, test_size=size, download=False)[1]
    except FileNotFoundError:
        return None
    except ValueError:
        x, y = load_cifar10(data_dir, train_size=1, download=False)[1]
        if isinstance(size, int) and size > len(y):  # fewer images here than asked: take them all
            return x, y
        raise


def load_model(grid, model, act, path=None):
    """The trained `model.keras` of a finished run, or None when the run has not finished."""
    import keras

    from kaflib.thesis.experiment import run_dir

    folder = run_dir(results_dir(path), grid, model, act)
    if read_metrics(folder) is None:
        return None
    return keras.models.load_model(folder / "model.keras")


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
    import json

    path = Path(path) if path is not None else audit_path()
    if not path.is_file():
        return None
    audit = json.loads(path.read_text())
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
        if (study := read_study("lr-range", lr_range_name(model, act, "thesis", "thesis", 0.0))) is not None:
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


def leaderboard_entries():
    """RobustBench's leaderboard entries the book compares with (`kaflib/thesis/leaderboard.csv`,
    copied from RobustBench's model_info files; percent), one row per model."""
    with resources.files("kaflib.thesis").joinpath("leaderboard.csv").open() as f:
        return pd.read_csv(f).set_index("name")


def autoattack_table(results=None):
    """The AutoAttack records of the published checkpoints (`results/autoattack/*.json`, written by
    `python -m kaflib.evaluate ZIP --out results/autoattack/<checkpoint>.json`), one row per
    checkpoint, or None if there are none.

    Columns (percent): activation, clean, apgd-ce, apgd-t, square (the accuracy after each
    attack of the cascade), autoattack, each with `<column>_low` / `<column>_high` (95%
    Wilson interval); n_images; images/s of each attack; minutes (wall time).
    `attrs["per_image"]`: {checkpoint: (n_images,) bool, robust to the whole cascade} for the
    records that keep per-image outcomes, with `attrs["selection"]` {checkpoint: which test
    images}, for `autoattack_paired_differences`.
    """
    import numpy as np

    folder = results_dir(results) / "autoattack"
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    files = [f for f in files if not f.name.endswith(".partial.json")]
    if not files:
        return None
    rows, per_image, selection = [], {}, {}
    for f in files:
        record = read_json(f)
        summary = record["kaflib"]["summary"]
        marks = record["kaflib"].get("per_image")
        if marks:  # the cascade's last attack saw every image still robust: its marks are the worst case
            per_image[record["name"]] = np.array([m == "1" for m in marks[list(summary["attacks"])[-1]]])
            selection[record["name"]] = record["kaflib"].get("data", {}).get("selection")
        row = dict(checkpoint=record["name"], activation=record["kaflib"]["model"].get("activation"),
                   n_images=record["n_images"])
        for column, rate in [("clean", summary["clean"]), *summary["attacks"].items(),
                             ("autoattack", summary["worst"])]:
            row[column] = 100 * rate["accuracy"]
            row[f"{column}_low"], row[f"{column}_high"] = (100 * v for v in rate["ci95"])
        for attack, rate in summary["attacks"].items():
            row[f"{attack} images/s"] = rate["images_per_second"]
        row["minutes"] = record["kaflib"]["seconds"]["total"] / 60
        rows.append(row)
    table = pd.DataFrame(rows).set_index("checkpoint")
    table.attrs["attacks"] = list(summary["attacks"])
    table.attrs["left_out"] = record["left_out"]
    table.attrs["per_image"], table.attrs["selection"] = per_image, selection
    return table


def autoattack_paired_differences(table, reference=None):
    """AutoAttack accuracy of each KAF checkpoint minus a reference checkpoint's, paired on
    the same test images (each image: robust to one model and not the other, or not).

    Two checkpoints attacked on the same images share every image's difficulty, so the
    per-image difference has a much narrower interval than two separate Wilson intervals
    suggest. The interval covers the choice of test images only: there is one published
    checkpoint per activation, so it says nothing about retraining.

    Args:
        table: `autoattack_table()`.
        reference: a checkpoint of `table`, or the activation of exactly one of them (e.g.
            "relu", the thesis' baseline); default the most robust fixed-activation
            checkpoint with per-image outcomes (the hardest comparison for KAF).

    Returns:
        A DataFrame indexed by KAF checkpoint (those with per-image outcomes on the
        reference's images): activation, reference (checkpoint), reference_activation,
        n_images, difference (points),
        low / high (95% normal interval of the mean per-image difference, points),
        only_this / only_reference (images robust to one of the two only), p_exact (exact
        two-sided McNemar test on only_this and only_reference, a check on the
        interval that assumes no normal approximation), p_holm (p_exact adjusted by
        Holm's step-down method for the several KAF checkpoints compared with one
        reference). None when no pair can be formed.
    """
    import numpy as np

    per_image, selection = table.attrs.get("per_image", {}), table.attrs.get("selection", {})
    if reference is None:
        fixed = table[~table["activation"].isin(KAF_ACTIVATIONS) & table.index.isin(list(per_image))]
        if fixed.empty:
            return None
        reference = fixed["autoattack"].idxmax()
    asked = reference
    if reference not in per_image and (table["activation"] == reference).sum() == 1:
        reference = table.index[table["activation"] == reference][0]
    if reference not in per_image:
        raise ValueError(f"reference={asked!r} is not a checkpoint with per-image outcomes, nor the "
                         f"activation of one; valid: {', '.join(sorted(per_image))} or "
                         f"{', '.join(sorted(table.loc[list(per_image), 'activation']))}.")
    ref = per_image[reference]
    rows = []
    for name, row in table[table["activation"].isin(KAF_ACTIVATIONS)].iterrows():
        ours = per_image.get(name)
        if name == reference or ours is None or len(ours) != len(ref) or selection.get(name) != selection.get(reference):
            continue
        d = ours.astype(float) - ref.astype(float)
        half = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        rows.append(dict(checkpoint=name, activation=row["activation"], reference=reference,
                         reference_activation=table.loc[reference, "activation"], n_images=len(d),
                         difference=100 * d.mean(), low=100 * (d.mean() - half), high=100 * (d.mean() + half),
                         only_this=int((d > 0).sum()), only_reference=int((d < 0).sum()),
                         p_exact=_mcnemar_exact_p(int((d > 0).sum()), int((d < 0).sum()))))
    if not rows:
        return None
    pairs = pd.DataFrame(rows).set_index("checkpoint")
    return pairs.assign(p_holm=_holm(pairs["p_exact"]))


def _holm(p):
    """Holm's step-down adjustment of a Series of p-values (same index): the k-th smallest
    of m is multiplied by m - k + 1, then made non-decreasing in that order, capped at 1."""
    ordered = p.sort_values()
    scaled = ordered * (len(p) - pd.Series(range(len(p)), index=ordered.index))
    return scaled.cummax().clip(upper=1.0).reindex(p.index)


def _mcnemar_exact_p(only_this, only_reference):
    """Exact two-sided McNemar p-value: under "equally robust", each discordant image (robust
    to one of the two models only) favours either with probability 1/2."""
    from scipy.stats import binomtest

    n = only_this + only_reference
    return binomtest(min(only_this, only_reference), n).pvalue if n else 1.0


def _count_range(counts):
    low, high = int(counts.min()), int(counts.max())
    return f"{low}" if low == high else f"{low}-{high}"


def autoattack_paired_references(table):
    """The checkpoints the book compares every KAF checkpoint with, image by image: the most
    robust fixed activation (the hardest comparison for KAF), then ReLU, the thesis' baseline
    ("We start with ReLU, which we consider our baseline", `../shared/thesis/author/thesis/
    thesis.tex` line 1519), where it keeps per-image outcomes and is not already the first.
    [] when no KAF checkpoint can be paired."""
    pairs = autoattack_paired_differences(table)
    if pairs is None:
        return []
    references = [pairs["reference"].iloc[0]]
    relu = table.index[table["activation"] == "relu"]
    if len(relu) == 1 and relu[0] not in references and relu[0] in table.attrs.get("per_image", {}):
        references.append(relu[0])
    return references


def autoattack_paired_finding(table, reference=None):
    """One sentence (Markdown) on `autoattack_paired_differences(table, reference)`: each KAF
    checkpoint minus the reference (default the best fixed activation), and which differences
    are measurable; "" when no pair can be formed."""
    pairs = autoattack_paired_differences(table, reference)
    if pairs is None:
        return ""
    reference = pairs["reference"].iloc[0]

    def p_value(value):
        return "< 0.001" if value < 0.001 else f"{value:.3f}"

    def measured(r):
        return (f"{r['activation']} {r['difference']:+.1f} [{r['low']:+.1f}, {r['high']:+.1f}] "
                f"(p {p_value(r['p_exact'])}, Holm {p_value(r['p_holm'])})")

    def named(rows):
        return ", ".join(r["activation"] + ("" if r["p_holm"] < 0.05 else " (not after Holm's correction)")
                         for _, r in rows.iterrows())

    higher, lower = pairs[pairs["low"] > 0], pairs[pairs["high"] < 0]
    rest = pairs[(pairs["low"] <= 0) & (pairs["high"] >= 0)]
    return (f"Paired on the same {pairs['n_images'].iloc[0]} images, KAF minus `{reference}` "
            f"({pairs['reference_activation'].iloc[0]}), in points with 95% intervals and exact McNemar p-values "
            f"(then Holm-corrected for the {len(pairs)} comparisons): "
            + ", ".join(measured(r) for _, r in pairs.iterrows()) + ". "
            + (f"Measurably more robust: {named(higher)}. " if len(higher) else "")
            + (f"Measurably less robust: {named(lower)}. " if len(lower) else "")
            + (f"No measurable difference: {', '.join(rest['activation'])}. " if len(rest) else "")
            + "One published checkpoint per activation, each with its own training history: the intervals "
              "cover the choice of test images, not retraining.")


def autoattack_findings(table, leaderboard):
    """Plain sentences (Markdown) on `autoattack_table()` beside `leaderboard_entries()`: the
    range of AutoAttack accuracies, where each leaderboard entry falls, and KAF against fixed
    activations (their intervals overlapping is reported as no measurable difference)."""
    from IPython.display import Markdown

    def interval(row, column):
        return f"{row[column]:.1f}% [{row[f'{column}_low']:.1f}, {row[f'{column}_high']:.1f}]"

    best, worst = table["autoattack"].idxmax(), table["autoattack"].idxmin()
    if len(table) == 1:
        lines = [f"- AutoAttack accuracy is {interval(table.loc[best], 'autoattack')} (`{best}`, "
                 f"{table.loc[best, 'activation']}), on {_count_range(table['n_images'])} test images."]
    else:
        lines = [f"- AutoAttack accuracy ranges from {interval(table.loc[worst], 'autoattack')} "
                 f"(`{worst}`, {table.loc[worst, 'activation']}) to {interval(table.loc[best], 'autoattack')} "
                 f"(`{best}`, {table.loc[best, 'activation']}), on {_count_range(table['n_images'])} test images each."]
    for name, entry in leaderboard.iterrows():
        above = (table["autoattack_high"] < entry["autoattack_acc"]).sum()
        inside = ((table["autoattack_low"] <= entry["autoattack_acc"])
                  & (entry["autoattack_acc"] <= table["autoattack_high"])).sum()
        clean_above = int((table["clean_high"] < entry["clean_acc"]).sum())
        lines.append(f"- {name}'s AutoAttack accuracy, {entry['autoattack_acc']:.2f}% (full test set), lies above "
                     f"the interval of {above} of the {len(table)} checkpoints and inside that of {inside}; its "
                     f"clean accuracy, {entry['clean_acc']:.2f}%, lies above the clean interval of {clean_above}.")
    from kaflib.thesis.studies import THESIS_CHECKPOINTS

    missing = [f"`{name}` ({act})" for act, name in THESIS_CHECKPOINTS.items() if name not in table.index]
    if missing:
        lines.append(f"- Not evaluated yet ({len(missing)} of the {len(THESIS_CHECKPOINTS)} checkpoints, one per "
                     f"activation): {', '.join(missing)}; each is `python -m kaflib.evaluate "
                     f"../shared/thesis/checkpoints/NAME.zip --n 512 --batch-size 64 --out results/autoattack/NAME.json`.")
    kaf = table[table["activation"].isin(KAF_ACTIVATIONS)]
    fixed = table[~table["activation"].isin(KAF_ACTIVATIONS)]
    if len(kaf) and len(fixed):
        best_fixed = fixed["autoattack"].idxmax()
        separated = kaf[kaf["autoattack_low"] > fixed.loc[best_fixed, "autoattack_high"]].index.tolist()
        lines.append(f"- The best fixed activation is `{best_fixed}` at {interval(fixed.loc[best_fixed], 'autoattack')}; "
                     + (f"KAF checkpoints whose interval lies wholly above it: {', '.join(separated)}."
                        if separated else "no KAF checkpoint's interval lies wholly above it."))
        for i, reference in enumerate(autoattack_paired_references(table)):
            lead = "" if i == 0 else "Against ReLU, the thesis' baseline. "
            lines.append(f"- {lead}{autoattack_paired_finding(table, reference)}")
    return Markdown("\n".join(lines))


def checkpoint_audit_findings(table):
    """Plain sentences (Markdown bullet list) comparing `checkpoint_audit_table()` with the thesis.

    One bullet per checkpoint with a thesis number: where the thesis' robust
    accuracy falls relative to our PGD-50 95% interval, and how much the
    strongest attacks take off PGD-50; then, for checkpoints with the protocol
    comparison, what float16 gradients and missing labels do to the number.
    """
    from IPython.display import Markdown

    lines = []
    for name, row in table.iterrows():
        if row["thesis in PGD interval"] is None:
            continue
        where = ("inside" if row["thesis in PGD interval"] else
                 "above" if row["thesis robust"] > row["pgd_high"] else "below")
        lines.append(f"- `{name}` ({row['activation']}): the thesis' {row['thesis robust']:.1f}% is **{where}** "
                     f"our PGD-50 interval [{row['pgd_low']:.1f}, {row['pgd_high']:.1f}]%; the worst case over "
                     f"all attacks is {row['worst']:.1f}% ({row['pgd'] - row['worst']:.1f} points below PGD-50).")
    thesis, fixed = "protocol: " + PROTOCOL_THESIS, "protocol: " + PROTOCOL_FIXED
    if thesis in table:
        for name, row in table[table[thesis].notna()].iterrows():
            lines.append(f"- `{name}`: the thesis' protocol gives {row[thesis]:.1f}%; with float32 gradients, "
                         f"logits and true labels, {row[fixed]:.1f}% ({row[thesis] - row[fixed]:+.1f} points).")
    return Markdown("\n".join(lines))


#: Sign-of-masking flags of a `masking-checks` study, with what each one means.
MASKING_FLAGS = {"not_to_zero": "PGD accuracy stays above 1% at eps = 128/255",
                 "black_box_wins": "black-box Square beats white-box PGD",
                 "transfer_wins": "images crafted on the ReLU model beat the model's own PGD",
                 "surrogate_wins": "PGD through the smoothed KAFs beats PGD through the real ones",
                 "not_converged": "PGD accuracy still falls by more than 1 point between 50 iterations and the "
                                  "last count of its curve"}


def load_pgd_curves(grid, path=None):
    """{model: DataFrame(iterations, robust_acc)} of `results/pgd-curves/<grid>.json`
    (fractions; `analysis.plot_pgd_iterations` draws it), or {} if absent."""
    import json

    study = read_json(study_path("pgd-curves", grid, path))
    if study is None:
        return {}
    rows = pd.DataFrame(study["rows"]).rename(columns={"accuracy": "robust_acc"})
    return {model: curve[["iterations", "robust_acc"]].reset_index(drop=True)
            for model, curve in rows.groupby("model", sort=False)}

# The size of each flag's effect, in accuracy points: the images behind a flag are `size * n / 100`.
_MASKING_GAP = {"not_to_zero": lambda r: r["acc_at_max_eps"],
                "black_box_wins": lambda r: r["pgd"] - r["square"],
                "transfer_wins": lambda r: r["pgd"] - r["transfer_in"],
                "surrogate_wins": lambda r: r["pgd"] - r["surrogate"],
                "not_converged": lambda r: r["pgd_curve_50"] - r["pgd_curve_last"]}


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
    """
    import json

    root = results_dir(path)
    tables, skipped, parameters, test_images = [], {}, {}, {}
    for grid in grids:
        payload = read_json(study_path("masking", grid, root))
        if payload is None:
            continue
        parameters[grid] = payload["parameters"]
        test_images[grid] = payload["data"]["test"]
        skipped.update({(grid, m): why for m, why in payload["parameters"].get("skipped", {}).items()})
        rows = pd.DataFrame(payload["rows"]).assign(grid=grid)
        if grid == "thesis-checkpoints":
            audit = checkpoint_audit_table(audit_path(root))
            if audit is not None:  # the audit row of the very checkpoint each model was loaded from
                stems = rows["model"].map(payload["parameters"]["checkpoints"])
                for attack in ("apgd_ce", "apgd_dlr_t"):
                    rows[attack] = stems.map(audit[attack] / 100)
        elif (apgd := read_json(study_path("apgd", grid, root))) is not None:
            apgd = pd.DataFrame(apgd["rows"]).set_index("model")
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


def masking_findings(table):
    """Plain sentences (Markdown bullet list) on `masking_table()`: each flag and the
    models that raise it (with the number of test images behind it), which attack
    is strongest how often, how far the worst case falls below PGD-50 on the KAF
    models, ReLU against the KAFs per grid, and the runs left out."""
    from IPython.display import Markdown

    lines, behind = [], _flag_images(table)
    for flag, meaning in MASKING_FLAGS.items():
        if flag not in table:
            continue
        raised = []
        for (grid, model), on in table[flag].items():
            if on:
                n = table.attrs.get("test_images", {}).get(grid)
                images = "" if n is None else f" ({behind[(flag, grid, model)]} of {n} images)"
                raised.append(f"**{grid} / {model}**{images}")
        lines.append(f"- {meaning}: " + (", ".join(raised) if raised else "no model") + ".")
    attacks = {"pgd": "PGD-50", "apgd_dlr_t": "APGD", "square": "Square", "surrogate": "the smoothed surrogate",
               "transfer_in": "transfer from ReLU"}
    attacks = {c: name for c, name in attacks.items() if c in table}
    strongest = table[list(attacks)].idxmin(axis=1, skipna=True).map(attacks).value_counts()
    lines.append("- Strongest single attack: " + ", ".join(f"{name} for {n} model{'s' * (n > 1)}"
                                                          for name, n in strongest.items()) + " (ties: the first).")
    if "apgd_dlr_t" in table:
        above = (table["apgd_dlr_t"] - table["pgd"])[lambda gap: gap > 1]
        if len(above):
            lines.append("- APGD-CE + APGD-T ends more than 1 point above PGD-50: " + ", ".join(
                f"**{grid} / {model}** (+{gap:.1f} points)" for (grid, model), gap in above.items()) + "." + (
                " For thesis-checkpoints, APGD is the checkpoint audit's, on the published float16 models, and "
                "PGD-50 the masking checks', on their float32 twins." if "thesis-checkpoints" in
                above.index.unique("grid") else ""))
    kafs = table[[m in KAF_ACTIVATIONS for _, m in table.index]]
    if len(kafs):
        drop = kafs["pgd"] - kafs["worst"]
        (grid, model), largest = drop.idxmax(), drop.max()
        lines.append(f"- KAF models: the worst case, per image, over PGD-50, Square and the surrogate is on average "
                     f"{drop.mean():.1f} points below PGD-50 (largest: {grid} / {model}, {largest:.1f} points).")
    for grid in table.index.unique("grid"):
        rows = table.loc[grid]
        if "relu" in rows.index and len(kafs) and grid in kafs.index.unique("grid"):
            best = kafs.loc[grid, "worst"]
            line = (f"- {grid}: ReLU keeps {rows.loc['relu', 'worst']:.1f}% under the worst case of PGD-50 and "
                    f"Square; {_kaf_span(best)} under the worst case of PGD-50, Square and the surrogate.")
            if "apgd_dlr_t" in rows and rows["apgd_dlr_t"].notna().all():
                line += (f" Under APGD-CE + APGD-T: ReLU {rows.loc['relu', 'apgd_dlr_t']:.1f}%, "
                         f"{_kaf_span(kafs.loc[grid, 'apgd_dlr_t'])}.")
            lines.append(line)
    for (grid, model), why in table.attrs.get("skipped", {}).items():
        lines.append(f"- {grid} / {model} was not checked: it {why}.")
    return Markdown("\n".join(lines))


def _flag_images(table):
    """{(flag, grid, model): test images behind the flag} of every raised flag of
    `masking_table()` (0 where the grid's test size is unknown)."""
    images = table.attrs.get("test_images", {})
    return {(flag, grid, model): round(_MASKING_GAP[flag](table.loc[(grid, model)]) * images.get(grid, 0) / 100)
            for flag in MASKING_FLAGS if flag in table for (grid, model), on in table[flag].items() if on}


def masking_verdict(table):
    """Markdown: the masking checks in two sentences, for the conclusions. How many
    models were checked and how many test images the largest flag rests on; then,
    per grid, ReLU against the mean of the KAF models under the strongest attack
    (the lowest accuracy any attack of `masking_table()` reached on the model)."""
    from IPython.display import Markdown

    images, behind = table.attrs.get("test_images", {}), _flag_images(table)
    largest, flagged = max(behind.values(), default=0), len({(grid, model) for _, grid, model in behind})
    attacks = [c for c in ("pgd", "apgd_ce", "apgd_dlr_t", "square", "surrogate", "worst", "transfer_in") if c in table]
    strongest = table[attacks].min(axis=1)
    text = (f"The gradient-masking checks ran on {len(table)} models ({', '.join(table.index.unique('grid'))}); "
            f"{flagged} raised a flag, the largest resting on {largest} test image{'s' * (largest != 1)} "
            f"(of {max(images.values(), default=0)}).")
    per_grid = []
    for grid in table.index.unique("grid"):
        rows = strongest.loc[grid]
        kafs = rows[[m in KAF_ACTIVATIONS for m in rows.index]]
        if "relu" in rows.index and len(kafs):
            per_grid.append(f"{grid}: ReLU {rows['relu']:.1f}%, the KAF models {kafs.mean():.1f}% on average "
                            f"({kafs.mean() - rows['relu']:+.1f} points)")
    if per_grid:
        text += " Under the strongest attack on each model: " + "; ".join(per_grid) + "."
    return Markdown(text)


def _kaf_span(accuracy):
    """'the KAF models 23.0% to 25.0% (best: kaf_elu)' of a Series {model: percent}, or
    'the KAF model (kaf_elu) 6.2%' when there is one."""
    if len(accuracy) == 1:
        return f"the KAF model ({accuracy.index[0]}) {accuracy.iloc[0]:.1f}%"
    return f"the KAF models {accuracy.min():.1f}% to {accuracy.max():.1f}% (best: {accuracy.idxmax()})"


def compute_time(path=None):
    """Wall time of every committed result, in minutes: DataFrame(file, kind, minutes).

    Training time is the sum of the per-epoch `seconds` of the history (it
    survives resumed runs, whose `metrics.json` times only the last sitting),
    plus the final attack for grid runs; other studies count their own
    `seconds`, the checkpoint audit the sum over checkpoints. Times are as
    measured, on whatever else was sharing the machine.
    """
    import json

    root = results_dir(path)
    rows = []

    def add(file, kind, seconds):
        rows.append(dict(file=str(file.relative_to(root)), kind=kind, minutes=seconds / 60))

    for pattern, kind in (("thesis-*/*/metrics.json", "grid run"),
                          ("lipschitz-evolution/thesis-*/*/metrics.json", "lipschitz-evolution run")):
        for metrics in sorted(root.glob(pattern)):
            run = load_run(metrics.parent)
            add(metrics.parent, kind, _train_seconds(run["history"], run) + run["seconds"]["attack"])
    for study in sorted(root.glob("thesis-*/*/pgd_iterations.json")):
        add(study, "pgd-iterations", json.loads(study.read_text())["seconds"])
    for kind in (kind for kind in STUDIES if kind != "pgd-iterations"):  # those live in the run folders (above)
        for study in sorted((root / kind).glob("*.json")):
            if study.name.endswith(".partial.json"):  # an unfinished study's progress
                continue
            payload = json.loads(study.read_text())
            if kind == "autoattack":  # a RobustBench-format record keeps its times under "kaflib"
                add(study, kind, payload["kaflib"]["seconds"]["total"])
                continue
            epochs = pd.DataFrame(payload.get("rows", []))
            trained = kind == "deep-kaf" and "seconds" in epochs
            add(study, kind, epochs["seconds"].sum() if trained else payload["seconds"])
    audit = audit_path(root)
    if audit.is_file():
        checkpoints = json.loads(audit.read_text())["checkpoints"].values()
        add(audit, "checkpoint audit", sum(c["seconds"]["total"] for c in checkpoints))
    return pd.DataFrame(rows, columns=["file", "kind", "minutes"])


def load_deep_kaf(runs=("resnet56-relu", "resnet56-kaf-std0.8", "resnet56-kaf-std0.05", "resnet56-kaf_smooth",
                        "resnet56-kaf_elu", "resnet20-kaf-std0.8", "resnet20-kaf-std0.05", "resnet20-kaf_smooth",
                        "resnet20-kaf_elu"), path=None):
    """{label: study dict} of the `deep-kaf` studies that exist, in `runs` order.

    `runs` are study names (`kaflib.thesis.studies.study_name`: random KAFs carry their
    coefficients' std, e.g. ``resnet56-kaf-std0.05``); labels read "<model> / <act>"
    with the std, e.g. "resnet56 / kaf N(0, 0.05²)". Each study dict is the JSON of
    `kaflib.thesis.studies.deep_kaf` with `rows` (the per-epoch history) and the init
    diagnostics as DataFrames; studies written before their layer recipe and KAF
    std were recorded get those filled in (he-bn0.9; the std of the file name).
    """
    import json

    found = {}
    for name in runs:
        study = read_json(study_path("deep-kaf", name, path))
        if study is not None:
            for key in ("rows", "init_gradient_norms", "init_kaf_slopes"):
                study[key] = pd.DataFrame(study[key])
            found[study_label(name)] = study
    return found


def study_label(name):
    """"resnet56 / kaf N(0, 0.05²)" for the study name "resnet56-kaf-std0.05"."""
    model, _, act = name.partition("-")
    act, _, std = act.partition("-std")
    return f"{model} / {act}" + (f" N(0, {std}²)" if std else "")


def deep_kaf_table(studies):
    """One row per `load_deep_kaf` study: the init gradient ratio (first conv layer's
    norm over the last conv layer's), the median over KAF layers of their max |f'|,
    the best and last clean test accuracy (%), the last one minus that of the same
    model with ReLU when that study is there (points), epochs trained, divergence,
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
            "diverged": "yes" if study["diverged"] else "no",
            "minutes": (history["seconds"].sum() if "seconds" in history else study["seconds"]) / 60,
        })
    table = pd.DataFrame(rows).set_index("run")
    relu = {label.split(" / ")[0]: row["last clean %"] for label, row in table.iterrows()
            if label.split(" / ")[1] == "relu"}
    table.insert(4, "vs ReLU (points)", [row["last clean %"] - relu.get(label.split(" / ")[0], float("nan"))
                                         for label, row in table.iterrows()])
    return table
