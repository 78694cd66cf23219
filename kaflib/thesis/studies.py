"""The thesis' side studies, each one command writing one JSON results file.

    python -m kaflib.thesis.studies pgd-iterations results/thesis-vgg/vgg-relu
    python -m kaflib.thesis.studies lr-range --model resnet20 --act relu
    python -m kaflib.thesis.studies grad-norms --model resnet56 --act kaf --steps 150
    python -m kaflib.thesis.studies deep-kaf --model resnet56 --act kaf_smooth --epochs 10
    python -m kaflib.thesis.studies lipschitz thesis-resnet20
    python -m kaflib.thesis.studies masking-checks thesis-resnet20 --test-size 256
    python -m kaflib.thesis.studies masking-checks thesis-checkpoints --checkpoints CHECKPOINTS_DIR
    python -m kaflib.thesis.studies pgd-curves thesis-resnet20 --test-size 256
    python -m kaflib.thesis.studies apgd thesis-resnet20 --test-size 256

* ``pgd-iterations``: ART PGD robust accuracy of a finished run's model for
  several iteration counts (thesis "pgditers"); writes `pgd_iterations.json`
  into the run folder.
* ``lr-range``: the learning-rate range test the thesis used to choose the
  one-cycle bounds; writes `results/lr-range/<model>-<act>.json` (an interrupted test resumes
  from its state, saved every 5 steps in `results/lr-range/checkpoint/`).
* ``grad-norms``: per-layer gradient norms over the first steps of standard
  training (thesis "explgrad", "15grad"); writes
  `results/exploding-gradients/<model>-<act>.json`.
* ``deep-kaf``: can a deep KAF ResNet be trained? At initialisation, each
  layer's gradient norm on one batch and each KAF's slope statistics; then
  standard training with per-epoch clean accuracy (checkpointed per epoch,
  resumable); a divergence (non-finite gradient) is recorded, not raised.
  Writes `results/deep-kaf/<model>-<act>.json`.
* ``init-signal``: at initialisation, on one batch, each activation layer's
  output scale and the share of its variation that comes from the image, in
  training and inference mode (`kaflib.propagation`); writes
  `results/init-signal/<model>-<act>.json`.
* ``lipschitz``: for every finished run of a grid, the Lipschitz constant of
  each activation layer (KAFs: numeric and analytic, see `kaflib.lipschitz`)
  and the network's product bound, next to its clean and robust accuracy.
  Writes `results/lipschitz/<grid>.json` (rows: one per run; `layers`: one
  per activation layer).
* ``masking-checks``: gradient-masking checks on every finished run of a grid
  (`kaflib.masking`: PGD accuracy vs eps, black-box Square vs white-box PGD,
  transfer from and to the grid's ReLU model, and the smoothed-surrogate
  attack on Gaussian-KAF models); runs that did not train (clean accuracy
  below `runs.MIN_TRAINED_CLEAN`) are listed under `skipped`. Writes
  `results/masking/<grid>.json` (rows: one per model; `sweep`: the eps sweep).
  `masking-checks thesis-checkpoints --checkpoints CHECKPOINTS_DIR`
  checks the published ResNet20 of each activation (`THESIS_CHECKPOINTS`).
* ``pgd-curves``: PGD accuracy after 5 to 100 iterations of one run, for the
  same models as ``masking-checks`` (does the attack converge?); writes
  `results/pgd-curves/<grid>.json`.
* ``apgd``: APGD-CE and, on its survivors, targeted APGD-DLR (3 targets) for
  every trained run of a grid; writes `results/apgd/<grid>.json`.

Each file holds the parameters, data sizes, seed, library versions, wall time
and the rows; it is written atomically, and a study whose file exists is
skipped (pass --force to redo it).
"""

import argparse
import shutil
import sys
import time
from pathlib import Path

import pandas as pd

from kaflib.models import random_kaf_stddev
from kaflib.thesis import store
from kaflib.thesis.store import read_study

