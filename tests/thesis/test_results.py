import json

import numpy as np
import pandas as pd
import pytest

from kaflib.autoattack import STANDARD
from kaflib.thesis import findings, results, runs, statistics, store, tables
from tests.conftest import THESIS_TABLES


def _finished_run(root, grid, model, act, clean, robust, train=4829, epochs=12):
    folder = root / grid / f"{model}-{act}"
    folder.mkdir(parents=True)
    metrics = dict(parameters=dict(model=model, act=act, preset="quick", method="fgsm_rs", epochs=epochs,
                                   pgd_steps=50, pgd_restarts=1, eps=8 / 255, seed=0, test_size=None),
                   data=dict(train=train, guard=256, test=1017), clean_acc=clean, robust_acc=robust,
                   epochs_run=epochs, seconds=dict(train=120.0, attack=30.0, total=150.0))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    pd.DataFrame(dict(epoch=[1, 2], test_clean_acc=[0.2, clean])).to_csv(folder / "history.csv", index=False)
    return folder


def test_load_grid_reads_finished_runs_only(tmp_path):
    _finished_run(tmp_path, "thesis-resnet20", "resnet20", "relu", 0.45, 0.16)
    _finished_run(tmp_path, "thesis-resnet20", "resnet20", "kaf", 0.50, 0.20)
    (tmp_path / "thesis-resnet20" / "resnet20-elu").mkdir()  # started, not finished
    table = runs.load_grid("thesis-resnet20", tmp_path)
    assert sorted(table["act"]) == ["kaf", "relu"]
    row = table.set_index("act").loc["kaf"]
    assert row["clean_acc"] == pytest.approx(50.0) and row["robust_acc"] == pytest.approx(20.0)
    assert row["train_minutes"] == pytest.approx(2.0)
    assert runs.load_run(row["run_dir"])["history"]["test_clean_acc"].iloc[-1] == 0.50
    assert runs.load_grid("thesis-vgg", tmp_path).empty
    with pytest.raises(FileNotFoundError, match="resnet20-elu"):
        runs.load_run(tmp_path / "thesis-resnet20" / "resnet20-elu")


def test_load_grid_says_which_runs_ended_early(tmp_path):
    _finished_run(tmp_path, "thesis-vgg", "vgg", "relu", 0.45, 0.16)
    diverged = _finished_run(tmp_path, "thesis-vgg", "vgg", "kaf_free", 0.30, 0.12, epochs=6)
    metrics = json.loads((diverged / "metrics.json").read_text())
    metrics.update(diverged="Training diverged at epoch 7, step 3: ...", best_epoch=5)
    (diverged / "metrics.json").write_text(json.dumps(metrics))
    table = runs.load_grid("thesis-vgg", tmp_path).set_index("act")
    assert table.loc["relu", "stopped"] == ""
    assert table.loc["kaf_free", "stopped"].startswith("diverged") and "epoch 7" in table.loc["kaf_free", "stopped"]
    assert "epoch 5's weights" in table.loc["kaf_free", "stopped"]
    never = _finished_run(tmp_path, "thesis-vgg", "vgg", "kaf", 0.10, 0.10)  # diverged in epoch 1
    metrics = json.loads((never / "metrics.json").read_text())
    metrics.update(diverged="Training diverged at epoch 1, step 21: ...", best_epoch=None, epochs_run=0)
    (never / "metrics.json").write_text(json.dumps(metrics))
    (never / "history.csv").write_text("epoch,test_clean_acc\n")
    table = runs.load_grid("thesis-vgg", tmp_path).set_index("act")
    assert "in epoch 1" in table.loc["kaf", "stopped"] and "initial weights" in table.loc["kaf", "stopped"]
    assert table.loc["kaf", "epochs_run"] == 0 and table.loc["kaf", "epochs"] == 12  # planned vs finished
    assert "12 epochs" in results.scale_caption(table.reset_index())
    assert sorted(runs.load_histories(table.reset_index())) == ["kaf_free", "relu"]
    note = findings.stopped_note(table.reset_index()).data
    assert "**vgg / kaf**" in note
    assert "vgg / kaf_free" in note and "relu" not in note
    assert "all its epochs" in findings.stopped_note(table.loc[["relu"]].reset_index()).data


def test_results_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("KAFLIB_RESULTS_DIR", str(tmp_path))
    assert store.results_dir() == tmp_path
    monkeypatch.delenv("KAFLIB_RESULTS_DIR")
    assert store.results_dir().name == "results"


@pytest.mark.skipif(not THESIS_TABLES.is_file(), reason="the thesis' tables are in ../shared/thesis")
def test_reported_results_are_the_thesis_tables(monkeypatch):
    monkeypatch.delenv("KAFLIB_THESIS_DIR", raising=False)  # found beside the checkout
    assert runs.reported_results_path() == THESIS_TABLES
    table = runs.reported_results("thesis-resnet20")
    assert len(table) == 8 and set(table["model"]) == {"resnet20"}
    assert table.set_index("activation").loc["kaf", "robust_acc"] == pytest.approx(52.23)
    assert len(runs.reported_results()) == 22
    assert findings.thesis_numbers_note().data == ""


def test_reported_results_follow_the_environment_and_reject_unknown_experiments(thesis_tables, monkeypatch):
    assert runs.reported_results_path() == thesis_tables / "reported_results.csv"
    assert list(runs.reported_results("thesis-vgg")["activation"]) == ["relu", "elu", "kaf"]
    assert len(runs.reported_results()) == 7
    with pytest.raises(ValueError, match="experiment='nope'.*resnet_fast_at"):
        runs.reported_results("nope")
    monkeypatch.setenv("KAFLIB_THESIS_DIR", str(thesis_tables / "absent"))
    with pytest.raises(FileNotFoundError, match="KAFLIB_THESIS_DIR="):
        runs.reported_results()


def test_without_the_thesis_materials_the_thesis_columns_are_empty_and_said_so(tmp_path, no_thesis_materials):
    assert runs.reported_results_path() is None
    table = runs.reported_results("resnet_fast_at")
    assert table.empty and "robust_acc" in table.columns
    with pytest.raises(ValueError, match="experiment='nope'"):
        runs.reported_results("nope")
    _finished_run(tmp_path, "thesis-vgg", "vgg", "kaf", 0.40, 0.10)
    _finished_run(tmp_path, "thesis-vgg", "vgg", "relu", 0.41, 0.11)
    compared = results.compare_with_thesis(runs.load_grid("thesis-vgg", tmp_path), "thesis-vgg")
    assert list(compared.index) == ["relu", "kaf"]  # kaflib's activation order, as the thesis has none here
    assert compared["clean (thesis)"].isna().all() and compared.loc["kaf", "clean (ours)"] == pytest.approx(40.0)
    assert "not on this machine" in findings.thesis_numbers_note().data


def test_compare_puts_ours_next_to_the_thesis(tmp_path, thesis_tables):
    _finished_run(tmp_path, "thesis-vgg", "vgg", "kaf", 0.40, 0.10)
    _finished_run(tmp_path, "thesis-vgg", "vgg", "gelu", 0.41, 0.11)  # not in the thesis
    table = results.compare_with_thesis(runs.load_grid("thesis-vgg", tmp_path), "thesis-vgg")
    assert list(table.index) == ["relu", "elu", "kaf", "gelu"]
    assert table.loc["kaf", "clean (ours)"] == pytest.approx(40.0)
    assert table.loc["kaf", "clean (thesis)"] == pytest.approx(73.5)
    assert np.isnan(table.loc["relu", "clean (ours)"]) and np.isnan(table.loc["gelu", "robust (thesis)"])
    empty = results.compare_with_thesis(runs.load_grid("thesis-light", tmp_path), "thesis-light")
    assert empty["robust (ours)"].isna().all() and empty["robust (thesis)"].notna().all()


