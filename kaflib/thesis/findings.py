"""The book's findings in words, each computed from the table it describes.

Every function here takes a table of `kaflib.thesis.results` or `kaflib.thesis.statistics`
(or a study of `kaflib.thesis.runs`) and returns Markdown (or HTML) that a chapter shows
beside that table, so the words cannot drift from the numbers. A finding that sets a
number beside the thesis names the thesis section or table it paraphrases (and, in the
source, the line of `thesis.tex`). The verdicts of the Introduction and Conclusions, which
put several tables together, are `kaflib.thesis.verdicts`'.
"""

import html

import pandas as pd

from kaflib.activations import KAF_ACTIVATIONS, activation_name
from kaflib.thesis import store
from kaflib.thesis.audit import PROTOCOL
from kaflib.thesis.runs import reported_results_path, runs_newer_than_study, study_superseded_by
from kaflib.thesis.statistics import (MASKING_FLAGS, WEAK_FRACTION, autoattack_paired_differences,
                                      autoattack_paired_references, flag_images, paired_outcome, weak_runs)
from kaflib.thesis.tables import checkpoint_label, grid_name, p_value

__all__ = ["thesis_numbers_note", "missing_note", "missing_data_note", "stopped_note", "superseded_note",
           "page_sources", "kaf_fixed_finding", "lipschitz_evolution_findings", "weak_baseline",
           "masking_findings", "masking_verdict", "autoattack_paired_finding", "autoattack_findings",
           "autoattack_version_note", "earlier_twin_suspects", "earlier_twin_caveat", "listed",
           "standard_autoattack_findings", "checkpoint_audit_findings", "light_grid_finding",
           "deep_kaf_epochs_note", "activation_distance_finding", "pgd_sweeps_note", "thesis_ranking_finding"]

# Names of the first and last rows of `kaflib.thesis.audit.PROTOCOL`: the thesis' protocol, and every
# one of its choices fixed.
PROTOCOL_THESIS, PROTOCOL_FIXED = PROTOCOL[0][0], PROTOCOL[-1][0]

def _run_name(run):
    """"ReLU seed 0" for a run key "relu seed 0" (`statistics`' "<act> seed <n>"), "ReLU" for "relu"."""
    act, _, seed = run.partition(" seed ")
    return activation_name(act) + (f" seed {seed}" if seed else "")


def _grid_model(grid, model):
    """"VGG-inspired / KAF_ELU" for ("thesis-vgg", "kaf_elu")."""
    return f"{grid_name(grid)} / {activation_name(model)}"


def _markdown(text):
    """`IPython.display.Markdown(text)` that shows nothing when `text` is empty (an empty
    Markdown shows its repr, `<IPython.core.display.Markdown object>`); `.data` is `text`."""
    from IPython.display import Markdown, display

    class Note(Markdown):
        def _ipython_display_(self):
            if self.data:
                display(Markdown(self.data))

    return Note(text)


def thesis_numbers_note():
    """A Markdown note for chapters that set the thesis' numbers beside ours: empty
    when `reported_results.csv` was found, else where it was looked for."""
    from IPython.display import Markdown

    if reported_results_path() is not None:
        return _markdown("")
    return Markdown("> **The thesis' own numbers are not on this machine**, so the `thesis` columns are empty. "
                    "They are read from `reported_results.csv` in the thesis' materials: `shared/thesis/` beside "
                    "the checkout, or the folder `KAFLIB_THESIS_DIR` names.")


def missing_note(what, command):
    """A Markdown note for a chapter whose results are missing: what, and the command that makes them."""
    from IPython.display import Markdown

    return Markdown(f"> **No results yet for {what}.** They are produced by `{command}`; "
                    "this page picks them up when the book is rebuilt.")


def missing_data_note():
    """A Markdown note for a figure that needs CIFAR-10 test images this machine does not have
    (`runs.first_test_images` returned None): how to get them."""
    from IPython.display import Markdown

    return Markdown("> **No CIFAR-10 test images on this machine**, so this figure is not drawn. "
                    "`python -c \"import kaflib.data; kaflib.data.load_cifar10()\"` downloads CIFAR-10 into the "
                    "Keras cache, or `KAFLIB_DATA_DIR` can name a folder that holds `cifar-10-batches-py/`; the "
                    "figure appears when the book is rebuilt.")


def stopped_note(measured):
    """A Markdown list of the runs of a `load_grid` table that ended before their last epoch, and why."""
    from IPython.display import Markdown

    early = measured[measured["stopped"] != ""]
    if not len(early):
        return Markdown("Every run trained for all its epochs.")
    return Markdown("Runs that ended early:\n\n" + "\n".join(
        f"- **{row.model} / {row.act}**: {row.stopped}." for row in early.itertuples()))


