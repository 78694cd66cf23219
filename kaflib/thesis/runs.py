"""Loading what the runs and studies wrote: run folders, the thesis' reported numbers, and
which studies still describe the runs on file.

`load_grid` collects the `metrics.json` of a grid's finished runs, `reported_results` is the
thesis' own numbers (its tables, `reported_results.csv` in the thesis' materials that
`kaflib.thesis.store.thesis_materials_dir` finds; the repository has no copy).

A grid study (`store.GRID_STUDIES`: Lipschitz constants, masking checks, PGD curves, APGD)
measures the runs of a grid as they were when it ran. When a run is retrained afterwards the
study describes a run that no longer exists: it is *superseded* (`study_superseded_by`), and
`read_grid_study` does not return it. Where results live is `kaflib.thesis.store`'s to say.
"""

from importlib import resources
from pathlib import Path

import pandas as pd

from kaflib.activations import KAF_ACTIVATIONS
from kaflib.thesis import store
from kaflib.thesis.experiment import read_metrics

__all__ = ["KAF_ACTIVATIONS", "MIN_TRAINED_CLEAN", "THESIS_EXPERIMENTS", "is_current", "load_run", "load_grid",
           "load_histories", "lipschitz_histories", "reported_results", "reported_results_path", "load_model",
           "first_test_images", "leaderboard_entries", "runs_newer_than_study", "study_superseded_by",
           "superseded_studies", "read_grid_study", "load_pgd_curves", "load_deep_kaf", "study_label",
           "train_seconds"]

#: Clean accuracy (a fraction) below which a CIFAR-10 run counts as not trained (chance is 0.1).
MIN_TRAINED_CLEAN = 0.15

#: The experiments of the thesis' tables (`reported_results.csv`'s `experiment` column).
THESIS_EXPERIMENTS = ("light_standard", "vgg_fast_at", "resnet_standard", "resnet_fast_at")
_REPORTED_COLUMNS = ["experiment", "model", "activation", "training", "epochs", "min_lr", "max_lr", "clean_acc",
                     "robust_acc", "attack", "source"]
_GRID_EXPERIMENT = {"thesis-light": "light_standard", "thesis-vgg": "vgg_fast_at",
                    "thesis-resnet20": "resnet_fast_at"}

_COLUMNS = ["model", "act", "clean_acc", "robust_acc", "preset", "data", "method", "epochs", "epochs_run", "train_size",
            "test_size", "pgd_steps", "pgd_restarts", "eps", "seed", "train_minutes", "stopped", "momentum", "recipe",
            "kaf_random_stddev", "current", "run_dir"]


def train_seconds(history, metrics):
    """Training wall time over every sitting: the per-epoch `seconds` of the `history`
    DataFrame (or None) when present (`metrics.json` times only the last sitting of a
    resumed run)."""
    if history is not None and "seconds" in history:
        return float(history["seconds"].sum())
    return metrics["seconds"]["train"]


def _row(folder, metrics):
    from kaflib.thesis.experiment import recorded_parameters

    p = recorded_parameters(metrics)
    return dict(model=p["model"], act=p["act"], clean_acc=100 * metrics["clean_acc"],
                robust_acc=100 * metrics["robust_acc"], preset=p["preset"], data=_data_name(metrics), method=p["method"],
                epochs=p["epochs"], epochs_run=metrics.get("epochs_run", p["epochs"]),
                train_size=metrics["data"]["train"],
                test_size=metrics["data"]["test"], pgd_steps=p["pgd_steps"],
                pgd_restarts=p["pgd_restarts"], eps=p["eps"], seed=p["seed"],
                train_minutes=train_seconds(_read_history(folder), metrics) / 60, stopped=_stopped(metrics),
                momentum=p["momentum"], recipe=p["recipe"], kaf_random_stddev=p["kaf_random_stddev"],
                current=is_current(metrics), run_dir=str(folder))


def _data_name(metrics):
    """The readable name of a run's images ("CIFAR-10, quick subset 5085/1017"; a run that
    recorded none: its sizes)."""
    data = metrics["data"]
    return data.get("name") or f"CIFAR-10, {data['train'] + data.get('guard', 0)}/{data['test']} images"


