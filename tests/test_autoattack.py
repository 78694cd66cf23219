"""AutoAttack's cascade (`kaflib.autoattack`), model files (`kaflib.model_files`) and the
`python -m kaflib.evaluate` command."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.conftest import CHECKPOINTS, ROOT, TINY_DATA_DIR
from kaflib import autoattack
from kaflib.autoattack import AttackSettings, run_attack, run_cascade, summarise
from kaflib.evaluate import art_classifier, wilson_interval
from kaflib.model_files import float32_twin, load_for_evaluation, model_loaders

CLASSES = 4


def tiny_model(seed, shape=(8, 8, 3)):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    x = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(x))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, CLASSES, 96)
    centres = rng.uniform(0.3, 0.7, (CLASSES, 8, 8, 3))
    images = np.clip(centres[labels] + rng.normal(0, 0.05, (96, 8, 8, 3)), 0, 1).astype("float32")
    return images, labels


@pytest.fixture(scope="module")
def model(data):
    images, labels = data
    m = tiny_model(0)
    m.compile(optimizer=keras.optimizers.Adam(0.01),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    m.fit(images, labels, epochs=40, verbose=0)
    assert np.mean(np.argmax(m.predict(images, verbose=0), -1) == labels) > 0.9
    return m


SETTINGS = AttackSettings(eps=0.08, apgd_steps=10, targets=3, fab_steps=20, fab_targets=3, square_queries=200,
                          pgd_steps=10, pgd_step=0.015)


def test_cascade_is_no_higher_than_any_attack_alone(model, data):
    images, labels = data
    attacks = autoattack.STANDARD
    cascade = summarise(run_cascade(model, images, labels, attacks, SETTINGS, batch_size=32, progress=False),
                        attacks)
    clean = np.argmax(model.predict(images, verbose=0), -1) == labels
    alone = {name: run_attack(name, model, images, labels, clean, SETTINGS, batch_size=32).mean()
             for name in attacks}
    worst = cascade["worst"]["accuracy"]
    assert 0 < worst < cascade["clean"]["accuracy"]  # the attacks find something, and not everything
    assert all(worst <= accuracy for accuracy in alone.values()), (worst, alone)
    # the accuracy after each attack of the cascade never rises
    after = [row["accuracy"] for row in cascade["attacks"].values()]
    assert after == sorted(after, reverse=True)


def test_apgd_ce_agrees_with_arts_own_apgd(model, data):
    from art.attacks.evasion import AutoProjectedGradientDescent

    images, labels = data
    clean = np.argmax(model.predict(images, verbose=0), -1) == labels
    ours = run_attack("apgd-ce", model, images, labels, clean, SETTINGS, batch_size=32)
    np.random.seed(1)
    classifier = art_classifier(model)
    art = AutoProjectedGradientDescent(classifier, norm=np.inf, eps=SETTINGS.eps, eps_step=2 * SETTINGS.eps,
                                       max_iter=SETTINGS.apgd_steps, nb_random_init=1, batch_size=32,
                                       loss_type="cross_entropy", verbose=False)
    adversarial = art.generate(images, y=np.eye(CLASSES)[labels])
    theirs = np.argmax(classifier.predict(adversarial), -1) == labels
    low, high = wilson_interval(int(theirs.sum()), len(labels))
    assert low <= ours.mean() <= high, (ours.mean(), theirs.mean())


@pytest.mark.parametrize("attacks, saves, done_batches, calls_after", [
    # batch by batch: the clean pass, the first batch through both attacks, the second through apgd-ce
    (("apgd-ce", "square"), 4, ["0"], ["square", "apgd-ce", "square"]),
    # the clean pass, two batches through apgd-ce and fab-t, the third through apgd-ce: only its fab-t is left
    (("apgd-ce", "fab-t"), 6, ["0", "32"], ["fab-t"]),
], ids=["between-attacks", "in-fab-t"])
def test_an_interrupted_cascade_resumes_without_redoing_finished_batches(model, data, monkeypatch, attacks, saves,
                                                                         done_batches, calls_after):
    images, labels = data
    full = run_cascade(model, images, labels, attacks, SETTINGS, batch_size=32, progress=False)
    saved = []

    def save_then_die(state):
        saved.append(json.loads(json.dumps(state)))
        if len(saved) == saves:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_cascade(model, images, labels, attacks, SETTINGS, batch_size=32, save=save_then_die, progress=False)
    if done_batches is not None:
        assert sorted(saved[-1]["attacks"][attacks[-1]]["robust"], key=int) == done_batches
    calls = []
    original = autoattack.run_attack
    monkeypatch.setattr(autoattack, "run_attack", lambda name, *a, **k: calls.append(name) or original(name, *a, **k))
    resumed = run_cascade(model, images, labels, attacks, SETTINGS, batch_size=32, state=saved[-1],
                          progress=False)
    assert calls == calls_after
    for name in attacks:
        np.testing.assert_array_equal(resumed.after(name, len(labels)), full.after(name, len(labels)))


def test_bad_settings_name_the_parameter():
    for kwargs, name in [(dict(eps=0.0), "eps"), (dict(eps=2.0), "eps"), (dict(targets=10), "targets"),
                         (dict(square_queries=0), "square_queries"), (dict(apgd_steps=2.5), "apgd_steps")]:
        with pytest.raises(ValueError, match=f"^{name}="):
            AttackSettings(**kwargs)
    with pytest.raises(ValueError, match="^fab_targets="):
        AttackSettings(fab_targets=0)
    with pytest.raises(ValueError, match="^fab_steps="):
        AttackSettings(fab_steps=-1)
    with pytest.raises(ValueError, match="attack='fab'"):
        run_attack("fab", None, None, None, None)


def test_float32_twin_computes_in_float32_with_the_same_weights(data):
    images, _ = data
    with _policy("mixed_float16"):
        mixed = tiny_model(3)
    twin = float32_twin(mixed)
    assert twin is not mixed and all(layer.compute_dtype == "float32" for layer in twin.layers)
    assert float32_twin(twin) is twin
    np.testing.assert_allclose(twin.predict(images, verbose=0), mixed.predict(images, verbose=0), atol=0.02)


class _policy:
    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.name)

    def __exit__(self, *exc):
        keras.config.set_dtype_policy(self.previous)


def test_model_files_name_the_formats_they_read(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_for_evaluation(tmp_path / "nothing.keras")
    (tmp_path / "weights.txt").write_text("x")
    with pytest.raises(ValueError, match=r"must be a \.keras file, a run folder"):
        load_for_evaluation(tmp_path / "weights.txt")
    assert ".zip" in model_loaders()  # the reproduction's plug-in for the thesis' checkpoints


def _evaluate(*args, cwd):
    return subprocess.run([sys.executable, "-m", "kaflib.evaluate", *args, "--data-dir", str(TINY_DATA_DIR)],
                          cwd=cwd, capture_output=True, text=True, env=_env())


def _env():
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.mark.slow  # the command in a subprocess, a whole cascade
def test_the_command_writes_a_robustbench_record(tmp_path, monkeypatch):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x)), name="tiny")
    model.save(tmp_path / "tiny.keras")
    done = _evaluate(str(tmp_path / "tiny.keras"), "--n", "40", "--square-queries", "20", "--targets", "2",
                     "--fab-targets", "2", "--fab-steps", "10", "--batch-size", "16", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((tmp_path / "autoattack" / "tiny-n40.json").read_text())
    for field in ("name", "architecture", "eps", "clean_acc", "robust_acc", "n_images", "attacks", "seed"):
        assert field in record
    assert record["eps"] == "8/255" and record["n_images"] == 40 and record["attacks"] == list(autoattack.STANDARD)
    assert float(record["robust_acc"]) <= float(record["clean_acc"])
    # fewer targets, FAB steps and Square queries than AutoAttack's: not the standard version, and it says how
    assert record["version"] == "custom" and "autoattack_acc" not in record and record["left_out"] == {}
    assert record["departures"] == ["targets=2 (standard: 9)", "fab_steps=10 (standard: 100)",
                                    "fab_targets=2 (standard: 9)", "square_queries=20 (standard: 5000)"]
    assert list(record["kaflib"]["summary"]["attacks"]) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert "tensorflow" in record["kaflib"]["environment"]
    assert not list((tmp_path / "autoattack").glob("*.partial.json"))
    assert "images/s" in done.stdout and "worst case" in done.stdout and "version: custom" in done.stdout
    assert "departs from the standard version: square_queries=20 (standard: 5000)" in done.stdout

    # a finished record is not redone: the same call returns it without attacking
    monkeypatch.setattr(autoattack, "run_cascade", lambda *a, **k: pytest.fail("attacked again"))
    again = autoattack.evaluate_file(tmp_path / "tiny.keras", n=40,
                                     settings=AttackSettings(square_queries=20, targets=2, fab_targets=2, fab_steps=10),
                                     out=tmp_path / "autoattack" / "tiny-n40.json", data_dir=TINY_DATA_DIR,
                                     batch_size=16, progress=False)
    assert again["robust_acc"] == record["robust_acc"] and again["kaflib"] == record["kaflib"]

    # the book's table reads the record as written
    from kaflib.thesis import results

    (tmp_path / "results" / "autoattack").mkdir(parents=True)
    (tmp_path / "autoattack" / "tiny-n40.json").rename(tmp_path / "results" / "autoattack" / "tiny.json")
    table = results.autoattack_table(tmp_path / "results")
    assert table.loc["tiny", "clean"] == pytest.approx(float(record["clean_acc"]), abs=0.01)
    assert table.loc["tiny", "autoattack"] == pytest.approx(float(record["robust_acc"]), abs=0.01)
    assert table.attrs["attacks"] == list(autoattack.STANDARD)
    times = results.compute_time(tmp_path / "results").set_index("file")
    assert times.loc["autoattack/tiny.json", "minutes"] == pytest.approx(record["kaflib"]["seconds"]["total"] / 60)
    findings = results.autoattack_findings(table, results.leaderboard_entries()).data
    assert f"{table.loc['tiny', 'autoattack']:.1f}%" in findings and "Wong2020Fast" in findings
    assert "Not evaluated yet (8 of the 8 checkpoints" in findings and "KAF (`resnet20_kaf_ocrob_lrfinder`)" in findings



def _tiny_file(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x)), name="tiny")
    model.save(tmp_path / "tiny.keras")
    return tmp_path / "tiny.keras"


def test_a_standard_run_writes_version_standard_and_autoattack_acc(tmp_path, monkeypatch, capsys):
    # the attacks stubbed (every other image fooled): the record's fields, not the attacks, are under test
    def stub(name, model, images, labels, robust, *args, **kwargs):
        return robust & (np.arange(len(robust)) % 2 == 0)

    monkeypatch.setattr(autoattack, "run_attack", stub)
    record = autoattack.evaluate_file(_tiny_file(tmp_path), n=20, out=tmp_path / "r.json", data_dir=TINY_DATA_DIR,
                                      batch_size=8, progress=False)
    assert record["version"] == "standard" and "departures" not in record and "robust_acc" not in record
    assert record["attacks"] == ["apgd-ce", "apgd-t", "fab-t", "square"] and record["left_out"] == {}
    assert float(record["autoattack_acc"]) <= float(record["clean_acc"])
    text = autoattack.format_summary(record)
    assert "version: standard" in text and "AutoAttack" in text and "+ fab-t" in text


@pytest.mark.slow
def test_the_command_runs_the_standard_version_end_to_end(tmp_path):
    done = _evaluate(str(_tiny_file(tmp_path)), "--n", "40", "--batch-size", "16", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((tmp_path / "autoattack" / "tiny-n40.json").read_text())
    assert record["version"] == "standard" and "autoattack_acc" in record
    assert list(record["kaflib"]["summary"]["attacks"]) == list(autoattack.STANDARD)


@pytest.mark.parametrize("args, message", [
    (["missing.keras"], "missing.keras' does not exist"),
    (["tiny.keras", "--eps", "2"], "eps=2.0 is invalid"),
    (["tiny.keras", "--eps", "8/0"], "eps='8/0' is invalid"),
    (["mnist.keras", "--n", "40"], "takes inputs (28, 28, 1)"),
    (["tiny.keras", "--n", "0"], "n=0 is invalid"),
    (["tiny.keras", "--n", "101"], "n=101 is invalid: an integer in [1, 100]"),
    (["tiny.keras", "--attack", "fgsm"], "attack='fgsm' is invalid"),
    (["tiny.keras", "--targets", "12"], "targets=12 is invalid"),
    (["tiny.keras", "--fab-targets", "0"], "fab_targets=0 is invalid: must be an integer in [1, 9]"),
    (["tiny.keras", "--fab-steps", "0"], "fab_steps=0 is invalid: must be an integer >= 1"),
    (["tiny.keras", "--n", "40", "--reuse", "missing.json"], "reuse='missing.json' does not exist"),
    (["weights.txt"], "is not a model file kaflib can read")])
def test_bad_command_arguments_get_one_line_naming_them(args, message, tmp_path, capsys):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(inputs))).save(
        tmp_path / "tiny.keras")
    inputs = keras.Input((28, 28, 1))
    keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs))).save(tmp_path / "mnist.keras")
    (tmp_path / "weights.txt").write_text("x")
    args = [str(tmp_path / a) if a.endswith((".keras", ".txt")) else a for a in args]
    assert autoattack.main([*args, "--data-dir", str(TINY_DATA_DIR), "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ") and err.count("\n") == 1, err


@pytest.mark.skipif(not CHECKPOINTS, reason="the thesis' checkpoints are in ../shared/thesis/checkpoints")
def test_a_thesis_checkpoint_is_attacked_through_its_float32_twin_and_scored_as_published():
    models = load_for_evaluation(next(p for p in CHECKPOINTS if p.name == "resnet20_relu_ocrob_lrf.zip"))
    assert models.judge.layers[1].compute_dtype == "float16" and models.attacked.layers[1].compute_dtype == "float32"
    assert models.name == "resnet20_relu_ocrob_lrf" and "relu" in models.architecture


def test_records_say_which_images_each_attack_fooled_and_the_cross_check_compares_them(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(inputs)
    keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x))).save(tmp_path / "tiny.keras")
    record = autoattack.evaluate_file(tmp_path / "tiny.keras", ["apgd-ce", "square"], n=24,
                                      settings=AttackSettings(square_queries=10, apgd_steps=5),
                                      out=tmp_path / "tiny-kaflib.json", data_dir=TINY_DATA_DIR, batch_size=8,
                                      progress=False)
    marks, summary = record["kaflib"]["per_image"], record["kaflib"]["summary"]
    assert set(marks) == {"clean", "apgd-ce", "square"} and all(len(m) == 24 for m in marks.values())
    assert marks["clean"].count("1") == summary["clean"]["robust"]
    assert marks["square"].count("1") == summary["worst"]["robust"]
    # the cascade only removes images: robust after square implies robust after apgd-ce and clean
    assert all(a >= b >= c for a, b, c in zip(marks["clean"], marks["apgd-ce"], marks["square"]))

    from kaflib.thesis.crosscheck import cross_check_findings, cross_check_table

    theirs = "".join("1" if i in (0, 1) else "0" for i in range(24))  # robust: the first two images only
    (tmp_path / "tiny-torchattacks.json").write_text(json.dumps(dict(
        robust=dict(accuracy=2 / 24, ci95=list(wilson_interval(2, 24))), per_image=dict(robust=theirs))))
    row = cross_check_table(tmp_path).loc["tiny"]
    ours = marks["square"]
    assert row["both_robust"] == (ours[0] == "1") + (ours[1] == "1")
    assert row["only_kaflib_robust"] == ours[2:].count("1")
    assert row["only_torchattacks_robust"] == (ours[0] == "0") + (ours[1] == "0")
    low, high = wilson_interval(2, 24)  # not all of AutoAttack's list ran, so the record has robust_acc
    assert row["agree_within_intervals"] == (low <= float(record["robust_acc"]) / 100 <= high)
    text = cross_check_findings(cross_check_table(tmp_path)).data
    assert f"kaflib {row['kaflib']:.1f}%, torchattacks 8.3%" in text
    assert f"torchattacks broke {int(row['only_kaflib_robust'])} that kaflib's cascade left robust" in text
    assert ("leaving FAB-T out did not raise" in text) == (row["only_kaflib_robust"] == 0)


def _autoattack_targeted_dlr(logits, labels, targets):
    """AutoAttack's `dlr_loss_targeted`, transcribed in float64 NumPy."""
    ranked = np.sort(logits, axis=1)
    rows = np.arange(len(labels))
    return -(logits[rows, labels] - logits[rows, targets]) / (ranked[:, -1] - 0.5 * (ranked[:, -3] + ranked[:, -4])
                                                             + 1e-12)