_STUDY_WORDS = {"lipschitz": "Lipschitz constants", "masking": "gradient-masking checks",
                "pgd-curves": "PGD curves", "apgd": "APGD attacks"}


def superseded_note(study, grids, path=None):
    """A Markdown note naming, per grid, a grid study left out of the page because its runs
    were retrained after it was measured (`runs.read_grid_study` does not return it), and the
    command that measures the runs on file; an empty note when none was left out."""
    from IPython.display import Markdown

    newer = {grid: runs for grid in grids if (runs := runs_newer_than_study(study, grid, path))}
    if not newer:
        return _markdown("")
    lines = [f"- {grid_name(grid)}: retrained since: {', '.join(map(_run_name, runs))}" for grid, runs in newer.items()]
    command = "masking-checks" if study == "masking" else study
    return Markdown(f"> **Left out: the {_STUDY_WORDS.get(study, study)} of "
                    f"{listed([grid_name(g) for g in newer])}.** They were measured on "
                    f"runs that have since been retrained, so they describe networks that no longer exist; this "
                    f"page shows them again once `python -m kaflib.thesis.studies {command} <grid> --force` has "
                    f"measured the runs on file.\n\n" + "\n".join(lines))


def page_sources():
    """An invisible HTML record of the study files this page's kernel has read
    (`store.studies_read`) and, for each, the retrained runs it rests on
    (`runs.study_superseded_by`); `tests/test_book.py` fails a build in which one rests on
    any. The last cell of every chapter that reads studies shows it."""
    from IPython.display import HTML

    root = store.results_dir()
    items = []
    for path in store.studies_read():
        try:
            name = str(path.relative_to(root.resolve()))
        except ValueError:
            name = str(path)
        superseded = " ".join(study_superseded_by(path))
        items.append(f'<li data-file="{html.escape(name)}" data-superseded="{html.escape(superseded)}"></li>')
    return HTML(f'<ul class="kaflib-sources" hidden>{"".join(items)}</ul>')


def kaf_fixed_finding(difference, grid):
    """The conclusion in words, computed from `statistics.kaf_fixed_difference`: the paired
    difference, its interval, and whether it is a measurable difference (the interval excludes
    0); the robust accuracies are under the attack the runs were evaluated with."""
    from IPython.display import Markdown

    d, n = difference, len(difference["seeds"])
    left_out = (f" Left out, as trained with an earlier recipe or other settings: "
                f"{', '.join(map(_run_name, d['left_out']))}."
                if d.get("left_out") else "")
    if not d["kafs"] or not d["fixed"]:
        return Markdown(f"{grid_name(grid)}: not enough trained runs on every seed to compare KAFs with fixed activations."
                        + left_out)
    lines = []
    for kind in ("robust", "clean"):
        r = d[kind]
        what = f"{kind} accuracy" + (f" ({d.get('attack', 'PGD')})" if kind == "robust" else "")
        if n < 2:
            lines.append(f"- {what}, KAFs minus fixed: {r['mean']:+.1f} points on one seed; no interval "
                         "(one seed), so no claim either way.")
            continue
        lines.append(f"- {what}, KAFs minus fixed: {r['mean']:+.1f} points, 95% t interval "
                     f"[{r['low']:+.1f}, {r['high']:+.1f}] over {n} seeds: {_interval_verdict(r)}.")
    if d.get("weak"):
        lines.append("- It rests on runs that barely trained: " + ", ".join(
            f"{_run_name(run)} ({acc:.1f}% clean, against a median of {median:.1f}% for the other runs)"
            for run, (acc, median) in d["weak"].items()) + ".")
    return Markdown(f"**{grid_name(grid)}** (KAFs: {', '.join(map(activation_name, d['kafs']))}; fixed: "
                    f"{', '.join(map(activation_name, d['fixed']))}; paired by "
                    f"seed {', '.join(str(s) for s in d['seeds'])}):\n\n" + "\n".join(lines)
                    + ("\n\n" + left_out.strip() if left_out else ""))


def _interval_verdict(r):
    """"no measurable difference" / "KAFs measurably higher" / "... lower" of {low, high}."""
    if r["low"] <= 0 <= r["high"]:
        return "no measurable difference"
    return "KAFs measurably higher" if r["low"] > 0 else "KAFs measurably lower"