__all__ = ["STUDY_RECIPE", "study_name", "lr_range_name", "pgd_iterations", "lr_range", "grad_norms", "init_signal", "deep_kaf", "kaf_slopes", "lipschitz", "masking", "pgd_curves",
           "apgd", "read_study", "THESIS_CHECKPOINTS"]


def pgd_iterations(run_dir, iterations=(5, 10, 20, 50, 100, 150), test_size=None, restarts=1,
                   seed=0, data_dir=None, force=False):
    """Robust accuracy of `<run_dir>/model.keras` under ART PGD for each iteration count."""
    import keras

    from kaflib.evaluate import robust_accuracy
    from kaflib.thesis.experiment import read_metrics
    from kaflib.thesis.preset_images import load_preset_images

    run_dir = Path(run_dir)
    out = run_dir / "pgd_iterations.json"
    metrics = read_metrics(run_dir)
    if metrics is None:
        raise FileNotFoundError(f"{run_dir} holds no finished run (no metrics.json).")
    if (done := store.finished_study(out, force)) is not None:
        return done
    started = time.perf_counter()
    p = metrics["parameters"]
    test_size = test_size if test_size is not None else p["test_size"]
    images = load_preset_images(p["preset"], data_dir or p["data_dir"], train_size=0, test_size=test_size)
    x, y = images.test
    model = keras.models.load_model(run_dir / "model.keras")
    rows = pd.DataFrame([dict(iterations=k, robust_acc=robust_accuracy(
        model, x, y, eps=p["eps"], step=p["pgd_step"], steps=int(k), restarts=restarts, seed=seed,
        progress=False)) for k in iterations])
    parameters = dict(run_dir=str(run_dir), iterations=list(iterations), restarts=restarts, seed=seed,
                      eps=p["eps"], step=p["pgd_step"], labels="true", loss="cross-entropy on logits")
    store.write_study(out, parameters, images.record(), rows, started)
    return read_study(out)


#: The layers the lr-range, grad-norms and deep-kaf studies were first measured with
#: (`kaflib.models.LAYER_RECIPES`); another recipe is named in the study's file name.
STUDY_RECIPE = "he-bn0.9"


def study_name(model, act, kaf_random_stddev="thesis", recipe=STUDY_RECIPE):
    """`<model>-<act>[-std<s>][-<recipe>]`: the file name (without .json) of a per-model
    study. Randomly initialised KAFs (kaf, kaf_free) always carry their coefficients'
    standard deviation, so runs of different inits never share a file; a layer recipe
    other than `STUDY_RECIPE` is named too."""
    from kaflib.kaf import random_stddev_value
    from kaflib.models import LAYER_RECIPES, RANDOM_INIT_KAFS

    if recipe not in LAYER_RECIPES:
        raise ValueError(f"recipe={recipe!r} is invalid: must be one of {', '.join(LAYER_RECIPES)}.")
    stddev = random_stddev_value(kaf_random_stddev, name="kaf_random_stddev")
    name = f"{model}-{act}" + (f"-std{stddev:g}" if act in RANDOM_INIT_KAFS else "")
    return name + ("" if recipe == STUDY_RECIPE else f"-{recipe}")


def _study_images(data_dir, train_size, test_size):
    """The images of a study: the `quick` preset's, the mini scale every study is measured at
    (`kaflib.thesis.preset_images`); its `record()` goes into the study's file."""
    from kaflib.thesis.preset_images import load_preset_images

    return load_preset_images("quick", data_dir, train_size=train_size, test_size=test_size)


def _study_model(model, act, kaf_random_stddev, recipe):
    from kaflib.models import build_model

    return lambda: build_model(model, act, recipe=recipe, kaf_random_stddev=kaf_random_stddev)


