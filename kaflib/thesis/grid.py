"""Run the train notebook for every model/activation of a thesis grid.

    python -m kaflib.thesis.grid thesis-resnet20 --preset quick --jobs 2 --seeds 0 1 2

Each run executes `notebooks/train.ipynb` with papermill into
`<out-dir>/<grid>/<model>-<act>[-seed<n>]/train.ipynb`. Finished runs (a
`metrics.json` exists) are skipped when they ran with the parameters this
call would use; unfinished ones resume from their last epoch checkpoint. A
finished run whose parameters differ (another preset version, another KAF
init, ...) is never silently taken for the new one: it is reported as stale,
with the differences, and rerun only with `--rerun-stale` (its old files stay
in git's history). Failed runs are reported and the others go on.
"""

import argparse
import concurrent.futures
import inspect
import os
import shutil
import sys
from pathlib import Path

from kaflib.thesis.experiment import parameter_differences, read_metrics, resolve, run_dir
from kaflib.thesis.store import repository_root, results_dir

__all__ = ["GRIDS", "grid_runs", "run_grid"]



def train_notebook():
    """The checkout's `notebooks/train.ipynb` (see `store.repository_root`)."""
    return repository_root() / "notebooks" / "train.ipynb"


#: The thesis' experiments: grid name -> (model, activations).
GRIDS = {
    "thesis-light": ("light", ("relu", "kwta", "kaf")),
    "thesis-vgg": ("vgg", ("relu", "elu", "kaf", "kaf_elu", "swish", "kaf_swish", "kaf_free")),
    "thesis-resnet20": ("resnet20", ("relu", "elu", "kaf", "kaf_relu", "kaf_elu", "swish", "kaf_swish", "kaf_free")),
}


def grid_runs(grid):
    """[(model, act)] of a named grid; ValueError lists the names for an unknown one."""
    if grid not in GRIDS:
        raise ValueError(f"Unknown grid {grid!r}; valid grids are: {', '.join(GRIDS)}.")
    model, acts = GRIDS[grid]
    return [(model, act) for act in acts]


def _run_one(model, act, grid, out_dir, parameters, notebook):
    import papermill

    folder = run_dir(out_dir, grid, model, act, parameters.get("kaf_kernel", "gaussian"), parameters.get("seed", 0))
    folder.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(notebook), str(folder / "train.ipynb"),
        parameters=dict(parameters, model=model, act=act, grid=grid, out_dir=str(Path(out_dir).resolve())),
        cwd=str(notebook.parent), progress_bar=False)
    return read_metrics(folder)


def expected_experiment(model, act, grid, out_dir, parameters):
    """The `Experiment` the notebook will resolve for one run of a grid (its preset
    defaults to `$KAFLIB_PRESET`, else "auto", as in the notebook)."""
    accepted = set(inspect.signature(resolve).parameters)
    given = {k: v for k, v in parameters.items() if k in accepted}
    given.setdefault("preset", os.environ.get("KAFLIB_PRESET", "auto"))
    return resolve(**dict(given, model=model, act=act, grid=grid, out_dir=str(out_dir)))


def _clear_run(folder):
    """Remove a finished run's results and checkpoints, so that it runs again from scratch."""
    for name in ("metrics.json", "history.csv", "model.keras", "train.ipynb"):
        (folder / name).unlink(missing_ok=True)
    shutil.rmtree(folder / "checkpoint", ignore_errors=True)