def test_scale_caption_states_data_and_attack(tmp_path):
    _finished_run(tmp_path, "thesis-vgg", "vgg", "kaf", 0.4, 0.1, train=4829, epochs=10)
    caption = results.scale_caption(runs.load_grid("thesis-vgg", tmp_path))
    # a run that recorded no readable name of its images: its sizes (guard images included)
    assert "CIFAR-10, 5085/1017 images" in caption and "10 epochs" in caption and "PGD-50" in caption
    assert "1017 test images" in caption and "CIFAR-10 full" in caption
    run = tmp_path / "thesis-vgg" / "vgg-kaf" / "metrics.json"
    metrics = json.loads(run.read_text())
    metrics["data"]["name"] = "CIFAR-10, quick subset 5085/1017"
    run.write_text(json.dumps(metrics))
    assert "this project: CIFAR-10, quick subset 5085/1017, 10 epochs" in \
        results.scale_caption(runs.load_grid("thesis-vgg", tmp_path))
    assert results.scale_caption(runs.load_grid("none", tmp_path)) == "no runs yet"


def test_missing_note_names_the_command():
    note = findings.missing_note("the VGG grid", "python -m kaflib.thesis.grid thesis-vgg")
    assert "`python -m kaflib.thesis.grid thesis-vgg`" in note.data and "VGG grid" in note.data


