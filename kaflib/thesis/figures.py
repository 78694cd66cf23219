"""The book's figures of thesis results: grids, studies, the published checkpoints.

Each function takes a table from `kaflib.thesis.results` and draws one figure.
"""

import numpy as np

from kaflib.plots import MAX_WIDTH, act_marker
from kaflib.thesis.statistics import paired_outcome
from kaflib.thesis.tables import activation_name, checkpoint_label, grid_name

__all__ = ["plot_robustness_vs_accuracy", "plot_deep_kaf", "plot_bound_vs_robustness",
           "plot_lipschitz_evolution", "plot_checkpoint_audit", "plot_lr_range_tests", "plot_autoattack",
           "plot_autoattack_differences", "plot_masking_checks"]


def plot_robustness_vs_accuracy(comparison, title=None):
    """Robust against clean accuracy, this project's runs beside the thesis' numbers.

    Args:
        comparison: `kaflib.thesis.results.compare_with_thesis` table (percent).

    Returns:
        The figure: left panel measured here (the mean over seeds; with several
        seeds, one small point per seed and the sd as error bars), right panel
        reported by the thesis; one colour per activation, KAFs as filled
        crosses, fixed activations as thin diamonds.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(MAX_WIDTH + 0.5, 3.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    runs = comparison.attrs.get("runs")
    for ax, who in zip(axes, ("ours", "thesis")):
        for i, (act, row) in enumerate(comparison.iterrows()):
            x, y = row[f"clean ({who})"], row[f"robust ({who})"]
            if np.isfinite(x) and np.isfinite(y):
                marker = act_marker(act)
                colour = {"edgecolors" if "facecolors" in marker else "color": colours[i % len(colours)]}
                ax.scatter(x, y, label=activation_name(act), **marker, **colour)
                seeds = runs[runs["act"] == act] if who == "ours" and runs is not None else []
                if len(seeds) > 1:  # one faint point per seed, and the sd as error bars
                    ax.scatter(seeds["clean_acc"], seeds["robust_acc"], s=12, alpha=0.5,
                               color=colours[i % len(colours)])
                    ax.errorbar(x, y, xerr=row["clean sd (ours)"], yerr=row["robust sd (ours)"], fmt="none",
                                ecolor=colours[i % len(colours)], alpha=0.6, capsize=2)
        ax.set(xlabel="clean accuracy (%)", ylabel="robust accuracy (%)",
               title="this project" if who == "ours" else "thesis (reported)")
        ax.grid(alpha=0.3)
    handles = {}  # one entry per activation: the labelled markers, not the seeds' points or error bars
    for ax in axes:
        handles.update((label, h) for h, label in zip(*ax.get_legend_handles_labels()))
    fig.legend(handles.values(), handles.keys(), loc="center right", fontsize="small")
    fig.tight_layout(rect=(0, 0, 0.85, 0.94 if title else 1))
    if title:
        fig.suptitle(title)
    return fig


# --- Kernel activation functions ---------------------------------------------


def plot_deep_kaf(studies):
    """Two panels for `kaflib.thesis.runs.load_deep_kaf` studies: the gradient norm of
    every convolution's kernel and bias at initialisation, in the order from
    input to output (log scale), and the clean test accuracy per epoch of
    standard training (a cross marks a divergence)."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(2, 1, figsize=(MAX_WIDTH, 7))
    for label, study in studies.items():
        norms = study["init_gradient_norms"]
        convs = norms[norms["layer"].str.startswith("conv")]
        line, = left.plot(np.arange(1, len(convs) + 1), convs["norm"], label=label, linewidth=1)
        history = study["rows"]
        if len(history):
            right.plot(history["epoch"], 100 * history["test_clean_acc"], marker=".", color=line.get_color(),
                       label=label)
        if study["diverged"]:
            right.plot(len(history) + 1, 10, "x", color=line.get_color(), markersize=9)
    left.set(yscale="log", xlabel="convolution (1 = input side)", ylabel="gradient norm at init",
             title="gradients at initialisation")
    right.axhline(10, color="grey", linestyle=":", linewidth=1)
    right.set(xlabel="epoch", ylabel="clean test accuracy %", title="standard training (x: diverged)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def plot_bound_vs_robustness(runs, min_clean=None):
    """Robust accuracy (%) against the network's Lipschitz bound (log scale), one
    point per run, KAFs as filled crosses. `runs`: the rows of `lipschitz` studies.
    Runs with clean accuracy below `min_clean` (a fraction; default
    `runs.MIN_TRAINED_CLEAN`) did not train: they are drawn faint and labelled
    "at chance"."""
    import matplotlib.pyplot as plt

    from kaflib.thesis.runs import MIN_TRAINED_CLEAN

    min_clean = MIN_TRAINED_CLEAN if min_clean is None else min_clean

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    finite = runs[np.isfinite(runs["network_bound"])]
    for i, ((model, act), row) in enumerate(finite.set_index(["model", "act"]).iterrows()):
        marker = act_marker(act)
        colour = {"edgecolors" if "facecolors" in marker else "color": colours[i % len(colours)]}
        at_chance = row["clean_acc"] < min_clean
        ax.scatter(row["network_bound"], 100 * row["robust_acc"], **marker, **colour, alpha=0.3 if at_chance else 1,
                   label=f"{model} / {activation_name(act)}" + (" (at chance)" if at_chance else ""))
    ax.set(xscale="log", xlabel="Lipschitz upper bound of the network (L2)", ylabel="robust accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="xx-small", ncol=2)
    fig.tight_layout()
    return fig


def plot_lipschitz_evolution(histories):
    """The network's Lipschitz bound (log10), its largest activation constant and its
    training accuracy (%, on the FGSM examples) per epoch: does a run collapse as its
    activations steepen?

    `histories`: {label: per-epoch history with the columns of
    `kaflib.lipschitz.lipschitz_epoch_metrics` and train_acc}
    (`runs.lipschitz_histories()`); labels ending in a KAF activation are drawn
    solid, the others dashed.
    """
    import matplotlib.pyplot as plt

    from kaflib.activations import KAF_ACTIVATIONS

    fig, (bound_ax, act_ax, acc_ax) = plt.subplots(3, 1, figsize=(MAX_WIDTH, 9), sharex=True)
    for label, history in histories.items():
        style = dict(marker=".", label=label,
                     linestyle="-" if label.split(" / ")[-1] in KAF_ACTIVATIONS else "--")
        bound_ax.plot(history["epoch"], history["lipschitz_bound_log10"], **style)
        act_ax.plot(history["epoch"], history["activation_lipschitz_max"], **style)
        acc_ax.plot(history["epoch"], 100 * history["train_acc"], **style)
    bound_ax.set(ylabel="log10 Lipschitz bound\nof the network")
    act_ax.set(ylabel="largest activation\nconstant (max |f'|)", yscale="log")
    acc_ax.set(xlabel="epoch", ylabel="training accuracy (%)")
    for ax in (bound_ax, act_ax, acc_ax):
        ax.grid(alpha=0.3)
    bound_ax.legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


def plot_checkpoint_audit(table):
    """Robust accuracy per checkpoint and attack with 95% intervals, and the thesis' reported number.

    `table` is `kaflib.thesis.results.checkpoint_audit_table()`.
    """
    import matplotlib.pyplot as plt

    attacks = [("pgd", "PGD-50"), ("apgd_ce", "APGD-CE"), ("worst", "worst case (+ APGD-T)")]
    fig, ax = plt.subplots(figsize=(MAX_WIDTH, 0.45 * len(table) + 2), layout="constrained")
    rows = np.arange(len(table))
    for i, (column, label) in enumerate(attacks):
        y = rows + (i - 1) * 0.22
        values = table[column].to_numpy()
        errors = np.stack([values - table[f"{column}_low"], table[f"{column}_high"] - values])
        ax.errorbar(values, y, xerr=errors, fmt="o", ms=4, capsize=2, label=label)
    ax.scatter(table["thesis robust"], rows, marker="*", s=120, color="black", zorder=3,
               label="thesis (reported, full test set)")
    ax.set_yticks(rows)
    ax.set_yticklabels([checkpoint_label(c, a) for c, a in zip(table.index, table["activation"])], fontsize="small")
    ax.invert_yaxis()
    ax.set(xlabel="robust accuracy (%), 95% interval")
    fig.legend(fontsize="small", loc="outside lower center", ncol=2, frameon=False)  # below: covers no row
    ax.grid(alpha=0.3, axis="x")
    return fig


def plot_lr_range_tests(tests, ranges):
    """Training loss (running median of 9 steps) against learning rate, one line per activation,
    with the max_lr read from each (a dot).

    `tests` is `kaflib.thesis.results.lr_range_tests()`, `ranges` `lr_range_table()`.
    """
    import matplotlib.pyplot as plt

    from kaflib.activations import KAF_ACTIVATIONS

    fig, ax = plt.subplots(figsize=(7, 4))
    for act, (_, rows) in tests.items():
        median = rows["loss"].rolling(9, center=True, min_periods=5).median()
        line, = ax.plot(rows["lr"], median, ls="-" if act in KAF_ACTIVATIONS else "--", label=activation_name(act))
        high = ranges.loc[act, "test: max_lr"]
        ax.plot([high], [np.interp(np.log(high), np.log(rows["lr"]), median)], "o", color=line.get_color())
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss (running median, 9 steps)")
    ax.legend(fontsize="small", ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_autoattack(table, leaderboard):
    """Clean and AutoAttack accuracy (%) of each published checkpoint with 95% intervals,
    beside RobustBench's entries.

    `table` is `kaflib.thesis.results.autoattack_table()`, `leaderboard`
    `kaflib.thesis.runs.leaderboard_entries()` (drawn as vertical lines: their
    numbers are on the full test set).
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(MAX_WIDTH, 0.45 * len(table) + 2.2))
    rows = np.arange(len(table))
    for offset, (column, label, marker) in zip((-0.15, 0.15), [("clean", "clean", "o"),
                                                              ("autoattack", "AutoAttack (worst case)", "s")]):
        values = table[column].to_numpy()
        errors = np.stack([values - table[f"{column}_low"], table[f"{column}_high"] - values])
        ax.errorbar(values, rows + offset, xerr=errors, fmt=marker, ms=4, capsize=2, label=label)
    for (name, entry), style in zip(leaderboard.iterrows(), (":", "-.", "--")):
        ax.axvline(entry["clean_acc"], color="grey", ls=style, lw=1)
        ax.axvline(entry["autoattack_acc"], color="black", ls=style, lw=1,
                   label=f"{name} ({entry['architecture']}, {entry['n_images']} test images): "
                         f"clean {entry['clean_acc']:.1f}, AutoAttack {entry['autoattack_acc']:.1f}")
    ax.set_yticks(rows)
    ax.set_yticklabels([checkpoint_label(c, a) for c, a in zip(table.index, table["activation"])], fontsize="small")
    ax.invert_yaxis()
    sizes = sorted({int(n) for n in table["n_images"]})
    ax.set(xlabel=f"accuracy (%), 95% interval, on {' or '.join(map(str, sizes))} test images")
    fig.legend(*ax.get_legend_handles_labels(), fontsize="x-small", loc="lower center", ncol=1)
    fig.tight_layout(rect=(0, 0.11 + 0.04 * len(leaderboard), 1, 1))  # the legend right under the axis
    ax.grid(alpha=0.3, axis="x")
    return fig


# colour and legend label of each `statistics.PAIRED_OUTCOMES`, in the legend's order
OUTCOME_STYLE = {"measurably higher": ("tab:green", "measurably higher"),
                 "measurably lower": ("tab:red", "measurably lower"),
                 "on the edge": ("tab:orange", "on the edge: the test does not confirm"),
                 "no measurable difference": ("tab:grey", "no measurable difference")}


def plot_autoattack_differences(*pairs):
    """Paired AutoAttack differences (points, 95% interval) of each KAF checkpoint against a
    reference checkpoint, one row per KAF activation, coloured by `statistics.paired_outcome`:
    green or red where the difference is measurable (the interval excludes 0 and Holm's
    corrected p is below 0.05), orange where the interval excludes 0 but the test does not
    confirm it, grey where the interval crosses 0.

    Each argument is `kaflib.thesis.statistics.autoattack_paired_differences(...)` against one
    reference (e.g. the best fixed activation, then ReLU); their markers are offset within
    a row and told apart by shape and the legend. None arguments are skipped.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    pairs = [p for p in pairs if p is not None]
    if not pairs:
        raise ValueError("plot_autoattack_differences needs at least one table of paired differences.")
    activations = list(dict.fromkeys(a for p in pairs for a in p["activation"]))
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(activations) * max(1, len(pairs) / 1.5) + 2.6))
    offsets = np.linspace(-0.18, 0.18, len(pairs)) if len(pairs) > 1 else [0.0]
    used = set()
    for comparison, offset, marker in zip(pairs, offsets, "osD^v"):
        rows = np.array([activations.index(a) for a in comparison["activation"]]) + offset
        values = comparison["difference"].to_numpy()
        errors = np.stack([values - comparison["low"], comparison["high"] - values])
        outcomes = paired_outcome(comparison)
        used.update(outcomes)
        colors = [OUTCOME_STYLE[o][0] for o in outcomes]
        for row, value, error, color in zip(rows, values, errors.T, colors):
            ax.errorbar(value, row, xerr=error[:, None], fmt=marker, ms=5, capsize=3, color=color)
        ax.plot([], [], marker, color="black", ls="none",
                label=f"minus {activation_name(comparison['reference_activation'].iloc[0])}")
    handles, _ = ax.get_legend_handles_labels()
    handles += [Patch(color=color, label=label) for outcome, (color, label) in OUTCOME_STYLE.items() if outcome in used]
    ax.axvline(0, color="black", lw=1)
    ax.set_yticks(range(len(activations)))
    ax.set_yticklabels([activation_name(a) for a in activations])
    ax.invert_yaxis()
    title = f"KAF checkpoints minus a fixed activation, paired on {int(pairs[0]['n_images'].iloc[0])} images"
    ax.set(xlabel="AutoAttack accuracy difference (points), 95% interval", title=title)
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.25 / len(activations)), ncol=2, fontsize="small")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def plot_masking_checks(table):
    """Accuracy (%) of every model under each attack of the masking checks, one panel per grid.

    `table` is `kaflib.thesis.results.masking_table()`. Per model: white-box PGD-50
    and APGD (robust to APGD-CE and APGD-T, where run), black-box Square, the ReLU
    model's transferred images, the smoothed-surrogate attack (KAF models) and
    the worst case. A gradient-masking model shows a black-box, transfer or
    surrogate marker left of its PGD marker.
    """
    import matplotlib.pyplot as plt

    attacks = [("pgd", "PGD-50", "o"), ("apgd_dlr_t", "APGD-CE + APGD-T", "s"), ("square", "Square (black-box)", "^"),
               ("transfer_in", "transfer from ReLU", "v"), ("surrogate", "smoothed surrogate", "P"),
               ("worst", "worst of ours", "x")]
    attacks = [a for a in attacks if a[0] in table]
    grids = list(table.index.unique("grid"))
    heights = [len(table.loc[g]) for g in grids]
    fig, axes = plt.subplots(len(grids), 1, figsize=(8, 0.4 * sum(heights) + 1.2 * len(grids)), squeeze=False,
                             gridspec_kw=dict(height_ratios=heights))
    for ax, grid in zip(axes[:, 0], grids):
        rows = table.loc[grid]
        y = np.arange(len(rows))
        for column, label, marker in attacks:
            ax.scatter(rows[column], y, marker=marker, s=36, label=label, zorder=3)
        ax.set_yticks(y)
        ax.set_yticklabels([activation_name(m) for m in rows.index], fontsize="small")
        ax.invert_yaxis()
        ax.set_title(grid_name(grid), fontsize="medium")
        ax.grid(alpha=0.3, axis="x")
    axes[-1, 0].set_xlabel("accuracy under attack (%), eps = 8/255")
    axes[0, 0].legend(fontsize="x-small", loc="best")
    fig.tight_layout()
    return fig
