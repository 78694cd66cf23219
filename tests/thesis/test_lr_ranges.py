"""The `quick` preset's ResNet20 learning-rate ranges are what kaflib's LR range tests say."""

import pytest

from kaflib.thesis import experiment
from kaflib.thesis.store import read_study
from kaflib.thesis.studies import lr_range_name
from kaflib.train import suggest_lr_range


def _test_name(act):
    return lr_range_name("resnet20", act, "thesis", "thesis", 0.0)


@pytest.mark.parametrize("act", sorted(experiment.QUICK_RESNET20_LEARNING_RATES))
def test_each_quick_range_is_read_from_its_committed_lr_range_test(act):
    study = read_study("lr-range", _test_name(act))
    assert study is not None, f"results/lr-range/{_test_name(act)}.json is not committed"
    meta, rows = study
    p = meta["parameters"]
    assert (p["model"], p["act"], p["momentum"], p["recipe"], p["method"]) == ("resnet20", act, 0.0, "thesis",
                                                                               "fgsm_rs")
    low, high, _ = suggest_lr_range(rows)
    assert experiment.QUICK_RESNET20_LEARNING_RATES[act] == (float(f"{low:.2g}"), float(f"{high:.2g}"))
    exp = experiment.resolve("resnet20", act, preset="quick")
    assert (exp.min_lr, exp.max_lr) == experiment.QUICK_RESNET20_LEARNING_RATES[act]
    assert "no LR range test" not in exp.preset_reason


def test_an_activation_without_a_test_says_so():
    untested = next(a for a in ("kwta", "kaf_free", "kaf_swish") if a not in experiment.QUICK_RESNET20_LEARNING_RATES)
    exp = experiment.resolve("resnet20", untested, preset="quick")
    assert f"no LR range test for {untested!r} yet" in exp.preset_reason