def test_targeted_dlr_is_autoattacks_formula():
    from kaflib.evaluate import TargetedDifferenceLogitsRatio, label_and_target

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (200, 10))
    labels = rng.integers(0, 10, 200)
    targets = (labels + rng.integers(1, 10, 200)) % 10
    y_true = label_and_target(labels, targets, 10)
    assert np.all(np.argmax(y_true, 1) == labels)  # ART's untargeted APGD reads the label from the argmax
    ours = TargetedDifferenceLogitsRatio(reduction="none")(y_true, logits.astype("float32")).numpy()
    np.testing.assert_allclose(ours, _autoattack_targeted_dlr(logits, labels, targets), rtol=1e-5, atol=1e-6)
    assert float(TargetedDifferenceLogitsRatio()(y_true, logits.astype("float32"))) == pytest.approx(ours.mean(),
                                                                                                    rel=1e-5)
    with pytest.raises(ValueError, match="targets must differ from the labels"):
        label_and_target(labels, labels, 10)


def test_both_targeted_apgd_variants_run_and_only_break_correct_images(model, data):
    images, labels = data
    clean = np.argmax(model.predict(images, verbose=0), -1) == labels
    for name in ("apgd-t", "apgd-t-art"):
        robust = run_attack(name, model, images, labels, clean, SETTINGS, batch_size=32)
        assert not robust[~clean].any() and robust.sum() < clean.sum(), name


