"""Run the train notebook for every model/activation of a thesis grid.

    python -m kaflib.grid thesis-resnet20 --preset quick --jobs 2

Each run executes `notebooks/train.ipynb` with papermill into
`<out-dir>/<grid>/<model>-<act>/train.ipynb`. Finished runs (a
`metrics.json` exists) are skipped; unfinished ones resume from their last
epoch checkpoint. Failed runs are reported and the others go on.
"""

import argparse
import concurrent.futures
import sys
from pathlib import Path

from kaflib.experiment import read_metrics, run_dir

__all__ = ["GRIDS", "grid_runs", "run_grid"]

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "train.ipynb"

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

    folder = run_dir(out_dir, grid, model, act, parameters.get("kaf_kernel", "gaussian"))
    folder.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(notebook), str(folder / "train.ipynb"),
        parameters=dict(parameters, model=model, act=act, grid=grid, out_dir=str(Path(out_dir).resolve())),
        cwd=str(notebook.parent), progress_bar=False)
    return read_metrics(folder)


def run_grid(grid, out_dir="results", jobs=1, parameters=None, notebook=NOTEBOOK, acts=None):
    """Execute the notebook for every run of `grid` not finished yet.

    Args:
        grid: a name in `GRIDS`.
        out_dir: results root; runs go to `<out_dir>/<grid>/<model>-<act>/`.
        jobs: runs executed in parallel (each uses all cores it is given).
        parameters: extra notebook parameters (e.g. `{"preset": "quick"}`).
        acts: restrict to these activations.

    Returns:
        dict `(model, act) -> "skipped" | "finished" | "failed: <error>"`.
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}.")
    runs = grid_runs(grid)
    if acts:
        unknown = set(acts) - {act for _, act in runs}
        if unknown:
            raise ValueError(f"Grid {grid!r} has no activation(s) {sorted(unknown)}.")
        runs = [r for r in runs if r[1] in acts]
    kernel = (parameters or {}).get("kaf_kernel", "gaussian")
    status, todo = {}, []
    for model, act in runs:
        if read_metrics(run_dir(out_dir, grid, model, act, kernel)) is not None:
            status[(model, act)] = "skipped"
            print(f"{model}-{act}: finished before, skipped", flush=True)
        else:
            todo.append((model, act))
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(_run_one, model, act, grid, out_dir, parameters or {}, Path(notebook)): (model, act)
                   for model, act in todo}
        for future in concurrent.futures.as_completed(futures):
            model, act = futures[future]
            try:
                metrics = future.result()
                status[(model, act)] = "finished"
                print(f"{model}-{act}: clean {100 * metrics['clean_acc']:.2f}%, "
                      f"robust {100 * metrics['robust_acc']:.2f}%"
                      + (f" (stopped early: {metrics['diverged']})" if metrics.get("diverged") else ""), flush=True)
            except Exception as err:  # one failed run must not stop the grid
                status[(model, act)] = f"failed: {type(err).__name__}: {str(err).strip().splitlines()[-1:]}"
                print(f"{model}-{act}: FAILED ({status[(model, act)]}); see "
                      f"{run_dir(out_dir, grid, model, act, kernel) / 'train.ipynb'}", flush=True)
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
    parser = argparse.ArgumentParser(prog="python -m kaflib.grid", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("grid", choices=sorted(GRIDS))
    parser.add_argument("--out-dir", default="results")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel")
    parser.add_argument("--preset", default=None, help="auto, quick or thesis (default: the notebook's)")
    parser.add_argument("--act", action="append", help="only this activation (repeatable)")
    parser.add_argument("-p", dest="parameters", action="append", type=_parse_parameter, default=[],
                        metavar="NAME=VALUE", help="notebook parameter (repeatable), e.g. -p epochs=5")
    args = parser.parse_args(argv)
    parameters = dict(args.parameters)
    if args.preset:
        parameters["preset"] = args.preset
    status = run_grid(args.grid, args.out_dir, args.jobs, parameters, acts=args.act)
    failed = [f"{m}-{a}" for (m, a), s in status.items() if s.startswith("failed")]
    print(f"{len(status) - len(failed)} of {len(status)} runs done" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
