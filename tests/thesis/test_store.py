"""Result paths come from `kaflib.thesis.store`: the AutoAttack cross-check's records and progress files."""

from kaflib.thesis import store


def test_cross_check_records_and_progress_files(tmp_path):
    folder = tmp_path / "autoattack-crosscheck"
    assert store.crosscheck_path("m", "kaflib", results=tmp_path) == folder / "m-kaflib.json"
    fab = tmp_path / "autoattack-crosscheck" / "fab-t"
    fab.mkdir(parents=True)
    for name in ("b-kaflib.json", "a-kaflib.json", "a-torchattacks.json", "a-kaflib.partial.json"):
        (fab / name).write_text("{}")
    assert store.crosscheck_records("kaflib", fab) == {"a": fab / "a-kaflib.json", "b": fab / "b-kaflib.json"}
    assert list(store.crosscheck_records("torchattacks", fab)) == ["a"]
    assert store.partial_path(fab / "a-torchattacks.json") == fab / "a-torchattacks.partial.json"
