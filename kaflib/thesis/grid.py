"""Run the train notebook for every model/activation of a thesis grid.

    python -m kaflib.thesis.grid thesis-resnet20 --preset quick --jobs 2 --seeds 0 1 2

Each run executes `notebooks/train.ipynb` with papermill into
`<out-dir>/<grid>/<model>-<act>[-seed<n>]/train.ipynb`. Finished runs (a
`metrics.json` exists) are skipped when they ran with the parameters this
call would use; unfinished ones resume from their last epoch checkpoint. A
finished run whose parameters differ (another preset version, another KAF
init, other images: another fingerprint of the data, ...) is never silently
taken for the new one: it is reported as stale, with the differences, and
rerun only with `--rerun-stale` (its old files stay in git's history). Failed
runs are reported and the others go on.

Runs are tasks of a Dask distributed cluster (one task = one papermill run):

    python -m kaflib.thesis.grid thesis-vgg --jobs 2                       # this machine
    python -m kaflib.thesis.grid thesis-vgg --scheduler tcp://head:8786    # a running cluster
    python -m kaflib.thesis.grid thesis-vgg --jobqueue slurm --jobs 8      # Slurm via dask-jobqueue

Without `--scheduler` (or `$KAFLIB_DASK_SCHEDULER`) and `--jobqueue` the runner
starts a local cluster of `--jobs` single-threaded worker processes and needs
no server. `--jobqueue slurm|pbs|sge|lsf` submits `--jobs` batch jobs, one
worker each, configured by dask-jobqueue's own file
(`~/.config/dask/jobqueue.yaml`: queue, account, cores, memory, walltime,
`job_extra_directives` such as `--gres=gpu:1`, `worker_extra_args` such as
`--resources GPU=1`). A run of the `thesis` preset asks for the resource
`GPU=1`, so on a cluster it goes only to workers started with
`--resources GPU=1`. A run whose worker dies is rescheduled by Dask on another
worker, and a run that fails is retried `--retries` times; either way it
resumes from its last epoch checkpoint, and the summary reports every run
that needed more than one attempt (`attempts.log` in its folder lists them).
"""

import argparse
import os
import shutil
import socket
import sys
from pathlib import Path

from kaflib.checks import check, is_int
from kaflib.files import utc_now
from kaflib.thesis.experiment import (RUN_PARAMETERS, data_differences, load_images, notebook_defaults,
                                      parameter_differences, read_metrics, resolve, run_dir, visible_gpus)
from kaflib.thesis.parameters import describe_type, parse_value
from kaflib.thesis.store import repository_root, results_dir

__all__ = ["GRIDS", "JOBQUEUES", "dask_client", "grid_runs", "run_grid", "train_notebook"]


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
    """One run: execute the notebook into the run folder (a Dask task). Each call
    appends a line to `attempts.log` first, so retries are on record.

    A run that another grid command finished while this one waited in the queue
    is returned as it is, not run again (stale runs were cleared before queuing).
    """
    import papermill

    folder = run_dir(out_dir, grid, model, act, _kernel(parameters), parameters.get("seed", 0))
    if (finished := read_metrics(folder)) is not None:
        return finished
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "attempts.log", "a") as log:
        log.write(f"{utc_now()} {socket.gethostname()} pid {os.getpid()}\n")
    papermill.execute_notebook(
        str(notebook), str(folder / "train.ipynb"),
        parameters=dict(parameters, model=model, act=act, grid=grid, out_dir=str(Path(out_dir).resolve())),
        cwd=str(notebook.parent), progress_bar=False)
    return read_metrics(folder)


def expected_experiment(model, act, grid, out_dir, parameters):
    """The `Experiment` the notebook will resolve for one run of a grid: `parameters` over the
    notebook's defaults (`experiment.notebook_defaults`: the preset is `$KAFLIB_PRESET`, else "auto")."""
    return resolve(**{**notebook_defaults(), **parameters, "model": model, "act": act, "grid": grid,
                      "out_dir": str(out_dir)})


def _kernel(parameters):
    return parameters.get("kaf_kernel", notebook_defaults()["kaf_kernel"])


def _check_parameters(parameters):
    """ValueError for a name that is not a run parameter (`experiment.RUN_PARAMETERS`), naming them."""
    unknown = sorted(set(parameters) - {p.name for p in RUN_PARAMETERS})
    if unknown:
        raise ValueError(f"Unknown notebook parameter(s) {', '.join(unknown)}; the parameters are: "
                         f"{', '.join(p.name for p in RUN_PARAMETERS)}.")