def test_first_test_images_never_download(tmp_path, monkeypatch):
    import keras

    def no_download(*args, **kwargs):
        raise AssertionError("first_test_images tried to download CIFAR-10")

    monkeypatch.delenv("KAFLIB_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setattr(keras.utils, "get_file", no_download)
    assert runs.first_test_images(10, data_dir=tmp_path) is None


def test_first_test_images_take_all_when_the_machine_has_fewer_than_asked():
    from tests.conftest import TINY_DATA_DIR

    x, y = runs.first_test_images(10_000, data_dir=TINY_DATA_DIR)
    assert len(y) == len(x) == 100  # the repo's fallback set: every test image, no error
    assert len(runs.first_test_images(20, data_dir=TINY_DATA_DIR)[1]) == 20
    with pytest.raises(ValueError, match="test_size"):
        runs.first_test_images(-1, data_dir=TINY_DATA_DIR)


def test_checkpoint_audit_table_joins_the_thesis_numbers(tmp_path, thesis_tables):
    def attack(accuracy):
        return dict(accuracy=accuracy, ci95=[accuracy - 0.03, accuracy + 0.03], robust=int(accuracy * 1017))

    audit = dict(parameters=dict(test_size=1017), checkpoints={
        "resnet20_kaf_ocrob_lrfinder.zip": dict(activation="kaf", clean=0.8, pgd=attack(0.5), apgd_ce=attack(0.45),
                                                apgd_dlr_t=attack(0.43), worst=attack(0.42), float32_agreement=0.97,
                                                protocol={results.PROTOCOL_THESIS: 0.55,
                                                          results.PROTOCOL_FIXED: 0.49}),
        "resnet20_relu_ocrob.zip": dict(activation="relu", clean=0.85, pgd=attack(0.0), apgd_ce=attack(0.0),
                                        apgd_dlr_t=attack(0.0), worst=attack(0.0))})
    path = tmp_path / "thesis-checkpoints.json"
    path.write_text(json.dumps(audit))
    table = results.checkpoint_audit_table(path)
    row = table.loc["resnet20_kaf_ocrob_lrfinder"]
    assert row["worst"] == pytest.approx(42.0) and row["worst_low"] == pytest.approx(39.0)
    assert row["thesis robust"] == pytest.approx(51.5) and row["protocol: " + results.PROTOCOL_THESIS] == pytest.approx(55.0)
    assert table.attrs["parameters"]["test_size"] == 1017
    # the made-up 51.5 lies in [47, 53]; the ReLU checkpoint's [-3, 3] excludes the made-up 44.0
    assert row["thesis in PGD interval"] and row["float32 agreement"] == pytest.approx(97.0)
    assert not table.loc["resnet20_relu_ocrob", "thesis in PGD interval"]
    assert results.checkpoint_audit_table(tmp_path / "none.json") is None

    summary, *found = findings.checkpoint_audit_findings(table).data.splitlines()
    assert summary.startswith("- The thesis' robust accuracy lies above our PGD-50 interval for 1 of the 2 checkpoints")
    assert found[0].startswith("- KAF: the thesis' 51.5% is **inside**")
    assert "the thesis' 44.0% is **above** our PGD-50 interval [-3.0, 3.0]%" in found[1]
    assert found[2].startswith("- ReLU, other run (`resnet20_relu_ocrob`) keeps 0.0% under PGD-50 at 85.0% clean: "
                               "no robustness left")  # named, not left as an unexplained 0.0% in a table
    assert found[3].endswith("gives 55.0%; with float32 gradients, logits and true labels, 49.0% (+6.0 points).")

    from kaflib.thesis.figures import plot_checkpoint_audit

    ax = plot_checkpoint_audit(table).axes[0]
    worst = next(bars for bars in ax.containers if bars.get_label() == "worst case (+ APGD-T)")
    np.testing.assert_allclose(worst.lines[0].get_xdata(), [42.0, 0.0])
    from kaflib.thesis.tables import checkpoint_label

    assert [t.get_text() for t in ax.get_yticklabels()] == [checkpoint_label(c, a) for c, a in
                                                            zip(table.index, table["activation"])]
    # the legend sits below the axes, where it covers no checkpoint's row
    ax.figure.canvas.draw()  # constrained layout places the legend when drawn
    legend = ax.figure.legends[0].get_window_extent()
    assert legend.y1 <= ax.get_window_extent().y0

    from kaflib.thesis.tables import checkpoint_audit, checkpoint_files

    assert "checkpoint file" not in checkpoint_audit(table).data.columns  # files in their own narrow table
    files = checkpoint_files(table).data
    assert list(files["checkpoint file"]) == ["resnet20_kaf_ocrob_lrfinder.zip", "resnet20_relu_ocrob.zip"]


def test_kaf_versus_fixed_and_histories_of_a_grid(tmp_path, thesis_tables):
    _finished_run(tmp_path, "thesis-resnet20", "resnet20", "relu", 0.40, 0.10)
    _finished_run(tmp_path, "thesis-resnet20", "resnet20", "elu", 0.50, 0.20)
    _finished_run(tmp_path, "thesis-resnet20", "resnet20", "kaf", 0.60, 0.30)
    _finished_run(tmp_path, "thesis-resnet20", "resnet20", "kaf_free", 0.10, 0.10)  # at chance
    current = results.kaf_versus_fixed(("thesis-resnet20",), tmp_path).set_index("source")
    assert current.loc["ours", "runs"] == 0  # the fixture's runs are not what the quick preset gives now
    assert current.loc["ours", "earlier recipe"] == "elu, kaf, kaf_free, relu"
    table = results.kaf_versus_fixed(("thesis-resnet20",), tmp_path, runs="all").set_index("source")
    assert table.loc["ours", "earlier recipe"] == ""
    assert table.loc["ours", "KAFs: mean robust (%)"] == pytest.approx(30.0)
    assert table.loc["ours", "fixed: mean robust (%)"] == pytest.approx(15.0)
    assert table.loc["ours", "runs"] == 3 and table.loc["thesis", "runs"] == 3  # the made-up relu, kaf, kaf_relu
    assert table.loc["thesis", "KAFs: mean robust (%)"] == pytest.approx((51.5 + 45.5) / 2)
    assert table.loc["ours", "did not train"] == "kaf_free" and table.loc["thesis", "did not train"] == ""
    histories = runs.load_histories(runs.load_grid("thesis-resnet20", tmp_path))
    assert sorted(histories) == ["elu", "kaf", "kaf_free", "relu"] and histories["kaf"]["test_clean_acc"].iloc[-1] == 0.60


def _deep_kaf_study(folder, model, act, conv_norms, accuracies, diverged=None):
    norms = [dict(layer=f"conv2d_{i}" if i else "conv2d", depth=i + 1, norm=n) for i, n in enumerate(conv_norms)]
    norms.append(dict(layer="logits", depth=len(norms) + 1, norm=0.5))
    study = dict(parameters=dict(model=model, act=act), data={}, seconds=120.0, environment={},
                 diverged=diverged, init_gradient_norms=norms,
                 init_kaf_slopes=[dict(layer="kaf", depth=1, channels=16, max_slope=2.0, median_slope=1.0,
                                       amplitude=0.3)] if "kaf" in act else [],
                 rows=[dict(epoch=e + 1, test_clean_acc=a) for e, a in enumerate(accuracies)])
    (folder / "deep-kaf").mkdir(parents=True, exist_ok=True)
    (folder / "deep-kaf" / f"{model}-{act}.json").write_text(json.dumps(study))


def test_deep_kaf_table_and_figure(tmp_path):
    _deep_kaf_study(tmp_path, "resnet56", "relu", [1.0, 0.5, 2.0], [0.2, 0.4, 0.35])
    _deep_kaf_study(tmp_path, "resnet56", "kaf-std0.8", [1e11, 1.0, 0.5], [], diverged="Training diverged at epoch 1")
    _deep_kaf_study(tmp_path, "resnet56", "kaf_elu", [1.0, 1.0, 1.0], [0.3, 0.34])
    _deep_kaf_study(tmp_path, "resnet20", "kaf_elu", [1.0, 1.0, 1.0], [0.3, 0.5])
    studies = runs.load_deep_kaf(path=tmp_path)
    assert list(studies) == ["resnet56 / relu", "resnet56 / kaf N(0, 0.8²)", "resnet56 / kaf_elu",
                             "resnet20 / kaf_elu"]  # runs order; missing ones left out
    table = results.deep_kaf_table(studies)
    assert table.loc["resnet56 / relu", "init grad first/last conv"] == pytest.approx(0.5)
    assert table.loc["resnet56 / kaf N(0, 0.8²)", "init grad first/last conv"] == pytest.approx(2e11)
    assert table.loc["resnet56 / relu", "best clean %"] == pytest.approx(40.0)
    assert table.loc["resnet56 / relu", "last clean %"] == pytest.approx(35.0)
    assert table.loc["resnet56 / kaf N(0, 0.8²)", "diverged"] == "yes" and table.loc["resnet56 / kaf N(0, 0.8²)", "epochs"] == 0
    assert np.isnan(table.loc["resnet56 / relu", "KAF max |f'| (median layer)"])
    assert table.loc["resnet56 / kaf_elu", "vs ReLU (points)"] == pytest.approx(-1.0)
    assert np.isnan(table.loc["resnet20 / kaf_elu", "vs ReLU (points)"])  # no ResNet20 / ReLU study
    from kaflib.thesis.figures import plot_deep_kaf

    fig = plot_deep_kaf(studies)
    left, right = fig.axes
    assert left.get_yscale() == "log" and len(left.lines) == 4
    assert len(right.get_legend().get_texts()) == 3  # the diverged run has no accuracy curve


def test_lipschitz_histories_keep_runs_that_recorded_the_bound(tmp_path):
    from kaflib.thesis.figures import plot_lipschitz_evolution

    def record(folder, bound, steepest, train_acc):
        pd.DataFrame(dict(epoch=[1, 2], lipschitz_bound_log10=bound, activation_lipschitz_max=steepest,
                          train_acc=train_acc)).to_csv(folder / "history.csv", index=False)

    def current(folder):
        return _made_current(folder, "thesis-vgg")

    current(_finished_run(tmp_path, "thesis-vgg", "vgg", "relu", 0.40, 0.10))  # trained before the columns existed
    record(current(_finished_run(tmp_path, "thesis-vgg", "vgg", "kaf_elu", 0.45, 0.12)), [3.0, 4.5], [1.2, 2.0],
           [0.2, 0.4])
    # reruns with the columns: relu is added, kaf_elu's grid run wins over its rerun
    reruns = tmp_path / "lipschitz-evolution"
    record(current(_finished_run(reruns, "thesis-vgg", "vgg", "relu", 0.40, 0.10)), [2.0, 2.5], [1.0, 1.0], [0.3, 0.5])
    record(current(_finished_run(reruns, "thesis-vgg", "vgg", "kaf_elu", 0.45, 0.12)), [9.0, 9.0], [9.0, 9.0],
           [0.1, 0.1])
    # a rerun of an earlier recipe describes a run the grid has replaced: never shown
    record(_finished_run(reruns, "thesis-vgg", "vgg", "kaf", 0.09, 0.09), [2.0, 2.5], [1.0, 1.0], [0.1, 0.1])
    histories = runs.lipschitz_histories(("thesis-vgg", "thesis-resnet20"), tmp_path)
    assert list(histories) == ["vgg / relu", "vgg / kaf_elu"]  # the grid's order
    bound_ax, act_ax, acc_ax = plot_lipschitz_evolution(histories).axes
    np.testing.assert_allclose(bound_ax.lines[1].get_ydata(), [3.0, 4.5])
    np.testing.assert_allclose(act_ax.lines[1].get_ydata(), [1.2, 2.0])
    np.testing.assert_allclose(acc_ax.lines[0].get_ydata(), [30.0, 50.0])
    assert bound_ax.lines[0].get_linestyle() == "--" and bound_ax.lines[1].get_linestyle() == "-"  # ReLU, KAF
    found = findings.lipschitz_evolution_findings(histories).data.splitlines()
    assert found[1] == ("- vgg / kaf_elu: bound 10^3.0 to 10^4.5; steepest activation 1.2 to 2.0; "
                           "training accuracy 20.0% to 40.0% (2 epochs).")
    minutes = results.compute_time(tmp_path).set_index("kind")["minutes"]
    assert (minutes.index == "lipschitz-evolution run").sum() == 3


def test_bound_robustness_correlation_ranks_the_runs_that_trained():
    measured_runs = pd.DataFrame(dict(model=["vgg"] * 4 + ["resnet20"] * 2, clean_acc=[0.4, 0.4, 0.4, 0.09, 0.4, 0.4],
                             log10_bound=[3.0, 5.0, 9.0, 12.0, 8.0, 20.0], max_activation=[1.0, 1.1, 3.5, 7.4, 1.0, 3.6],
                             robust_acc=[0.30, 0.20, 0.10, 0.09, 0.20, 0.30]))
    table = statistics.bound_robustness_correlation(measured_runs).set_index("model")
    assert table.loc["vgg", "runs"] == 3  # the run at chance is left out
    assert table.loc["vgg", "bound_vs_robust"] == pytest.approx(-1.0)  # the steeper, the less robust
    assert table.loc["resnet20", "activation_vs_robust"] == pytest.approx(1.0)


def test_compute_time_sums_epochs_of_resumed_runs_and_every_study(tmp_path):
    folder = _finished_run(tmp_path, "thesis-vgg", "vgg", "relu", 0.40, 0.10)  # 120 s train (no per-epoch times)
    resumed = _finished_run(tmp_path, "thesis-resnet20", "resnet20", "kaf", 0.4, 0.2)
    pd.DataFrame(dict(epoch=[1, 2, 3], seconds=[600.0, 600.0, 600.0])).to_csv(resumed / "history.csv", index=False)
    (folder / "pgd_iterations.json").write_text(json.dumps(dict(seconds=60.0, rows=[])))
    (tmp_path / "deep-kaf").mkdir()
    (tmp_path / "deep-kaf" / "resnet56-kaf.json").write_text(json.dumps(dict(seconds=5.0, rows=[
        dict(epoch=1, seconds=240.0), dict(epoch=2, seconds=240.0)])))
    (tmp_path / "masking").mkdir()
    (tmp_path / "masking" / "thesis-vgg.partial.json").write_text(json.dumps(dict(key={}, models={})))
    (tmp_path / "apgd").mkdir()
    (tmp_path / "apgd" / "thesis-vgg.json").write_text(json.dumps(dict(seconds=180.0, rows=[])))
    (tmp_path / "thesis-checkpoints.json").write_text(json.dumps(dict(checkpoints={
        "a.zip": dict(seconds=dict(total=300.0)), "b.zip": dict(seconds=dict(total=900.0))})))
    grid = runs.load_grid("thesis-resnet20", tmp_path).set_index("act")
    assert grid.loc["kaf", "train_minutes"] == pytest.approx(30.0)  # every sitting, not metrics' 120 s
    table = results.compute_time(tmp_path).set_index("file")["minutes"]
    assert table["thesis-vgg/vgg-relu"] == pytest.approx(2.5)  # 120 s train + 30 s attack
    assert table["thesis-resnet20/resnet20-kaf"] == pytest.approx(30.5)  # three epochs, not the last sitting
    assert table["thesis-vgg/vgg-relu/pgd_iterations.json"] == pytest.approx(1.0)
    assert table["deep-kaf/resnet56-kaf.json"] == pytest.approx(8.0)
    assert table["thesis-checkpoints.json"] == pytest.approx(20.0)
    assert table["apgd/thesis-vgg.json"] == pytest.approx(3.0)
    assert not any(name.endswith(".partial.json") for name in table.index)


def test_masking_table_joins_grids_and_the_audit_and_states_the_flags(tmp_path):
    def study(grid, rows, **parameters):
        (tmp_path / "masking").mkdir(exist_ok=True)
        (tmp_path / "masking" / f"{grid}.json").write_text(json.dumps(dict(parameters=parameters, rows=rows,
                                                                           data=dict(test=200))))

    def row(model, pgd, worst, **more):
        return dict(model=model, clean=0.5, pgd=pgd, square=worst, worst=worst, acc_at_max_eps=0.0,
                    not_to_zero=False, black_box_wins=pgd - worst > 0.01, transfer_wins=False, **more)

    study("thesis-vgg", [row("relu", 0.20, 0.20), row("kaf_elu", 0.10, 0.06, surrogate=0.09, surrogate_wins=True)],
          skipped={"kaf_free": "did not train: 10.8% clean accuracy"})
    study("thesis-checkpoints", [row("relu", 0.40, 0.40), row("kaf", 0.41, 0.38, surrogate=0.41)],
          checkpoints={"relu": "resnet20_relu_ocrob_lrf", "kaf": "resnet20_kaf_ocrob_lrfinder"})
    attack = dict(accuracy=0.3, ci95=[0.25, 0.35], robust=77)
    audit = {f"{stem}.zip": dict(activation=act, clean=0.8, pgd=attack, apgd_ce=attack, worst=attack,
                                 apgd_dlr_t=dict(attack, accuracy=apgd))
             for stem, act, apgd in [("resnet20_relu_ocrob_lrf", "relu", 0.37), ("resnet20_relu_ocrob", "relu", 0.0),
                                     ("resnet20_kaf_ocrob_lrfinder", "kaf", 0.36)]}
    (tmp_path / "thesis-checkpoints.json").write_text(json.dumps(dict(parameters={}, checkpoints=audit)))

    (tmp_path / "pgd-curves").mkdir()
    curve = [dict(model="kaf_elu", iterations=k, accuracy=a) for k, a in ((5, 0.2), (50, 0.10), (100, 0.08))]
    (tmp_path / "pgd-curves" / "thesis-vgg.json").write_text(json.dumps(dict(rows=curve + [
        dict(model="relu", iterations=k, accuracy=0.2) for k in (5, 50, 100)])))
    assert list(runs.load_pgd_curves("thesis-vgg", tmp_path)["kaf_elu"]["robust_acc"]) == [0.2, 0.1, 0.08]
    assert runs.load_pgd_curves("thesis-resnet20", tmp_path) == {}

    (tmp_path / "apgd").mkdir()
    (tmp_path / "apgd" / "thesis-vgg.json").write_text(json.dumps(dict(rows=[
        dict(model="relu", apgd_ce=0.19, apgd_dlr_t=0.18), dict(model="kaf_elu", apgd_ce=0.08, apgd_dlr_t=0.07)])))

    table = results.masking_table(path=tmp_path)
    assert table.loc[("thesis-vgg", "kaf_elu"), "apgd_dlr_t"] == pytest.approx(7.0)
    assert table["not_converged"].tolist() == [False, True, False, False]
    assert table.loc[("thesis-vgg", "kaf_elu"), "pgd_curve_last"] == pytest.approx(8.0)
    assert list(table.index) == [("thesis-vgg", "relu"), ("thesis-vgg", "kaf_elu"),
                                 ("thesis-checkpoints", "relu"), ("thesis-checkpoints", "kaf")]
    assert table.loc[("thesis-vgg", "kaf_elu"), "worst"] == pytest.approx(6.0)
    # the APGD of the checkpoint the model was loaded from, not of its namesake
    assert table.loc[("thesis-checkpoints", "relu"), "apgd_dlr_t"] == pytest.approx(37.0)
    assert table["surrogate_wins"].tolist() == [False, True, False, False]

    found = findings.masking_findings(table).data.splitlines()
    assert found[1] == ("- black-box Square beats white-box PGD: **VGG-inspired / KAF_ELU** (8 of 200 images), "
                           "**published ResNet20 / KAF** (6 of 200 images).")
    assert found[0].endswith(": no model.")
    assert found[4].endswith("last count of its curve: **VGG-inspired / KAF_ELU** (4 of 200 images).")
    # vgg relu: APGD 18 < PGD 20; vgg kaf_elu: Square 6 < APGD 7; checkpoints: APGD 37 < 40, 36 < 38
    assert found[5] == "- Strongest single attack: APGD for 3 models, Square for 1 model (ties: the first)."
    assert "on average 3.5 points below PGD-50 (largest: VGG-inspired / KAF_ELU, 4.0 points)" in found[6]
    assert found[7].startswith("- VGG-inspired: ReLU keeps 20.0% under the worst case of PGD-50 and Square; "
                                  "the KAF model (KAF_ELU) 6.0% under")
    assert found[7].endswith("Under APGD-CE + APGD-T: ReLU 18.0%, the KAF model (KAF_ELU) 7.0%.")
    assert findings._kaf_span(pd.Series({"kaf": 23.0, "kaf_elu": 25.0})) == \
        "the KAF models 23.0% to 25.0% (best: KAF_ELU)"
    assert found[-1] == "- VGG-inspired / KAF_Free was not checked: it did not train: 10.8% clean accuracy."
    assert not any(name in line for line in found for name in ("thesis-", "kaf_", "/ kaf", "relu"))
    assert not any(line.startswith("- APGD-CE + APGD-T ends") for line in found)
    table.loc[("thesis-checkpoints", "kaf"), "apgd_dlr_t"] = 45.0  # the float16 original resists APGD
    above = [line for line in findings.masking_findings(table).data.splitlines() if "ends more than" in line]
    assert above[0].startswith("- APGD-CE + APGD-T ends more than 1 point above PGD-50: **published ResNet20 / KAF** "
                               "(+4.0 points). For the published ResNet20s, APGD is the checkpoint audit's")
    table.loc[("thesis-checkpoints", "kaf"), "apgd_dlr_t"] = 36.0
    verdict = findings.masking_verdict(table).data
    assert verdict.startswith("The gradient-masking checks ran on 4 models (VGG-inspired, 200 test images; published "
                              "ResNet20, 200 test images); 2 raised a flag, the largest resting on 8 test images.")
    assert verdict.endswith("VGG-inspired: ReLU 18.0%, the KAF models 6.0% on average (-12.0 points); "
                            "published ResNet20: ReLU 30.0%, the KAF models 30.0% on average (+0.0 points).")  # APGD-CE 30%
    for flag in findings.MASKING_FLAGS:
        if flag in table:
            table[flag] = False
    assert "200 test images); none raised a flag. Under" in findings.masking_verdict(table).data
    assert results.masking_table(path=tmp_path / "none") is None


def test_the_repository_is_found_from_any_folder_inside_it(tmp_path, monkeypatch):
    from kaflib.thesis import store

    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "train.ipynb").write_text("{}")
    (tmp_path / "results").mkdir()
    (tmp_path / "book" / "deep").mkdir(parents=True)
    monkeypatch.delenv("KAFLIB_RESULTS_DIR", raising=False)
    monkeypatch.chdir(tmp_path / "book" / "deep")
    assert store.repository_root() == tmp_path
    assert store.results_dir() == tmp_path / "results"
    assert store.study_path("lr-range", "resnet20-relu") == tmp_path / "results" / "lr-range" / "resnet20-relu.json"
    with pytest.raises(ValueError, match="study='nope' is invalid"):
        store.study_path("nope", "x")