def lipschitz_evolution_findings(histories):
    """Markdown: per run of `runs.lipschitz_histories()`, its network bound, steepest
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


def weak_baseline(clean, name, fraction=WEAK_FRACTION, images=None):
    """A phrase when run `name` of `clean` (a Series {run: clean accuracy, percent}) barely
    trained (`statistics.weak_runs`): "its ReLU run barely trained (...)"; "" otherwise.
    `images`: how many test images `clean` was measured on, said after the accuracy."""
    weak = weak_runs(clean, fraction).get(name)
    if weak is None:
        return ""
    where = f" on the {images} images checked" if images else ""
    return (f"its {_run_name(name)} run barely trained ({weak[0]:.1f}% clean{where}, against a median of "
            f"{weak[1]:.1f}% for the other runs), so the gap rests on a weak baseline")


def masking_findings(table):
    """Plain sentences (Markdown bullet list) on `results.masking_table()`: each flag and the
    models that raise it (with the number of test images behind it), which attack
    is strongest how often, how far the worst case falls below PGD-50 on the KAF
    models, ReLU against the KAFs per grid, and the runs left out."""
    from IPython.display import Markdown

    lines, behind = [], flag_images(table)
    for flag, meaning in MASKING_FLAGS.items():
        if flag not in table:
            continue
        raised = []
        for (grid, model), on in table[flag].items():
            if on:
                n = table.attrs.get("test_images", {}).get(grid)
                images = "" if n is None else f" ({behind[(flag, grid, model)]} of {n} images)"
                raised.append(f"**{_grid_model(grid, model)}**{images}")
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
                f"**{_grid_model(grid, model)}** (+{gap:.1f} points)" for (grid, model), gap in above.items()) + "." + (
                f" For the {grid_name('thesis-checkpoints')}s, APGD is the checkpoint audit's, on the published float16 models, and "
                "PGD-50 the masking checks', on their float32 twins." if "thesis-checkpoints" in
                above.index.unique("grid") else ""))
    kafs = table[[m in KAF_ACTIVATIONS for _, m in table.index]]
    if len(kafs):
        drop = kafs["pgd"] - kafs["worst"]
        (grid, model), largest = drop.idxmax(), drop.max()
        lines.append(f"- KAF models: the worst case, per image, over PGD-50, Square and the surrogate is on average "
                     f"{drop.mean():.1f} points below PGD-50 (largest: {_grid_model(grid, model)}, {largest:.1f} points).")
    for grid in table.index.unique("grid"):
        rows = table.loc[grid]
        if "relu" in rows.index and len(kafs) and grid in kafs.index.unique("grid"):
            best = kafs.loc[grid, "worst"]
            line = (f"- {grid_name(grid)}: ReLU keeps {rows.loc['relu', 'worst']:.1f}% under the worst case of PGD-50 and "
                    f"Square; {_kaf_span(best)} under the worst case of PGD-50, Square and the surrogate.")
            if "apgd_dlr_t" in rows and rows["apgd_dlr_t"].notna().all():
                line += (f" Under APGD-CE + APGD-T: ReLU {rows.loc['relu', 'apgd_dlr_t']:.1f}%, "
                         f"{_kaf_span(kafs.loc[grid, 'apgd_dlr_t'])}.")
            if (weak := weak_baseline(rows["clean"], "relu", images=table.attrs.get("test_images", {}).get(grid))):
                line += f" In this grid {weak}."
            lines.append(line)
    for (grid, model), why in table.attrs.get("skipped", {}).items():
        lines.append(f"- {_grid_model(grid, model)} was not checked: it {why}.")
    return Markdown("\n".join(lines))


def strongest_attack(table):
    """Per model of `results.masking_table()`, the lowest accuracy (percent) any of its attacks
    reached: the robust accuracy under the strongest attack that was run."""
    attacks = [c for c in ("pgd", "apgd_ce", "apgd_dlr_t", "square", "surrogate", "worst", "transfer_in") if c in table]
    return table[attacks].min(axis=1)


def masking_verdict(table):
    """Markdown: the masking checks in two sentences, for the conclusions. How many
    models were checked and how many test images the largest flag rests on; then,
    per grid, ReLU against the mean of the KAF models under the strongest attack
    (`strongest_attack`), saying so where ReLU's run barely trained (`weak_baseline`)."""
    from IPython.display import Markdown

    images, behind = table.attrs.get("test_images", {}), flag_images(table)
    largest, flagged = max(behind.values(), default=0), len({(grid, model) for _, grid, model in behind})
    strongest = strongest_attack(table)
    grids = "; ".join(grid_name(g) + (f", {images[g]} test images" if g in images else "")
                      for g in table.index.unique("grid"))
    text = f"The gradient-masking checks ran on {len(table)} models ({grids}); " + (
        f"{flagged} raised a flag, the largest resting on {largest} test image{'s' * (largest != 1)}."
        if flagged else "none raised a flag.")
    per_grid = []
    for grid in table.index.unique("grid"):
        rows = strongest.loc[grid]
        kafs = rows[[m in KAF_ACTIVATIONS for m in rows.index]]
        if "relu" in rows.index and len(kafs):
            weak = weak_baseline(table.loc[grid, "clean"], "relu", images=images.get(grid))
            per_grid.append(f"{grid_name(grid)}: ReLU {rows['relu']:.1f}%, the KAF models {kafs.mean():.1f}% on average "
                            f"({kafs.mean() - rows['relu']:+.1f} points" + (f"; {weak}" if weak else "") + ")")
    if per_grid:
        text += " Under the strongest of these checks' attacks on each model: " + "; ".join(per_grid) + "."
    return Markdown(text)


