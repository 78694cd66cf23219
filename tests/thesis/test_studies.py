import json

import numpy as np
import pytest

from kaflib.thesis import store, studies
from tests.conftest import cifar10_dir


def test_pgd_iterations_needs_a_finished_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        studies.pgd_iterations(tmp_path)
    assert studies.main(["pgd-iterations", str(tmp_path)]) == 2


def test_read_study_of_a_missing_file_is_none(tmp_path):
    assert store.read_study(tmp_path / "nope.json") is None


def test_grad_norms_writes_a_complete_file_and_skips_it_next_time(tmp_path):
    meta, rows = studies.grad_norms("light", "kaf", steps=2, batch_size=8, train_size=40,
                                    data_dir=cifar10_dir(), out_dir=tmp_path)
    path = tmp_path / "exploding-gradients" / "light-kaf-std0.05.json"  # the thesis' init, named
    payload = json.loads(path.read_text())
    assert payload["parameters"]["act"] == "kaf" and payload["data"]["train"] == 40 \
        and len(payload["data"]["fingerprint"]) == 12 and "40 training images" in payload["data"]["name"]
    assert {"tensorflow", "keras"} <= set(payload["environment"]) and payload["seconds"] > 0
    assert list(rows["step"].unique()) == [0, 1]
    path.write_text(path.read_text().replace('"steps": 2', '"steps": 99'))  # skipped: not recomputed
    assert studies.grad_norms("light", "kaf", steps=2, out_dir=tmp_path)[0]["parameters"]["steps"] == 99
    assert payload["parameters"]["kaf_random_stddev"] == 0.05 and payload["parameters"]["recipe"] == "he-bn0.9"


def test_study_names_carry_the_random_kaf_init_and_a_recipe_other_than_the_studies_one():
    assert studies.study_name("resnet56", "kaf", "kafnets") == "resnet56-kaf-std0.8"
    assert studies.study_name("resnet56", "kaf_free") == "resnet56-kaf_free-std0.05"
    assert studies.study_name("resnet56", "kaf_elu", 0.3) == "resnet56-kaf_elu"
    assert studies.study_name("resnet20", "relu", recipe="thesis") == "resnet20-relu-thesis"
    with pytest.raises(ValueError, match="recipe='x' is invalid"):
        studies.study_name("resnet20", "relu", recipe="x")

@pytest.mark.slow  # trains twice

def test_deep_kaf_records_init_diagnostics_training_and_divergence(tmp_path, monkeypatch):
    common = dict(model="light", epochs=1, train_size=400, test_size=40, data_dir=cifar10_dir(),
                  out_dir=tmp_path, progress=False)
    meta, rows = studies.deep_kaf(act="kaf_smooth", **common)
    assert meta["diverged"] is None and list(rows["epoch"]) == [1]
    assert (meta["data"]["train"], meta["data"]["test"]) == (400, 40) and meta["parameters"]["method"] == "standard"
    slopes = meta["init_kaf_slopes"]
    assert [s["depth"] for s in slopes] == [1, 2, 3, 4, 5] and all(s["max_slope"] > 0 for s in slopes)
    assert len(meta["init_gradient_norms"]) > 5
    assert (tmp_path / "deep-kaf" / "checkpoint" / "light-kaf_smooth" / "history.csv").exists()
    from kaflib import train

    def diverging_fit(*args, **kwargs):
        raise train.TrainingDiverged(1, 3, "conv2d", None)

    monkeypatch.setattr(train, "fit", diverging_fit)
    meta, rows = studies.deep_kaf(act="relu", **common)  # recorded, not raised
    assert meta["diverged"].startswith("Training diverged at epoch 1, step 3") and rows.empty
    assert meta["init_kaf_slopes"] == []


def test_kaf_slopes_of_a_ridge_relu_kaf_are_about_one_inside_the_dictionary():
    import keras

    from kaflib.activations import get_activation

    inputs = keras.Input((3,))
    model = keras.Model(inputs, get_activation("kaf_relu")(keras.layers.Dense(3)(inputs)))
    row = studies.kaf_slopes(model, lo=-2.5, hi=2.5).iloc[0]
    assert row["channels"] == 3 and 0.95 < row["median_slope"] < 1.2
    # past the dictionary's end (3) the Gaussian KAF falls from about 3 to 0: a cliff
    assert studies.kaf_slopes(model).iloc[0]["max_slope"] > 2.5


