import json
from pathlib import Path

import pytest

from kaflib.thesis import experiment, grid
from kaflib.thesis.experiment import resolve
from tests.conftest import THESIS_TABLES


def test_auto_preset_without_gpu_is_quick_and_says_why():
    exp = resolve(model="resnet20", act="kaf")
    assert exp.preset == "quick" and "no GPU is visible" in exp.preset_reason
    assert exp.method == "fgsm_rs" and exp.augment and exp.pgd_steps == 50


def test_presets_and_overrides():
    thesis = resolve(model="vgg", act="relu", preset="thesis")
    assert (thesis.epochs, thesis.pgd_restarts, thesis.augment) == (60, 10, False)
    assert resolve(model="resnet20", preset="thesis").epochs == 80
    light = resolve(model="light", act="kwta", preset="quick", epochs=3)
    assert light.method == "standard" and light.epochs == 3 and "overridden: epochs" in light.preset_reason
    assert light.run_dir.as_posix() == "results/adhoc/light-kwta"
    # the thesis never warms eps up; the quick preset does for fast AT, and the config carries it
    assert thesis.eps_warmup_epochs == 0
    quick = resolve(model="resnet20", preset="quick")
    assert 0 < quick.eps_warmup_epochs < quick.epochs
    assert experiment.train_config(quick).eps_warmup_epochs == quick.eps_warmup_epochs


def test_the_preset_warmup_shrinks_with_the_users_epochs_and_an_explicit_one_must_fit():
    preset = resolve(model="resnet20", preset="quick")
    short = resolve(model="resnet20", preset="quick", epochs=1)
    assert short.eps_warmup_epochs == pytest.approx(preset.eps_warmup_epochs / preset.epochs)
    assert "eps_warmup_epochs scaled with epochs" in short.preset_reason
    longer = resolve(model="vgg", preset="quick", epochs=20)
    assert longer.eps_warmup_epochs / 20 == pytest.approx(resolve(model="vgg", preset="quick").eps_warmup_epochs / 10)
    assert resolve(model="resnet20", preset="quick", epochs=1, eps_warmup_epochs=0.5).eps_warmup_epochs == 0.5
    assert resolve(model="resnet20", preset="thesis", epochs=3).eps_warmup_epochs == 0
    with pytest.raises(ValueError, match=r"eps_warmup_epochs=6 is invalid: must be a number in \[0, epochs=1\]"):
        resolve(model="resnet20", preset="quick", epochs=1, eps_warmup_epochs=6)


@pytest.mark.parametrize("kwargs, name", [
    (dict(act="sigmoidal"), "act"), (dict(model="resnet18"), "model"), (dict(preset="fast"), "preset"),
    (dict(epochs=0), "epochs"), (dict(train_size=-5), "train_size"), (dict(eps=8), "eps"),
    (dict(method="fgsm"), "method"), (dict(min_lr=1.0, max_lr=0.1), "min_lr"),
    (dict(epochs=4, eps_warmup_epochs=5), "eps_warmup_epochs"), (dict(eps_warmup_epochs="2"), "eps_warmup_epochs"),
    (dict(act="kaf", kaf_kernel="cosine"), "kaf_kernel"), (dict(act="relu", kaf_kernel="softplus"), "kaf_kernel"),
    (dict(act="kaf_elu", kaf_kernel="relu"), "kaf_kernel"), (dict(act="kaf_free", kaf_kernel="relu"), "kaf_kernel"),
])
def test_invalid_parameters_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=f"Parameter {name}="):
        resolve(**kwargs)


def test_kaf_kernel_reaches_the_layers_and_the_run_folder():
    exp = resolve(model="light", act="kaf_swish", kaf_kernel="softplus", out_dir="out", grid="g")
    assert exp.run_dir.name == "light-kaf_swish-softplus-kernel"
    assert resolve(model="light", act="kaf").run_dir.name == "light-kaf"
    from kaflib.kaf import KAF
    from kaflib.models import build_model

    kafs = [layer for layer in build_model("light", "kaf_swish", kaf_kernel="softplus").layers
            if isinstance(layer, KAF)]
    assert len(kafs) == 5 and {layer.kernel for layer in kafs} == {"softplus"}