def _kaf_span(accuracy):
    """'the KAF models 23.0% to 25.0% (best: KAF_ELU)' of a Series {model: percent}, or
    'the KAF model (KAF_ELU) 6.2%' when there is one."""
    if len(accuracy) == 1:
        return f"the KAF model ({activation_name(accuracy.index[0])}) {accuracy.iloc[0]:.1f}%"
    return f"the KAF models {accuracy.min():.1f}% to {accuracy.max():.1f}% (best: {activation_name(accuracy.idxmax())})"


def _count_range(counts):
    low, high = int(counts.min()), int(counts.max())
    return f"{low}" if low == high else f"{low}-{high}"


def autoattack_paired_finding(table, reference=None):
    """One sentence (Markdown) on `statistics.autoattack_paired_differences(table, reference)`:
    each KAF checkpoint minus the reference (default the best fixed activation), and which
    differences are measurable; "" when no pair can be formed."""
    pairs = autoattack_paired_differences(table, reference)
    if pairs is None:
        return ""
    reference = pairs["reference"].iloc[0]

    def measured(r):
        return (f"{activation_name(r['activation'])} {r['difference']:+.1f} [{r['low']:+.1f}, {r['high']:+.1f}] "
                f"(p {p_value(r['p_exact'])}, Holm {p_value(r['p_holm'])})")

    def edge(r):  # the interval excludes 0, the corrected test does not confirm it
        which, p = ("the exact test's p", r["p_exact"]) if r["p_exact"] >= 0.05 else ("Holm's corrected p", r["p_holm"])
        return f"{activation_name(r['activation'])} ({which} is {p_value(p)})"

    def names(rows):
        return ", ".join(map(activation_name, rows["activation"]))

    outcome = paired_outcome(pairs)
    higher, lower = pairs[outcome == "measurably higher"], pairs[outcome == "measurably lower"]
    on_edge, rest = pairs[outcome == "on the edge"], pairs[outcome == "no measurable difference"]
    return (f"Paired on the same {pairs['n_images'].iloc[0]} images, KAF minus "
            f"{activation_name(pairs['reference_activation'].iloc[0])} (`{reference}`), in points with 95% intervals and exact McNemar p-values "
            f"(then Holm-corrected for the {len(pairs)} comparisons): "
            + ", ".join(measured(r) for _, r in pairs.iterrows()) + ". "
            + (f"Measurably more robust: {names(higher)}. " if len(higher) else "")
            + (f"Measurably less robust: {names(lower)}. " if len(lower) else "")
            + ("On the edge, the interval excluding 0 but the test not confirming it: "
               + ", ".join(edge(r) for _, r in on_edge.iterrows()) + ". " if len(on_edge) else "")
            + (f"No measurable difference: {names(rest)}. " if len(rest) else "")
            + "One published checkpoint per activation, each with its own training history: the intervals "
              "cover the choice of test images, not retraining.")