def test_the_standard_cascade_runs_fab_t_between_apgd_t_and_square(model, data, monkeypatch):
    images, labels = data
    seen = []
    original = autoattack.run_attack

    def spy(name, model, images, labels, robust, *args, **kwargs):
        after = original(name, model, images, labels, robust, *args, **kwargs)
        seen.append((name, np.array(robust), after))
        return after

    monkeypatch.setattr(autoattack, "run_attack", spy)
    # a smaller radius than SETTINGS' so that images survive APGD for FAB-T and Square to attack
    settings = AttackSettings(eps=0.03, apgd_steps=5, targets=2, fab_steps=30, fab_targets=3, square_queries=50)
    done = run_cascade(model, images, labels, autoattack.STANDARD, settings, batch_size=96, progress=False)
    assert [name for name, *_ in seen] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    for (_, _, before), (_, given, _) in zip(seen, seen[1:]):
        np.testing.assert_array_equal(given, before)  # each attack sees the images the previous one left
    assert seen[2][1].any(), "no image survived APGD-T: FAB-T was not exercised"
    summary = summarise(done, autoattack.STANDARD)
    assert list(summary["attacks"]) == list(autoattack.STANDARD)
    assert summary["attacks"]["fab-t"]["images_attacked"] == seen[2][1].sum()
    assert summary["attacks"]["fab-t"]["images_per_second"] > 0