def run_grid(grid, out_dir=None, jobs=1, parameters=None, notebook=None, acts=None, seeds=(0,),
             rerun_stale=False):
    """Execute the notebook for every run of `grid` not finished yet.

    Args:
        grid: a name in `GRIDS`.
        out_dir: results root (default `store.results_dir()`); runs go to
            `<out_dir>/<grid>/<model>-<act>[-seed<n>]/`.
        notebook: the notebook to execute (default `train_notebook()`).
        jobs: runs executed in parallel (each uses all cores it is given).
        parameters: extra notebook parameters (e.g. `{"preset": "quick"}`).
        acts: restrict to these activations.
        seeds: one run per seed (folders of seeds other than 0 end in `-seed<n>`).
        rerun_stale: rerun finished runs whose parameters differ from this call's.

    Returns:
        dict `(model, act, seed) -> "skipped" | "finished" | "stale: <differences>" | "failed: <error>"`.
    """
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs={jobs!r} is invalid: must be an integer >= 1.")
    seeds = tuple(seeds)
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
        raise ValueError(f"seeds={seeds!r} is invalid: must be integers >= 0 (at least one).")
    runs = grid_runs(grid)
    out_dir = results_dir(out_dir)
    notebook = train_notebook() if notebook is None else notebook
    if acts:
        unknown = set(acts) - {act for _, act in runs}
        if unknown:
            raise ValueError(f"Grid {grid!r} has no activation(s) {sorted(unknown)}.")
        runs = [r for r in runs if r[1] in acts]
    parameters = dict(parameters or {})
    kernel = parameters.get("kaf_kernel", "gaussian")
    status, todo = {}, []
    for model, act in runs:
        for seed in seeds:
            key, folder = (model, act, seed), run_dir(out_dir, grid, model, act, kernel, seed)
            metrics = read_metrics(folder)
            if metrics is not None:
                wanted = expected_experiment(model, act, grid, out_dir, dict(parameters, seed=seed))
                differences = parameter_differences(metrics, wanted)
                if not differences:
                    status[key] = "skipped"
                    print(f"{folder.name}: finished before, skipped", flush=True)
                    continue
                changed = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in sorted(differences.items()))
                if not rerun_stale:
                    status[key] = f"stale: finished with other parameters ({changed})"
                    print(f"{folder.name}: STALE, finished with other parameters ({changed}); "
                          "rerun it with --rerun-stale", flush=True)
                    continue
                print(f"{folder.name}: stale ({changed}), running again", flush=True)
                _clear_run(folder)
            todo.append(key)
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(_run_one, model, act, grid, out_dir, dict(parameters, seed=seed),
                               Path(notebook)): (model, act, seed)
                   for model, act, seed in todo}
        for future in concurrent.futures.as_completed(futures):
            model, act, seed = key = futures[future]
            name = run_dir(out_dir, grid, model, act, kernel, seed).name
            try:
                metrics = future.result()
                status[key] = "finished"
                print(f"{name}: clean {100 * metrics['clean_acc']:.2f}%, "
                      f"robust {100 * metrics['robust_acc']:.2f}%"
                      + (f" (stopped early: {metrics['diverged']})" if metrics.get("diverged") else ""), flush=True)
            except Exception as err:  # one failed run must not stop the grid
                status[key] = f"failed: {type(err).__name__}: {str(err).strip().splitlines()[-1:]}"
                print(f"{name}: FAILED ({status[key]}); see "
                      f"{run_dir(out_dir, grid, model, act, kernel, seed) / 'train.ipynb'}", flush=True)
    return status


def _parse_parameter(text):
    name, _, value = text.partition("=")
    if not name or not _:
        raise argparse.ArgumentTypeError(f"-p expects NAME=VALUE, got {text!r}")
    for cast in (int, float):
        try:
            return name, cast(value)
        except ValueError:
            pass
    return name, None if value == "None" else value


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m kaflib.thesis.grid", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("grid", choices=sorted(GRIDS))
    parser.add_argument("--out-dir", default=None, help="results root (default: the checkout's results/)")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel")
    parser.add_argument("--preset", default=None, help="auto, quick or thesis (default: the notebook's)")
    parser.add_argument("--act", action="append", help="only this activation (repeatable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed (default: 0)")
    parser.add_argument("--rerun-stale", action="store_true",
                        help="rerun finished runs whose parameters differ from this call's")
    parser.add_argument("-p", dest="parameters", action="append", type=_parse_parameter, default=[],
                        metavar="NAME=VALUE", help="notebook parameter (repeatable), e.g. -p epochs=5")
    args = parser.parse_args(argv)
    parameters = dict(args.parameters)
    if args.preset:
        parameters["preset"] = args.preset
    status = run_grid(args.grid, args.out_dir, args.jobs, parameters, acts=args.act, seeds=args.seeds,
                      rerun_stale=args.rerun_stale)
    failed = [f"{m}-{a} seed {s}" for (m, a, s), v in status.items() if v.startswith("failed")]
    stale = [f"{m}-{a} seed {s}" for (m, a, s), v in status.items() if v.startswith("stale")]
    done = len(status) - len(failed) - len(stale)
    print(f"{done} of {len(status)} runs done" + (f"; failed: {', '.join(failed)}" if failed else "")
          + (f"; stale (use --rerun-stale): {', '.join(stale)}" if stale else ""))
    return 1 if failed or stale else 0


if __name__ == "__main__":
    sys.exit(main())