def is_current(metrics):
    """Whether a finished run is what its preset gives now: True when rerunning its grid
    with the same preset would skip it, False when it was trained with an earlier
    recipe or with parameters set by hand (it would be reported as stale)."""
    from kaflib.thesis.experiment import parameter_differences, recorded_parameters, resolve

    p = recorded_parameters(metrics)
    try:
        now = resolve(model=p["model"], act=p["act"], preset=p["preset"], seed=p["seed"], grid=p["grid"],
                      kaf_kernel=p.get("kaf_kernel", "gaussian"), mixed_precision=p.get("mixed_precision"))
    except (KeyError, ValueError):
        return False
    return not parameter_differences(metrics, now)


def _stopped(metrics):
    """Why a run ended early ("" when it ran every epoch): divergence or catastrophic overfitting."""
    epochs, best = metrics.get("epochs_run"), metrics.get("best_epoch")
    weights = f"epoch {best}'s weights" if best else "its initial weights (no epoch finished)"
    if metrics.get("diverged"):
        return f"diverged (non-finite gradient) in epoch {epochs + 1}; evaluated with {weights}"
    if metrics.get("collapsed_epoch"):
        return f"guard accuracy collapsed in epoch {metrics['collapsed_epoch']}; evaluated with {weights}"
    return ""


def load_run(folder):
    """One finished run as a dict: `metrics.json` plus its `history` (DataFrame) and `run_dir`.

    Raises FileNotFoundError, naming the folder, when the run has not finished.
    """
    folder = Path(folder)
    metrics = read_metrics(folder)
    if metrics is None:
        raise FileNotFoundError(f"No finished run in {folder} (no metrics.json).")
    return dict(metrics, history=_read_history(folder), run_dir=folder)


def _read_history(folder):
    """A run folder's `history.csv` as a DataFrame, or None without one."""
    history = Path(folder) / "history.csv"
    return pd.read_csv(history) if history.is_file() else None


def load_grid(grid, path=None, under=None):
    """One row per finished run of `grid` (`<results>/<grid>/<model>-<act>/metrics.json`;
    `under`: a folder of reruns, `store.grid_dir`).

    Columns: model, act, clean_acc and robust_acc (%), preset, data (the images' readable name), method, epochs
    (planned), epochs_run (finished; fewer when the run stopped early),
    train_size and test_size (images), pgd_steps, pgd_restarts, eps,
    seed, train_minutes, stopped (why the run ended early, "" if it did not),
    momentum, recipe, kaf_random_stddev (as recorded, or the values of
    `experiment.UNRECORDED_PARAMETERS` for runs from before they were),
    current (`is_current`: trained with what its preset gives now), run_dir.
    Empty (with these columns) when nothing ran.
    """
    rows = []
    for folder in store.run_folders(grid, path, under):
        metrics = read_metrics(folder)
        if metrics is not None:
            rows.append(_row(folder, metrics))
    return pd.DataFrame(rows, columns=_COLUMNS)


def load_histories(measured):
    """Per-epoch histories of the runs of a `load_grid` table: dict act -> DataFrame (runs
    without one, or with no finished epoch, left out)."""
    runs = {row.act: load_run(row.run_dir)["history"] for row in measured.itertuples()}
    return {act: history for act, history in runs.items() if history is not None and not history.empty}


def lipschitz_histories(grids=("thesis-vgg", "thesis-resnet20"), path=None):
    """{"<model> / <act>": history} of the seed-0 runs whose history has the Lipschitz
    columns (runs trained with `fit(..., epoch_metrics=lipschitz_epoch_metrics)`) and that
    are current (`is_current`): the grids' own runs, then the reruns in
    `<results>/lipschitz-evolution/<grid>/` (a grid's own run wins a shared label). A rerun
    of an earlier recipe is never shown: it describes a run that the grid has replaced."""
    from kaflib.thesis.grid import GRIDS

    histories = {}
    for grid in grids:
        found = {}
        for under in (None, store.LIPSCHITZ_EVOLUTION):
            for row in load_grid(grid, path, under).itertuples():
                if row.seed != 0 or not row.current:
                    continue
                history = load_run(row.run_dir)["history"]
                if history is not None and "lipschitz_bound_log10" in history:
                    found.setdefault(row.act, (row.model, history))
        for act in sorted(found, key=list(GRIDS[grid][1]).index):  # the grid's order
            model, history = found[act]
            histories[f"{model} / {act}"] = history
    return histories


