import json

import pytest

from kaflib import studies
from tests.conftest import mini_data_dir


def test_pgd_iterations_needs_a_finished_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        studies.pgd_iterations(tmp_path)
    assert studies.main(["pgd-iterations", str(tmp_path)]) == 2


def test_read_study_of_a_missing_file_is_none(tmp_path):
    assert studies.read_study(tmp_path / "nope.json") is None


def test_grad_norms_writes_a_complete_file_and_skips_it_next_time(tmp_path):
    if mini_data_dir() is None:
        pytest.skip("CIFAR-10 mini set not found")
    meta, rows = studies.grad_norms("light", "kaf", steps=2, batch_size=8, train_size=40,
                                    data_dir=mini_data_dir(), out_dir=tmp_path)
    path = tmp_path / "exploding-gradients" / "light-kaf.json"
    payload = json.loads(path.read_text())
    assert payload["parameters"]["act"] == "kaf" and payload["data"] == {"train": 40}
    assert {"tensorflow", "keras"} <= set(payload["environment"]) and payload["seconds"] > 0
    assert list(rows["step"].unique()) == [0, 1]
    path.write_text(path.read_text().replace('"steps": 2', '"steps": 99'))  # skipped: not recomputed
    assert studies.grad_norms("light", "kaf", steps=2, out_dir=tmp_path)[0]["parameters"]["steps"] == 99