def lr_range(model="resnet20", act="relu", method=None, steps=100, start_lr=1e-4, end_lr=10.0,
             train_size=None, seed=0, data_dir=None, out_dir=None, force=False, kaf_random_stddev="thesis",
             recipe=STUDY_RECIPE, momentum=0.9):
    """The learning-rate range test of one model/activation, with its training method."""
    import keras

    from kaflib.thesis.experiment import METHOD
    from kaflib.train import TrainConfig, lr_range_test

    out = store.study_path("lr-range", lr_range_name(model, act, kaf_random_stddev, recipe, momentum), out_dir)
    if (done := store.finished_study(out, force)) is not None:
        return done
    started = time.perf_counter()
    method = method or METHOD[model]
    images = _study_images(data_dir, train_size=train_size, test_size=0)
    x, y = images.train
    keras.utils.set_random_seed(seed)
    config = TrainConfig(method=method, augment=model.startswith("resnet"), seed=seed, momentum=momentum)
    # the test's state, every 5 steps, beside the results (ignored by git): an interrupted test resumes
    checkpoint = out.parent / "checkpoint" / out.stem
    rows = lr_range_test(_study_model(model, act, kaf_random_stddev, recipe), (x, y), config, start_lr=start_lr,
                         end_lr=end_lr, steps=steps, checkpoint_dir=checkpoint)
    parameters = dict(model=model, act=act, method=method, steps=steps, start_lr=start_lr, end_lr=end_lr,
                      batch_size=config.batch_size, eps=config.eps, seed=seed, momentum=momentum, recipe=recipe,
                      kaf_random_stddev=random_kaf_stddev(act, kaf_random_stddev))
    store.write_study(out, parameters, images.record(), rows, started)
    shutil.rmtree(checkpoint, ignore_errors=True)
    return read_study(out)


def grad_norms(model="resnet56", act="kaf", steps=150, batch_size=128, learning_rate=0.05,
               train_size=None, seed=0, data_dir=None, out_dir=None, force=False, kaf_random_stddev="thesis",
               recipe=STUDY_RECIPE):
    """Per-layer gradient norms over the first `steps` steps of standard training."""
    import keras

    from kaflib.gradients import gradient_norm_trace

    out = store.study_path("exploding-gradients", study_name(model, act, kaf_random_stddev, recipe), out_dir)
    if (done := store.finished_study(out, force)) is not None:
        return done
    started = time.perf_counter()
    images = _study_images(data_dir, train_size=train_size, test_size=0)
    x, y = images.train
    keras.utils.set_random_seed(seed)
    rows = gradient_norm_trace(_study_model(model, act, kaf_random_stddev, recipe)(), x, y, steps=steps,
                               batch_size=batch_size, learning_rate=learning_rate, seed=seed)
    parameters = dict(model=model, act=act, method="standard", steps=steps, batch_size=batch_size,
                      learning_rate=learning_rate, momentum=0.9, seed=seed, recipe=recipe,
                      kaf_random_stddev=random_kaf_stddev(act, kaf_random_stddev))
    store.write_study(out, parameters, images.record(), rows, started)
    return read_study(out)


def init_signal(model="resnet20", act="kaf", batch_size=128, seed=0, data_dir=None, out_dir=None, force=False,
                kaf_random_stddev="thesis", recipe=STUDY_RECIPE):
    """Activation scale and image dependence at initialisation, on one batch of training
    images (`kaflib.propagation.activation_signal`), in training and inference mode."""
    import keras

    from kaflib.data import fingerprint, load_cifar10
    from kaflib.propagation import activation_signal

    out = store.study_path("init-signal", study_name(model, act, kaf_random_stddev, recipe), out_dir)
    if (done := store.finished_study(out, force)) is not None:
        return done
    started = time.perf_counter()
    # the first training images in the official order: the same in every CIFAR-10 folder
    (x, y), _ = load_cifar10(data_dir, test_size=1)
    x, y = x[:batch_size], y[:batch_size]
    keras.utils.set_random_seed(seed)
    rows = activation_signal(_study_model(model, act, kaf_random_stddev, recipe)(), x)
    parameters = dict(model=model, act=act, batch_size=batch_size, seed=seed, recipe=recipe,
                      kaf_random_stddev=random_kaf_stddev(act, kaf_random_stddev))
    data = dict(name=f"CIFAR-10, the first {len(y)} training images", fingerprint=fingerprint(x, y), images=len(y))
    store.write_study(out, parameters, data, rows, started)
    return read_study(out)


