"""The thesis' side studies, each one command writing one JSON results file.

    python -m kaflib.studies pgd-iterations results/thesis-vgg/vgg-relu
    python -m kaflib.studies lr-range --model resnet20 --act relu
    python -m kaflib.studies grad-norms --model resnet56 --act kaf --steps 150

* ``pgd-iterations``: ART PGD robust accuracy of a finished run's model for
  several iteration counts (thesis "pgditers"); writes `pgd_iterations.json`
  into the run folder.
* ``lr-range``: the learning-rate range test the thesis used to choose the
  one-cycle bounds; writes `results/lr-range/<model>-<act>.json`.
* ``grad-norms``: per-layer gradient norms over the first steps of standard
  training (thesis "explgrad", "15grad"); writes
  `results/exploding-gradients/<model>-<act>.json`.

Each file holds the parameters, data sizes, seed, library versions, wall time
and the rows; it is written atomically, and a study whose file exists is
skipped (pass --force to redo it).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from kaflib.files import write_atomic

__all__ = ["pgd_iterations", "lr_range", "grad_norms", "read_study"]


def _write(path, parameters, data, rows, started):
    from kaflib.experiment import _json_default, environment

    payload = dict(parameters=parameters, data=data, seconds=time.perf_counter() - started,
                   environment=environment(), rows=rows.to_dict(orient="records"))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda p: p.write_text(json.dumps(payload, indent=1, default=_json_default) + "\n"))
    return payload


def read_study(path):
    """(metadata dict, rows DataFrame) of a study file, or None if it does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    payload = json.loads(path.read_text())
    return payload, pd.DataFrame(payload.pop("rows"))


def pgd_iterations(run_dir, iterations=(5, 10, 20, 50, 100, 150), test_size=None, restarts=1,
                   seed=0, data_dir=None, force=False):
    """Robust accuracy of `<run_dir>/model.keras` under ART PGD for each iteration count."""
    import keras

    from kaflib.data import load_cifar10
    from kaflib.evaluate import robust_accuracy
    from kaflib.experiment import read_metrics

    run_dir = Path(run_dir)
    out = run_dir / "pgd_iterations.json"
    metrics = read_metrics(run_dir)
    if metrics is None:
        raise FileNotFoundError(f"{run_dir} holds no finished run (no metrics.json).")
    if out.exists() and not force:
        return read_study(out)
    started = time.perf_counter()
    p = metrics["parameters"]
    test_size = test_size if test_size is not None else p["test_size"]
    _, (x, y) = load_cifar10(data_dir or p["data_dir"], train_size=1, test_size=test_size)
    model = keras.models.load_model(run_dir / "model.keras")
    rows = pd.DataFrame([dict(iterations=k, robust_acc=robust_accuracy(
        model, x, y, eps=p["eps"], step=p["pgd_step"], steps=int(k), restarts=restarts, seed=seed,
        progress=False)) for k in iterations])
    parameters = dict(run_dir=str(run_dir), iterations=list(iterations), restarts=restarts, seed=seed,
                      eps=p["eps"], step=p["pgd_step"], labels="true", loss="cross-entropy on logits")
    _write(out, parameters, dict(test=len(y)), rows, started)
    return read_study(out)


def lr_range(model="resnet20", act="relu", method=None, steps=100, start_lr=1e-4, end_lr=10.0,
             train_size=None, seed=0, data_dir=None, out_dir="results", force=False):
    """The learning-rate range test of one model/activation, with its training method."""
    import keras

    from kaflib.data import load_cifar10
    from kaflib.experiment import METHOD
    from kaflib.models import build_model
    from kaflib.train import TrainConfig, lr_range_test

    out = Path(out_dir) / "lr-range" / f"{model}-{act}.json"
    if out.exists() and not force:
        return read_study(out)
    started = time.perf_counter()
    method = method or METHOD[model]
    (x, y), _ = load_cifar10(data_dir, train_size=train_size, test_size=1)
    keras.utils.set_random_seed(seed)
    config = TrainConfig(method=method, augment=model.startswith("resnet"), seed=seed)
    rows = lr_range_test(lambda: build_model(model, act), (x, y), config, start_lr=start_lr, end_lr=end_lr,
                         steps=steps)
    parameters = dict(model=model, act=act, method=method, steps=steps, start_lr=start_lr, end_lr=end_lr,
                      batch_size=config.batch_size, eps=config.eps, seed=seed)
    _write(out, parameters, dict(train=len(y)), rows, started)
    return read_study(out)


def grad_norms(model="resnet56", act="kaf", steps=150, batch_size=128, learning_rate=0.05,
               train_size=None, seed=0, data_dir=None, out_dir="results", force=False):
    """Per-layer gradient norms over the first `steps` steps of standard training."""
    import keras

    from kaflib.data import load_cifar10
    from kaflib.gradients import gradient_norm_trace
    from kaflib.models import build_model

    out = Path(out_dir) / "exploding-gradients" / f"{model}-{act}.json"
    if out.exists() and not force:
        return read_study(out)
    started = time.perf_counter()
    (x, y), _ = load_cifar10(data_dir, train_size=train_size, test_size=1)
    keras.utils.set_random_seed(seed)
    rows = gradient_norm_trace(build_model(model, act), x, y, steps=steps, batch_size=batch_size,
                               learning_rate=learning_rate, seed=seed)
    parameters = dict(model=model, act=act, method="standard", steps=steps, batch_size=batch_size,
                      learning_rate=learning_rate, momentum=0.9, seed=seed)
    _write(out, parameters, dict(train=len(y)), rows, started)
    return read_study(out)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m kaflib.studies", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="study", required=True)
    p = sub.add_parser("pgd-iterations", help="PGD accuracy vs iterations of a finished run")
    p.add_argument("run_dir")
    p.add_argument("--iterations", type=int, nargs="+", default=[5, 10, 20, 50, 100, 150])
    p.add_argument("--test-size", type=int)
    p.add_argument("--restarts", type=int, default=1)
    for name in ("lr-range", "grad-norms"):
        q = sub.add_parser(name)
        q.add_argument("--model", default="resnet20" if name == "lr-range" else "resnet56")
        q.add_argument("--act", default="relu" if name == "lr-range" else "kaf")
        q.add_argument("--steps", type=int, default=100 if name == "lr-range" else 150)
        q.add_argument("--train-size", type=int)
        q.add_argument("--out-dir", default="results")
    for q in sub.choices.values():
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--data-dir")
        q.add_argument("--force", action="store_true", help="redo a study whose file exists")
    args = vars(parser.parse_args(argv))
    study = args.pop("study")
    function = {"pgd-iterations": pgd_iterations, "lr-range": lr_range, "grad-norms": grad_norms}[study]
    try:
        meta, rows = function(**args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(rows.to_string(max_rows=20))
    print(f"{meta['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