def reported_results_path():
    """`reported_results.csv` of the thesis' materials, or None where this machine has none."""
    folder = store.thesis_materials_dir()
    path = folder / "reported_results.csv" if folder is not None else None
    return path if path is not None and path.is_file() else None


def reported_results(experiment=None):
    """The thesis' reported numbers (one row per model/activation/experiment), read
    from `reported_results_path()`; an empty table with the same columns where this
    machine has no thesis materials (`findings.thesis_numbers_note` says so in the book).

    Args:
        experiment: None for all rows, or one of ``light_standard``,
            ``vgg_fast_at``, ``resnet_standard``, ``resnet_fast_at``, or a grid
            name (``thesis-light``, ``thesis-vgg``, ``thesis-resnet20``).
    """
    name = _GRID_EXPERIMENT.get(experiment, experiment)
    if experiment is not None and name not in THESIS_EXPERIMENTS:
        raise ValueError(f"experiment={experiment!r} is not in the thesis' results; valid: "
                         f"{', '.join(THESIS_EXPERIMENTS)} or a grid name ({', '.join(_GRID_EXPERIMENT)}).")
    path = reported_results_path()
    table = pd.read_csv(path) if path is not None else pd.DataFrame(columns=_REPORTED_COLUMNS)
    if experiment is None:
        return table
    return table[table["experiment"] == name].reset_index(drop=True)


def first_test_images(size=None, data_dir=None):
    """`(x, y)`: the first `size` CIFAR-10 test images (stratified), or all of them when the
    data on this machine has fewer (the repo's fallback set has 100), or None when the data
    is not on this machine (never downloads: chapters must build offline). Captions should
    say `len(y)`, not `size`."""
    from kaflib.data import load_cifar10

    try:
        return load_cifar10(data_dir, train_size=1, test_size=size, download=False)[1]
    except FileNotFoundError:
        return None
    except ValueError:
        x, y = load_cifar10(data_dir, train_size=1, download=False)[1]
        if isinstance(size, int) and size > len(y):  # fewer images here than asked: take them all
            return x, y
        raise


def load_model(grid, model, act, path=None):
    """The trained `model.keras` of a finished run, or None when the run has not finished."""
    import keras

    from kaflib.thesis.experiment import run_dir

    folder = run_dir(store.results_dir(path), grid, model, act)
    if read_metrics(folder) is None:
        return None
    return keras.models.load_model(folder / "model.keras")


def leaderboard_entries():
    """RobustBench's leaderboard entries the book compares with (`kaflib/thesis/leaderboard.csv`,
    copied from RobustBench's model_info files; percent), one row per model."""
    with resources.files("kaflib.thesis").joinpath("leaderboard.csv").open() as f:
        return pd.read_csv(f).set_index("name")


def runs_newer_than_study(study, grid, path=None):
    """The runs of `grid` (as "<act>") that finished after the grid study `study`
    ("lipschitz", "masking", "pgd-curves", "apgd") was measured: its numbers for them
    describe the runs those replaced. Grid studies measure each activation's seed-0 run,
    so runs of other seeds never make one outdated. A study file written before studies
    were time-stamped counts as older than every run that records its recipe (the reruns
    with the thesis' recipe and later). [] when either is missing."""
    found = store.read_json(store.study_path(study, grid, path))  # not `read_study`: nothing is shown
    if found is None:
        return []
    stamp = found.get("finished")
    newer = []
    for folder in store.run_folders(grid, path):
        metrics = read_metrics(folder)
        parameters = (metrics or {}).get("parameters", {})
        if metrics is None or parameters.get("seed", 0) != 0:
            continue
        recorded = "momentum" in parameters
        if (stamp is None and recorded) or (stamp is not None and metrics.get("finished", "") > stamp):
            newer.append(parameters["act"])
    return newer