def autoattack_findings(table, leaderboard):
    """Plain sentences (Markdown) on `results.autoattack_table()` beside
    `runs.leaderboard_entries()`: the range of AutoAttack accuracies, where each leaderboard
    entry falls, and KAF against fixed activations (their intervals overlapping is reported
    as no measurable difference)."""
    from IPython.display import Markdown

    from kaflib.thesis.studies import THESIS_CHECKPOINTS

    def interval(row, column):
        return f"{row[column]:.1f}% [{row[f'{column}_low']:.1f}, {row[f'{column}_high']:.1f}]"

    best, worst = table["autoattack"].idxmax(), table["autoattack"].idxmin()

    def label(name):
        return checkpoint_label(name, table.loc[name, "activation"])

    if len(table) == 1:
        lines = [f"- AutoAttack accuracy is {interval(table.loc[best], 'autoattack')} ({label(best)}), "
                 f"on {_count_range(table['n_images'])} test images."]
    else:
        lines = [f"- AutoAttack accuracy ranges from {interval(table.loc[worst], 'autoattack')} ({label(worst)}) to "
                 f"{interval(table.loc[best], 'autoattack')} ({label(best)}), on {_count_range(table['n_images'])} "
                 "test images each."]
    for name, entry in leaderboard.iterrows():
        above = (table["autoattack_high"] < entry["autoattack_acc"]).sum()
        inside = ((table["autoattack_low"] <= entry["autoattack_acc"])
                  & (entry["autoattack_acc"] <= table["autoattack_high"])).sum()
        clean_above = int((table["clean_high"] < entry["clean_acc"]).sum())
        lines.append(f"- {name}'s AutoAttack accuracy, {entry['autoattack_acc']:.2f}% (full test set), lies above "
                     f"the interval of {above} of the {len(table)} checkpoints and inside that of {inside}; its "
                     f"clean accuracy, {entry['clean_acc']:.2f}%, lies above the clean interval of {clean_above}.")
    missing = [f"{activation_name(act)} (`{name}`)" for act, name in THESIS_CHECKPOINTS.items() if name not in table.index]
    if missing:
        lines.append(f"- Not evaluated yet ({len(missing)} of the {len(THESIS_CHECKPOINTS)} checkpoints, one per "
                     f"activation): {', '.join(missing)}; each is `python -m kaflib.evaluate "
                     f"CHECKPOINTS_DIR/NAME.zip --n 512 --batch-size 64 --out results/autoattack-standard/NAME.json`.")
    kaf = table[table["activation"].isin(KAF_ACTIVATIONS)]
    fixed = table[~table["activation"].isin(KAF_ACTIVATIONS)]
    if len(kaf) and len(fixed):
        best_fixed = fixed["autoattack"].idxmax()
        separated = kaf[kaf["autoattack_low"] > fixed.loc[best_fixed, "autoattack_high"]].index.tolist()
        lines.append(f"- The best fixed activation is {label(best_fixed)} "
                     f"at {interval(fixed.loc[best_fixed], 'autoattack')}; "
                     + (f"KAF checkpoints whose interval lies wholly above it: "
                        f"{', '.join(map(label, separated))}."
                        if separated else "no KAF checkpoint's interval lies wholly above it."))
        for i, reference in enumerate(autoattack_paired_references(table)):
            lead = "" if i == 0 else "Against ReLU, the thesis' baseline. "
            lines.append(f"- {lead}{autoattack_paired_finding(table, reference)}")
    return Markdown("\n".join(lines))


def autoattack_version_note(table, audit=None):
    """Sentences on `results.autoattack_table()`: how many of its checkpoints have
    AutoAttack's standard version, and how far it moved the number where both ran.
    With `audit` (`results.checkpoint_audit_table()`), also which earlier numbers may
    be too high (`earlier_twin_caveat`)."""
    done = table[table["version"] == "standard"]
    total = table.attrs.get("checkpoints", len(table))
    caveat = earlier_twin_caveat(table, audit)
    if done.empty:
        return (f"No checkpoint has been evaluated with AutoAttack's standard version yet: all {total} numbers come "
                "from the earlier evaluation, without FAB-T." + caveat)
    if len(done) == total:
        return f"All {total} checkpoints were evaluated with AutoAttack's standard version."
    gap = (done["autoattack"] - done.get("earlier", float("nan"))).abs().dropna().max()
    rest = "the other's number still comes" if total - len(done) == 1 else "the others' numbers still come"
    return (f"{len(done)} of the {total} checkpoints have been evaluated with AutoAttack's standard version; {rest} "
            "from the earlier evaluation, without FAB-T and with ART's targeted loss. "
            + ("" if pd.isna(gap) else "Where both were run, they give the same number." if gap < 0.05
               else f"Where both were run, they differ by at most {gap:.1f} points.") + caveat)