def _seeded_run(root, act, seed, clean, robust):
    folder = _finished_run(root / "tmp", "thesis-resnet20", "resnet20", act, clean, robust)
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["parameters"]["seed"] = seed
    (folder / "metrics.json").write_text(json.dumps(metrics))
    target = root / "thesis-resnet20" / (f"resnet20-{act}" + (f"-seed{seed}" if seed else ""))
    target.parent.mkdir(parents=True, exist_ok=True)
    folder.rename(target)


def test_seeds_give_mean_and_sd_and_a_paired_interval(tmp_path, thesis_tables):
    robust = {("relu", 0): 0.30, ("relu", 1): 0.32, ("relu", 2): 0.28,
              ("kaf", 0): 0.31, ("kaf", 1): 0.35, ("kaf", 2): 0.27, ("elu", 0): 0.29}
    for (act, seed), r in robust.items():
        _seeded_run(tmp_path, act, seed, 0.45, r)
    measured = runs.load_grid("thesis-resnet20", tmp_path)
    table = results.compare_with_thesis(measured, "thesis-resnet20")
    assert table.loc["kaf", "seeds"] == 3 and table.loc["elu", "seeds"] == 1
    assert table.loc["kaf", "robust (ours)"] == pytest.approx(31.0)
    assert table.loc["kaf", "robust sd (ours)"] == pytest.approx(np.std([31, 35, 27], ddof=1))
    from kaflib.thesis.figures import plot_robustness_vs_accuracy

    ours = plot_robustness_vs_accuracy(table).axes[0]
    points = np.concatenate([c.get_offsets() for c in ours.collections if len(c.get_offsets())])
    assert len(points) >= 3 + 3 + 1 + 2  # three seeds each of kaf and relu, their means, elu's one run
    shown = statistics.mean_sd(table)
    assert shown.loc["kaf", "robust (ours)"] == "31.0 ± 4.0 (3 seeds)" and shown.loc["elu", "robust (ours)"] == "29.0"
    # the fixture's metrics predate the recorded recipe: they read as the earlier one
    earlier = "momentum 0.9, He-normal convs, batch-norm momentum 0.9"
    assert shown.loc["kaf", "trained with (ours)"] == earlier + ", KAF N(0, 0.8²)"
    assert shown.loc["relu", "trained with (ours)"] == earlier
    assert shown.loc["kaf_relu", "trained with (ours)"] == ""  # a thesis row, no run of ours
    means = results.kaf_versus_fixed(("thesis-resnet20",), tmp_path, runs="all").set_index("source")
    assert means.loc["ours", "runs"] == 7  # every seed counts: 3 relu, 3 kaf, 1 elu
    assert not measured["current"].any()  # the fixture's runs are not what the quick preset gives now
    assert statistics.kaf_fixed_difference(measured)["kafs"] == []  # so the default compares none of them
    d = statistics.kaf_fixed_difference(measured, runs="all")
    assert d["kafs"] == ["kaf"] and d["fixed"] == ["relu"]  # elu has one seed of three: left out of the pairs
    np.testing.assert_allclose(d["per_seed"]["robust_diff"], [1.0, 3.0, -1.0])
    assert d["robust"]["mean"] == pytest.approx(1.0) and d["robust"]["low"] < 0 < d["robust"]["high"]
    assert "no measurable difference" in findings.kaf_fixed_finding(d, "thesis-resnet20").data
    # a consistent gap is a measurable one
    for seed, r in ((0, 0.40), (1, 0.43), (2, 0.37)):
        folder = tmp_path / "thesis-resnet20" / ("resnet20-kaf" + (f"-seed{seed}" if seed else ""))
        metrics = json.loads((folder / "metrics.json").read_text())
        metrics["robust_acc"] = r
        (folder / "metrics.json").write_text(json.dumps(metrics))
    d = statistics.kaf_fixed_difference(runs.load_grid("thesis-resnet20", tmp_path), runs="all")
    assert d["robust"]["low"] > 0 and "KAFs measurably higher" in findings.kaf_fixed_finding(d, "x").data
    one = statistics.kaf_fixed_difference(measured[measured["seed"] == 0], runs="all")
    assert "one seed" in findings.kaf_fixed_finding(one, "x").data


