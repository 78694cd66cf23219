"""The book's tables for reading: readable row labels and column names with units,
numbers rounded per column, missing values in words, the row label kept in view.

`kaflib.thesis.results` computes the tables (raw column names, activations as
`kaflib.activations` spells them); `show` is how a chapter displays one. Nothing
here changes a number: it only names, orders and formats.
"""

import math

from kaflib.activations import ACTIVATION_NAMES, activation_name

__all__ = ["ACTIVATION_NAMES", "GRID_NAMES", "COLUMN_NAMES", "activation_name", "grid_name", "checkpoint_label",
           "model_name", "run_label", "show", "learning_rates", "thesis_comparison", "masking_tables", "deep_kaf", "lr_ranges", "checkpoint_audit", "checkpoint_files", "autoattack_tables", "attack_agreement",
           "p_value", "paired_differences", "cross_check", "by_checkpoint", "kaf_versus_fixed", "thesis_figures",
           "thesis_figures_markdown"]

#: The grids and studies by the networks they hold.
GRID_NAMES = {"thesis-light": "light CNN", "thesis-vgg": "VGG-inspired", "thesis-resnet20": "ResNet20",
              "thesis-checkpoints": "published ResNet20"}

_ACCURACIES = {  # clean and under attack
    "clean": "clean (%)", "clean_acc": "clean (%)", "robust_acc": "robust (%)", "pgd": "PGD-50 (%)",
    "apgd_ce": "APGD-CE (%)", "apgd_dlr_t": "APGD-CE + APGD-T (%)", "square": "Square (%)",
    "surrogate": "smoothed surrogate (%)", "worst": "worst case (%)", "acc_at_max_eps": "PGD at eps 128/255 (%)",
    "transfer_in": "transfer from ReLU (%)", "transfer_out": "ReLU on this model's images (%)",
}
_MASKING = {  # gradient-masking flags
    "pgd_curve_50": "PGD curve at 50 iterations (%)", "pgd_curve_last": "PGD curve at its last count (%)",
    "not_to_zero": "above 1% at eps 128/255", "black_box_wins": "Square beats PGD",
    "transfer_wins": "transfer beats PGD", "surrogate_wins": "surrogate beats PGD",
    "not_converged": "PGD still falling after 50 iterations",
}
_AUTOATTACK = {
    "apgd-ce": "after APGD-CE (%)", "apgd-t": "after APGD-T (%)", "autoattack": "AutoAttack (%)",
    "n_images": "test images", "minutes": "minutes", "activation": "activation", "version": "version",
    "earlier": "without FAB-T, ART's loss (%)", "fab-t broke": "images FAB-T broke",
    "fab-t share": "FAB-T's time (%)", "apgd-t broke": "APGD-T broke (AutoAttack's loss)",
    "apgd-t-art broke": "APGD-T broke (ART's loss)",
}
#: The attacks of `kaflib.autoattack` as a reader names them.
ATTACK_NAMES = {"apgd-ce": "APGD-CE", "apgd-t": "APGD-T", "apgd-t-art": "APGD-T (ART's loss)", "fab-t": "FAB-T",
                "square": "Square", "pgd": "PGD-50"}
_LIPSCHITZ = {
    "max_activation": "steepest activation (max |f'|)", "network_bound": "network bound",
    "log10_bound": "log10 network bound", "bound_vs_robust": "robust vs bound (Spearman)",
    "activation_vs_robust": "robust vs steepest activation (Spearman)", "runs": "runs",
}
_COMPARISONS = {  # paired comparisons and the thesis' numbers
    "difference": "difference (points)", "only_this": "images only the KAF survives",
    "only_reference": "images only the reference survives", "p_exact": "p (exact McNemar)",
    "p_holm": "p (Holm)", "thesis clean": "thesis clean (%)", "thesis robust": "thesis robust (%)",
    "float32 agreement": "float32 twin agrees (%)", "model": "network", "act": "activation",
}
#: Column names of `kaflib.thesis.results`' tables as a reader sees them (accuracies in percent).
COLUMN_NAMES = {**_ACCURACIES, **_MASKING, **_AUTOATTACK, **_LIPSCHITZ, **_COMPARISONS}


