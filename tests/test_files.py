"""Results files' provenance: the source commit a record was computed from."""

import shutil
import subprocess

import pytest

from kaflib.files import source_commit

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path):
    """A git repository with a committed `kaflib/kaf.py` and a notes file outside it."""
    (tmp_path / "kaflib").mkdir()
    (tmp_path / "kaflib" / "kaf.py").write_text("x = 1\n")
    (tmp_path / "notes.md").write_text("notes\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    return tmp_path


def test_the_commit_of_a_clean_checkout(checkout):
    head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert source_commit(checkout) == head.stdout.strip()


def test_a_changed_kernel_marks_the_commit_modified_and_other_files_do_not(checkout):
    (checkout / "notes.md").write_text("other notes\n")
    (checkout / "results.json").write_text("{}")  # untracked outputs do not count
    assert not source_commit(checkout).endswith("+modified")
    (checkout / "kaflib" / "kaf.py").write_text("x = 2\n")
    assert source_commit(checkout).endswith("+modified")


def test_no_commit_outside_a_checkout_of_its_own(tmp_path, checkout):
    assert source_commit(tmp_path / "kaflib") is None  # inside another repository, not its top
    plain = tmp_path.parent / (tmp_path.name + "-copy")
    shutil.copytree(checkout / "kaflib", plain / "kaflib")
    assert source_commit(plain) is None
