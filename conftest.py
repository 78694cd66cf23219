"""pytest set-up shared by the unit tests and `--nbval` notebook runs."""

import os
import tempfile


def pytest_configure(config):
    # Notebooks executed by nbval run the tiny `smoke` preset and write their
    # results to a temporary folder, not into the repository.
    os.environ.setdefault("KAFLIB_PRESET", "smoke")
    os.environ.setdefault("KAFLIB_OUT_DIR", tempfile.mkdtemp(prefix="kaflib-nbval-"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