def lr_range_name(model, act, kaf_random_stddev="thesis", recipe=STUDY_RECIPE, momentum=0.9):
    """The file name (without .json) of an `lr_range` study: `study_name` and, for a momentum
    other than 0.9, `-momentum<m>`."""
    return study_name(model, act, kaf_random_stddev, recipe) + _momentum_suffix(momentum)


def _momentum_suffix(momentum):
    return "" if momentum == 0.9 else f"-momentum{momentum:g}"


def kaf_slopes(model, lo=-4.0, hi=4.0, points=801):
    """Slope statistics of every KAF layer of `model` on `[lo, hi]` (finite
    differences on `points` inputs): DataFrame with layer, depth (1 = nearest
    the input), channels, max_slope (max over channels of max |f'|),
    median_slope (median over channels of max |f'|), amplitude (median over
    channels of the std of f on [-2, 2])."""
    import numpy as np
    from keras import ops

    from kaflib.kaf import KAF

    x = np.linspace(lo, hi, points, dtype="float32")
    rows = []
    for depth, layer in enumerate((layer for layer in model.layers if isinstance(layer, KAF)), start=1):
        channels = layer.alpha.shape[0]
        f = ops.convert_to_numpy(layer(np.repeat(x[:, None], channels, axis=1)))
        slope = np.abs(np.diff(f, axis=0) / np.diff(x)[:, None]).max(axis=0)
        inner = np.abs(x) <= 2
        rows.append(dict(layer=layer.name, depth=depth, channels=channels, max_slope=float(slope.max()),
                         median_slope=float(np.median(slope)), amplitude=float(np.median(f[inner].std(axis=0)))))
    return pd.DataFrame(rows)


def _init_gradient_norms(model, images, labels):
    """Per-layer gradient norm (all of a layer's weights) of the cross-entropy on one batch."""
    import tensorflow as tf

    from kaflib.attacks import cross_entropy

    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(cross_entropy(labels, model(images, training=True)))
    grads = dict(zip((id(v) for v in model.trainable_variables), tape.gradient(loss, model.trainable_variables)))
    weighted = [layer for layer in model.layers if layer.trainable_weights]
    return pd.DataFrame([dict(layer=layer.name, depth=d + 1,
                              norm=float(tf.linalg.global_norm([grads[id(v)] for v in layer.trainable_weights])))
                         for d, layer in enumerate(weighted)])


def deep_kaf(model="resnet56", act="kaf_smooth", epochs=10, max_lr=0.1, train_size=None, test_size=None,
             seed=0, data_dir=None, out_dir=None, force=False, progress=True, kaf_random_stddev="thesis",
             recipe=STUDY_RECIPE):
    """Initialisation diagnostics and standard training of one model/activation."""
    import keras
    import tensorflow as tf

    from kaflib.train import TrainConfig, TrainingDiverged, fit

    name = study_name(model, act, kaf_random_stddev, recipe)
    out = store.study_path("deep-kaf", name, out_dir)
    if (done := store.finished_study(out, force)) is not None:
        return done
    started = time.perf_counter()
    images = _study_images(data_dir, train_size=train_size, test_size=test_size)
    (x, y), test = images.train, images.test
    config = TrainConfig(method="standard", epochs=epochs, max_lr=max_lr, augment=model.startswith("resnet"),
                         seed=seed, eval_size=32, stop_on_collapse=False)
    keras.utils.set_random_seed(seed)  # as `fit` does: the same initial weights
    build = _study_model(model, act, kaf_random_stddev, recipe)
    net = build()
    batch = slice(0, config.batch_size)
    norms = _init_gradient_norms(net, tf.constant(x[batch]), tf.constant(y[batch]))
    slopes = kaf_slopes(net)
    checkpoint = out.parent / "checkpoint" / name
    diverged = None
    try:
        history = fit(build, (x, y), test, config, checkpoint_dir=checkpoint,
                      progress=progress).history
    except TrainingDiverged as err:
        diverged = str(err)
        csv = checkpoint / "history.csv"
        history = pd.read_csv(csv) if csv.exists() else pd.DataFrame(columns=["epoch", "test_clean_acc"])
    parameters = dict(model=model, act=act, method="standard", epochs=epochs, max_lr=max_lr,
                      batch_size=config.batch_size, augment=config.augment, seed=seed, recipe=recipe,
                      kaf_random_stddev=random_kaf_stddev(act, kaf_random_stddev))
    store.write_study(out, parameters, images.record(), history, started,
           diverged=diverged, init_gradient_norms=norms.to_dict(orient="records"),
           init_kaf_slopes=slopes.to_dict(orient="records"))
    return read_study(out)


