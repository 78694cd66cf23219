"""The statistics behind the book's comparisons: means over seeds, the seed-paired KAF
minus fixed-activation interval, image-paired differences of the published checkpoints
(normal interval, exact McNemar test, Holm's correction), rank correlations, and the test
images behind each gradient-masking flag.

Inputs are the tables of `kaflib.thesis.runs` and `kaflib.thesis.results` (accuracies in
percent); the words that report them are `kaflib.thesis.findings`'.
"""

import pandas as pd

from kaflib.activations import KAF_ACTIVATIONS
from kaflib.thesis.runs import MIN_TRAINED_CLEAN

__all__ = ["MASKING_FLAGS", "WEAK_FRACTION", "weak_runs", "settings_label", "mean_sd", "kaf_fixed_difference", "split_current", "paired_seeds",
           "autoattack_paired_differences", "autoattack_paired_references", "holm", "mcnemar_exact_p",
           "bound_robustness_correlation", "flag_images"]

#: Sign-of-masking flags of a `masking-checks` study, with what each one means.
MASKING_FLAGS = {"not_to_zero": "PGD accuracy stays above 1% at eps = 128/255",
                 "black_box_wins": "black-box Square beats white-box PGD",
                 "transfer_wins": "images crafted on the ReLU model beat the model's own PGD",
                 "surrogate_wins": "PGD through the smoothed KAFs beats PGD through the real ones",
                 "not_converged": "PGD accuracy still falls by more than 1 point between 50 iterations and the "
                                  "last count of its curve"}

# The size of each flag's effect, in accuracy points: the images behind a flag are `size * n / 100`.
_MASKING_GAP = {"not_to_zero": lambda r: r["acc_at_max_eps"],
                "black_box_wins": lambda r: r["pgd"] - r["square"],
                "transfer_wins": lambda r: r["pgd"] - r["transfer_in"],
                "surrogate_wins": lambda r: r["pgd"] - r["surrogate"],
                "not_converged": lambda r: r["pgd_curve_50"] - r["pgd_curve_last"]}

#: A run whose clean accuracy is below this fraction of the median of the runs it is compared
#: with barely trained: a comparison resting on it says so (`weak_runs`).
WEAK_FRACTION = 0.8


def weak_runs(clean, fraction=WEAK_FRACTION):
    """The runs of `clean` (a Series {run: clean accuracy, percent}) that barely trained: below
    `fraction` of the median of the other runs. {run: (its accuracy, that median)}."""
    weak = {}
    for name, value in clean.items():
        others = clean.drop(name)
        if len(others) and value < fraction * others.median():
            weak[name] = (float(value), float(others.median()))
    return weak


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
    """`results.compare_with_thesis` for reading: our accuracies as "mean ± sd (n seeds)"
    strings (the mean alone for one seed), the thesis' numbers beside them, and how our runs
    of each activation were trained (`settings_label`; several, joined by " / ", when its
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
        clean_diff, in points), attack ("PGD-<steps>", the attack of the robust
        accuracies), weak (the compared runs that barely trained, `weak_runs`), and for
        "robust" and "clean": mean, low, high.
    """
    from scipy import stats

    measured, stale = split_current(measured, runs)
    left_out = [f"{r.act} seed {r.seed}" for r in stale.itertuples()]
    trained = measured[measured["clean_acc"] >= 100 * min_clean]
    seeds, complete = paired_seeds({a: set(runs["seed"]) for a, runs in trained.groupby("act")})
    kafs = [a for a in complete if a in KAF_ACTIVATIONS]
    fixed = [a for a in complete if a not in KAF_ACTIVATIONS]
    rows = []
    for seed in seeds:
        runs = trained[(trained["seed"] == seed) & trained["act"].isin(complete)]
        is_kaf = runs["act"].isin(KAF_ACTIVATIONS)
        rows.append(dict(seed=seed, **{f"{k}_diff": runs.loc[is_kaf, f"{k}_acc"].mean()
                                       - runs.loc[~is_kaf, f"{k}_acc"].mean() for k in ("robust", "clean")}))
    per_seed = pd.DataFrame(rows, columns=["seed", "robust_diff", "clean_diff"])
    steps = sorted({int(s) for s in trained["pgd_steps"]}) if "pgd_steps" in trained else []
    compared = trained[trained["seed"].isin(seeds) & trained["act"].isin(complete)]
    clean = compared.set_index(compared["act"] + " seed " + compared["seed"].astype(str))["clean_acc"]
    result = dict(seeds=seeds, kafs=kafs, fixed=fixed, left_out=left_out, per_seed=per_seed, weak=weak_runs(clean),
                  attack="PGD-" + "/".join(str(s) for s in steps) if steps else "PGD")
    for kind in ("robust", "clean"):
        values = per_seed[f"{kind}_diff"].dropna().to_numpy()
        mean = float(values.mean()) if len(values) else float("nan")
        if len(values) > 1:
            half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / len(values) ** 0.5
        else:
            half = float("nan")
        result[kind] = dict(mean=mean, low=float(mean - half), high=float(mean + half))
    return result