def test_a_run_that_departs_from_the_standard_version_names_its_departures():
    from kaflib.autoattack import departures

    assert departures(autoattack.STANDARD, AttackSettings()) == []
    assert departures(autoattack.STANDARD, AttackSettings(eps=4 / 255)) == []  # the threat model, not the attack
    found = departures(("apgd-ce", "apgd-t-art", "square"), AttackSettings(fab_steps=10, square_queries=20,
                                                                          targets=2))
    assert found == ["attacks: apgd-ce, apgd-t-art, square (standard: apgd-ce, apgd-t, fab-t, square)",
                     "targets=2 (standard: 9)", "square_queries=20 (standard: 5000)"]  # fab_steps: FAB-T did not run
    assert departures(autoattack.STANDARD, AttackSettings(fab_steps=10)) == ["fab_steps=10 (standard: 100)"]


def _batches_left(marks, batch_size):
    """How many batches of a per-image string still hold a robust image (the cascade attacks only those)."""
    return sum("1" in marks[start:start + batch_size] for start in range(0, len(marks), batch_size))


def test_a_run_reuses_the_attacks_a_finished_record_shares_with_it(tmp_path, monkeypatch):
    model = _tiny_file(tmp_path)
    settings = AttackSettings(apgd_steps=5, targets=1, square_queries=10)
    common = dict(n=24, settings=settings, data_dir=TINY_DATA_DIR, batch_size=8, progress=False)
    first = autoattack.evaluate_file(model, ["apgd-ce", "apgd-t-art"], out=tmp_path / "first.json", **common)
    original, calls = autoattack.run_attack, []

    def not_again(reused):
        def attack(name, *args, **kwargs):
            assert name not in reused, f"{name} ran again"
            calls.append(name)
            return original(name, *args, **kwargs)
        return attack

    # the record's two attacks begin the new cascade with the same settings: both reused, square runs
    monkeypatch.setattr(autoattack, "run_attack", not_again({"apgd-ce", "apgd-t-art"}))
    second = autoattack.evaluate_file(model, ["apgd-ce", "apgd-t-art", "square"], out=tmp_path / "second.json",
                                      reuse=tmp_path / "first.json", **common)
    old, new = first["kaflib"], second["kaflib"]
    assert calls == ["square"] * _batches_left(old["per_image"]["apgd-t-art"], 8) and calls
    for name in ("clean", "apgd-ce", "apgd-t-art"):
        assert new["per_image"][name] == old["per_image"][name], name
    assert new["reused"] == {"from": str(tmp_path / "first.json"), "attacks": ["apgd-ce", "apgd-t-art"],
                             "seconds": sum(old["summary"]["attacks"][a]["seconds"] for a in ("apgd-ce", "apgd-t-art"))}
    for name in ("apgd-ce", "apgd-t-art"):  # the reused attacks keep their seconds, and the total includes them
        assert new["summary"]["attacks"][name] == old["summary"]["attacks"][name]
    assert new["seconds"]["reused"] == new["reused"]["seconds"] < new["seconds"]["total"]
    assert not list(tmp_path.glob("*.partial.json"))

    # a record without a version field ran ART's targeted DLR as "apgd-t": only apgd-ce is reused for AutoAttack's
    legacy = json.loads((tmp_path / "first.json").read_text())
    del legacy["version"]
    k = legacy["kaflib"]
    k["parameters"]["attacks"] = legacy["attacks"] = ["apgd-ce", "apgd-t"]
    k["per_image"]["apgd-t"] = k["per_image"].pop("apgd-t-art")
    k["summary"]["attacks"]["apgd-t"] = k["summary"]["attacks"].pop("apgd-t-art")
    (tmp_path / "legacy.json").write_text(json.dumps(legacy))
    calls.clear()
    monkeypatch.setattr(autoattack, "run_attack", not_again({"apgd-ce"}))
    third = autoattack.evaluate_file(model, ["apgd-ce", "apgd-t"], out=tmp_path / "third.json",
                                     reuse=tmp_path / "legacy.json", **common)
    assert third["kaflib"]["reused"]["attacks"] == ["apgd-ce"]
    assert calls == ["apgd-t"] * _batches_left(old["per_image"]["apgd-ce"], 8) and calls
    assert third["kaflib"]["per_image"]["apgd-ce"] == old["per_image"]["apgd-ce"]