def _expected_images(exp, cache):
    """The images a run of `exp` would use (`experiment.load_images`), read once per data selection."""
    key = (exp.preset, exp.data_dir, exp.train_size, exp.test_size)
    if key not in cache:
        cache[key] = load_images(exp)
    return cache[key]


def _clear_run(folder):
    """Remove a finished run's results, checkpoints and the studies of its model
    (`pgd_iterations.json`), so that it runs again from scratch."""
    for name in ("metrics.json", "history.csv", "model.keras", "train.ipynb", "attempts.log", "pgd_iterations.json"):
        (folder / name).unlink(missing_ok=True)
    shutil.rmtree(folder / "checkpoint", ignore_errors=True)


#: dask-jobqueue's cluster class for each `jobqueue` name.
JOBQUEUES = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster"}


def _attempts(folder):
    log = folder / "attempts.log"
    return len(log.read_text().splitlines()) if log.is_file() else 0


def dask_client(jobs=1, scheduler=None, jobqueue=None):
    """(client, cluster) to run a grid on; `cluster` is None for an external scheduler.

    `scheduler` (default `$KAFLIB_DASK_SCHEDULER`): address of a running Dask
    scheduler. `jobqueue`: one of `JOBQUEUES`, a dask-jobqueue cluster of `jobs`
    batch jobs. Neither: a local cluster of `jobs` worker processes.
    Raises ConnectionError naming the address when the scheduler cannot be reached.
    """
    from dask.distributed import Client, LocalCluster

    scheduler = scheduler or os.environ.get("KAFLIB_DASK_SCHEDULER") or None
    if scheduler and jobqueue:
        raise ValueError(f"scheduler={scheduler!r} and jobqueue={jobqueue!r}: give one of them, not both.")
    if jobqueue is not None:
        if jobqueue not in JOBQUEUES:
            raise ValueError(f"jobqueue={jobqueue!r} is invalid: must be one of {', '.join(JOBQUEUES)}.")
        import dask_jobqueue

        cluster = getattr(dask_jobqueue, JOBQUEUES[jobqueue])()  # ~/.config/dask/jobqueue.yaml
        cluster.scale(jobs=jobs)
        return Client(cluster), cluster
    if scheduler:
        try:
            return Client(scheduler, timeout="15s"), None
        except (OSError, TimeoutError) as err:
            raise ConnectionError(
                f"Cannot reach the Dask scheduler at {scheduler!r} ({type(err).__name__}: {err}). Start it "
                "(`dask scheduler`, then `dask worker ADDRESS`, with `--resources GPU=1` on GPU nodes), or "
                "run without --scheduler and $KAFLIB_DASK_SCHEDULER to use this machine.") from None
    cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None,
                           resources={"GPU": 1} if visible_gpus() else None)
    return Client(cluster), cluster


def _absolute_data_dir(parameters):
    """Make a relative data folder (the `data_dir` parameter, `$KAFLIB_DATA_DIR`) absolute, from
    the current folder: the runs execute in the notebook's folder, where it would mean another place."""
    if parameters.get("data_dir"):
        parameters["data_dir"] = str(Path(parameters["data_dir"]).resolve())
    if os.environ.get("KAFLIB_DATA_DIR"):
        os.environ["KAFLIB_DATA_DIR"] = str(Path(os.environ["KAFLIB_DATA_DIR"]).resolve())


