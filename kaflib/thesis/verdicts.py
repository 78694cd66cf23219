"""The book's answer to the thesis' question, in one place for the Introduction and the
Conclusions.

The thesis asks whether kernel activation functions (KAFs) make fast-adversarially-trained
CNNs more robust. The book answers three questions (`QUESTIONS`), each from the same
functions and data as the table that shows its evidence:

1. Do KAFs make fast-adversarially-trained CNNs more robust? The retrained ResNet20s, paired
   by seed (`statistics.kaf_fixed_difference` of `runs.load_grid`, as in the Conclusions'
   table), and the published checkpoints under AutoAttack, paired by image against ReLU and
   against the best fixed activation (`statistics.autoattack_paired_differences` of
   `results.autoattack_table`, as in the published-models chapter).
2. Are the thesis' reported robust accuracies right? The checkpoint audit
   (`results.checkpoint_audit_table`: where the thesis' numbers fall against PGD-50, and
   what its attack protocol adds).
3. Can deep KAF ResNets be trained? The deep-KAF study (`results.deep_kaf_table`).

`answers()` computes them (numbers and plain words); `introduction_answer()` and
`conclusions_verdict()` write them as HTML in which every sentence with numbers links to the
section that shows them (`data-numbers` on each link lists the numbers as printed, which
`tests/test_book.py` finds on the linked page).
"""

import html

from kaflib.activations import KAF_ACTIVATIONS, activation_name
from kaflib.thesis import findings, results, runs, statistics

__all__ = ["QUESTIONS", "SECTIONS", "answers", "introduction_answer", "conclusions_verdict"]

#: The three questions, in the Conclusions' order.
QUESTIONS = {"robust": "Do KAFs make fast-adversarially-trained CNNs more robust?",
             "reported": "Are the thesis' reported robust accuracies right?",
             "deep": "Can deep KAF ResNets be trained?"}

#: Where each piece of evidence is shown: [(page, label of the section; `(label)=` in the page)],
#: the chapter first; a page that shows it itself links to its own section.
SECTIONS = {"retrained": [("conclusions", "verdict-retrained")],
            "checkpoints": [("published_models", "verdict-autoattack"), ("conclusions", "verdict-checkpoints")],
            "autoattack": [("published_models", "verdict-autoattack")],
            "protocol": [("published_models", "verdict-protocol"), ("conclusions", "verdict-audit")],
            "deep": [("evaluation", "verdict-deep-kaf"), ("conclusions", "verdict-deep")]}

#: The sections of `SECTIONS` and their pages as a link reads them.
_SECTION_TITLES = {"verdict-retrained": "retrained at mini scale", "verdict-autoattack": "AutoAttack",
                   "verdict-checkpoints": "the published checkpoints under AutoAttack",
                   "verdict-protocol": "where the thesis and these numbers agree", "verdict-audit": "the checkpoint audit",
                   "verdict-deep-kaf": "deep KAF ResNets", "verdict-deep": "deep KAF ResNets"}
_PAGE_TITLES = {"conclusions": "Conclusions", "published_models": "Published models", "evaluation": "Evaluation"}


def _pm(value):
    return f"{value:+.1f}"


def _measurably_higher(pairs):
    """The rows of a `statistics.autoattack_paired_differences` table whose KAF checkpoint is
    measurably more robust (`statistics.paired_outcome`)."""
    return pairs[statistics.paired_outcome(pairs) == "measurably higher"]


def retrained(grid="thesis-resnet20", path=None):
    """The seed-paired KAF minus fixed-activation difference of `grid`'s current runs
    (`statistics.kaf_fixed_difference`, the Conclusions' interval)."""
    return statistics.kaf_fixed_difference(runs.load_grid(grid, path))