def _finished_runs(root, grid):
    """[(model, act, folder)] of the finished runs of `grid` under `root`, in grid order."""
    from kaflib.thesis.experiment import run_dir
    from kaflib.thesis.grid import grid_runs

    runs = [(m, a, run_dir(root, grid, m, a)) for m, a in grid_runs(grid)]
    finished = [(m, a, folder) for m, a, folder in runs if (folder / "metrics.json").is_file()]
    if not finished:
        raise FileNotFoundError(f"No finished run of grid {grid!r} under {root}.")
    return finished


def lipschitz(grid, results=None, force=False, progress=True):
    """Lipschitz constants of every finished run of `grid` (thesis ch. 4.1, 6.1)."""
    import keras
    import numpy as np
    from tqdm.auto import tqdm

    from kaflib.kaf import KAF
    from kaflib.lipschitz import kaf_lipschitz, network_lipschitz
    from kaflib.thesis.runs import load_run

    root = store.results_dir(results)
    out = store.study_path("lipschitz", grid, root)
    if (done := store.finished_study(out, force)) is not None:
        return done
    started = time.perf_counter()
    runs, layers = [], []
    for model_name, act, folder in tqdm(_finished_runs(root, grid), desc="Lipschitz", disable=not progress):
        run = load_run(folder)
        model = keras.models.load_model(folder / "model.keras")
        bound, table = network_lipschitz(model)
        activations = table[table["kind"] == "activation"]
        for depth, row in enumerate(activations.itertuples(), start=1):
            layer = model.get_layer(row.layer)
            entry = dict(model=model_name, act=act, layer=row.layer, depth=depth, numeric=row.constant)
            if isinstance(layer, KAF):
                numeric = kaf_lipschitz(layer)
                entry.update(numeric_median=float(np.median(numeric)),
                             analytic=float(kaf_lipschitz(layer, "analytic").max()))
            layers.append(entry)
        runs.append(dict(model=model_name, act=act, clean_acc=run["clean_acc"], robust_acc=run["robust_acc"],
                         network_bound=bound, log10_bound=float(np.log10(bound)),
                         max_activation=float(activations["constant"].max()),
                         epochs=run["epochs_run"], train_size=run["data"]["train"]))
    store.write_study(out, dict(grid=grid, kaf="numeric (max |f'| on a grid) and analytic (sum |alpha| sqrt(2 gamma / e))",
                     norm="L2, inference mode"), dict(runs=len(runs)), pd.DataFrame(runs), started,
           layers=layers)
    return read_study(out)


#: The published checkpoint of each activation the thesis reports (its tab. "resnetrob").
THESIS_CHECKPOINTS = {"relu": "resnet20_relu_ocrob_lrf", "elu": "resnet20_elu_ocrob_lrf",
                      "swish": "resnet20_swish_ocrob_lrf", "kaf": "resnet20_kaf_ocrob_lrfinder",
                      "kaf_relu": "resnet20_kafrelu_ocrob_lrfinder", "kaf_elu": "resnet20_kafelu_ocrob_lrf",
                      "kaf_swish": "resnet20_kafswish_ocrob_lrfinder",
                      "kaf_free": "resnet20_kafs_freedictkb_ocrob_lrfinder"}


