"""The torchattacks cross-check's bookkeeping (the attacks themselves need the PyTorch
backend and torchattacks, outside the set-up: their records are committed with the command)."""

import numpy as np
import pytest

from kaflib.thesis.crosscheck import _agreement_on, cascade_outcomes

FINISHED = dict(kaflib=dict(parameters=dict(attacks=["apgd-ce", "apgd-t", "fab-t", "square"]),
                            per_image={"clean": "11110", "apgd-ce": "11100", "apgd-t": "11000",
                                       "fab-t": "10000", "square": "10000"}))


def _mask(text):
    return np.array([c == "1" for c in text], bool)


def test_cascade_outcomes_are_the_images_before_and_after_the_attack():
    before, after = cascade_outcomes(FINISHED, "fab-t", 5)
    assert before.tolist() == _mask("11000").tolist() and after.tolist() == _mask("10000").tolist()
    before, after = cascade_outcomes(FINISHED, "apgd-ce", 3)  # the first attack starts from the clean outcomes
    assert before.tolist() == [True, True, True] and after.tolist() == [True, True, True]
    with pytest.raises(ValueError, match=r"attack='pgd': the record's cascade is apgd-ce, apgd-t, fab-t, square"):
        cascade_outcomes(FINISHED, "pgd", 5)


def test_cascade_outcomes_of_an_interrupted_record_need_the_first_batches_done():
    partial = dict(parameters=dict(attacks=["apgd-ce", "apgd-t", "fab-t", "square"], batch_size=2),
                   state=dict(clean=[True, True, True, False],
                              attacks={"apgd-ce": dict(robust={"0": [True, True], "2": [True, False]}),
                                       "apgd-t": dict(robust={"0": [True, False]})}))
    before, after = cascade_outcomes(partial, "apgd-t", 2)
    assert before.tolist() == [True, True] and after.tolist() == [True, False]
    with pytest.raises(ValueError, match="has not finished apgd-t on the first 4 images"):
        cascade_outcomes(partial, "apgd-t", 4)
    with pytest.raises(ValueError, match="has not finished apgd-t on the first 2 images"):
        cascade_outcomes({**partial, "state": {**partial["state"], "attacks": {
            "apgd-ce": partial["state"]["attacks"]["apgd-ce"], "apgd-t": dict(robust={"2": [True, False]})}}},
            "apgd-t", 2)


def test_agreement_counts_only_the_attacked_images_and_names_the_others():
    attacked, ours, theirs = _mask("11110"), _mask("10100"), _mask("10011")
    found = _agreement_on(attacked, ours, theirs, "r.json")
    assert found == dict(kaflib_record="r.json", attacked=4, agree=2, share=0.5, kaflib_robust="10100", both_robust=1,
                         only_kaflib_robust=[2], only_torchattacks_robust=[3])


def test_the_agreement_table_reads_the_single_attack_records_and_names_each_disagreement(tmp_path):
    import json

    from kaflib.thesis.crosscheck import attack_agreement_findings, attack_agreement_table

    assert attack_agreement_table(tmp_path) is None
    for attack, only_ours, only_theirs in (("apgd-t", [], []), ("fab-t", [7], [3, 9])):
        agreement = dict(kaflib_record="r.json", attacked=50, agree=50 - len(only_ours) - len(only_theirs),
                         share=(50 - len(only_ours) - len(only_theirs)) / 50, both_robust=40,
                         only_kaflib_robust=only_ours, only_torchattacks_robust=only_theirs)
        (tmp_path / f"m-{attack}.json").write_text(json.dumps(dict(model="m.keras", attack=attack, n_images=128,
                                                                   agreement=agreement)))
    (tmp_path / "m-fab-t.partial.json").write_text("{}")  # unfinished: not read
    table = attack_agreement_table(tmp_path)
    assert table.loc[("m", "fab-t"), "share"] == 94.0 and table.loc[("m", "apgd-t"), "only_kaflib_robust"] == 0
    found = attack_agreement_findings(table).data
    assert "`m`, APGD-T: the two agree on 50 of the 50 images it was given (100.0%): it passes the 98% bar." in found
    assert ("`m`, FAB-T: the two agree on 47 of the 50 images it was given (94.0%): it falls short of the 98% bar; "
            "only torchattacks' broke image 7; only kaflib's broke images 3, 9.") in found


def test_fab_t_alone_counts_the_images_each_implementation_broke():
    import pandas as pd

    from kaflib.thesis.crosscheck import fab_t_alone_findings

    table = pd.DataFrame(dict(n=[32], clean=[84.375], both_robust=[12], only_kaflib_robust=[1],
                              only_torchattacks_robust=[0]), index=pd.Index(["resnet20_relu_ocrob_lrf"], name="model"))
    found = fab_t_alone_findings(table).data
    assert found == ("- ReLU (`resnet20_relu_ocrob_lrf`), the first 32 test images, 27 classified correctly: kaflib's "
                     "FAB-T broke 14 of them; 12 stayed robust under both implementations, 1 under kaflib's only and 0 "
                     "under torchattacks' only: the two agree on 31 of the 32 images.")
    table.index = pd.Index(["m"], name="model")  # not a published checkpoint: its name alone
    assert fab_t_alone_findings(table).data.startswith("- `m`, the first 32")
    # a kaflib record without torchattacks' beside it is named, not dropped or a KeyError
    alone = pd.DataFrame(dict(n=[32], clean=[90.6]), index=pd.Index(["resnet20_kaf_ocrob_lrfinder"], name="model"))
    assert fab_t_alone_findings(alone).data == ("- KAF (`resnet20_kaf_ocrob_lrfinder`): torchattacks' per-image "
                                                "record is missing (the module docstring has its command).")