def test_reuse_refuses_a_record_that_does_not_match(tmp_path, monkeypatch):
    def stub(name, model, images, labels, robust, *args, **kwargs):
        return robust & (np.arange(len(robust)) % 2 == 0)

    monkeypatch.setattr(autoattack, "run_attack", stub)
    model = _tiny_file(tmp_path)
    settings = AttackSettings(apgd_steps=5, targets=1, square_queries=10)
    common = dict(data_dir=TINY_DATA_DIR, progress=False, reuse=tmp_path / "first.json")
    autoattack.evaluate_file(model, ["apgd-ce", "square"], n=24, settings=settings, out=tmp_path / "first.json",
                             data_dir=TINY_DATA_DIR, batch_size=8, progress=False)
    (tmp_path / "other.keras").write_bytes(model.read_bytes())
    for change, message in [
            (dict(batch_size=16), r"^batch_size=16 does not match the record to reuse \(.*batch_size=8\)"),
            (dict(n=16), r"^n=16 does not match"),
            (dict(model=tmp_path / "other.keras"), r"^model='other.keras' does not match"),
            (dict(seed=1), r"^seed=1 does not match"),
            (dict(settings=AttackSettings(apgd_steps=6, targets=1, square_queries=10)),
             r"^apgd_steps=6 for 'apgd-ce' where the record to reuse has apgd_steps=5 .*no attack can be reused"),
            (dict(settings=AttackSettings(eps=4 / 255, apgd_steps=5, targets=1, square_queries=10)), r"^eps="),
            (dict(attacks=["square"]), r"^attacks=\['square'\]: 'square' where the record to reuse ran 'apgd-ce'")]:
        arguments = dict(model=model, attacks=["apgd-ce", "square"], n=24, settings=settings, batch_size=8,
                         out=tmp_path / "second.json", **common)
        with pytest.raises(ValueError, match=message):
            autoattack.evaluate_file(**{**arguments, **change})
    # the record's clean outcomes are checked against the model's predictions
    tampered = json.loads((tmp_path / "first.json").read_text())
    clean = tampered["kaflib"]["per_image"]["clean"]
    tampered["kaflib"]["per_image"]["clean"] = ("0" if clean[0] == "1" else "1") + clean[1:]
    (tmp_path / "first.json").write_text(json.dumps(tampered))
    with pytest.raises(ValueError, match=r"^reuse=.* clean outcomes differ on 1 of 24 images"):
        autoattack.evaluate_file(model, ["apgd-ce", "square"], n=24, settings=settings, batch_size=8,
                                 out=tmp_path / "second.json", **common)
    with pytest.raises(FileNotFoundError, match="reuse=.*missing.json' does not exist"):
        autoattack.evaluate_file(model, n=24, batch_size=8, out=tmp_path / "second.json",
                                 **{**common, "reuse": tmp_path / "missing.json"})
    assert not (tmp_path / "second.partial.json").exists()