def _checkpoint_twins(folder):
    """{activation: float32 twin} of `THESIS_CHECKPOINTS` found in `folder`."""
    from kaflib.thesis.checkpoints import load_checkpoint

    folder = Path(folder)
    found = {act: folder / f"{stem}.zip" for act, stem in THESIS_CHECKPOINTS.items()
             if (folder / f"{stem}.zip").is_file()}
    if not found:
        raise FileNotFoundError(f"checkpoints={str(folder)!r} holds none of {sorted(THESIS_CHECKPOINTS.values())}.")
    return {act: load_checkpoint(path, dtype_policy="float32") for act, path in found.items()}


def _trained_models(root, grid, checkpoints, command):
    """(models, skipped, extra parameters) to check: the finished runs of `grid`
    that trained (clean accuracy at least `runs.MIN_TRAINED_CLEAN`; the others
    are in `skipped` with the reason), or for `thesis-checkpoints` the float32
    twins of the published ResNet20s in the folder `checkpoints`."""
    import keras

    from kaflib.thesis.runs import MIN_TRAINED_CLEAN

    if grid == "thesis-checkpoints":
        if checkpoints is None:
            raise ValueError(f"{command} thesis-checkpoints needs checkpoints=<folder of the thesis' zips>.")
        models = _checkpoint_twins(checkpoints)
        return models, {}, dict(checkpoints={act: THESIS_CHECKPOINTS[act] for act in models})
    models, skipped = {}, {}
    for _, act, folder in _finished_runs(root, grid):
        clean = store.read_json(folder / "metrics.json")["clean_acc"]
        if clean < MIN_TRAINED_CLEAN:  # a constant classifier has no gradient to hide
            skipped[act] = f"did not train: {100 * clean:.1f}% clean accuracy"
        else:
            models[act] = keras.models.load_model(folder / "model.keras")
    return models, skipped, {}


class _GridStudy:
    """A study of every trained model of a grid (or of the published checkpoints): the
    models, the test images, and the per-model progress saved as each model finishes
    (`store.PartialStudy`, keyed by `key` and the number of test images)."""

    def __init__(self, out, grid, checkpoints, test_size, data_dir, command, key):
        started = time.perf_counter()
        self.out = out
        self.models, self.skipped, self.extra = _trained_models(out.parent.parent, grid, checkpoints, command)
        self.images = _study_images(data_dir, train_size=0, test_size=test_size)
        self.x, self.y = self.images.test
        self.partial = store.PartialStudy(out, dict(test=len(self.y), **key), started)

    def each_model(self, measure, desc, progress=True):
        return store.each_model(self.partial, self.models, measure, desc, progress)

    def write(self, parameters, rows, **extra):
        """Write the study's file, drop the progress file; (metadata, rows) as `read_study`."""
        store.write_study(self.out, parameters, self.images.record(), rows, self.partial.started, **extra)
        self.partial.finish()
        return read_study(self.out)