def _finished(exp, **changed):
    """Write a finished run of `exp` (optionally with some parameters changed) as the notebook would."""
    import dataclasses

    exp.run_dir.mkdir(parents=True)
    parameters = dict(dataclasses.asdict(exp), **changed)
    (exp.run_dir / "metrics.json").write_text(json.dumps(dict(parameters=parameters, clean_acc=0.5, robust_acc=0.1)))
    return exp.run_dir


@pytest.fixture(scope="module")
def client():
    """An in-process Dask cluster: the grid's scheduling logic without worker start-up."""
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as connected:
        yield connected


def _recording_run(log, fail=()):
    """A stand-in for `grid._run_one` (Dask ships it to the worker, so calls go to a file)."""
    def run(model, act, grid_name, out_dir, parameters, notebook):
        with open(log, "a") as f:
            f.write(json.dumps([act, parameters]) + "\n")
        if act in fail:
            raise RuntimeError("boom")
        return dict(clean_acc=0.6, robust_acc=0.2)
    return run


def _calls(log):
    calls = [tuple(json.loads(line)) for line in log.read_text().splitlines()] if log.exists() else []
    log.unlink(missing_ok=True)
    return calls


def test_grid_skips_finished_runs_and_reports_failures(tmp_path, monkeypatch, client):
    _finished(grid.expected_experiment("light", "relu", "thesis-light", tmp_path, {"preset": "quick", "seed": 0}))
    log = tmp_path / "calls.jsonl"
    monkeypatch.setattr(grid, "_run_one", _recording_run(log, fail=("kaf",)))
    status = grid.run_grid("thesis-light", tmp_path, jobs=2, parameters={"preset": "quick"}, client=client,
                           retries=0, progress=False)
    assert status[("light", "relu", 0)] == "skipped"
    assert status[("light", "kwta", 0)] == "finished" and status[("light", "kaf", 0)].startswith("failed")
    calls = _calls(log)
    assert sorted(a for a, _ in calls) == ["kaf", "kwta"] and calls[0][1] == {"preset": "quick", "seed": 0}
    status = grid.run_grid("thesis-light", tmp_path, parameters={"preset": "quick"}, acts=["relu"], seeds=[0, 2],
                           client=client, progress=False)
    assert status == {("light", "relu", 0): "skipped", ("light", "relu", 2): "finished"}
    assert _calls(log) == [("relu", {"preset": "quick", "seed": 2})]
    with pytest.raises(ValueError, match="valid grids are"):
        grid.run_grid("thesis-resnet18", tmp_path)
    with pytest.raises(ValueError, match="seeds=\\(-1,\\) is invalid"):
        grid.run_grid("thesis-light", tmp_path, seeds=[-1])


def test_a_run_finished_with_other_parameters_is_stale_never_taken_for_the_new_one(tmp_path, monkeypatch, client):
    wanted = grid.expected_experiment("resnet20", "kaf", "thesis-resnet20", tmp_path, {"preset": "quick", "seed": 0})
    assert wanted.kaf_random_stddev == 0.05
    folder = _finished(wanted)
    metrics = json.loads((folder / "metrics.json").read_text())
    for name in experiment.UNRECORDED_PARAMETERS:  # a run from before these were recorded: N(0, 0.8^2) KAFs
        del metrics["parameters"][name]
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "checkpoint").mkdir()
    (folder / "pgd_iterations.json").write_text("{}")  # a study of the stale run's model
    log = tmp_path / "calls.jsonl"
    monkeypatch.setattr(grid, "_run_one", _recording_run(log))
    status = grid.run_grid("thesis-resnet20", tmp_path, parameters={"preset": "quick"}, acts=["kaf"], client=client)
    assert status[("resnet20", "kaf", 0)].startswith("stale") and "kaf_random_stddev: 0.8 -> 0.05" in \
        status[("resnet20", "kaf", 0)] and _calls(log) == []
    assert grid.main(["thesis-resnet20", "--out-dir", str(tmp_path), "--preset", "quick", "--act", "kaf"]) == 1
    status = grid.run_grid("thesis-resnet20", tmp_path, parameters={"preset": "quick"}, acts=["kaf"],
                           rerun_stale=True, client=client, progress=False)
    assert status[("resnet20", "kaf", 0)] == "finished" and [a for a, _ in _calls(log)] == ["kaf"]
    assert not (folder / "metrics.json").exists() and not (folder / "checkpoint").exists()
    assert not (folder / "pgd_iterations.json").exists()  # it described the model that is gone


