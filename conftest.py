"""pytest set-up shared by the unit tests and `--nbval` notebook runs."""

import os
import tempfile


def pytest_configure(config):
    # Notebooks executed by nbval run the tiny `smoke` preset and write their
    # results to a temporary folder, not into the repository. Their data is the
    # CIFAR-10 found by tests/conftest.py: KAFLIB_DATA_DIR, ../shared's mini set,
    # else the tiny set the repository carries (never a download).
    from tests.conftest import cifar10_dir

    os.environ.setdefault("KAFLIB_PRESET", "smoke")
    os.environ.setdefault("KAFLIB_OUT_DIR", tempfile.mkdtemp(prefix="kaflib-nbval-"))
    os.environ.setdefault("KAFLIB_DATA_DIR", str(cifar10_dir()))
    # nbval runs the notebook in notebooks/: a relative folder given from here must stay the same folder
    os.environ["KAFLIB_DATA_DIR"] = os.path.abspath(os.environ["KAFLIB_DATA_DIR"])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def pytest_collection_modifyitems(config, items):
    # The notebook's cells (collected with --nbval) run a whole smoke experiment: slow tier.
    import pytest

    for item in items:
        if type(item).__module__.startswith("nbval"):
            item.add_marker(pytest.mark.slow)