def test_a_study_older_than_a_rerun_is_named_outdated(tmp_path):
    from kaflib.thesis import store

    _finished_run(tmp_path, "thesis-resnet20", "resnet20", "relu", 0.45, 0.16)  # made before issue 19
    rerun = _finished_run(tmp_path, "thesis-resnet20", "resnet20", "kaf", 0.50, 0.20)
    metrics = json.loads((rerun / "metrics.json").read_text())
    metrics["parameters"]["momentum"] = 0.0
    metrics["finished"] = "2026-12-03T10:00:00+00:00"
    (rerun / "metrics.json").write_text(json.dumps(metrics))
    assert runs.runs_newer_than_study("masking", "thesis-resnet20", tmp_path) == []  # no study yet
    study = tmp_path / "masking" / "thesis-resnet20.json"
    store.write_json(study, dict(parameters={}, rows=[]))  # written before studies were time-stamped
    assert runs.runs_newer_than_study("masking", "thesis-resnet20", tmp_path) == ["kaf"]
    seed1 = tmp_path / "thesis-resnet20" / "resnet20-kaf-seed1"  # studies measure seed 0 only
    seed1.mkdir()
    (seed1 / "metrics.json").write_text(json.dumps(dict(metrics, parameters=dict(metrics["parameters"], seed=1))))
    assert runs.runs_newer_than_study("masking", "thesis-resnet20", tmp_path) == ["kaf"]
    note = findings.superseded_note("masking", ("thesis-vgg", "thesis-resnet20"), tmp_path).data
    assert "- ResNet20: retrained since: KAF" in note and "studies masking-checks <grid> --force" in note
    assert "Left out: the gradient-masking checks of ResNet20.**" in note
    assert "VGG" not in note  # a grid without the study is not named
    for stamp, expected in (("2026-12-03T11:00:00+00:00", []), ("2026-12-03T09:00:00+00:00", ["kaf"])):
        store.write_json(study, dict(parameters={}, finished=stamp, rows=[]))
        assert runs.runs_newer_than_study("masking", "thesis-resnet20", tmp_path) == expected
    store.write_json(study, dict(parameters={}, finished="2026-12-03T11:00:00+00:00", rows=[]))
    assert findings.superseded_note("masking", ("thesis-resnet20",), tmp_path).data == ""
    written = store.write_study(tmp_path / "x.json", {}, {}, pd.DataFrame(), 0.0)
    assert written["finished"].startswith("20")  # studies are time-stamped from now on