def test_a_run_finished_by_another_grid_command_while_queued_is_not_run_again(tmp_path, monkeypatch):
    import papermill

    def no_run(*args, **kwargs):
        raise AssertionError("the finished run was executed again")

    monkeypatch.setattr(papermill, "execute_notebook", no_run)
    exp = grid.expected_experiment("resnet20", "swish", "thesis-resnet20", tmp_path, {"preset": "quick", "seed": 2})
    folder = _finished(exp)
    metrics = grid._run_one("resnet20", "swish", "thesis-resnet20", tmp_path, {"preset": "quick", "seed": 2},
                            Path("train.ipynb"))
    assert metrics["clean_acc"] == 0.5 and not (folder / "attempts.log").exists()
    with pytest.raises(AssertionError, match="executed again"):  # an unfinished run does run
        grid._run_one("resnet20", "relu", "thesis-resnet20", tmp_path, {"preset": "quick", "seed": 2},
                      Path("train.ipynb"))


def test_recorded_parameters_of_runs_from_before_the_thesis_recipe():
    old = dict(parameters=dict(act="kaf", model="vgg", seed=0))
    p = experiment.recorded_parameters(old)
    assert (p["momentum"], p["recipe"], p["kaf_random_stddev"], p["extra_epochs"]) == (0.9, "he-bn0.9", 0.8, 0)
    assert experiment.recorded_parameters(dict(parameters=dict(act="relu")))["kaf_random_stddev"] is None


def test_vgg_presets_use_the_thesis_learning_rates_per_activation():
    assert len(experiment.VGG_LEARNING_RATES) == 7
    for act, (low, high) in experiment.VGG_LEARNING_RATES.items():
        for preset in ("quick", "thesis"):
            exp = resolve(model="vgg", act=act, preset=preset)
            assert (exp.min_lr, exp.max_lr) == (low, high)
    assert resolve(model="vgg", act="kaf", preset="quick", max_lr=0.5).max_lr == 0.5
    assert resolve(model="vgg", act="kwta", preset="quick").max_lr == 0.1  # not in the thesis' VGG grid


@pytest.mark.skipif(not THESIS_TABLES.is_file(), reason="the thesis' tables are in ../shared/thesis")
def test_vgg_learning_rates_are_the_thesis_table(monkeypatch):
    from kaflib.thesis.results import reported_results

    monkeypatch.delenv("KAFLIB_THESIS_DIR", raising=False)
    reported = reported_results("vgg_fast_at").set_index("activation")
    assert {act: (reported.loc[act, "min_lr"], reported.loc[act, "max_lr"]) for act in reported.index} \
        == experiment.VGG_LEARNING_RATES


def test_grid_makes_a_relative_data_folder_absolute_before_runs_change_folder(tmp_path, monkeypatch):
    from kaflib.thesis.grid import _absolute_data_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KAFLIB_DATA_DIR", "../shared/data/cifar10-mini")
    parameters = dict(data_dir="data", preset="quick")
    _absolute_data_dir(parameters)
    assert parameters == dict(data_dir=str(tmp_path / "data"), preset="quick")
    import os

    assert os.environ["KAFLIB_DATA_DIR"] == str((tmp_path / "../shared/data/cifar10-mini").resolve())
