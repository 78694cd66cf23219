"""The book's answer (`kaflib.thesis.verdicts`) agrees with the tables that show its evidence,
and no study of a retrained run reaches a page (`kaflib.thesis.runs.read_grid_study`)."""

import json

import pandas as pd
import pytest

from kaflib.thesis import findings, results, runs, statistics, store, verdicts


def _evidence(key):
    return [(text, numbers) for text, _, numbers in verdicts.answers()[key]["evidence"]]


def test_the_retrained_verdict_is_the_conclusions_interval():
    d = statistics.kaf_fixed_difference(runs.load_grid("thesis-resnet20"))
    if not d["kafs"] or len(d["seeds"]) < 2:
        pytest.skip("no paired ResNet20 runs on file")
    text, numbers = _evidence("robust")[0]
    assert numbers == [f"{d['robust'][k]:+.1f}" for k in ("mean", "low", "high")]
    shown = findings.kaf_fixed_finding(d, "thesis-resnet20").data
    assert all(n in shown for n in numbers) and d["attack"] in text and d["attack"] in shown


def test_the_checkpoint_verdicts_are_the_paired_tables():
    table = results.autoattack_table()
    if table is None:
        pytest.skip("no AutoAttack records on file")
    pairs = {p["reference_activation"].iloc[0]: p for p in
             (statistics.autoattack_paired_differences(table, r) for r in statistics.autoattack_paired_references(table))}
    evidence = dict((text.split(":")[0], numbers) for text, numbers in _evidence("robust")[1:])
    relu = pairs["relu"]
    assert [f"{relu['difference'].min():+.1f}", f"{relu['difference'].max():+.1f}"] == next(
        n for t, n in evidence.items() if "ReLU" in t)
    for numbers in evidence.values():
        shown = " ".join(findings.autoattack_paired_finding(table, r) for r in statistics.autoattack_paired_references(table))
        assert all(n in shown for n in numbers)
    aa_text, aa_numbers = _evidence("reported")[-1]
    assert aa_numbers == [f"{table['autoattack'].min():.1f}", f"{table['autoattack'].max():.1f}"]
    assert f"the {len(table)} published checkpoints evaluated with it" in aa_text
    # a number that may be too high says so wherever the range or the gaps are stated
    suspects = findings.earlier_twin_suspects(table, results.checkpoint_audit_table())
    relu_text = next(t for t in evidence if "ReLU" in t)
    import re

    best_text = next(t for t, _ in _evidence("robust") if t.startswith("Against the best fixed"))
    for text in (aa_text, best_text, next(t for t, _ in _evidence("robust") if t.startswith(relu_text))):
        assert ("may be too high" in text) == bool(suspects)
        assert all(re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) for name in suspects)
    verdict = verdicts.answers()["robust"]["verdict"]
    assert " beats" not in verdict.replace("measurably beats", "")  # a verdict claims only measured differences


def test_the_protocol_and_deep_verdicts_are_their_tables():
    audit = results.checkpoint_audit_table()
    if audit is not None:
        shown = findings.checkpoint_audit_findings(audit).data
        evidence = _evidence("reported")
        for _, numbers in [e for e in evidence if e[0].startswith("Its attack")]:
            assert all(n in shown for n in numbers)
        compared = int(audit["thesis in PGD interval"].notna().sum())
        counts = [numbers[0] for text, numbers in evidence if "published checkpoints it reports" in text]
        if compared:  # the thesis' numbers are on this machine
            assert counts == [f"{shown.count('**above**')} of the {compared}"] and counts[0] in shown
        else:
            assert counts == [] and verdicts.answers()["reported"]["verdict"].startswith("not answered here")
    deep = runs.load_deep_kaf()
    if deep:
        table = results.deep_kaf_table(deep)
        text, numbers = _evidence("deep")[0]
        last = {f"{v:.1f}" for v in table["last clean %"]}
        assert set(numbers) <= last
        k = verdicts.deep()
        if k is not None and k["random"] is not None:  # each number beside the epochs it was reached in
            assert f"at most {k['random']:.1f}% after {k['random_epochs']} epochs" in text


def test_runs_shorter_than_the_others_are_named():
    table = pd.DataFrame({"epochs": [10, 10, 3, 4, 2], "scheduled epochs": [10, 10, 3, 10, 10],
                          "diverged": ["no", "no", "no", "no", "yes"], "best clean %": [40.0, 50.0, 11.2, 30.0, 10.0]},
                         index=["resnet56 / relu", "resnet56 / kaf_elu", "resnet56 / kaf N(0, 0.8²)",
                                "resnet20 / kaf_elu", "resnet20 / kaf N(0, 0.8²)"])
    note = findings.deep_kaf_epochs_note(table).data
    assert note == ("Runs scheduled for fewer epochs than the others' 10 (the same one-cycle schedule over fewer "
                    "epochs): ResNet56 / KAF N(0, 0.8²), 3 epochs, at most 11.2% clean in any of them. Runs that "
                    "stopped before the end of their schedule, without diverging: ResNet20 / KAF_ELU, 4 of 10 epochs.")
    assert findings.deep_kaf_epochs_note(table.iloc[:2]).data == ""
    assert findings.deep_kaf_epochs_note(table.iloc[[0, 1, 4]]).data == ""  # diverged: the table's column says so