def grid_name(grid):
    """"ResNet20" for "thesis-resnet20"; other names unchanged."""
    return GRID_NAMES.get(grid, grid)


def checkpoint_label(name, activation):
    """A published checkpoint in words: its activation, and for the checkpoints that are not
    the one `kaflib.thesis.studies.THESIS_CHECKPOINTS` compares with the thesis' table, what
    the file name says about it (e.g. "KAF_ReLU, last epoch")."""
    from kaflib.thesis.studies import THESIS_CHECKPOINTS

    label = activation_name(activation)
    if THESIS_CHECKPOINTS.get(activation) == name:
        return label
    if name.endswith("_last"):
        return f"{label}, last epoch"
    if name.endswith("_tmp"):
        return f"{label}, before fine-tuning"
    return f"{label}, other run"


#: `kaflib.models.MODELS` by the names the thesis gives them.
MODEL_NAMES = {"light": "light CNN", "vgg": "VGG-inspired", "resnet20": "ResNet20", "resnet56": "ResNet56"}


def model_name(model):
    """"VGG-inspired" for "vgg"; other names unchanged."""
    return MODEL_NAMES.get(model, model)


def run_label(label):
    """"ResNet56 / KAF N(0, 0.05²)" for a label "resnet56 / kaf N(0, 0.05²)" (model / activation,
    then anything after a space)."""
    model, _, rest = label.partition(" / ")
    act, _, init = rest.partition(" ")
    return f"{model_name(model)} / {activation_name(act)}" + (f" {init}" if init else "")


def _number(digits, na):
    """A cell formatter: `digits` decimals (or a format string), `na` for NaN and None, "overflow"
    for an infinite value."""
    def cell(value):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return na
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, float) and math.isinf(value):
            return "overflow" if value > 0 else "-overflow"
        if isinstance(digits, str):
            return digits.format(value)
        if isinstance(value, (int, float)):
            return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
        return str(value)
    return cell


def show(frame, columns=None, names=None, formats=None, index=None, digits=1, na="–", index_name=None):
    """`frame` ready for the book, as a pandas Styler.

    Args:
        columns: the columns to show, in this order (default all; the ones that carry a
            comparison should come first).
        names: {column: heading} over `COLUMN_NAMES`.
        formats: {column: digits (int), format string or callable}; other numbers get
            `digits` decimals.
        index: a function applied to each row label (e.g. `activation_name`).
        na: what a missing value reads as (a word or a dash, never NaN).
        index_name: the heading of the row labels (default the index's name).

    Booleans read "yes"/"no" and infinities "overflow"; the row labels stay in view when
    a wide table scrolls sideways.
    """
    table = frame[list(columns)] if columns is not None else frame.copy()
    if index is not None:
        table.index = [index(label) for label in table.index]
    corner = index_name if index_name is not None else frame.index.name
    headings = {**COLUMN_NAMES, **(names or {})}
    cells = {}
    for column in table.columns:
        rule = (formats or {}).get(column, digits)
        cells[column] = rule if callable(rule) else _number(rule, na)
    table = table.rename(columns={c: headings.get(c, c) for c in table.columns})
    cells = {headings.get(c, c): f for c, f in cells.items()}
    table.index.name, table.columns.name = None, corner  # the row labels' heading in the corner: one header row
    return table.style.format(cells).set_sticky(axis="index")


def _lr_pair(low, high):
    """"(0.0001, 0.08)": a one-cycle schedule's bounds as the thesis' tables write them; "" if unknown."""
    if low is None or high is None or low != low or high != high:
        return ""
    return f"({low:g}, {high:g})"


def learning_rates(measured, grid):
    """Per activation, the one-cycle bounds (min_lr, max_lr) of our runs and of the thesis
    (its tab. "vggrob"; the ResNet20 table has none): a DataFrame of strings with the
    columns ``lr (ours)`` and ``lr (thesis)``."""
    import pandas as pd

    from kaflib.thesis.experiment import read_metrics
    from kaflib.thesis.runs import reported_results

    ours = {}
    for row in measured.itertuples():
        p = read_metrics(row.run_dir)["parameters"]
        ours.setdefault(row.act, set()).add(_lr_pair(p.get("min_lr"), p.get("max_lr")))
    thesis = reported_results(grid).set_index("activation")
    acts = list(dict.fromkeys([*thesis.index, *ours]))
    return pd.DataFrame({"lr (ours)": [" / ".join(sorted(ours.get(a, []))) for a in acts],
                         "lr (thesis)": [_lr_pair(*thesis.loc[a, ["min_lr", "max_lr"]]) if a in thesis.index
                                         else "" for a in acts]}, index=acts)


