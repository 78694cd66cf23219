"""One experiment of the thesis: parameters and presets, training, attack, results files.

`notebooks/train.ipynb` is a thin literate front-end to this module; the grid
runner (`kaflib.grid`) executes that notebook once per model/activation.
"""

import dataclasses
import datetime
import json
import math
import os
import platform
import sys
from pathlib import Path

import numpy as np

from kaflib.activations import ACTIVATIONS
from kaflib.files import write_atomic
from kaflib.models import MODELS

__all__ = ["PRESETS", "Experiment", "resolve", "run_dir", "write_results", "read_metrics", "environment"]

#: Per-preset, per-model settings. `quick` fits the 5085/1017-image mini set
#: on 2 CPU cores; `thesis` is the thesis' full setting; `smoke` is for tests.
#: On 5085 images, fast AT at eps 8/255 overfits catastrophically within 8-15
#: epochs whatever the learning rate; growing eps from 0 over the first 30% of
#: the epochs (`eps_warmup_epochs`) prevents it (see the README of results/).
PRESETS = {
    "thesis": {
        "*": dict(batch_size=128, train_size=None, test_size=None, pgd_steps=50, pgd_restarts=10,
                  eps=8 / 255, pgd_step=2 / 255, eps_warmup_epochs=0),
        "light": dict(epochs=30, min_lr=0.0, max_lr=0.05, test_size=1000, pgd_restarts=40,
                      eps=0.031, pgd_step=0.003),
        "vgg": dict(epochs=60, min_lr=1e-4, max_lr=0.1),
        "resnet20": dict(epochs=80, min_lr=0.0, max_lr=0.2),
        "resnet56": dict(epochs=80, min_lr=0.0, max_lr=0.1),
    },
    "quick": {
        "*": dict(batch_size=128, train_size=None, test_size=None, pgd_steps=50, pgd_restarts=1,
                  eps=8 / 255, pgd_step=2 / 255, eps_warmup_epochs=0),
        "light": dict(epochs=10, min_lr=0.0, max_lr=0.05, eps=0.031, pgd_step=0.003),
        "vgg": dict(epochs=10, min_lr=1e-4, max_lr=0.1, eps_warmup_epochs=3),
        "resnet20": dict(epochs=20, min_lr=0.0, max_lr=0.2, eps_warmup_epochs=6),
        "resnet56": dict(epochs=6, min_lr=0.0, max_lr=0.1, eps_warmup_epochs=2),
    },
    "smoke": {
        "*": dict(batch_size=32, train_size=200, test_size=50, epochs=1, min_lr=0.0, max_lr=0.05,
                  pgd_steps=2, pgd_restarts=1, eps=8 / 255, pgd_step=2 / 255, eps_warmup_epochs=0),
    },
}

#: The thesis' learning-rate range (min_lr, max_lr) per activation for the VGG
#: grid, chosen with its LR range test (thesis tab. "vggrob"); the `thesis` and
#: `quick` presets use them (the ResNet20 grid used one range for all).
VGG_LEARNING_RATES = {"relu": (1e-4, 0.08), "elu": (1e-4, 0.1), "kaf": (0.01, 1.0), "kaf_elu": (1e-4, 0.1),
                      "swish": (1e-4, 0.3), "kaf_swish": (1e-4, 0.8), "kaf_free": (0.01, 2.0)}

