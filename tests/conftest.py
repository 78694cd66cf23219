import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CHECKPOINTS = sorted((SHARED / "thesis" / "checkpoints").glob("*.zip"))
#: 400 training / 100 test images of real CIFAR-10 in the official layout, carried by the
#: repository (tests/data/make_cifar10_tiny.py wrote them), so that the tests never need
#: ../shared or a download.
TINY_DATA_DIR = ROOT / "tests" / "data" / "cifar10-tiny"


def mini_data_dir():
    """The CIFAR-10 mini set (5085/1017 images): KAFLIB_DATA_DIR if set, else ../shared, else None."""
    for candidate in (os.environ.get("KAFLIB_DATA_DIR"), SHARED / "data" / "cifar10-mini"):
        if (candidate and (Path(candidate) / "cifar-10-batches-py" / "test_batch").is_file()
                and Path(candidate).resolve() != TINY_DATA_DIR.resolve()):  # the root conftest's fallback
            return Path(candidate)
    return None


def cifar10_dir():
    """CIFAR-10 for the tests: the mini set where there is one, else the repository's tiny set."""
    return mini_data_dir() or TINY_DATA_DIR


@pytest.fixture(scope="session")
def mini_test_set():
    data_dir = mini_data_dir()
    if data_dir is None:
        pytest.skip("CIFAR-10 mini set not found: set KAFLIB_DATA_DIR or provide ../shared/data/cifar10-mini")
    from kaflib.data import load_cifar10

    return load_cifar10(data_dir, download=False)[1]