def test_a_later_attack_keeps_the_records_outcome_on_the_images_it_attacked(tmp_path, monkeypatch):
    model = _tiny_file(tmp_path)
    settings = AttackSettings(apgd_steps=5, targets=1, fab_steps=5, fab_targets=1, square_queries=10)
    common = dict(n=24, settings=settings, data_dir=TINY_DATA_DIR, batch_size=8, progress=False)
    first = autoattack.evaluate_file(model, ["apgd-ce", "apgd-t-art", "square"], out=tmp_path / "first.json",
                                     **common)["kaflib"]
    original, seen = autoattack.run_attack, {}

    def spy(name, model_, images, labels, robust, *args, **kwargs):
        seen.setdefault(name, []).append(np.array(robust, bool))
        return original(name, model_, images, labels, robust, *args, **kwargs)

    monkeypatch.setattr(autoattack, "run_attack", spy)
    new = autoattack.evaluate_file(model, autoattack.STANDARD, out=tmp_path / "second.json",
                                   reuse=tmp_path / "first.json", **common)["kaflib"]

    def mask(marks):
        return np.array([c == "1" for c in marks], bool)

    before, attacked_then = mask(new["per_image"]["fab-t"]), mask(first["per_image"]["apgd-t-art"])
    reused = before & attacked_then
    assert reused.any()  # the test reaches what it checks
    ran = np.concatenate(seen["square"]) if "square" in seen else np.zeros(0, bool)
    # square runs only on the images its earlier run did not reach, and keeps its outcome on the others
    assert int(ran.sum()) == int((before & ~attacked_then).sum())
    after, then = mask(new["per_image"]["square"]), mask(first["per_image"]["square"])
    assert np.array_equal(after[reused], then[reused])
    assert not after[~before].any()
    row = new["summary"]["attacks"]["square"]
    assert row.get("images_reused", 0) == int(reused.sum()) == new["reused"].get("outcomes", {}).get("square", 0)
    assert row["images_attacked"] == int((before & ~attacked_then).sum())
    assert "apgd-t" in seen and "fab-t" in seen  # other attacks and settings than the record's: they run


