"""Crash-safe file writes: a results file is either complete or absent."""

import os
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(path, write):
    """Call `write(tmp_path)`, then rename the temporary file onto `path`.

    The temporary file sits in the same folder, so the rename is atomic; its
    name keeps the suffix of `path` (Keras checks `.keras` / `.weights.h5`).
    """
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    write(tmp)
    os.replace(tmp, path)