def study_superseded_by(path):
    """The runs (as "<grid>/<act>") a study file describes but that were retrained after it
    was measured, from the file's path: a grid study (`store.GRID_STUDIES`,
    `<results>/<study>/<grid>.json`, see `runs_newer_than_study`) or a run's PGD-iterations
    sweep (`<results>/<grid>/<model>-<act>/pgd_iterations.json`, older than the run's
    `metrics.json`). [] for every other study: they train or build their own networks."""
    path = Path(path)
    if path.name == "pgd_iterations.json":
        sweep, metrics = store.read_json(path), read_metrics(path.parent)
        if sweep is None or metrics is None:
            return []
        stale = sweep.get("finished") is None or metrics.get("finished", "") > sweep["finished"]
        return [f"{path.parent.parent.name}/{metrics['parameters']['act']}"] if stale else []
    study, grid = path.parent.name, path.stem
    if study not in store.GRID_STUDIES or not grid.startswith("thesis-") or grid == "thesis-checkpoints":
        return []
    return [f"{grid}/{act}" for act in runs_newer_than_study(study, grid, path.parent.parent)]


def superseded_studies(path=None):
    """{study file (relative to the results root): [runs it describes that were retrained
    since]} of every committed study that rests on a superseded run; {} when none does."""
    root = store.results_dir(path)
    found = {}
    for study in (*store.GRID_STUDIES, "pgd-iterations"):
        for file in store.study_files(study, root):
            if (newer := study_superseded_by(file)):
                found[str(file.relative_to(root))] = newer
    return found


def read_grid_study(study, grid, path=None):
    """`store.read_study(study, grid)` when that study describes the runs on file, None when
    it is missing or rests on a superseded run (`runs_newer_than_study`): a chapter never
    shows a study of runs that the grid has replaced (`findings.superseded_note` says which
    were left out)."""
    if runs_newer_than_study(study, grid, path):
        return None
    return store.read_study(study, grid, path)


def load_pgd_curves(grid, path=None):
    """{model: DataFrame(iterations, robust_acc)} of `results/pgd-curves/<grid>.json`
    (fractions; `kaflib.plots.plot_pgd_iterations` draws it), or {} if absent or superseded
    (`read_grid_study`)."""
    study = read_grid_study("pgd-curves", grid, path)
    if study is None:
        return {}
    rows = study[1].rename(columns={"accuracy": "robust_acc"})
    return {model: curve[["iterations", "robust_acc"]].reset_index(drop=True)
            for model, curve in rows.groupby("model", sort=False)}


def load_deep_kaf(runs=("resnet56-relu", "resnet56-kaf-std0.8", "resnet56-kaf-std0.05", "resnet56-kaf_smooth",
                        "resnet56-kaf_elu", "resnet20-kaf-std0.8", "resnet20-kaf-std0.05", "resnet20-kaf_smooth",
                        "resnet20-kaf_elu"), path=None):
    """{label: study dict} of the `deep-kaf` studies that exist, in `runs` order.

    `runs` are study names (`kaflib.thesis.studies.study_name`: random KAFs carry their
    coefficients' std, e.g. ``resnet56-kaf-std0.05``); labels read "<model> / <act>"
    with the std, e.g. "resnet56 / kaf N(0, 0.05²)". Each study dict is the JSON of
    `kaflib.thesis.studies.deep_kaf` with `rows` (the per-epoch history) and the init
    diagnostics as DataFrames.
    """
    found = {}
    for name in runs:
        study = store.read_study("deep-kaf", name, path)
        if study is not None:
            payload, rows = study
            payload["rows"] = rows
            for key in ("init_gradient_norms", "init_kaf_slopes"):
                payload[key] = pd.DataFrame(payload[key])
            found[study_label(name)] = payload
    return found


def study_label(name):
    """"resnet56 / kaf N(0, 0.05²)" for the study name "resnet56-kaf-std0.05"."""
    model, _, act = name.partition("-")
    act, _, std = act.partition("-std")
    return f"{model} / {act}" + (f" N(0, {std}²)" if std else "")