#: How each model is trained in the thesis.
METHOD = {"light": "standard", "vgg": "fgsm_rs", "resnet20": "fgsm_rs", "resnet56": "fgsm_rs"}


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A fully resolved experiment (every parameter has a value)."""

    model: str
    act: str
    preset: str
    preset_reason: str
    method: str
    epochs: int
    batch_size: int
    eps: float
    eps_warmup_epochs: float
    min_lr: float
    max_lr: float
    train_size: int | None
    test_size: int | None
    pgd_steps: int
    pgd_step: float
    pgd_restarts: int
    seed: int
    augment: bool
    mixed_precision: bool
    data_dir: str | None
    out_dir: str
    grid: str
    kaf_kernel: str = "gaussian"

    @property
    def run_dir(self):
        return run_dir(self.out_dir, self.grid, self.model, self.act, self.kaf_kernel)


def run_dir(out_dir, grid, model, act, kaf_kernel="gaussian"):
    """`<out_dir>/<grid>/<model>-<act>/` (`<model>-<act>-<kaf_kernel>-kernel/`
    for a non-Gaussian KAF kernel): where one run writes its results."""
    suffix = "" if kaf_kernel == "gaussian" else f"-{kaf_kernel}-kernel"
    return Path(out_dir) / grid / f"{model}-{act}{suffix}"


def _gpu_available():
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _positive_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def resolve(model="resnet20", act="relu", preset="auto", method=None, epochs=None, batch_size=None,
            eps=None, eps_warmup_epochs=None, min_lr=None, max_lr=None, train_size=None, test_size=None,
            pgd_steps=None, pgd_step=None, pgd_restarts=None, seed=0, mixed_precision=None, data_dir=None,
            out_dir="results", grid="adhoc", kaf_kernel="gaussian"):
    """Validate the notebook's parameters and fill the unset (None) ones from the preset.

    `preset="auto"` picks ``thesis`` when TensorFlow sees a GPU and ``quick``
    otherwise. Explicit parameters override the preset. A preset's eps warm-up is
    a share of its epochs, so with `epochs` given and `eps_warmup_epochs` not, the
    warm-up keeps that share (`quick` ResNet20: 6 of 20 epochs, so `epochs=1` warms
    up over 0.3 epochs); an explicit `eps_warmup_epochs` is taken as given and must
    not exceed `epochs`. Raises ValueError naming the parameter, its value and what
    is allowed.
    """
    _check("model", model, model in MODELS, f"one of {', '.join(MODELS)}")
    _check("act", act, act in ACTIVATIONS, f"one of {', '.join(ACTIVATIONS)}")
    from kaflib.models import kaf_activation_factory

    kaf_activation_factory(act, kaf_kernel)  # raises ValueError naming kaf_kernel
    _check("preset", preset, preset == "auto" or preset in PRESETS, f"'auto' or one of {', '.join(PRESETS)}")
    gpu = _gpu_available()
    if preset == "auto":
        preset = "thesis" if gpu else "quick"
        reason = f"auto: {'a GPU is visible' if gpu else 'no GPU is visible'}, so the {preset!r} preset"
    else:
        reason = f"{preset!r} preset, chosen explicitly"
    table = PRESETS[preset]
    settings = {**table["*"], **table.get(model, {})}
    if model == "vgg" and preset in ("thesis", "quick") and act in VGG_LEARNING_RATES:
        settings["min_lr"], settings["max_lr"] = VGG_LEARNING_RATES[act]
    given = dict(epochs=epochs, batch_size=batch_size, eps=eps, eps_warmup_epochs=eps_warmup_epochs,
                 min_lr=min_lr, max_lr=max_lr,
                 train_size=train_size, test_size=test_size, pgd_steps=pgd_steps, pgd_step=pgd_step,
                 pgd_restarts=pgd_restarts)
    overridden = sorted(k for k, v in given.items() if v is not None)
    if overridden:
        reason += f"; overridden: {', '.join(overridden)}"
    if epochs is not None and eps_warmup_epochs is None and settings["eps_warmup_epochs"]:
        # the preset's warm-up is a share of the preset's epochs: it keeps that share
        scaled = round(settings["eps_warmup_epochs"] * epochs / settings["epochs"], 6) if _positive_int(epochs) else 0
        reason += f"; eps_warmup_epochs scaled with epochs: {settings['eps_warmup_epochs']:g} -> {scaled:g}"
        settings["eps_warmup_epochs"] = scaled
    settings.update({k: v for k, v in given.items() if v is not None})
    method = method or METHOD[model]
    from kaflib.train import METHODS

    _check("method", method, method in METHODS, f"one of {', '.join(METHODS)}")
    for name in ("epochs", "batch_size", "pgd_steps", "pgd_restarts"):
        _check(name, settings[name], _positive_int(settings[name]), "an integer >= 1")
    for name in ("train_size", "test_size"):
        _check(name, settings[name], settings[name] is None or _positive_int(settings[name]),
               "None (all images) or an integer >= 1")
    _check("eps", settings["eps"], 0 <= settings["eps"] <= 1, "in [0, 1] (pixel units, e.g. 8/255)")
    warmup = settings["eps_warmup_epochs"]
    _check("eps_warmup_epochs", warmup,
           isinstance(warmup, (int, float, np.integer, np.floating)) and not isinstance(warmup, bool)
           and 0 <= warmup <= settings["epochs"], f"a number in [0, epochs={settings['epochs']}]")
    _check("pgd_step", settings["pgd_step"], 0 < settings["pgd_step"] <= 1, "in (0, 1]")
    _check("max_lr", settings["max_lr"], settings["max_lr"] > 0, "> 0")
    _check("min_lr", settings["min_lr"], 0 <= settings["min_lr"] <= settings["max_lr"], "in [0, max_lr]")
    _check("seed", seed, isinstance(seed, (int, np.integer)) and seed >= 0, "an integer >= 0")
    _check("grid", grid, isinstance(grid, str) and grid and "/" not in grid, "a folder name")
    if mixed_precision is None:
        mixed_precision = gpu
    return Experiment(model=model, act=act, preset=preset, preset_reason=reason, method=method,
                      augment=model.startswith("resnet"), seed=int(seed),
                      mixed_precision=bool(mixed_precision), data_dir=data_dir, out_dir=str(out_dir),
                      grid=grid, kaf_kernel=kaf_kernel, **settings)


def _check(name, value, ok, allowed):
    if not ok:
        raise ValueError(f"Parameter {name}={value!r} is invalid: must be {allowed}.")


def train_config(exp):
    """The `kaflib.train.TrainConfig` of an experiment."""
    from kaflib.train import TrainConfig

    return TrainConfig(method=exp.method, epochs=exp.epochs, batch_size=exp.batch_size,
                       min_lr=exp.min_lr, max_lr=exp.max_lr, eps=exp.eps,
                       eps_warmup_epochs=exp.eps_warmup_epochs, augment=exp.augment,
                       mixed_precision=exp.mixed_precision, seed=exp.seed, stop_on_divergence=True,
                       guard_size=256 if exp.train_size is None else min(256, exp.train_size // 8))


def environment():
    """Library versions and the machine, for results files."""
    import art
    import keras
    import tensorflow as tf

    import kaflib

    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return dict(python=sys.version.split()[0], platform=platform.platform(), kaflib=kaflib.__version__,
                tensorflow=tf.__version__, keras=keras.__version__, numpy=np.__version__,
                adversarial_robustness_toolbox=art.__version__, cpus=os.cpu_count(), gpus=gpus)


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {value!r}")


def write_results(exp, data_sizes, train_result, clean_acc, robust_acc, timings):
    """Write `metrics.json`, `history.csv` and `model.keras` into `exp.run_dir`, atomically.

    `metrics.json` is written last: its presence means the run finished.
    Returns the metrics dict.
    """
    out = exp.run_dir
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "history.csv", lambda p: train_result.history.to_csv(p, index=False))
    write_atomic(out / "model.keras", train_result.model.save)
    metrics = dict(
        parameters=dataclasses.asdict(exp), data=data_sizes,
        clean_acc=clean_acc, robust_acc=robust_acc,
        attack=dict(library="ART", name="ProjectedGradientDescent", norm="inf", eps=exp.eps,
                    step=exp.pgd_step, steps=exp.pgd_steps, restarts=exp.pgd_restarts,
                    labels="true", loss="cross-entropy on logits"),
        best_epoch=train_result.best_epoch, collapsed_epoch=train_result.collapsed_epoch,
        diverged=train_result.diverged,
        epochs_run=len(train_result.history), resumed_from_epoch=train_result.resumed_from_epoch,
        seconds=timings, environment=environment(),
        finished=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    write_atomic(out / "metrics.json",
            lambda p: p.write_text(json.dumps(metrics, indent=2, default=_json_default) + "\n"))
    return metrics


def read_metrics(path):
    """The metrics dict of a finished run folder (or None if it has not finished)."""
    path = Path(path) / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None