def masking(grid, test_size=256, square_iter=1000, results=None, seed=0, data_dir=None, force=False,
            progress=True, checkpoints=None):
    """`kaflib.masking.masking_checks` on every finished run of `grid`.

    `grid="thesis-checkpoints"` checks the published ResNet20s of
    `THESIS_CHECKPOINTS` instead, from the folder `checkpoints`, as float32
    twins (the float16 originals' own gradients are checked by
    `kaflib.thesis.audit`).
    """
    from kaflib.masking import EPS_SWEEP, masking_checks

    out = store.study_path("masking", grid, results)
    if (done := store.finished_study(out, force)) is not None:
        return done
    study = _GridStudy(out, grid, checkpoints, test_size, data_dir, "masking-checks",
                       dict(square_iter=square_iter, seed=seed))
    done = {name: (row, pd.DataFrame(sweep)) for name, (row, sweep) in study.partial.done.items()}

    def save(name, row, model_sweep):
        study.partial.save(name, (row, model_sweep.to_dict(orient="records")))

    summary, sweep = masking_checks(study.models, study.x, study.y, square_iter=square_iter, seed=seed,
                                    progress=progress, done=done, on_model=save)
    parameters = dict(grid=grid, eps=8 / 255, pgd="ART PGD-50, step 2/255, 1 restart, true labels, logits",
                      square=f"ART SquareAttack L-inf, {square_iter} queries, 1 restart",
                      eps_sweep=list(EPS_SWEEP),
                      sweep_attack="kaflib PGD-20, step 2.5 eps / 20, increasing eps, survivors attacked again",
                      transfer="ART PGD-50 images crafted on the relu run", surrogate="ART PGD-50 on the "
                      "smoothed twin (sigma 0.3), judged on the model", skipped=study.skipped, seed=seed,
                      **study.extra)
    return study.write(parameters, summary.reset_index(), sweep=sweep.to_dict(orient="records"))


def pgd_curves(grid, test_size=256, iterations=(5, 10, 20, 50, 100), results=None, seed=0, data_dir=None,
               force=False, progress=True, checkpoints=None):
    """`kaflib.masking.pgd_iteration_curve` (eps 8/255, step 2/255) for every trained
    run of `grid` (or the published checkpoints, as in `masking`): does PGD
    converge? Saves each model as it finishes; an interrupted call resumes."""
    from kaflib.masking import pgd_iteration_curve

    out = store.study_path("pgd-curves", grid, results)
    if (done := store.finished_study(out, force)) is not None:
        return done
    study = _GridStudy(out, grid, checkpoints, test_size, data_dir, "pgd-curves",
                       dict(iterations=list(iterations), seed=seed))
    done = study.each_model(lambda name, model: pgd_iteration_curve(
        model, study.x, study.y, iterations=iterations, seed=seed).assign(model=name).to_dict(orient="records"),
        "PGD curves", progress)
    rows = pd.DataFrame([r for curve in done.values() for r in curve], columns=["model", "iterations", "accuracy"])
    parameters = dict(grid=grid, eps=8 / 255, step=2 / 255, iterations=list(iterations),
                      attack="kaflib compiled PGD, one random start, checked after each count; true labels, logits",
                      skipped=study.skipped, seed=seed, **study.extra)
    return study.write(parameters, rows)


def apgd(grid, test_size=256, targets=3, results=None, seed=0, data_dir=None, force=False, progress=True):
    """APGD-CE, then targeted APGD with the DLR loss on its survivors
    (`kaflib.evaluate.apgd_robust`, AutoAttack's cascade) on every trained
    run of `grid`: the grid models' APGD, next to the masking checks. (The
    published checkpoints have theirs in the checkpoint audit.)"""
    import numpy as np

    from kaflib.evaluate import apgd_robust

    if grid == "thesis-checkpoints":
        raise ValueError("apgd grid='thesis-checkpoints' is invalid: the checkpoint audit "
                         "(python -m kaflib.thesis.audit) runs APGD on the published models.")
    out = store.study_path("apgd", grid, results)
    if (done := store.finished_study(out, force)) is not None:
        return done
    study = _GridStudy(out, grid, None, test_size, data_dir, "apgd", dict(targets=targets, seed=seed))

    def measure(name, model):
        ce = apgd_robust(model, study.x, study.y, "cross_entropy", seed=seed)
        both = apgd_robust(model, study.x, study.y, "dlr_targeted", targets=targets, seed=seed, robust=ce)
        return dict(model=name, apgd_ce=float(np.mean(ce)), apgd_dlr_t=float(np.mean(both)))

    done = study.each_model(measure, "APGD", progress)
    parameters = dict(grid=grid, eps=8 / 255, apgd_ce="ART APGD-CE, 100 iterations, step 2 eps, 1 restart",
                      apgd_dlr_t=f"ART APGD, DLR loss, targeted at the {targets} likeliest wrong classes, on the "
                      "images that survived APGD-CE (robust to both)", skipped=study.skipped, seed=seed)
    return study.write(parameters, pd.DataFrame(list(done.values())))


