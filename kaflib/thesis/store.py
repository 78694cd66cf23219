"""Where the reproduction's results live, and how they are written, read and resumed.

Layout under the results root (`results_dir`):

    <grid>/<model>-<act>[-seed<n>]/     one training run (metrics.json, history.csv, model.keras)
    <study>/<name>.json                 one study file (`STUDIES`), e.g. lr-range/resnet20-relu.json
    <study>/<name>.partial.json         the models an interrupted study has finished
    thesis-checkpoints.json             the checkpoint audit

Every file is written atomically (`kaflib.files.write_atomic`): it is complete
or absent. A study file holds its parameters, data sizes, seed, library
versions (`environment`), wall time and rows.
"""

import os
import time
from pathlib import Path

import pandas as pd

from kaflib.files import environment, json_default, read_json, utc_now, write_json

__all__ = ["STUDIES", "PartialStudy", "audit_path", "each_model", "environment", "finished_study", "json_default",
           "read_json", "read_study", "repository_root", "results_dir", "study_path", "thesis_materials_dir",
           "write_json", "write_study"]

#: Study kinds, each a folder of the results root holding one JSON file per study.
STUDIES = ("lr-range", "exploding-gradients", "deep-kaf", "init-signal", "lipschitz", "masking", "pgd-curves", "apgd",
           "pgd-iterations", "autoattack")


def repository_root():
    """The kaflib checkout the reproduction runs in: the nearest folder at or above
    the working directory that holds `notebooks/train.ipynb` and `results/`, else
    the checkout this package sits in (an editable install). Raises
    FileNotFoundError when neither exists (a non-editable install used outside a
    checkout): set `KAFLIB_RESULTS_DIR`, or run from the clone."""
    here = Path.cwd().resolve()
    package_checkout = Path(__file__).resolve().parents[2]
    for folder in (here, *here.parents, package_checkout):
        if (folder / "notebooks" / "train.ipynb").is_file() and (folder / "results").is_dir():
            return folder
    raise FileNotFoundError(
        f"No kaflib checkout (a folder with notebooks/train.ipynb and results/) at or above {here}, nor at "
        f"{package_checkout}. Run from the clone, or set KAFLIB_RESULTS_DIR to the results folder.")


def results_dir(path=None):
    """The results root: `path`, else `$KAFLIB_RESULTS_DIR`, else the checkout's `results/`."""
    if path is not None:
        return Path(path)
    if os.environ.get("KAFLIB_RESULTS_DIR"):
        return Path(os.environ["KAFLIB_RESULTS_DIR"])
    return repository_root() / "results"


def thesis_materials_dir():
    """The thesis' published materials (`reported_results.csv`, `checkpoints/`,
    `author/`), which the repository does not copy: `$KAFLIB_THESIS_DIR`, else
    `shared/thesis` beside the checkout (`<checkout>/../shared/thesis`), else None
    (a machine without them; the book then shows no thesis numbers and says so).
    Raises FileNotFoundError when `$KAFLIB_THESIS_DIR` names no folder."""
    if os.environ.get("KAFLIB_THESIS_DIR"):
        folder = Path(os.environ["KAFLIB_THESIS_DIR"])
        if not folder.is_dir():
            raise FileNotFoundError(f"KAFLIB_THESIS_DIR={str(folder)!r} is not a folder: point it at the thesis' "
                                    "materials (the folder holding reported_results.csv), or unset it.")
        return folder
    try:
        folder = repository_root().parent / "shared" / "thesis"
    except FileNotFoundError:
        return None
    return folder if folder.is_dir() else None


def study_path(study, name, results=None):
    """`<results>/<study>/<name>.json`; for ``pgd-iterations``, `name` is
    ``<grid>/<model>-<act>`` and the file is that run's `pgd_iterations.json`."""
    if study not in STUDIES:
        raise ValueError(f"study={study!r} is invalid: must be one of {', '.join(STUDIES)}.")
    if study == "pgd-iterations":
        return results_dir(results) / name / "pgd_iterations.json"
    return results_dir(results) / study / f"{name}.json"


def audit_path(results=None):
    """`<results>/thesis-checkpoints.json`: the checkpoint audit (`kaflib.thesis.audit`)."""
    return results_dir(results) / "thesis-checkpoints.json"


def write_study(path, parameters, data, rows, started, **extra):
    """Write a study file: `parameters`, `data` sizes, wall time since `started` (a
    `time.perf_counter()` value), `environment()`, `extra` fields and `rows` (a
    DataFrame). Returns the payload."""
    payload = dict(parameters=parameters, data=data, seconds=time.perf_counter() - started,
                   environment=environment(), finished=utc_now(), **extra, rows=rows.to_dict(orient="records"))
    write_json(path, payload)
    return payload


def read_study(study, name=None, results=None):
    """(metadata dict, rows DataFrame) of a study, or None if it has not been run.

    `read_study("lr-range", "resnet20-relu")` reads `study_path(...)`;
    `read_study(path)` reads a study file by its path."""
    path = Path(study) if name is None else study_path(study, name, results)
    payload = read_json(path)
    if payload is None:
        return None
    return payload, pd.DataFrame(payload.pop("rows"))


def finished_study(path, force=False):
    """`read_study(path)` when the study's file exists and `force` is False, else None
    (the study has to be computed)."""
    return None if force else read_study(path)


class PartialStudy:
    """An unfinished study's saved per-model results, `<out>.partial.json`.

    `done` holds the models an interrupted call finished under the same `key`
    (test size, seed, ...; another key starts afresh). `started` is a
    `time.perf_counter()` value moved back by the time those calls spent, so a
    resumed study's `seconds` is its whole wall time.
    """

    def __init__(self, out, key, started):
        self.path, self.key = Path(out).with_suffix(".partial.json"), key
        saved = read_json(self.path) or {}
        same = saved.get("key") == key
        self.done = saved["models"] if same else {}
        self.started = started - (saved.get("seconds", 0.0) if same else 0.0)

    def save(self, name, result):
        """Record `result` (JSON-ready) of model `name`, at once on disk."""
        self.done[name] = result
        write_json(self.path, dict(key=self.key, seconds=time.perf_counter() - self.started, models=self.done),
                   indent=None)

    def finish(self):
        """Delete the file: the study's own file is written."""
        self.path.unlink(missing_ok=True)


def each_model(partial, models, measure, desc, progress=True):
    """`{name: measure(name, model)}` (JSON-ready results) for every model, each saved
    by `partial` (a `PartialStudy`) as it finishes; models already in
    `partial.done` are not measured again."""
    from tqdm.auto import tqdm

    for name, model in tqdm(models.items(), desc=desc, disable=not progress):
        if name not in partial.done:
            partial.save(name, measure(name, model))
    return {name: partial.done[name] for name in models}