def _run(root, act, finished, seed=0):
    folder = root / "thesis-vgg" / (f"vgg-{act}" + (f"-seed{seed}" if seed else ""))
    folder.mkdir(parents=True)
    metrics = dict(parameters=dict(model="vgg", act=act, preset="quick", method="fgsm_rs", epochs=10, pgd_steps=50,
                                   pgd_restarts=1, eps=8 / 255, seed=seed, momentum=0.0),
                   data=dict(train=4829, guard=256, test=1017), clean_acc=0.4, robust_acc=0.1, epochs_run=10,
                   finished=finished, seconds=dict(train=1.0, attack=1.0, total=2.0))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def _masking(root, finished):
    rows = [dict(model=m, clean=0.4, pgd=0.1, square=0.12, worst=0.1, acc_at_max_eps=0.0, transfer_in=0.2,
                 transfer_out=0.2, not_to_zero=False, black_box_wins=False, transfer_wins=False)
            for m in ("relu", "kaf")]
    store.write_json(store.study_path("masking", "thesis-vgg", root),
                     dict(parameters=dict(grid="thesis-vgg"), data=dict(test=256), finished=finished, rows=rows))


def test_a_study_of_a_retrained_run_is_left_out_and_recorded(tmp_path):
    _run(tmp_path, "relu", "2026-12-01T10:00:00+00:00")
    _run(tmp_path, "kaf", "2026-12-01T11:00:00+00:00")
    _masking(tmp_path, "2026-12-01T12:00:00+00:00")
    assert runs.superseded_studies(tmp_path) == {}
    assert results.masking_table(path=tmp_path).index.unique("grid").tolist() == ["thesis-vgg"]
    # kaf is retrained after the study: the study describes a network that no longer exists
    metrics = json.loads((tmp_path / "thesis-vgg" / "vgg-kaf" / "metrics.json").read_text())
    metrics["finished"] = "2026-12-02T09:00:00+00:00"
    (tmp_path / "thesis-vgg" / "vgg-kaf" / "metrics.json").write_text(json.dumps(metrics))
    assert runs.superseded_studies(tmp_path) == {"masking/thesis-vgg.json": ["thesis-vgg/kaf"]}
    assert runs.read_grid_study("masking", "thesis-vgg", tmp_path) is None
    assert results.masking_table(path=tmp_path) is None
    assert "VGG-inspired: retrained since: KAF" in findings.superseded_note("masking", ("thesis-vgg",), tmp_path).data
    # a seed-1 rerun never makes a study outdated (studies measure seed 0)
    _run(tmp_path, "relu", "2026-12-03T09:00:00+00:00", seed=1)
    assert runs.superseded_studies(tmp_path) == {"masking/thesis-vgg.json": ["thesis-vgg/kaf"]}


def test_page_sources_mark_a_study_read_past_the_check(tmp_path, monkeypatch):
    monkeypatch.setenv("KAFLIB_RESULTS_DIR", str(tmp_path))
    _run(tmp_path, "kaf", "2026-12-02T09:00:00+00:00")
    _masking(tmp_path, "2026-12-01T12:00:00+00:00")
    store.forget_reads()
    assert 'data-superseded=""' not in findings.page_sources().data  # nothing read yet
    store.read_study("masking", "thesis-vgg")  # a chapter reading around `read_grid_study`
    html = findings.page_sources().data
    assert 'data-file="masking/thesis-vgg.json" data-superseded="thesis-vgg/kaf"' in html
    store.forget_reads()


def test_a_pgd_sweep_older_than_its_run_is_superseded(tmp_path):
    folder = _run(tmp_path, "relu", "2026-12-02T09:00:00+00:00")
    store.write_json(folder / "pgd_iterations.json", dict(finished="2026-12-02T10:00:00+00:00", seconds=1.0, rows=[]))
    assert runs.study_superseded_by(folder / "pgd_iterations.json") == []
    store.write_json(folder / "pgd_iterations.json", dict(finished="2026-12-01T10:00:00+00:00", seconds=1.0, rows=[]))
    assert runs.superseded_studies(tmp_path) == {"thesis-vgg/vgg-relu/pgd_iterations.json": ["thesis-vgg/relu"]}


def test_a_weak_baseline_is_named():
    clean = pd.Series({"relu": 29.8, "elu": 45.9, "kaf": 39.2, "swish": 42.0})
    assert "barely trained (29.8% clean" in findings.weak_baseline(clean, "relu")
    assert findings.weak_baseline(clean.replace(29.8, 38.0), "relu") == ""


def test_the_thesis_ranking_names_swish_and_the_kafs_above_elu():
    reported = pd.DataFrame(dict(experiment=["vgg_fast_at"] * 4, activation=["relu", "elu", "swish", "kaf"],
                                 robust_acc=[45.4, 45.5, 47.7, 46.8]))
    text = findings.thesis_ranking_finding(reported).data
    assert 'tab. "vggrob" (VGG): Swish is the most robust, 47.7%' in text and "above ELU's 45.5%: KAF 46.8%" in text