def _stddev_argument(text):
    try:
        return float(text)
    except ValueError:
        return text


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m kaflib.thesis.studies", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="study", required=True)
    p = sub.add_parser("pgd-iterations", help="PGD accuracy vs iterations of a finished run")
    p.add_argument("run_dir")
    p.add_argument("--iterations", type=int, nargs="+", default=[5, 10, 20, 50, 100, 150])
    p.add_argument("--test-size", type=int)
    p.add_argument("--restarts", type=int, default=1)
    for name in ("lr-range", "grad-norms", "deep-kaf", "init-signal"):
        q = sub.add_parser(name)
        q.add_argument("--model", default="resnet56" if name in ("grad-norms", "deep-kaf") else "resnet20")
        q.add_argument("--act", default={"lr-range": "relu", "grad-norms": "kaf", "deep-kaf": "kaf_smooth",
                                         "init-signal": "kaf"}[name])
        if name == "init-signal":
            q.add_argument("--batch-size", type=int, default=128)
        elif name == "deep-kaf":
            q.add_argument("--epochs", type=int, default=10)
            q.add_argument("--max-lr", type=float, default=0.1)
            q.add_argument("--test-size", type=int)
        else:
            q.add_argument("--steps", type=int, default=100 if name == "lr-range" else 150)
        if name != "init-signal":
            q.add_argument("--train-size", type=int)
        q.add_argument("--out-dir", default="results")
        q.add_argument("--kaf-random-stddev", type=_stddev_argument, default="thesis",
                       help="random KAF coefficients' std: a number, 'thesis' (0.05) or 'kafnets' (0.8)")
        q.add_argument("--recipe", default=STUDY_RECIPE, help="layer recipe (kaflib.models.LAYER_RECIPES)")
        if name == "lr-range":
            q.add_argument("--momentum", type=float, default=0.9)
    q = sub.add_parser("lipschitz", help="Lipschitz constants of a grid's finished runs")
    q.add_argument("grid")
    for name, text in [("masking-checks", "gradient-masking checks"), ("pgd-curves", "PGD accuracy vs iterations"),
                       ("apgd", "APGD-CE and APGD-T")]:
        q = sub.add_parser(name, help=f"{text} of a grid's trained runs")
        q.add_argument("grid", help="a grid" + ("" if name == "apgd" else
                                                ", or thesis-checkpoints (with --checkpoints)"))
        if name != "apgd":
            q.add_argument("--checkpoints", help="folder of the thesis' checkpoint zips (for thesis-checkpoints)")
        q.add_argument("--test-size", type=int, default=256)
    sub.choices["masking-checks"].add_argument("--square-iter", type=int, default=1000)
    sub.choices["apgd"].add_argument("--targets", type=int, default=3)
    grid_studies = ("masking-checks", "pgd-curves", "apgd")
    for q in sub.choices.values():
        if q.prog.endswith(grid_studies):
            q.add_argument("--seed", type=int, default=0)
            q.add_argument("--data-dir")
        if q.prog.endswith(("lipschitz",) + grid_studies):
            q.add_argument("--force", action="store_true", help="redo a study whose file exists")
            continue
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--data-dir")
        q.add_argument("--force", action="store_true", help="redo a study whose file exists")
    args = vars(parser.parse_args(argv))
    study = args.pop("study")
    function = {"pgd-iterations": pgd_iterations, "lr-range": lr_range, "grad-norms": grad_norms,
                "deep-kaf": deep_kaf, "init-signal": init_signal, "lipschitz": lipschitz, "masking-checks": masking,
                "pgd-curves": pgd_curves, "apgd": apgd}[study]
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
