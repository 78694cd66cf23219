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

__all__ = ["STUDIES", "GRID_STUDIES", "LIPSCHITZ_EVOLUTION", "PartialStudy", "audit_path", "each_model",
           "environment", "finished_study", "forget_reads", "grid_dir", "grid_dirs", "json_default", "read_json",
           "read_study", "repository_root", "results_dir", "run_folders", "studies_read", "study_files", "study_path",
           "thesis_materials_dir", "write_json", "write_study", "crosscheck_path", "crosscheck_records",
           "partial_path"]

#: Study kinds, each a folder of the results root holding one JSON file per study.
STUDIES = ("lr-range", "exploding-gradients", "deep-kaf", "init-signal", "lipschitz", "masking", "pgd-curves", "apgd",
           "pgd-iterations", "autoattack", "autoattack-standard")

#: Studies of every trained run of a grid (`<study>/<grid>.json`): they describe the runs they measured.
GRID_STUDIES = ("lipschitz", "masking", "pgd-curves", "apgd")

#: The folder (under the results root) of the reruns made to record per-epoch Lipschitz constants.
LIPSCHITZ_EVOLUTION = "lipschitz-evolution"

# Every study file `read_study` has read in this process, in order (`studies_read`).
_READ = []


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


def grid_dir(grid, results=None, under=None):
    """`<results>[/<under>]/<grid>`: the folder of a grid's run folders (`under`: e.g.
    `LIPSCHITZ_EVOLUTION`, for reruns kept apart from the grid's own runs)."""
    root = results_dir(results)
    return (root / under if under else root) / grid


def grid_dirs(results=None, under=None):
    """The grid folders (`thesis-*`) under `<results>[/<under>]`, sorted."""
    root = results_dir(results)
    root = root / under if under else root
    return sorted(p for p in root.glob("thesis-*/") if p.is_dir())


def run_folders(grid, results=None, under=None):
    """The run folders of `grid_dir(grid, results, under)`, sorted ([] without the grid)."""
    folder = grid_dir(grid, results, under)
    return sorted(p for p in folder.glob("*/") if p.is_dir()) if folder.is_dir() else []


def study_files(study, results=None):
    """The finished files of a study kind, sorted: `<results>/<study>/*.json` without the
    progress files of unfinished studies; for ``pgd-iterations``, every run folder's
    `pgd_iterations.json`."""
    root = results_dir(results)
    if study not in STUDIES:
        raise ValueError(f"study={study!r} is invalid: must be one of {', '.join(STUDIES)}.")
    if study == "pgd-iterations":
        return sorted(root.glob("thesis-*/*/pgd_iterations.json"))
    return sorted(f for f in (root / study).glob("*.json") if not f.name.endswith(".partial.json"))


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
    _READ.append(path.resolve())
    return payload, pd.DataFrame(payload.pop("rows"))


def studies_read():
    """The study files `read_study` has read in this process since `forget_reads`, each once,
    in order: what a chapter's kernel has shown (`kaflib.thesis.findings.page_sources`)."""
    return list(dict.fromkeys(_READ))


def forget_reads():
    """Start `studies_read` afresh."""
    _READ.clear()


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


def crosscheck_path(name, implementation, folder=None, results=None):
    """`<folder>/<name>-<implementation>.json`: one implementation's record ("kaflib" or
    "torchattacks") of model `name` in the AutoAttack cross-check (`kaflib.thesis.crosscheck`);
    `folder` defaults to `<results>/autoattack-crosscheck` (FAB-T alone: its `fab-t/`)."""
    folder = Path(folder) if folder is not None else results_dir(results) / "autoattack-crosscheck"
    return folder / f"{name}-{implementation}.json"


def crosscheck_records(implementation, folder=None, results=None):
    """{model name: path} of the cross-check records of one implementation in `folder`
    (as `crosscheck_path`), sorted by name."""
    pattern = crosscheck_path("*", implementation, folder, results)
    suffix = f"-{implementation}.json"
    return {p.name.removesuffix(suffix): p for p in sorted(pattern.parent.glob(pattern.name))}


def partial_path(out):
    """`<out>.partial.json` for the record `<out>.json`: what an interrupted command that
    writes `out` has finished (removed when `out` is written)."""
    out = Path(out)
    return out.with_name(out.name.removesuffix(".json") + ".partial.json")