def checkpoints(table=None):
    """{reference activation: pairs} of the published checkpoints under AutoAttack, against
    each of `statistics.autoattack_paired_references` (best fixed activation, then ReLU);
    {} without AutoAttack records."""
    table = results.autoattack_table() if table is None else table
    if table is None:
        return {}
    pairs = [statistics.autoattack_paired_differences(table, r) for r in statistics.autoattack_paired_references(table)]
    return {p["reference_activation"].iloc[0]: p for p in pairs if p is not None}


def protocol(table=None):
    """The checkpoint audit in numbers: checkpoints whose thesis number lies above our PGD-50
    interval (`above`, of `compared`), and the thesis' protocol against the fixed one on the
    checkpoint where both ran (`activation`, `thesis`, `fixed`, percent); None without an audit."""
    table = results.checkpoint_audit_table() if table is None else table
    if table is None:
        return None
    compared = table[table["thesis in PGD interval"].notna()]
    above = int((compared["thesis robust"] > compared["pgd_high"]).sum())
    thesis, fixed = "protocol: " + findings.PROTOCOL_THESIS, "protocol: " + findings.PROTOCOL_FIXED
    row = table[table[thesis].notna()].iloc[0] if thesis in table and table[thesis].notna().any() else None
    return dict(above=above, compared=len(compared),
                activation=None if row is None else row["activation"],
                checkpoint=None if row is None else row.name,
                thesis=None if row is None else float(row[thesis]), fixed=None if row is None else float(row[fixed]))


def deep(studies=None):
    """The deep-KAF study's ResNet56 rows (`results.deep_kaf_table`): {label: last clean %} with
    "relu", the random KAFs' best ("random"), and the initialisations that bound the slope
    ("kaf_elu", "kaf_smooth"); "epochs" {label: epochs trained} and "random_epochs" (the best
    random KAF's); None without the ReLU run."""
    studies = runs.load_deep_kaf() if studies is None else studies
    if not studies:
        return None
    table = results.deep_kaf_table(studies)
    resnet56 = table[[label.startswith("resnet56 / ") for label in table.index]]
    last = resnet56["last clean %"].rename(lambda label: label.split(" / ")[1])
    if "relu" not in last:
        return None
    epochs = resnet56["epochs"].rename(lambda label: label.split(" / ")[1])
    random = last[[a.startswith("kaf N(") for a in last.index]].dropna()
    return dict(relu=float(last["relu"]), random=float(random.max()) if len(random) else None,
                epochs={a: int(e) for a, e in epochs.items()},
                random_epochs=int(epochs[random.idxmax()]) if len(random) else None,
                **{a: float(last[a]) for a in ("kaf_elu", "kaf_smooth") if a in last})