def run_grid(grid, out_dir=None, jobs=1, parameters=None, notebook=None, acts=None, seeds=(0,),
             rerun_stale=False, scheduler=None, jobqueue=None, retries=2, client=None, progress=True):
    """Execute the notebook for every run of `grid` not finished yet.

    Args:
        grid: a name in `GRIDS`.
        out_dir: results root (default `store.results_dir()`); runs go to
            `<out_dir>/<grid>/<model>-<act>[-seed<n>]/`.
        notebook: the notebook to execute (default `train_notebook()`).
        jobs: runs executed in parallel: worker processes of the local cluster, or
            batch jobs with `jobqueue` (each run uses all cores it is given).
        parameters: notebook parameters (`experiment.RUN_PARAMETERS`, e.g. `{"preset": "quick"}`);
            the grid sets model, act, grid, out_dir and seed itself.
        acts: restrict to these activations.
        seeds: one run per seed (folders of seeds other than 0 end in `-seed<n>`).
        rerun_stale: rerun finished runs whose parameters differ from this call's.
        scheduler, jobqueue: where the runs go (see `dask_client`); or `client`, a
            connected `dask.distributed.Client` to use as it is.
        retries: how many times a failed run is retried (resuming); a run whose
            worker died is rescheduled by Dask as well.

    Returns:
        dict `(model, act, seed) -> "skipped" | "finished" | "stale: <differences>" | "failed: <error>"`;
        a run that needed several attempts reads "finished after <n> attempts ...".
    """
    check("jobs", jobs, is_int(jobs) and jobs >= 1, "an integer >= 1", owner="")
    check("retries", retries, is_int(retries) and retries >= 0, "an integer >= 0", owner="")
    seeds = tuple(seeds)
    check("seeds", seeds, seeds and all(is_int(s) and s >= 0 for s in seeds), "integers >= 0 (at least one)", owner="")
    seeds = tuple(int(s) for s in seeds)
    runs = grid_runs(grid)
    out_dir = results_dir(out_dir)
    notebook = train_notebook() if notebook is None else notebook
    if acts:
        unknown = set(acts) - {act for _, act in runs}
        if unknown:
            raise ValueError(f"Grid {grid!r} has no activation(s) {sorted(unknown)}.")
        runs = [r for r in runs if r[1] in acts]
    parameters = dict(parameters or {})
    _check_parameters(parameters)
    _absolute_data_dir(parameters)
    kernel = _kernel(parameters)
    status, todo, images, wanted = {}, [], {}, {}
    for model, act in runs:
        for seed in seeds:
            key, folder = (model, act, seed), run_dir(out_dir, grid, model, act, kernel, seed)
            wanted[key] = expected_experiment(model, act, grid, out_dir, dict(parameters, seed=seed))
            metrics = read_metrics(folder)
            if metrics is not None:
                differences = parameter_differences(metrics, wanted[key])
                if (metrics.get("data") or {}).get("fingerprint"):
                    differences.update(data_differences(metrics, _expected_images(wanted[key], images)))
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
    if not todo:
        return status
    own = client is None
    if own:
        client, cluster = dask_client(jobs, scheduler, jobqueue)
    try:
        _dispatch(client, todo, wanted, status, grid, out_dir, parameters, Path(notebook), kernel, retries, progress)
    finally:
        if own:
            client.close()
            if cluster is not None:
                cluster.close()
    return status


def _dispatch(client, todo, wanted, status, grid, out_dir, parameters, notebook, kernel, retries, progress):
    """Submit every run of `todo` to `client` (`wanted`: their `Experiment`s); fill `status` as they end."""
    from dask.distributed import as_completed
    from tqdm.auto import tqdm

    futures = {}
    for model, act, seed in todo:
        gpu = wanted[model, act, seed].preset == "thesis" and (not _is_local(client) or _cluster_has_gpus(client))
        futures[client.submit(_run_one, model, act, grid, out_dir, dict(parameters, seed=seed), notebook,
                              key=f"{grid}/{run_dir(out_dir, grid, model, act, kernel, seed).name}",
                              retries=retries, pure=False, resources={"GPU": 1} if gpu else None)] = (model, act, seed)
    bar = tqdm(total=len(futures), desc=f"{grid} runs", disable=not progress)
    for future in as_completed(futures):
        model, act, seed = key = futures[future]
        folder = run_dir(out_dir, grid, model, act, kernel, seed)
        attempts = _attempts(folder)
        again = (f" after {attempts} attempts (a worker died or the run failed; resumed from its checkpoint; "
                 f"see {folder / 'attempts.log'})") if attempts > 1 else ""
        try:
            metrics = future.result()
            status[key] = "finished" + again
            bar.write(f"{folder.name}: clean {100 * metrics['clean_acc']:.2f}%, robust {100 * metrics['robust_acc']:.2f}%"
                      + (f" (stopped early: {metrics['diverged']})" if metrics.get("diverged") else "") + again)
        except Exception as err:  # one failed run must not stop the grid
            status[key] = f"failed{again}: {type(err).__name__}: {str(err).strip().splitlines()[-1:]}"
            bar.write(f"{folder.name}: FAILED ({status[key]}); see {folder / 'train.ipynb'}")
        bar.update(1)
    bar.close()


