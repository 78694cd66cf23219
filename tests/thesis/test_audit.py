import json

import numpy as np
import pytest

from kaflib import evaluate
from kaflib.files import read_json
from kaflib.thesis import audit
from kaflib.models import build_model


@pytest.fixture(scope="module")
def tiny():
    import keras

    keras.utils.set_random_seed(0)
    model = build_model("light", "relu")
    x = np.random.default_rng(0).random((12, 32, 32, 3), dtype=np.float32)
    logits = model.predict(x, verbose=0)
    y = np.argmax(logits, -1)
    y[:4] = (y[:4] + 1) % 10  # four images the model gets wrong
    return model, x, y


def test_apgd_only_breaks_correct_images_and_a_tiny_eps_breaks_none(tiny):
    model, x, y = tiny
    correct = np.arange(12) >= 4
    for loss in ("cross_entropy", "dlr_targeted"):
        unchanged = evaluate.apgd_robust(model, x, y, loss, targets=2, eps=1e-6, steps=3)
        np.testing.assert_array_equal(unchanged, correct)
        attacked = evaluate.apgd_robust(model, x, y, loss, targets=2, eps=16 / 255, steps=5)
        assert not attacked[:4].any() and (attacked <= correct).all()
    with pytest.raises(ValueError, match="loss='dlr'"):
        evaluate.apgd_robust(model, x, y, "dlr")
    with pytest.raises(ValueError, match="targets=10"):
        evaluate.apgd_robust(model, x, y, "dlr_targeted", targets=10)
    with pytest.raises(ValueError, match="eps=0"):
        evaluate.apgd_robust(model, x, y, eps=0)


def _constant_model(label):
    """A logits model that predicts `label` whatever the image: no attack can change its answer."""
    import keras

    inputs = keras.Input((32, 32, 3))
    dense = keras.layers.Dense(10, kernel_initializer="zeros",
                               bias_initializer=keras.initializers.Constant(np.eye(10)[label] * 5))
    return keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(inputs)))


def test_the_judge_decides_what_is_robust(tiny):
    from kaflib.evaluate import pgd_robust

    model, x, y = tiny
    judge = _constant_model(int(y[5]))
    expected = y == y[5]
    np.testing.assert_array_equal(pgd_robust(model, x, y, eps=16 / 255, steps=3, progress=False, judge=judge),
                                  expected)
    np.testing.assert_array_equal(evaluate.apgd_robust(model, x, y, eps=16 / 255, steps=3, judge=judge), expected)
    assert audit.pgd_protocol_accuracy(model, x, y, eps=16 / 255, steps=3, judge=judge) == pytest.approx(expected.mean())
    # without a judge the attacked model decides: eps 16/255 breaks images the judge would keep
    assert not evaluate.apgd_robust(model, x, y, eps=16 / 255, steps=5)[expected].all()


def test_protocol_names_must_be_audited_checkpoints(tmp_path):
    with pytest.raises(ValueError, match="protocol=\\['nope.zip'\\]"):
        audit.audit_checkpoints([tmp_path / "a.zip"], tmp_path / "out.json", test_size=20, protocol=["nope.zip"])


def test_protocol_without_labels_attacks_the_predictions(tiny):
    model, x, y = tiny
    # eps = 0: every variant returns the clean accuracy.
    for use_labels in (True, False):
        for output in ("logits", "probabilities"):
            assert audit.pgd_protocol_accuracy(model, x, y, use_labels, output, eps=0.0, steps=2) == pytest.approx(8 / 12)
    with pytest.raises(ValueError, match="output='softmax'"):
        audit.pgd_protocol_accuracy(model, x, y, output="softmax")


def test_protocol_starts_with_the_thesis_and_ends_with_every_choice_changed():
    from kaflib.thesis import results

    assert audit.PROTOCOL[0] == (results.PROTOCOL_THESIS, True, False, "probabilities")
    assert audit.PROTOCOL[-1] == (results.PROTOCOL_FIXED, False, True, "logits")
    # each middle row changes exactly one of the thesis' three choices
    for _, *choices in audit.PROTOCOL[1:-1]:
        assert sum(a != b for a, b in zip(choices, audit.PROTOCOL[0][1:])) == 1


def test_redo_audits_named_checkpoints_again_and_keeps_the_others(tmp_path, monkeypatch):
    runs = []

    def fake_audit(path, *args, **kwargs):
        runs.append(path.name)
        return dict(checkpoint=path.name, run=len(runs))

    monkeypatch.setattr(audit, "audit_checkpoint", fake_audit)
    paths, out = [tmp_path / f"{name}.zip" for name in "abc"], tmp_path / "out.json"
    audit.audit_checkpoints(paths, out, test_size=20, progress=False)
    audit.audit_checkpoints(paths, out, test_size=20, progress=False)  # finished: nothing runs again
    done = audit.audit_checkpoints(paths, out, test_size=20, redo=["a.zip", "b.zip"], progress=False)
    assert runs == ["a.zip", "b.zip", "c.zip", "a.zip", "b.zip"]
    assert [done["checkpoints"][f"{name}.zip"]["run"] for name in "abc"] == [4, 5, 3]
    assert list(read_json(out)["checkpoints"]) == ["a.zip", "b.zip", "c.zip"]  # redone ones keep their place
    assert "kaflib_commit" in done["checkpoints"]["b.zip"] and done["checkpoints"]["b.zip"]["audited"]


def test_redo_names_must_be_audited_checkpoints(tmp_path, capsys):
    assert audit.main([str(tmp_path / "a.zip"), "--redo", "nope.zip"]) == 2  # a.zip is missing too
    (tmp_path / "a.zip").touch()
    assert audit.main([str(tmp_path / "a.zip"), "--out", str(tmp_path / "o.json"), "--redo", "nope.zip"]) == 2
    assert "redo=['nope.zip']" in capsys.readouterr().err


def test_other_parameters_never_overwrite_finished_audits(tmp_path, monkeypatch):
    monkeypatch.setattr(audit, "audit_checkpoint", lambda path, *a, **k: dict(checkpoint=path.name))
    out = tmp_path / "out.json"
    audit.audit_checkpoints([tmp_path / "a.zip"], out, test_size=20, targets=3, progress=False)
    before = out.read_text()
    with pytest.raises(ValueError, match=r"other parameters \(differing: apgd; .*targets': 3"):
        audit.audit_checkpoints([tmp_path / "a.zip"], out, test_size=20, targets=9, progress=False)
    assert out.read_text() == before


def test_a_file_without_parameters_is_refused_not_overwritten(tmp_path, monkeypatch):
    monkeypatch.setattr(audit, "audit_checkpoint", lambda path, *a, **k: dict(checkpoint=path.name))
    out = tmp_path / "out.json"
    out.write_text(json.dumps(dict(checkpoints={"a": dict(checkpoint="a.zip")})))
    before = out.read_text()
    with pytest.raises(ValueError, match=r"other parameters \(differing: .*test_size"):
        audit.audit_checkpoints([tmp_path / "b.zip"], out, test_size=20, targets=3, progress=False)
    assert out.read_text() == before