def _made_current(folder, grid):
    """`folder`, a `_finished_run`, with the parameters the quick preset gives now (`is_current`)."""
    import dataclasses

    from kaflib.thesis.experiment import resolve

    metrics = json.loads((folder / "metrics.json").read_text())
    p = metrics["parameters"]
    exp = resolve(model=p["model"], act=p["act"], preset="quick", seed=p["seed"], grid=grid, mixed_precision=False)
    metrics["parameters"] = dataclasses.asdict(exp)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def _current_run(root, act, seed, clean, robust, **overrides):
    """A finished run whose parameters are what the quick preset gives now (with `overrides`)."""
    import dataclasses

    from kaflib.thesis.experiment import resolve

    exp = resolve(model="resnet20", act=act, preset="quick", seed=seed, grid="thesis-resnet20", mixed_precision=False)
    folder = root / "thesis-resnet20" / (f"resnet20-{act}" + (f"-seed{seed}" if seed else ""))
    folder.mkdir(parents=True)
    metrics = dict(parameters=dict(dataclasses.asdict(exp), **overrides), data=dict(train=4829, guard=256, test=1017),
                   clean_acc=clean, robust_acc=robust, seconds=dict(train=60.0, attack=10.0, total=70.0))
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_the_kaf_comparison_leaves_out_runs_of_an_earlier_recipe(tmp_path):
    for seed, (relu, kaf) in enumerate([(0.30, 0.31), (0.32, 0.33), (0.28, 0.29)]):
        _current_run(tmp_path, "relu", seed, 0.45, relu)
        _current_run(tmp_path, "kaf", seed, 0.45, kaf)
    # one seed of elu trained with momentum 0.9 (the earlier recipe), one with hand-set epochs
    _current_run(tmp_path, "elu", 0, 0.45, 0.90, momentum=0.9)
    _current_run(tmp_path, "elu", 1, 0.45, 0.90, epochs=3)
    _current_run(tmp_path, "elu", 2, 0.45, 0.29)
    measured = runs.load_grid("thesis-resnet20", tmp_path)
    assert measured.set_index(["act", "seed"])["current"].to_dict() == {
        ("elu", 0): False, ("elu", 1): False, ("elu", 2): True, **{(a, s): True for a in ("kaf", "relu") for s in range(3)}}
    d = statistics.kaf_fixed_difference(measured)
    assert d["fixed"] == ["relu"] and d["left_out"] == ["elu seed 0", "elu seed 1"]
    np.testing.assert_allclose(d["per_seed"]["robust_diff"], [1.0, 1.0, 1.0])
    finding = findings.kaf_fixed_finding(d, "thesis-resnet20").data
    assert "Left out, as trained with an earlier recipe or other settings: ELU seed 0, ELU seed 1." in finding
    assert "elu" in statistics.kaf_fixed_difference(measured, runs="all")["fixed"]  # all: elu's 3 seeds pair up
    with pytest.raises(ValueError, match="runs='some' is invalid"):
        statistics.kaf_fixed_difference(measured, runs="some")


def test_holm_adjustment_matches_the_step_down_by_hand():

    p = pd.Series([0.04, 0.01, 0.03, 0.5], index=list("abcd"))
    # sorted 0.01, 0.03, 0.04, 0.5 -> x4, x3, x2, x1 = 0.04, 0.09, 0.08 -> 0.09 (monotone), 0.5
    assert statistics.holm(p).to_dict() == pytest.approx(dict(a=0.09, b=0.04, c=0.09, d=0.5))
    assert statistics.holm(pd.Series([0.6, 0.7], index=["x", "y"])).tolist() == [1.0, 1.0]


def test_the_paired_seeds_are_the_most_that_kafs_and_fixed_activations_share():

    # relu has its second seed first: pairing on {0, 1} would leave no KAF, so seed 0 with all five
    assert statistics.paired_seeds({"relu": {0, 1}, "elu": {0}, "kaf": {0}, "kaf_elu": {0}, "swish": {0}}) == (
        [0], ["elu", "kaf", "kaf_elu", "relu", "swish"])
    # once a KAF has it too, the two seeds win over the activations that lack it ({0, 2} ties: lowest seeds)
    assert statistics.paired_seeds({"relu": {0, 1}, "elu": {0}, "kaf": {0, 1, 2}, "swish": {0, 2}}) == ([0, 1], ["kaf", "relu"])
    assert statistics.paired_seeds({"relu": {0, 1}, "elu": {0, 1}}) == ([], [])  # no KAF
    assert statistics.paired_seeds({}) == ([], [])


def _autoattack_record(folder, name, activation, robust, n=200, per_image=True):
    """A made-up AutoAttack record: the images in `robust` (indices) survive the whole cascade."""
    marks = "".join("1" if i in robust else "0" for i in range(n))
    rate = dict(accuracy=len(robust) / n, ci95=[len(robust) / n - 0.05, len(robust) / n + 0.05],
                images_per_second=1.0)
    kaflib = dict(summary=dict(clean=dict(accuracy=0.8, ci95=[0.75, 0.85]), attacks={"apgd-ce": rate, "square": rate},
                               worst=rate),
                  model=dict(activation=activation), seconds=dict(total=60.0),
                  data=dict(selection=f"the first {n} test images, official order"),
                  parameters=dict(attacks=["apgd-ce", "square"]))
    if per_image:
        kaflib["per_image"] = {"clean": "1" * n, "apgd-ce": marks, "square": marks}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(dict(name=name, n_images=n, left_out={}, kaflib=kaflib)))


def test_a_paired_difference_that_does_not_survive_holm_says_so(tmp_path):
    folder = tmp_path / "autoattack"
    _autoattack_record(folder, "swish_ckpt", "swish", set(range(80)))
    _autoattack_record(folder, "kaf_ckpt", "kaf", set(range(3, 92)))  # 12 images only kaf's, 3 only swish's
    _autoattack_record(folder, "kaf_elu_ckpt", "kaf_elu", set(range(80)))  # the same images as swish
    pairs = statistics.autoattack_paired_differences(results.autoattack_table(tmp_path))
    kaf = pairs.loc["kaf_ckpt"]
    assert kaf["low"] > 0 and 0.025 < kaf["p_exact"] < 0.05 < kaf["p_holm"] == pytest.approx(2 * kaf["p_exact"])
    finding = findings.autoattack_paired_finding(results.autoattack_table(tmp_path))
    assert "KAF +4.5 [+0.7, +8.3] (p 0.035, Holm 0.070)" in finding
    from kaflib.thesis.tables import paired_differences

    shown = paired_differences(pairs).to_html()
    assert ">0.035<" in shown and ">0.070<" in shown  # the table prints the p-values as the sentence does
    assert "Holm-corrected for the 2 comparisons" in finding
    assert "Measurably more robust" not in finding  # the verdicts count only what survives Holm
    assert "On the edge, the interval excluding 0 but the test not confirming it: KAF (Holm's corrected p is 0.070)." in finding
    assert "Against ReLU" not in findings.autoattack_findings(results.autoattack_table(tmp_path),
                                                             runs.leaderboard_entries()).data
    _autoattack_record(folder, "relu_ckpt", "relu", set(range(70)))  # the thesis' baseline, not the best fixed
    found = findings.autoattack_findings(results.autoattack_table(tmp_path), runs.leaderboard_entries()).data
    assert "- Against ReLU, the thesis' baseline. Paired on the same 200 images, KAF minus ReLU (`relu_ckpt`)" in found
    assert "KAF minus Swish (`swish_ckpt`)" in found  # the best fixed activation stays the first reference