def answers(path=None):
    """{question key: dict(question, verdict (plain words), evidence: [(text, section key,
    numbers as printed)])} for `QUESTIONS`; a question without its results says so."""
    out = {}
    aa, audit = results.autoattack_table(), results.checkpoint_audit_table()
    suspects = [] if aa is None else findings.earlier_twin_suspects(aa, audit)
    caveat = (f" The earlier evaluation's numbers for {findings.listed(suspects)} may be too high; the standard "
              "evaluation that replaces them is still to come." if suspects else "")
    d, pairs = retrained(path=path), checkpoints(aa)
    evidence, verdict = [], "not answered yet: no retrained runs or AutoAttack records"
    if d["kafs"] and d["fixed"] and len(d["seeds"]) > 1:
        r = d["robust"]
        words = findings._interval_verdict(r)
        numbers = [_pm(r["mean"]), _pm(r["low"]), _pm(r["high"])]
        evidence.append((f"Retrained at mini scale (ResNet20, {len(d['seeds'])} seeds, paired by seed): KAFs minus "
                         f"fixed activations {numbers[0]} points of robust accuracy under {d['attack']}, 95% "
                         f"interval [{numbers[1]}, {numbers[2]}]: {words}.", "retrained", numbers))
    best = next(iter(pairs.values()), None)
    relu = pairs.get("relu")
    beat_best = []
    if relu is not None:
        more = len(_measurably_higher(relu))
        numbers = [_pm(relu["difference"].min()), _pm(relu["difference"].max())]
        evidence.append((f"The published checkpoints under AutoAttack, against ReLU (the thesis' baseline): "
                         f"{more} of {len(relu)} KAF checkpoints measurably more robust; " + (
                             f"the {len(relu)} differ from it by {numbers[0]} to {numbers[1]} points."
                             if len(relu) > 1 else f"it differs by {numbers[0]} points.") + caveat,
                         "checkpoints", numbers))
    if best is not None and best["reference_activation"].iloc[0] != "relu":
        beat_best = _measurably_higher(best)
        name = activation_name(best["reference_activation"].iloc[0])
        numbers = [_pm(v) for v in beat_best["difference"]]
        evidence.append((f"Against the best fixed activation ({name}): " + (
            f"{len(beat_best)} of {len(best)} KAF checkpoints measurably more robust ("
            + ", ".join(f"{activation_name(a)} {n} points" for a, n in zip(beat_best["activation"], numbers)) + ")"
            if len(beat_best) else f"none of the {len(best)} KAF checkpoints measurably more robust") + "." + caveat,
            "checkpoints", numbers))
    if evidence:
        paired = bool(d["kafs"]) and len(d["seeds"]) > 1
        retrained_higher = paired and d["robust"]["low"] > 0
        parts = []
        if relu is not None:
            beat = ("every KAF measurably beats" if more == len(relu) else "no KAF measurably beats" if not more
                    else f"{more} of {len(relu)} KAFs measurably " + ("beats" if more == 1 else "beat"))
            parts.append(f"on the published checkpoints {beat} ReLU")
        if best is not None and best["reference_activation"].iloc[0] != "relu":
            name = activation_name(best["reference_activation"].iloc[0])
            parts.append((f"only {', '.join(activation_name(a) for a in beat_best['activation'])} measurably beats"
                          if len(beat_best) else "none measurably beats") + f" the best fixed activation ({name})")
        if paired:
            parts.append("retrained at mini scale, KAFs and fixed activations " + (
                "differ measurably" if d["robust"]["low"] > 0 or d["robust"]["high"] < 0 else "do not differ measurably"))
        head = ("yes" if retrained_higher else "mostly not" if best is None or len(beat_best) < len(best) / 2
                else "partly")
        verdict = head + ": " + "; ".join(parts)
    out["robust"] = dict(question=QUESTIONS["robust"], verdict=verdict, evidence=evidence)

    p = protocol(audit)
    evidence, verdict = [], "not answered yet: no checkpoint audit"
    if p is not None and p["compared"]:  # no thesis numbers on this machine: nothing to compare with
        count = f"{p['above']} of the {p['compared']}"
        evidence.append((f"The thesis' robust accuracy lies above our PGD-50 95% interval for {count} published "
                         f"checkpoints it reports a number for.", "protocol", [count]))
    if p is not None:
        if p["thesis"] is not None:
            numbers = [f"{p['thesis']:.1f}", f"{p['fixed']:.1f}", _pm(p["thesis"] - p["fixed"])]
            evidence.append((f"Its attack (float16 gradients, probabilities, no labels) gives {numbers[0]}% on the "
                             f"published {activation_name(p['activation'])} ResNet20 where float32 gradients, logits "
                             f"and true labels give {numbers[1]}% ({numbers[2]} points).", "protocol", numbers))
        if aa is not None:
            numbers = [f"{aa['autoattack'].min():.1f}", f"{aa['autoattack'].max():.1f}"]
            each = " (one per activation)" if aa["activation"].is_unique else ""
            evidence.append((f"Under AutoAttack, the strongest attack run on them, the {len(aa)} published checkpoints "
                             f"evaluated with it{each} keep {numbers[0]}% to {numbers[1]}%." + caveat,
                             "autoattack", numbers))
        verdict = ("not answered here: the thesis' reported numbers are not on this machine" if not p["compared"]
                   else "no: they are too high" if p["above"] == p["compared"]
                   else f"partly: {p['compared'] - p['above']} of {p['compared']} are within our interval or below")
    out["reported"] = dict(question=QUESTIONS["reported"], verdict=verdict, evidence=evidence)

    k = deep()
    evidence, verdict = [], "not answered yet: no deep-KAF study"
    if k is not None:
        bounded = [a for a in ("kaf_elu", "kaf_smooth") if a in k]
        numbers = [f"{k[a]:.1f}" for a in bounded] + [f"{k['relu']:.1f}"]
        epochs = sorted({k["epochs"][a] for a in [*bounded, "relu"]})
        evidence.append(("ResNet56, standard training on the mini set, clean accuracy after "
                         f"{' or '.join(map(str, epochs))} epochs: "
                         + ", ".join(f"{activation_name(a)} {k[a]:.1f}%" for a in bounded)
                         + f" against ReLU's {k['relu']:.1f}%" + (
                             f"; random KAFs, as the thesis initialised them and as the KAF paper did, at most "
                             f"{k['random']:.1f}% after {k['random_epochs']} epochs (chance is 10%)"
                             if k["random"] is not None else "") + ".", "deep",
                         numbers + ([f"{k['random']:.1f}"] if k["random"] is not None else [])))
        trains = [a for a in bounded if k[a] >= 100 * runs.MIN_TRAINED_CLEAN]
        verdict = ((f"yes, when the KAFs start with a bounded slope ({', '.join(activation_name(a) for a in trains)}); "
                    "not with random KAFs, as in the thesis") if trains else "not in these runs")
    out["deep"] = dict(question=QUESTIONS["deep"], verdict=verdict, evidence=evidence)
    return out