def test_lipschitz_of_a_grid_reads_every_finished_run(tmp_path):
    from kaflib.models import build_model
    from tests.thesis.test_results import _finished_run

    for act, robust in (("relu", 0.01), ("kaf", 0.0)):
        folder = _finished_run(tmp_path, "thesis-light", "light", act, 0.5, robust)
        build_model("light", act).save(folder / "model.keras")
    meta, rows = studies.lipschitz("thesis-light", results=tmp_path, progress=False)
    assert list(rows["act"]) == ["relu", "kaf"] and meta["data"] == {"runs": 2}
    bounds = rows.set_index("act")["network_bound"]
    # an untrained ReLU net's bound exceeds 1; KAFs at the thesis' N(0, 0.05^2) are nearly flat, so theirs is small
    assert bounds["relu"] > 1 and 0 < bounds["kaf"] < bounds["relu"] and list(rows["max_activation"])[0] == 1.0
    layers = [entry for entry in meta["layers"] if entry["act"] == "kaf"]
    assert [entry["depth"] for entry in layers] == [1, 2, 3, 4, 5]
    assert all(entry["numeric"] <= entry["analytic"] for entry in layers)
    assert (tmp_path / "lipschitz" / "thesis-light.json").is_file()
    with pytest.raises(FileNotFoundError, match="No finished run of grid 'thesis-vgg'"):
        studies.lipschitz("thesis-vgg", results=tmp_path)


def test_masking_checks_of_the_thesis_checkpoints_needs_their_folder(tmp_path):
    from kaflib.thesis.studies import THESIS_CHECKPOINTS, masking
    from tests.conftest import CHECKPOINTS

    with pytest.raises(ValueError, match="needs checkpoints="):
        masking("thesis-checkpoints", results=tmp_path)
    with pytest.raises(FileNotFoundError, match="holds none of"):
        masking("thesis-checkpoints", results=tmp_path, checkpoints=tmp_path)
    if CHECKPOINTS:  # every activation the thesis reports has its checkpoint among the published ones
        assert {f"{stem}.zip" for stem in THESIS_CHECKPOINTS.values()} <= {p.name for p in CHECKPOINTS}


def test_pgd_curves_skip_untrained_runs_and_resume_from_saved_models(tmp_path):
    from kaflib.models import build_model
    from tests.thesis.test_results import _finished_run

    for act, clean in (("relu", 0.5), ("kaf", 0.1)):
        folder = _finished_run(tmp_path, "thesis-light", "light", act, clean, 0.0)
        build_model("light", act).save(folder / "model.keras")
    kwargs = dict(test_size=16, iterations=(1, 3), results=tmp_path, data_dir=cifar10_dir(), progress=False)
    meta, rows = studies.pgd_curves("thesis-light", **kwargs)
    assert list(rows["model"]) == ["relu", "relu"] and list(rows["iterations"]) == [1, 3]
    assert meta["parameters"]["skipped"] == {"kaf": "did not train: 10.0% clean accuracy"}
    assert meta["data"]["test"] == 16 and "fingerprint" in meta["data"] and rows["accuracy"].iloc[1] <= rows["accuracy"].iloc[0]
    # an interrupted call left relu's curve behind, after an hour: it is not attacked
    # again, and the hour counts in the study's wall time
    out = tmp_path / "pgd-curves" / "thesis-light.json"
    out.unlink()
    saved = [dict(model="relu", iterations=k, accuracy=0.25) for k in (1, 3)]
    out.with_suffix(".partial.json").write_text(json.dumps(dict(key=dict(test=16, iterations=[1, 3], seed=0),
                                                                seconds=3600.0, models={"relu": saved})))
    meta, rows = studies.pgd_curves("thesis-light", **kwargs)
    assert list(rows["accuracy"]) == [0.25, 0.25] and 3600 < meta["seconds"] < 3600 + 600
    assert not out.with_suffix(".partial.json").exists()