def test_autoattack_kaf_checkpoints_are_compared_image_by_image(tmp_path):
    folder = tmp_path / "autoattack"
    _autoattack_record(folder, "swish_ckpt", "swish", set(range(80)))
    _autoattack_record(folder, "elu_ckpt", "elu", set(range(60)))
    _autoattack_record(folder, "relu_ckpt", "relu", set(range(150)), per_image=False)  # an older record
    _autoattack_record(folder, "kaf_ckpt", "kaf", set(range(110)))  # swish's 80 and 30 more
    _autoattack_record(folder, "kaf_swish_ckpt", "kaf_swish", set(range(2, 82)))  # 2 swapped each way
    _autoattack_record(folder, "kaf_elu_ckpt", "kaf_elu", set(range(50)))  # a subset of swish's
    _autoattack_record(folder, "kaf_free_ckpt", "kaf_free", set(range(90)), n=100)  # other images: not paired
    table = results.autoattack_table(tmp_path)
    pairs = statistics.autoattack_paired_differences(table)
    assert set(pairs["reference"]) == {"swish_ckpt"}  # relu's record keeps no per-image outcomes
    assert list(pairs.index) == ["kaf_ckpt", "kaf_elu_ckpt", "kaf_swish_ckpt"]
    assert pairs.loc["kaf_ckpt", "difference"] == pytest.approx(15.0) and pairs.loc["kaf_ckpt", "low"] > 0
    assert (pairs.loc["kaf_ckpt", "only_this"], pairs.loc["kaf_ckpt", "only_reference"]) == (30, 0)
    # exact McNemar: all 30 discordant images one way, two-sided; 2 against 2 is no evidence at all
    assert pairs.loc["kaf_ckpt", "p_exact"] == pytest.approx(2 * 0.5 ** 30)
    assert pairs.loc["kaf_swish_ckpt", "p_exact"] == 1.0
    assert pairs.loc["kaf_elu_ckpt", "p_exact"] == pytest.approx(2 * 0.5 ** 30)  # 30 only the reference's
    # Holm over the 3 comparisons: smallest p times 3, the next times 2 (kept non-decreasing), then 1
    assert pairs["p_holm"].tolist() == pytest.approx([3 * 2 * 0.5 ** 30, 3 * 2 * 0.5 ** 30, 1.0])
    assert pairs.loc["kaf_swish_ckpt", "difference"] == 0 and pairs.loc["kaf_swish_ckpt", "low"] < 0
    assert pairs.loc["kaf_elu_ckpt", "high"] < 0
    # the 95% half width of a mean of -1/0/+1 differences: 1.96 sd / sqrt(n)
    d = np.r_[np.ones(30), np.zeros(170)]
    assert pairs.loc["kaf_ckpt", "high"] - 15.0 == pytest.approx(100 * 1.96 * d.std(ddof=1) / np.sqrt(200))
    found = findings.autoattack_findings(table, runs.leaderboard_entries()).data
    assert "Measurably more robust: KAF." in found and "Measurably less robust: KAF_ELU." in found
    assert "KAF +15.0 [" in found and "(p < 0.001, Holm < 0.001)" in found
    assert "No measurable difference: KAF_Swish." in found
    against_elu = statistics.autoattack_paired_differences(table, reference="elu_ckpt")
    assert against_elu.loc["kaf_elu_ckpt", "difference"] == pytest.approx(-5.0)
    # an activation names its one checkpoint
    by_activation = statistics.autoattack_paired_differences(table, reference="elu")
    assert by_activation.equals(against_elu) and set(by_activation["reference"]) == {"elu_ckpt"}
    assert set(by_activation["reference_activation"]) == {"elu"}
    elu_finding = findings.autoattack_paired_finding(table, reference="elu")
    assert "KAF_ELU -5.0 [" in elu_finding and "KAF minus ELU (`elu_ckpt`)" in elu_finding
    assert "kaf" not in elu_finding and "(elu)" not in elu_finding  # display names, not internal ones
    # a KAF reference is not compared with itself
    assert "kaf_ckpt" not in statistics.autoattack_paired_differences(table, reference="kaf").index
    for bad in ("relu_ckpt", "relu", "gelu"):  # relu's record keeps no per-image outcomes
        with pytest.raises(ValueError, match=f"reference='{bad}' is not a checkpoint with per-image outcomes"):
            statistics.autoattack_paired_differences(table, reference=bad)
    only_fixed = tmp_path / "fixed-only"
    _autoattack_record(only_fixed / "autoattack", "swish_ckpt", "swish", set(range(80)))
    assert statistics.autoattack_paired_differences(results.autoattack_table(only_fixed)) is None
    assert findings.autoattack_paired_finding(results.autoattack_table(only_fixed)) == ""

    from kaflib.thesis.figures import plot_autoattack_differences

    ax = plot_autoattack_differences(pairs).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["KAF", "KAF_ELU", "KAF_Swish"]
    ax = plot_autoattack_differences(pairs, None, against_elu).axes[0]  # two references, one row per KAF
    assert [t.get_text() for t in ax.get_yticklabels()] == ["KAF", "KAF_ELU", "KAF_Swish"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[:2] == ["minus Swish", "minus ELU"] and "measurably higher" in legend
    assert "on the edge: the test does not confirm" not in legend  # only the colours drawn are explained
    with pytest.raises(ValueError, match="at least one table"):
        plot_autoattack_differences(None)


def test_figures_of_the_book_draw_readable_legends(tmp_path):
    """The figure functions the other tests do not draw, on made-up inputs: their legends list
    activations and attacks (the autouse `no_hidden_legend_labels` fixture checks every figure)."""
    import pandas as pd

    from kaflib.plots import plot_activation_derivatives, plot_histories
    from kaflib.thesis.figures import plot_autoattack, plot_lr_range_tests

    from tests.conftest import legend_labels

    _autoattack_record(tmp_path / "autoattack", "swish_ckpt", "swish", set(range(80)))
    _autoattack_record(tmp_path / "autoattack", "kaf_ckpt", "kaf", set(range(90)))
    fig = plot_autoattack(results.autoattack_table(tmp_path), runs.leaderboard_entries())
    assert "clean" in legend_labels(fig) and fig.get_figwidth() <= 8.5
    history = pd.DataFrame(dict(epoch=[1, 2], test_clean_acc=[0.3, 0.4], test_pgd_acc=[0.1, 0.2]))
    assert legend_labels(plot_histories({"relu": history, "kaf": history})) == ["relu", "kaf"]
    assert "swish" in legend_labels(plot_activation_derivatives(("relu", "swish")))
    lr = pd.DataFrame(dict(lr=np.geomspace(1e-4, 1, 20), loss=np.linspace(2.3, 1.0, 20)))
    ranges = pd.DataFrame({"test: max_lr": [0.1, 0.2]}, index=["relu", "kaf_elu"])
    assert legend_labels(plot_lr_range_tests({"relu": ({}, lr), "kaf_elu": ({}, lr)}, ranges)) == ["ReLU", "KAF_ELU"]


def test_a_checkpoints_standard_record_replaces_its_earlier_one_and_says_what_it_changed(tmp_path):
    _autoattack_record(tmp_path / "autoattack", "relu_ckpt", "relu", set(range(80)))
    _autoattack_record(tmp_path / "autoattack", "kaf_ckpt", "kaf", set(range(90)))
    earlier = json.loads((tmp_path / "autoattack" / "relu_ckpt.json").read_text())
    attacks = earlier["kaflib"]["summary"]["attacks"]
    attacks["apgd-t"], attacks["square"] = dict(attacks["apgd-ce"]), attacks.pop("square")  # ART's APGD-T
    earlier["kaflib"]["parameters"]["attacks"] = ["apgd-ce", "apgd-t", "square"]
    for key, robust in (("apgd-ce", 100), ("apgd-t", 85), ("square", 80)):
        attacks[key].update(robust=robust, seconds=10.0, images_attacked=100)
    (tmp_path / "autoattack" / "relu_ckpt.json").write_text(json.dumps(earlier))

    def rate(robust, seconds, **extra):
        return dict(accuracy=robust / 200, ci95=[robust / 200 - 0.05, robust / 200 + 0.05], robust=robust,
                    seconds=seconds, images_attacked=100, images_per_second=1.0, **extra)

    marks = "".join("1" if i < 78 else "0" for i in range(200))
    standard = dict(name="relu_ckpt", n_images=200, left_out={}, version="standard", attacks=list(STANDARD),
                    kaflib=dict(summary=dict(clean=rate(160, 0), worst=rate(78, 0), attacks={
                        "apgd-ce": rate(100, 10.0), "apgd-t": rate(84, 30.0), "fab-t": rate(78, 20.0),
                        "square": rate(78, 0.0, images_reused=78, seconds_reused=40.0)}),
                        model=dict(activation="relu"), seconds=dict(total=100.0), parameters=dict(attacks=list(STANDARD)),
                        data=dict(selection="the first 200 test images, official order"),
                        per_image={"clean": "1" * 200, **{a: marks for a in STANDARD}}))
    (tmp_path / "autoattack-standard").mkdir()
    (tmp_path / "autoattack-standard" / "relu_ckpt.json").write_text(json.dumps(standard))
    table = results.autoattack_table(tmp_path)
    assert table.loc["relu_ckpt", "version"] == "standard" and table.loc["kaf_ckpt", "version"] == "without FAB-T"
    relu = table.loc["relu_ckpt"]
    assert relu["autoattack"] == 39.0 and relu["earlier"] == 40.0
    assert relu["fab-t broke"] == 6 and relu["apgd-t broke"] == 16
    assert relu["fab-t share"] == pytest.approx(100 * 20 / (10 + 30 + 20 + 40))  # reused Square at its first rate
    assert table.attrs["per_image"]["relu_ckpt"].sum() == 78 and (table.attrs["standard"], table.attrs["checkpoints"]) == (1, 2)
    found = findings.standard_autoattack_findings(table).data
    assert "1 of the 2 checkpoints have been evaluated with AutoAttack's standard version" in found
    assert "differ by at most 1.0 points" in found  # 39.0 against 40.0
    assert "FAB-T broke 6 of the images APGD-CE and APGD-T left robust and took 20% of the evaluation's time" in found
    assert "against 40.0% in the earlier evaluation" in found
    # made afresh: the earlier APGD-CE left other images, so ART's APGD-T count is not set beside AutoAttack's
    assert not relu["reused"] and pd.isna(relu.get("apgd-t-art broke")) and "where ART's broke" not in found
    assert ("evaluated afresh, reusing nothing: its APGD-CE, judged by the published model, left 50.0% robust "
            "where the earlier evaluation's, judged by the float32 twin, left 40.0%") in found
    standard["kaflib"]["reused"] = dict(attacks=["apgd-ce"])  # --reuse: both APGD-Ts start from the same images
    (tmp_path / "autoattack-standard" / "relu_ckpt.json").write_text(json.dumps(standard))
    table = results.autoattack_table(tmp_path)
    relu = table.loc["relu_ckpt"]
    assert relu["reused"] and relu["apgd-t-art broke"] == 15 and pd.isna(table.loc["kaf_ckpt", "reused"])
    found = findings.standard_autoattack_findings(table).data
    assert "APGD-T broke 16 images with AutoAttack's loss where ART's broke 15." in found and "afresh" not in found
    (tmp_path / "autoattack" / "relu_ckpt.json").unlink()  # a standard record with no earlier one: no "nan%"
    found = findings.standard_autoattack_findings(results.autoattack_table(tmp_path)).data
    assert "Standard AutoAttack: 39.0% [34.0, 44.0], no earlier evaluation." in found and "nan" not in found


def test_earlier_numbers_of_checkpoints_whose_twin_disagrees_carry_a_caveat(tmp_path):
    _autoattack_record(tmp_path / "autoattack", "relu_ckpt", "relu", set(range(80)))
    _autoattack_record(tmp_path / "autoattack", "kaf_ckpt", "kaf_relu", set(range(90)))
    _autoattack_record(tmp_path / "autoattack", "elu_ckpt", "elu", set(range(85)))
    table = results.autoattack_table(tmp_path)
    audit = pd.DataFrame({"float32 agreement": [100.0, 96.1, 100.0]}, index=["relu_ckpt", "kaf_ckpt", "elu_ckpt"])
    caveat = findings.earlier_twin_caveat(table, audit)
    assert caveat.startswith(" The earlier evaluation's numbers for KAF_ReLU may be too high: its float32 twin")
    assert "ReLU," not in caveat and "ELU" not in caveat
    assert caveat in findings.autoattack_version_note(table, audit)
    assert findings.earlier_twin_caveat(table, None) == ""
    table.loc["kaf_ckpt", "version"] = "standard"  # its standard record attacks every image: no caveat
    assert findings.earlier_twin_caveat(table, audit) == ""


def test_a_paired_difference_the_exact_test_does_not_confirm_says_so(tmp_path):
    # 27 images only KAF survives, 14 only ReLU: the interval just excludes 0, McNemar's p is 0.06
    folder = tmp_path / "autoattack"
    _autoattack_record(folder, "relu_ckpt", "relu", set(range(186)), n=512)
    _autoattack_record(folder, "kaf_ckpt", "kaf", set(range(14, 186 + 27)), n=512)
    pairs = statistics.autoattack_paired_differences(results.autoattack_table(tmp_path))
    kaf = pairs.loc["kaf_ckpt"]
    assert kaf["low"] > 0 and kaf["p_exact"] > 0.05
    finding = findings.autoattack_paired_finding(results.autoattack_table(tmp_path))
    assert (f"On the edge, the interval excluding 0 but the test not confirming it: KAF (the exact test's p is "
            f"{tables.p_value(kaf['p_exact'])}).") in finding
    assert "Measurably more robust" not in finding and "No measurable difference" not in finding
    assert not statistics.measurable(pairs).any()
    from kaflib.thesis.figures import plot_autoattack_differences

    ax = plot_autoattack_differences(pairs).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["minus ReLU", "on the edge: the test does not confirm"]
    drawn = [line.get_color() for line in ax.get_lines() if len(line.get_xdata())]
    assert "tab:orange" in drawn and "tab:green" not in drawn  # not drawn as a measurable difference