def _is_local(client):
    from dask.distributed import LocalCluster

    return isinstance(client.cluster, LocalCluster)


def _cluster_has_gpus(client):
    """Whether a worker of the (local) cluster offers the resource GPU."""
    return any("GPU" in w.get("resources", {}) for w in client.scheduler_info()["workers"].values())


#: Run parameters the grid sets itself, and the option that sets them.
_SET_BY_GRID = {"model": "the grid's name", "act": "--act", "grid": "the grid's name", "out_dir": "--out-dir",
                "seed": "--seeds"}


def _parse_parameter(text):
    """``-p NAME=VALUE``: (name, value) of a run parameter, the value read by its type."""
    name, equals, value = text.partition("=")
    if not name or not equals:
        raise argparse.ArgumentTypeError(f"-p expects NAME=VALUE, got {text!r}")
    if name in _SET_BY_GRID:
        raise argparse.ArgumentTypeError(f"-p {name}: the grid sets {name} ({_SET_BY_GRID[name]})")
    parameter = next((p for p in RUN_PARAMETERS if p.name == name), None)
    if parameter is None:
        raise argparse.ArgumentTypeError(
            f"-p {name}: no such parameter; the parameters are: "
            f"{', '.join(p.name for p in RUN_PARAMETERS if p.name not in _SET_BY_GRID)}")
    try:
        return name, parse_value(parameter, value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _parameters_help():
    """The epilog listing every ``-p`` parameter (`experiment.RUN_PARAMETERS`)."""
    lines = [f"  {p.name} ({describe_type(p.type)}): {p.doc}" for p in RUN_PARAMETERS if p.name not in _SET_BY_GRID]
    return "notebook parameters (-p NAME=VALUE; None: the preset's value):\n" + "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m kaflib.thesis.grid", description=__doc__,
                                     epilog=_parameters_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("grid", choices=sorted(GRIDS))
    parser.add_argument("--out-dir", default=None, help="results root (default: the checkout's results/)")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (local workers or batch jobs)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="a running Dask scheduler, e.g. tcp://head:8786 (default: $KAFLIB_DASK_SCHEDULER, "
                             "else a local cluster)")
    parser.add_argument("--jobqueue", choices=sorted(JOBQUEUES), default=None,
                        help="start the workers as batch jobs (dask-jobqueue; ~/.config/dask/jobqueue.yaml)")
    parser.add_argument("--retries", type=int, default=2, help="retries of a failed run (default: 2)")
    preset = next(p for p in RUN_PARAMETERS if p.name == "preset")
    parser.add_argument("--preset", default=None,
                        help=f"{preset.doc} (default: ${preset.env}, else {preset.default}); the same as -p preset=...")
    parser.add_argument("--act", action="append", help="only this activation (repeatable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed (default: 0)")
    parser.add_argument("--rerun-stale", action="store_true",
                        help="rerun finished runs whose parameters differ from this call's")
    parser.add_argument("-p", dest="parameters", action="append", type=_parse_parameter, default=[],
                        metavar="NAME=VALUE", help="notebook parameter (repeatable), e.g. -p epochs=5; see below")
    args = parser.parse_args(argv)
    parameters = dict(args.parameters)
    if args.preset:
        parameters["preset"] = args.preset
    try:
        status = run_grid(args.grid, args.out_dir, args.jobs, parameters, acts=args.act, seeds=args.seeds,
                          rerun_stale=args.rerun_stale, scheduler=args.scheduler, jobqueue=args.jobqueue,
                          retries=args.retries)
    except (ConnectionError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    retried = [f"{m}-{a} seed {s}" for (m, a, s), v in status.items() if " attempts " in v]
    failed = [f"{m}-{a} seed {s}" for (m, a, s), v in status.items() if v.startswith("failed")]
    stale = [f"{m}-{a} seed {s}" for (m, a, s), v in status.items() if v.startswith("stale")]
    done = len(status) - len(failed) - len(stale)
    print(f"{done} of {len(status)} runs done" + (f"; failed: {', '.join(failed)}" if failed else "")
          + (f"; stale (use --rerun-stale): {', '.join(stale)}" if stale else "")
          + (f"; resumed from a checkpoint (an earlier attempt was interrupted or failed): {', '.join(retried)}"
             if retried else ""))
    return 1 if failed or stale else 0


if __name__ == "__main__":
    sys.exit(main())
