"""Results files: crash-safe writes (a file is either complete or absent), JSON, provenance."""

import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

__all__ = ["environment", "source_commit", "json_default", "read_json", "utc_now", "write_atomic", "write_json"]


def write_atomic(path, write):
    """Call `write(tmp_path)`, then rename the temporary file onto `path`.

    The temporary file sits in the same folder, so the rename is atomic; its
    name keeps the suffix of `path` (Keras checks `.keras` / `.weights.h5`).
    """
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    write(tmp)
    os.replace(tmp, path)


def utc_now():
    """The current UTC time as an ISO 8601 string to the second (results' `finished` stamps)."""
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def source_commit(root=None):
    """The git commit kaflib's source was run from, as a hex string, with
    ``+modified`` appended when its tracked files under `kaflib/` differ from
    that commit; None when the source is not a git checkout of its own (an
    installed wheel, a copied tree) or git is absent.

    `root` is the repository folder (default: the one holding this package).
    Results files carry it so that a change of kernels between two runs shows.
    """
    root = Path(root) if root is not None else Path(__file__).resolve().parent.parent

    def git(*args):
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)
        return done.stdout.strip() if done.returncode == 0 else None

    try:
        top = git("rev-parse", "--show-toplevel")
        if top is None or Path(top).resolve() != root.resolve():
            return None  # not a checkout of its own: e.g. installed inside someone else's repository
        commit = git("rev-parse", "HEAD")
        changes = git("status", "--porcelain", "--untracked-files=no", "--", "kaflib")
    except (OSError, subprocess.SubprocessError):
        return None
    if commit is None:
        return None
    return commit + ("+modified" if changes else "")


def environment():
    """Library versions, kaflib's source commit (`source_commit`) and the machine, for results files."""
    import art
    import keras
    import tensorflow as tf

    import kaflib

    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return dict(python=sys.version.split()[0], platform=platform.platform(), kaflib=kaflib.__version__,
                kaflib_commit=source_commit(),
                tensorflow=tf.__version__, keras=keras.__version__, numpy=np.__version__,
                adversarial_robustness_toolbox=art.__version__, cpus=os.cpu_count(), gpus=gpus)


def json_default(value):
    """JSON encoding of numpy scalars (NaN as null), numpy arrays and paths."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {value!r}")


def write_json(path, payload, indent=1):
    """Write `payload` as JSON to `path`, atomically (folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda p: p.write_text(json.dumps(payload, indent=indent, default=json_default) + "\n"))


def read_json(path):
    """The JSON content of `path`, or None if the file does not exist."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None