def listed(names):
    """"A", "A and B", "A, B and C"."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def earlier_twin_suspects(table, audit):
    """The activations (display names) of the checkpoints of `results.autoattack_table()` whose
    number still comes from the earlier evaluation while their float32 twin disagrees with
    the published model on some clean images (`audit`: `results.checkpoint_audit_table()`,
    its `float32 agreement` below 100%); [] without an audit."""
    if audit is None or "float32 agreement" not in audit:
        return []
    disagrees = audit["float32 agreement"].reindex(table.index) < 100.0 - 1e-9  # NaN (not audited): False
    return [activation_name(a) for a in table.loc[disagrees & (table["version"] != "standard"), "activation"]]


def earlier_twin_caveat(table, audit):
    """A sentence (with a leading space) naming the checkpoints whose AutoAttack number
    still comes from the earlier evaluation and whose float32 twin disagrees with the
    published model on some clean images (the audit's `float32 agreement` below 100%),
    or "" if none (or no audit). In the earlier evaluation, the untargeted attacks took
    an image the twin alone misclassified as already fooled and left it unattacked, so
    only the targeted APGD-T attacked it: those numbers may be too high."""
    names = earlier_twin_suspects(table, audit)
    if not names:
        return ""
    twin = "its float32 twin" if len(names) == 1 else "each one's float32 twin"
    return (f" The earlier evaluation's numbers for {listed(names)} may be too high: {twin}, which the attacks "
            "differentiate, misclassifies some clean images the published model gets right, and there "
            "the earlier evaluation's untargeted attacks took the image as already fooled and left it; "
            "only APGD-T attacked it. The standard evaluation, which attacks every such image, replaces "
            "these numbers when it lands.")


def standard_autoattack_findings(table, audit=None):
    """Plain sentences (Markdown) on what AutoAttack's standard version changed, from
    `results.autoattack_table()` (and `audit`, as in `autoattack_version_note`): how many checkpoints have it, and per checkpoint that
    does, the images APGD-T with each loss and FAB-T broke, FAB-T's share of the time and
    the standard number beside the earlier one (no FAB-T, ART's targeted loss)."""
    from IPython.display import Markdown


    done = table[table["version"] == "standard"]
    lines = [f"- {autoattack_version_note(table, audit)}"]
    for name, row in done.iterrows():
        same = abs(row["autoattack"] - row.get("earlier", float("nan"))) < 1e-9
        lines.append(
            f"- {checkpoint_label(name, row['activation'])} (`{name}`): FAB-T broke {int(row['fab-t broke'])} of the images "
            f"APGD-CE and APGD-T left robust and took {row['fab-t share']:.0f}% of the evaluation's time; APGD-T "
            f"broke {int(row['apgd-t broke'])} images with AutoAttack's loss"
            + (f" where ART's broke {int(row['apgd-t-art broke'])}" if pd.notna(row.get("apgd-t-art broke")) else "")
            + ("" if row.get("reused", True) or pd.isna(row.get("earlier apgd-ce")) else
               f"; evaluated afresh, reusing nothing: its APGD-CE, judged by the published model, left "
               f"{row['apgd-ce']:.1f}% robust where the earlier evaluation's, judged by the float32 twin, left "
               f"{row['earlier apgd-ce']:.1f}%")
            + f". Standard AutoAttack: {row['autoattack']:.1f}% "
            f"[{row['autoattack_low']:.1f}, {row['autoattack_high']:.1f}], "
            + ("the same as the earlier evaluation." if same else "no earlier evaluation." if pd.isna(row.get("earlier"))
               else f"against {row['earlier']:.1f}% in the earlier evaluation."))
    return Markdown("\n".join(lines))


def checkpoint_audit_findings(table):
    """Plain sentences (Markdown bullet list) comparing `results.checkpoint_audit_table()` with
    the thesis' tab. "resnetrob" (ch. 7.3, `thesis.tex` line 1755).

    One bullet per checkpoint with a thesis number: where the thesis' robust
    accuracy falls relative to our PGD-50 95% interval, and how much the
    strongest attacks take off PGD-50; then the checkpoints PGD-50 leaves below 1%
    while they keep over 50% clean; then, for checkpoints with the protocol
    comparison, what float16 gradients and missing labels do to the number.
    """
    from IPython.display import Markdown

    compared = table[table["thesis in PGD interval"].notna()]
    above = int((compared["thesis robust"] > compared["pgd_high"]).sum())
    lines = [f"- The thesis' robust accuracy lies above our PGD-50 interval for {above} of the {len(compared)} "
             f"checkpoints (thesis ch. 7.3, tab. \"resnetrob\")."] if len(compared) else []
    for name, row in table.iterrows():
        if row["thesis in PGD interval"] is None:
            continue
        where = ("inside" if row["thesis in PGD interval"] else
                 "above" if row["thesis robust"] > row["pgd_high"] else "below")
        lines.append(f"- {checkpoint_label(name, row['activation'])}: the thesis' {row['thesis robust']:.1f}% is **{where}** "
                     f"our PGD-50 interval [{row['pgd_low']:.1f}, {row['pgd_high']:.1f}]%; the worst case over "
                     f"all attacks is {row['worst']:.1f}% ({row['pgd'] - row['worst']:.1f} points below PGD-50).")
    for name, row in table[(table["pgd"] < 1.0) & (table["clean"] > 50.0)].iterrows():
        lines.append(f"- {checkpoint_label(name, row['activation'])} (`{name}`) keeps {row['pgd']:.1f}% under PGD-50 "
                     f"at {row['clean']:.1f}% clean: no robustness left, which is what catastrophic overfitting of "
                     "fast adversarial training leaves (see Fundamentals); this was not checked further here.")
    thesis, fixed = "protocol: " + PROTOCOL_THESIS, "protocol: " + PROTOCOL_FIXED
    if thesis in table:
        for name, row in table[table[thesis].notna()].iterrows():
            lines.append(f"- {checkpoint_label(name, row['activation'])}: the thesis' protocol gives {row[thesis]:.1f}%; with float32 gradients, "
                         f"logits and true labels, {row[fixed]:.1f}% ({row[thesis] - row[fixed]:+.1f} points).")
    return Markdown("\n".join(lines))


def light_grid_finding(comparison, audit=None):
    """Markdown on the light CNNs' `results.compare_with_thesis` table: per activation, our
    robust accuracy beside the thesis' (its light-model results, ch. 6.1, `thesis.tex`
    lines 1211-1325), and, where ours is far below, the likely cause: the thesis' attack
    protocol, which the checkpoint audit (`audit`: `results.checkpoint_audit_table()`) shows
    raising robust accuracy on the published ResNet20; it was not checked on the light CNNs."""
    from IPython.display import Markdown

    both = comparison.dropna(subset=["robust (ours)", "robust (thesis)"])
    if both.empty:
        return _markdown("")
    gaps = both["robust (thesis)"] - both["robust (ours)"]
    text = ("Robust accuracy, ours against the thesis': " + ", ".join(
        f"{act} {row['robust (ours)']:.1f}% against {row['robust (thesis)']:.1f}%" for act, row in both.iterrows())
        + ".")
    if (gaps > 5).any():
        text += (f" Ours are lower by {gaps.min():.1f} to {gaps.max():.1f} points. Standard training gives no "
                 "robustness at this radius, which is what PGD finds here; why the thesis' standard-trained light "
                 "models keep {0} is not explained by these runs.".format(
                     f"{both['robust (thesis)'].min():.1f}-{both['robust (thesis)'].max():.1f}%"))
        thesis, fixed = "protocol: " + PROTOCOL_THESIS, "protocol: " + PROTOCOL_FIXED
        if audit is not None and thesis in audit and audit[thesis].notna().any():
            row = audit[audit[thesis].notna()].iloc[0]
            text += (f" A likely cause, not checked on these models: the thesis' attack protocol, which on the "
                     f"published ResNet20 ({activation_name(row['activation'])}) gives {row[thesis]:.1f}% where float32 gradients, "
                     f"logits and true labels give {row[fixed]:.1f}% (the published-models chapter).")
    return Markdown(text)


def deep_kaf_epochs_note(table):
    """Markdown on `results.deep_kaf_table()`: the runs scheduled for fewer epochs than the most
    common schedule (the same one-cycle schedule, compressed into those epochs), with their
    best clean accuracy, and the runs that stopped before their schedule's end without
    diverging (interrupted); empty when all ran the same schedule to its end."""
    from kaflib.thesis.tables import run_label

    usual = int(table["scheduled epochs"].mode().max())
    short = table[table["scheduled epochs"] < usual]
    stopped = table[(table["epochs"] < table["scheduled epochs"]) & (table["diverged"] == "no")]
    lines = []
    if len(short):
        lines.append(f"Runs scheduled for fewer epochs than the others' {usual} (the same one-cycle schedule over "
                     "fewer epochs): " + "; ".join(
                         f"{run_label(label)}, {int(row['scheduled epochs'])} epochs"
                         + ("" if pd.isna(row["best clean %"]) else f", at most {row['best clean %']:.1f}% clean in any of them")
                         for label, row in short.iterrows()) + ".")
    if len(stopped):
        lines.append("Runs that stopped before the end of their schedule, without diverging: " + "; ".join(
            f"{run_label(label)}, {int(row['epochs'])} of {int(row['scheduled epochs'])} epochs"
            for label, row in stopped.iterrows()) + ".")
    return _markdown(" ".join(lines))


def activation_distance_finding(distances):
    """Markdown on the per-layer L2 distances between clean and adversarial activations
    (`{model: kaflib.plots.activation_distances(...)}`): per layer position, the model
    with the smallest median distance, against the thesis' finding that the KAF network
    "almost always results in smaller distance norms" (ch. 6.1, `thesis.tex` line 1317)."""
    from IPython.display import Markdown

    if not distances:
        return _markdown("")
    medians = pd.DataFrame({act: [float(pd.Series(v).median()) for v in layers.values()]
                            for act, layers in distances.items()})
    smallest = medians.idxmin(axis=1)
    counts = smallest.value_counts()
    kafs = [a for a in medians if a in KAF_ACTIVATIONS]
    text = (f"Smallest median distance per layer: " + ", ".join(f"{act} in {n} of {len(medians)} layers"
                                                             for act, n in counts.items()) + ".")
    kaf_layers = int(smallest.isin(kafs).sum())
    if kafs and kaf_layers < len(medians) / 2:
        text += (" The thesis found the KAF network's distances almost always the smallest (ch. 6.1); here they "
                 "are not. Not explained: these light models are trained differently from the thesis' (see the "
                 "table above), and the KAF model here keeps no robust accuracy at all, so its activations are "
                 "free to move; that was not tested.")
    elif kafs:
        text += " As in the thesis (ch. 6.1), the KAF network's distances are mostly the smallest."
    return Markdown(text)


def pgd_sweeps_note(sweeps, promised):
    """Markdown on the PGD-iterations sweeps: which of the `promised` runs ("<model> / <act>")
    have one (`sweeps`: the labels shown), and where the others' PGD curves are."""
    from IPython.display import Markdown

    missing = [run for run in promised if not any(label.startswith(run + " ") or label == run for label in sweeps)]
    if not missing:
        return _markdown("")
    return Markdown(f"No sweep has been run for {', '.join(missing)} (`python -m kaflib.thesis.studies "
                    f"pgd-iterations <run folder>`); their PGD accuracy after 5 to 100 iterations is among the "
                    f"PGD curves at the end of the gradient-masking checks below.")


#: The thesis' tables of fast adversarial training: experiment -> (table label, network, `thesis.tex` line).
THESIS_TABLES = {"vgg_fast_at": ('tab. "vggrob"', "VGG", 1588), "resnet_fast_at": ('tab. "resnetrob"', "ResNet20", 1755)}


def thesis_ranking_finding(reported):
    """Markdown: what the thesis' own tables of fast adversarial training (`runs.reported_results()`;
    `THESIS_TABLES`) say of the KAFs against the fixed activations: the most robust activation,
    and the KAFs above and below each smooth fixed activation (ELU, Swish). The thesis names
    Swish alone as better than the KAFs (ch. 8.1, `thesis.tex` line 1820)."""
    from IPython.display import Markdown


    lines = []
    for experiment, (label, network, _) in THESIS_TABLES.items():
        table = reported[reported["experiment"] == experiment].set_index("activation")["robust_acc"]
        if table.empty:
            continue
        kafs = table[table.index.isin(KAF_ACTIVATIONS)]
        best = table.idxmax()
        line = f"- {label} ({network}): {activation_name(best)} is the most robust, {table[best]:.1f}%"
        for smooth in ("swish", "elu"):
            if smooth == best or smooth not in table:
                continue
            above = kafs[kafs > table[smooth]]
            line += (f"; above {activation_name(smooth)}'s {table[smooth]:.1f}%: " +
                     (", ".join(f"{activation_name(a)} {v:.1f}%" for a, v in above.items()) if len(above)
                      else "no KAF"))
        lines.append(line + ".")
    if not lines:
        return _markdown("")
    tables = [reported[reported["experiment"] == e].set_index("activation")["robust_acc"] for e in THESIS_TABLES]
    tables = [t for t in tables if not t.empty and {"swish", "elu"} <= set(t.index)]
    swish_first = all(t.idxmax() == "swish" for t in tables)
    kaf_above_elu = all((t[t.index.isin(KAF_ACTIVATIONS)] > t["elu"]).any() for t in tables)
    if tables and swish_first and kaf_above_elu:
        lines.append("\nSo in the thesis' own numbers no KAF reaches Swish, while some KAFs are above ELU: its "
                     "conclusion holds for Swish, not for the smooth fixed activations as a class.")
    return Markdown("\n".join(lines))