def _link(text, key, numbers, page=None):
    """`text`, then a link to the section of evidence `key` (on the same page: an anchor)."""
    target_page, label = next(((p, l) for p, l in SECTIONS[key] if p == page), SECTIONS[key][0])
    href = f"#{label}" if target_page == page else f"{target_page}.html#{label}"
    where = "below" if target_page == page else _PAGE_TITLES[target_page]
    return (f'{html.escape(text)} <a class="kaflib-verdict" href="{href}" '
            f'data-numbers="{html.escape("|".join(numbers))}">({where}: {html.escape(_SECTION_TITLES[label])})</a>')


def introduction_answer(path=None):
    """HTML for the Introduction's first screen: the book's answer to each question in a
    sentence, its evidence with the key numbers, each linking to the section that shows it."""
    from IPython.display import HTML

    items = []
    for answer in answers(path).values():
        evidence = " ".join(_link(text, key, numbers) for text, key, numbers in answer["evidence"])
        items.append(f"<li><strong>{html.escape(answer['question'])}</strong> "
                     f"{html.escape(answer['verdict'][0].upper() + answer['verdict'][1:])}. {evidence}</li>")
    return HTML('<div class="kaflib-answer"><ol>' + "".join(items) + "</ol></div>")


def conclusions_verdict(path=None):
    """HTML for the top of the Conclusions: per question, the plain verdict, then the
    evidence, each piece linking to the section below or the chapter that shows it."""
    from IPython.display import HTML

    items = []
    for answer in answers(path).values():
        evidence = "".join(f"<li>{_link(text, key, numbers, page='conclusions')}</li>"
                           for text, key, numbers in answer["evidence"])
        items.append(f"<li><p><strong>{html.escape(answer['question'])}</strong> "
                     f"{html.escape(answer['verdict'][0].upper() + answer['verdict'][1:])}.</p><ul>{evidence}</ul></li>")
    return HTML('<div class="kaflib-answer"><ol>' + "".join(items) + "</ol></div>")