def thesis_comparison(comparison, measured=None, grid=None, digits=1):
    """`statistics.mean_sd(comparison)` for reading: per activation, robust then clean accuracy,
    ours beside the thesis', then, given the grid's runs (`measured`, `results.load_grid`)
    and `grid`, the learning-rate bounds where the thesis reports them, then how our runs
    were trained."""
    from kaflib.thesis.statistics import mean_sd

    shown = mean_sd(comparison, digits)
    columns = ["robust (ours)", "robust (thesis)", "clean (ours)", "clean (thesis)"]
    if measured is not None and grid is not None:
        rates = learning_rates(measured, grid)
        if rates["lr (thesis)"].any():
            shown = shown.join(rates)
            columns += ["lr (ours)", "lr (thesis)"]
    columns += [c for c in ("trained with (ours)",) if c in shown]
    names = {c: c.replace(" (", " % (") for c in columns[:4]}
    names.update({"lr (ours)": "(min_lr, max_lr) ours", "lr (thesis)": "(min_lr, max_lr) thesis"})
    return show(shown, columns, names=names, index=activation_name, digits=digits, index_name="activation")


#: The masking checks' columns by purpose: the attacks compared at eps = 8/255, then the
#: diagnostics behind the flags.
MASKING_ATTACKS = ("clean", "pgd", "worst", "apgd_ce", "apgd_dlr_t", "square", "surrogate", "transfer_in")
MASKING_DIAGNOSTICS = ("acc_at_max_eps", "pgd_curve_50", "pgd_curve_last", "transfer_out")


def masking_tables(checks):
    """`results.masking_table()` as three tables: accuracy under each attack, the
    diagnostics behind the flags, and the flags; rows read "ResNet20 / KAF_ELU". An
    attack not run on a model (the surrogate on a fixed activation, transfer from ReLU
    to ReLU) reads "–"."""
    from kaflib.thesis.statistics import MASKING_FLAGS

    frame = checks.copy()
    frame.index = [f"{grid_name(grid)} / {activation_name(model)}" for grid, model in checks.index]
    frame.index.name = "network / activation"
    flags = [f for f in MASKING_FLAGS if f in frame]
    return (show(frame, [c for c in MASKING_ATTACKS if c in frame]),
            show(frame, [c for c in MASKING_DIAGNOSTICS if c in frame]),
            show(frame, flags))


def deep_kaf(table, columns=None):
    """`results.deep_kaf_table()` for reading: the rows as "ResNet56 / KAF N(0, 0.05²)", the
    gradient ratio in 3 significant digits, minutes whole; "–" where a column does not
    apply (no KAF in a ReLU network, no ReLU run to compare with). `columns`: the ones to
    show (default all but "scheduled epochs", which `findings.deep_kaf_epochs_note` words)."""
    columns = columns or [c for c in table if c != "scheduled epochs"]
    return show(table, columns, index=run_label, index_name="network / activation",
                formats={"init grad first/last conv": "{:.3g}", "KAF max |f'| (median layer)": "{:.3g}",
                         "vs ReLU (points)": "{:+.1f}", "minutes": 0, "epochs": 0},
                names={"init grad first/last conv": "gradient ratio first/last conv at init",
                       "best clean %": "best clean (%)", "last clean %": "last clean (%)"})


def lr_ranges(ranges):
    """`results.lr_range_table()` for reading: the max_lr read from each test beside the
    quick preset's and the thesis', then the min_lr, then how the loss behaved and the
    test's minutes; "not on record" where the thesis has no range."""
    columns = [f"{who}: {bound}" for bound in ("max_lr", "min_lr") for who in ("test", "quick", "thesis")]
    names = {f"{who}: {bound}": f"{bound}, {words}" for bound in ("max_lr", "min_lr")
             for who, words in (("test", "read from the test"), ("quick", "quick preset"), ("thesis", "thesis"))}
    names.update(loss="loss during the test")
    return show(ranges, [*columns, "loss", "minutes"], names=names, index=activation_name, na="not on record",
                formats={**{c: "{:.2g}" for c in columns}, "minutes": 0})