def split_current(measured, runs):
    """A `load_grid` table as (runs compared, runs left out): with `runs="current"` the
    `is_current` runs and the others, with `runs="all"` every run and none."""
    if runs not in ("current", "all"):
        raise ValueError(f"runs={runs!r} is invalid: must be 'current' or 'all'.")
    keep = measured["current"].astype(bool) if runs == "current" else pd.Series(True, index=measured.index)
    return measured[keep], measured[~keep]


def paired_seeds(seeds_of):
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


def autoattack_paired_differences(table, reference=None):
    """AutoAttack accuracy of each KAF checkpoint minus a reference checkpoint's, paired on
    the same test images (each image: robust to one model and not the other, or not).

    Two checkpoints attacked on the same images share every image's difficulty, so the
    per-image difference has a much narrower interval than two separate Wilson intervals
    suggest. The interval covers the choice of test images only: there is one published
    checkpoint per activation, so it says nothing about retraining.

    Args:
        table: `results.autoattack_table()`.
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
                         p_exact=mcnemar_exact_p(int((d > 0).sum()), int((d < 0).sum()))))
    if not rows:
        return None
    pairs = pd.DataFrame(rows).set_index("checkpoint")
    return pairs.assign(p_holm=holm(pairs["p_exact"]))


PAIRED_OUTCOMES = ("measurably higher", "measurably lower", "on the edge", "no measurable difference")


def paired_outcome(pairs):
    """What each row of an `autoattack_paired_differences` table shows, one of
    `PAIRED_OUTCOMES` (a Series): "measurably higher" or "lower" where the 95% interval
    excludes 0 and Holm's corrected p is below 0.05; "on the edge" where the interval
    excludes 0 but the corrected test does not confirm it; "no measurable difference" where
    the interval contains 0."""
    excludes = (pairs["low"] > 0) | (pairs["high"] < 0)
    confirmed = excludes & (pairs["p_holm"] < 0.05)
    outcome = pd.Series("no measurable difference", index=pairs.index)
    outcome[excludes & ~confirmed] = "on the edge"
    outcome[confirmed & (pairs["difference"] > 0)] = "measurably higher"
    outcome[confirmed & (pairs["difference"] < 0)] = "measurably lower"
    return outcome


def measurable(pairs):
    """Which rows of an `autoattack_paired_differences` table are measurable differences
    (`paired_outcome` higher or lower): a boolean Series."""
    return paired_outcome(pairs).isin(PAIRED_OUTCOMES[:2])


def autoattack_paired_references(table):
    """The checkpoints the book compares every KAF checkpoint with, image by image: the most
    robust fixed activation (the hardest comparison for KAF), then ReLU, the thesis' baseline
    ("We start with ReLU, which we consider our baseline", thesis ch. 6.2, `thesis.tex`
    line 1519), where it keeps per-image outcomes and is not already the first.
    [] when no KAF checkpoint can be paired."""
    pairs = autoattack_paired_differences(table)
    if pairs is None:
        return []
    references = [pairs["reference"].iloc[0]]
    relu = table.index[table["activation"] == "relu"]
    if len(relu) == 1 and relu[0] not in references and relu[0] in table.attrs.get("per_image", {}):
        references.append(relu[0])
    return references


def holm(p):
    """Holm's step-down adjustment of a Series of p-values (same index): the k-th smallest
    of m is multiplied by m - k + 1, then made non-decreasing in that order, capped at 1."""
    ordered = p.sort_values()
    scaled = ordered * (len(p) - pd.Series(range(len(p)), index=ordered.index))
    return scaled.cummax().clip(upper=1.0).reindex(p.index)


def mcnemar_exact_p(only_this, only_reference):
    """Exact two-sided McNemar p-value: under "equally robust", each discordant image (robust
    to one of the two models only) favours either with probability 1/2."""
    from scipy.stats import binomtest

    n = only_this + only_reference
    return binomtest(min(only_this, only_reference), n).pvalue if n else 1.0


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


def flag_images(table):
    """{(flag, grid, model): test images behind the flag} of every raised flag of
    `results.masking_table()` (0 where the grid's test size is unknown)."""
    images = table.attrs.get("test_images", {})
    return {(flag, grid, model): round(_MASKING_GAP[flag](table.loc[(grid, model)]) * images.get(grid, 0) / 100)
            for flag in MASKING_FLAGS if flag in table for (grid, model), on in table[flag].items() if on}