def test_apgd_of_a_grid_cascades_ce_then_targeted_dlr(tmp_path):
    from kaflib.models import build_model
    from tests.thesis.test_results import _finished_run

    folder = _finished_run(tmp_path, "thesis-light", "light", "relu", 0.5, 0.0)
    build_model("light", "relu").save(folder / "model.keras")
    meta, rows = studies.apgd("thesis-light", test_size=16, targets=2, results=tmp_path, data_dir=cifar10_dir(),
                              progress=False)
    row = rows.iloc[0]
    assert row["model"] == "relu" and 0 <= row["apgd_dlr_t"] <= row["apgd_ce"] <= 1
    assert "2 likeliest wrong classes" in meta["parameters"]["apgd_dlr_t"] and meta["data"]["test"] == 16
    with pytest.raises(ValueError, match="checkpoint audit"):
        studies.apgd("thesis-checkpoints", results=tmp_path)


def test_partial_study_keeps_finished_models_and_their_time_under_the_same_key(tmp_path):
    import time

    out = tmp_path / "masking" / "grid.json"
    first = store.PartialStudy(out, dict(test=16), time.perf_counter() - 5)
    first.save("relu", dict(pgd=0.25))
    again = store.PartialStudy(out, dict(test=16), time.perf_counter())
    assert again.done == {"relu": {"pgd": 0.25}} and time.perf_counter() - again.started >= 5
    other = store.PartialStudy(out, dict(test=32), time.perf_counter())  # another test size: start afresh
    assert other.done == {} and time.perf_counter() - other.started < 5
    again.finish()
    assert not out.with_suffix(".partial.json").exists()


def test_activation_signal_finds_an_input_the_network_ignores():
    import keras

    from kaflib.propagation import activation_signal

    images = np.random.default_rng(0).uniform(size=(8, 8, 8, 3)).astype("float32")
    inputs = keras.Input((8, 8, 3))
    hidden = keras.layers.Activation("relu", name="seen")(keras.layers.Conv2D(4, 3)(inputs))
    constant = keras.layers.Conv2D(4, 3, padding="same", kernel_initializer="zeros",  # its bias alone: no image
                                   bias_initializer=keras.initializers.RandomUniform(0.5, 1.5))
    blind = keras.layers.Activation("relu", name="blind")(constant(hidden))
    norm = keras.layers.BatchNormalization()
    logits = keras.layers.Dense(3)(keras.layers.Flatten()(norm(hidden)) + 0 * keras.layers.Flatten()(blind))
    model = keras.Model(inputs, logits)
    before = [keras.ops.convert_to_numpy(v) for v in model.non_trainable_variables]
    table = activation_signal(model, images).set_index(["mode", "layer"])
    assert table.loc[("inference", "seen"), "image_share"] > 0.1
    assert table.loc[("inference", "blind"), "image_share"] == 0  # the same output for every image
    assert table.loc[("training", "logits"), "image_share"] > 0.1
    assert list(table.loc["training"]["depth"]) == [1, 2, 3]
    # the training-mode call leaves batch normalization's moving statistics as they were
    for old, new in zip(before, model.non_trainable_variables):
        np.testing.assert_array_equal(old, keras.ops.convert_to_numpy(new))
    with pytest.raises(ValueError, match="N >= 2"):
        activation_signal(model, images[:1])


def test_init_signal_study_writes_and_reads(tmp_path):
    from kaflib.thesis.studies import init_signal
    from tests.conftest import cifar10_dir

    meta, rows = init_signal("light", "kaf", batch_size=16, data_dir=cifar10_dir(), out_dir=tmp_path)
    assert (tmp_path / "init-signal" / "light-kaf-std0.05.json").is_file()
    assert meta["parameters"]["kaf_random_stddev"] == 0.05 and meta["data"]["images"] == 16
    assert set(rows["mode"]) == {"training", "inference"} and (rows["scale"] > 0).all()