def by_checkpoint(table):
    """`table` (indexed by checkpoint, with an `activation` column) indexed by `checkpoint_label`."""
    frame = table.copy()
    frame.index = [checkpoint_label(name, act) for name, act in zip(table.index, table["activation"])]
    return frame


def checkpoint_audit(table):
    """`results.checkpoint_audit_table()` for reading: the robust accuracies beside the thesis'
    first, then clean accuracy and the float32 twin's agreement (`checkpoint_files` names the
    files: the table stays narrow enough for a page)."""
    return show(by_checkpoint(table), ["pgd", "thesis robust", "worst", "apgd_ce", "clean", "thesis clean",
                                       "float32 agreement"], index_name="published checkpoint")


def checkpoint_files(table):
    """Each row of `checkpoint_audit` with the file it was read from."""
    frame = by_checkpoint(table).assign(file=[f"{name}.zip" for name in table.index])
    return show(frame, ["file"], index_name="published checkpoint", names={"file": "checkpoint file"})


def autoattack_tables(aa, leaderboard):
    """`results.autoattack_table()` as four tables: accuracy (AutoAttack and which version,
    the earlier evaluation's, clean, after APGD-CE, the number of test images); what the
    standard version changed on the checkpoints that have it (the images each targeted APGD
    and FAB-T broke, FAB-T's share of the time; None when none has it); the attacks' cost
    (images per second, minutes in all); and RobustBench's entries."""
    frame = by_checkpoint(aa)
    accuracy = show(frame, ["autoattack", "version", "earlier", "clean", "apgd-ce", "n_images"],
                    index_name="published checkpoint")
    standard = frame[frame["version"] == "standard"]
    changes = None if standard.empty else show(
        standard, [c for c in ("fab-t broke", "apgd-t broke", "apgd-t-art broke", "fab-t share") if c in standard],
        formats={"fab-t broke": 0, "apgd-t broke": 0, "apgd-t-art broke": 0}, index_name="published checkpoint")
    speeds = {f"{a} images/s": ATTACK_NAMES[a] for a in aa.attrs["attacks"]}  # the chapter says: images per second
    cost = show(frame, [*speeds, "minutes"], names=speeds | {"minutes": "minutes in all"},
                formats={c: 2 for c in speeds} | {"minutes": 0}, index_name="published checkpoint")
    board = show(leaderboard, ["autoattack_acc", "clean_acc", "architecture", "n_images"], index_name="RobustBench",
                 formats={"autoattack_acc": 2, "clean_acc": 2},
                 names={"autoattack_acc": "AutoAttack (%)", "clean_acc": "clean (%)"})
    return accuracy, changes, cost, board


def p_value(value):
    """A p-value as the book prints it, in tables and sentences alike: "0.012", "< 0.001"."""
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def paired_differences(pairs):
    """`statistics.autoattack_paired_differences()` for reading: one row per KAF, the difference
    with its 95% interval ("+3.3 [+0.9, +5.8]", as the sentences print it) and p-values first,
    then the images behind it."""
    frame = pairs.assign(difference=[f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]"
                                     for d, lo, hi in zip(pairs["difference"], pairs["low"], pairs["high"])])
    frame.index = [activation_name(a) for a in pairs["activation"]]
    reference = activation_name(pairs["reference_activation"].iloc[0])
    return show(frame, ["difference", "p_exact", "p_holm", "only_this", "only_reference"],
                index_name=f"KAF minus {reference}", formats={"p_exact": p_value, "p_holm": p_value},
                names={"difference": "difference (points), 95% interval",
                       "only_reference": f"images only {reference} survives"})