def test_reused_outcomes_are_only_of_attacks_with_the_same_settings():
    record = dict(version="standard", kaflib=dict(
        parameters=dict(attacks=["apgd-ce", "apgd-t", "square"]), settings=dict(eps=8 / 255, square_queries=5000,
                                                                               apgd_steps=100, targets=9),
        per_image={"clean": "1110", "apgd-ce": "1100", "apgd-t": "1000", "square": "0000"},
        summary=dict(attacks={"apgd-t": dict(seconds=6.0, images_attacked=2),
                              "square": dict(seconds=2.0, images_attacked=1)})))
    found = autoattack.reused_outcomes(record, list(autoattack.STANDARD), AttackSettings(), ["apgd-ce"], "r.json")
    assert found == {"apgd-t": {"attacked": "1100", "robust": "1000", "from": "r.json", "seconds_per_image": 3.0},
                     "square": {"attacked": "1000", "robust": "0000", "from": "r.json", "seconds_per_image": 2.0}}
    assert list(autoattack.reused_outcomes(record, list(autoattack.STANDARD), AttackSettings(square_queries=10),
                                           ["apgd-ce"])) == ["apgd-t"]
    # a record without a version ran ART's targeted DLR as "apgd-t": not AutoAttack's
    legacy = {k: v for k, v in record.items() if k != "version"}
    assert list(autoattack.reused_outcomes(legacy, list(autoattack.STANDARD), AttackSettings(), ["apgd-ce"])) == [
        "square"]