def cross_check(table):
    """`kaflib.thesis.crosscheck.cross_check_table()` for reading."""
    from kaflib.thesis.studies import THESIS_CHECKPOINTS

    named = {name: act for act, name in THESIS_CHECKPOINTS.items()}
    frame = table.copy()
    frame.index = [checkpoint_label(name, named.get(name, name)) for name in table.index]
    for who in ("kaflib", "torchattacks"):  # "34.4 [26.7, 43.0]"; the per-image counts are in the sentence
        if who in frame:
            frame[who] = [None if v != v else f"{v:.1f} [{ci[0]:.1f}, {ci[1]:.1f}]"
                          for v, ci in zip(frame[who], frame[f"{who}_ci95"])]
    columns = [c for c in ("kaflib", "torchattacks", "agree_within_intervals", "n") if c in frame]
    return show(frame, columns, index_name="published checkpoint",
                names={"kaflib": "kaflib AutoAttack (%), 95% interval",
                       "torchattacks": "torchattacks AutoAttack (%), 95% interval",
                       "agree_within_intervals": "agree within the interval", "n": "test images"})


def attack_agreement(table):
    """`kaflib.thesis.crosscheck.attack_agreement_table()` for reading: per checkpoint and
    attack, the share of images the two implementations judge alike first, then the counts."""
    from kaflib.thesis.studies import THESIS_CHECKPOINTS

    named = {name: act for act, name in THESIS_CHECKPOINTS.items()}
    frame = table.reset_index()
    frame.index = [checkpoint_label(m, named.get(m, m)) for m in frame["model"]]
    frame["attack"] = [ATTACK_NAMES.get(a, a) for a in frame["attack"]]
    counts = ["attacked", "agree", "only_kaflib_robust", "only_torchattacks_robust"]
    return show(frame, ["attack", "share", *counts], index_name="published checkpoint",
                formats={c: 0 for c in counts},
                names={"share": "alike (%)", "agree": "alike", "attacked": "images given",
                       "only_kaflib_robust": "robust to kaflib's only",
                       "only_torchattacks_robust": "robust to torchattacks' only"})


def kaf_versus_fixed(frame, digits=2):
    """`results.kaf_versus_fixed()` for reading: one row per grid and source ("ResNet20, this
    project"), the activations that did not train or were trained with an earlier recipe
    by the thesis' names."""
    table = frame.copy()
    table.index = [f"{grid_name(g)}, {'this project' if who == 'ours' else 'thesis'}"
                   for g, who in zip(frame["grid"], frame["source"])]
    for column in ("did not train", "earlier recipe"):
        table[column] = [", ".join(activation_name(a.strip()) for a in cell.split(",")) if cell else ""
                         for cell in table[column]]
    return show(table, [c for c in table if c not in ("grid", "source")], digits=digits, index_name="networks")


#: The chapters' titles, for the links of `thesis_figures_markdown`.
CHAPTERS = {"intro": "Introduction", "kernel_activation_functions": "Kernel activation functions",
            "related_work": "Related work", "solution_approach": "Solution approach", "evaluation": "Evaluation",
            "published_models": "Published models", "lipschitz": "Lipschitz", "conclusions": "Conclusions"}


def thesis_figures():
    """Every figure and table environment of the thesis (`thesis_figures.csv`, package data),
    in the thesis' order: label (its \\label, "" when it has none), image (the file it
    includes), kind, caption (shortened), status ("rebuilt", "partly rebuilt", "redrawn",
    "not rebuilt"), page (the book's chapter that shows it) and rebuilt_as (what the
    book shows, or why it does not rebuild it)."""
    from importlib import resources

    import pandas as pd

    with resources.files("kaflib.thesis").joinpath("thesis_figures.csv").open() as f:
        return pd.read_csv(f, keep_default_na=False)


def thesis_figures_markdown(table=None):
    """`thesis_figures()` as a Markdown table: the thesis' label (or image) and caption beside
    where the book rebuilds it, with a link to the chapter, or why it does not."""
    table = thesis_figures() if table is None else table

    def cell(text):
        return str(text).replace("|", "\\|")

    lines = ["| # | thesis | caption | in the book |", "|---|---|---|---|"]
    for i, row in enumerate(table.itertuples(), 1):
        name = f"`{row.label}`" if row.label else f"`{row.image}` (no label)"
        where = (f"{row.status}: {row.rebuilt_as} ([{CHAPTERS.get(row.page, row.page)}]({row.page}.md))"
                 if row.page else f"not rebuilt: {row.rebuilt_as}")
        lines.append(f"| {i} | {name} ({row.kind.rstrip('*')}) | {cell(row.caption)} | {cell(where)} |")
    return "\n".join(lines)
