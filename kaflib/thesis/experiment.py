"""One experiment of the thesis: parameters and presets, training, attack, results files.

`notebooks/train.ipynb` is a thin literate front-end to this module; the grid
runner (`kaflib.thesis.grid`) executes that notebook once per model/activation.
"""

import dataclasses
import math
from pathlib import Path

from kaflib.activations import ACTIVATIONS
from kaflib.checks import check, is_int, is_number
from kaflib.files import utc_now, write_atomic
from kaflib.thesis.store import environment, read_json, write_json
from kaflib.models import MODELS

__all__ = ["PRESETS", "QUICK_DEVIATIONS", "UNRECORDED_PARAMETERS", "recipe_table", "parameter_differences", "recorded_parameters",
           "RESNET20_LEARNING_RATES", "QUICK_RESNET20_LEARNING_RATES", "THESIS_RECIPE_SOURCES", "VGG_LEARNING_RATES", "Experiment",
           "build_experiment_model", "resolve", "run_dir", "load_images", "data_record", "write_results", "read_metrics",
           "data_differences"]

#: Per-preset, per-model settings. `thesis` is the thesis author's recipe, item
#: by item (every setting and its source: `THESIS_RECIPE_SOURCES`, the table in
#: results/README.md; `tests/test_thesis_recipe.py` checks it against the
#: training configs stored in the published checkpoints). `quick` fits the
#: 5085/1017-image mini set on 2 CPU cores; `smoke` is for tests. On 5085
#: images, fast AT at eps 8/255 overfits catastrophically within 8-15 epochs
#: whatever the learning rate; growing eps from 0 over the first 30% of the
#: epochs (`eps_warmup_epochs`) prevents it (see the README of results/).
PRESETS = {
    "thesis": {
        "*": dict(batch_size=128, train_size=None, test_size=None, pgd_steps=50, pgd_restarts=10,
                  eps=8 / 255, pgd_step=2 / 255, eps_warmup_epochs=0, momentum=0.0, recipe="thesis",
                  kaf_random_stddev="thesis", mixed_precision=True, extra_epochs=0, extra_lr=None),
        "light": dict(epochs=30, min_lr=0.0, max_lr=0.05, test_size=1000, pgd_restarts=40,
                      eps=0.031, pgd_step=0.003),
        "vgg": dict(epochs=60, min_lr=1e-4, max_lr=0.1),
        "resnet20": dict(epochs=80, min_lr=1e-4, max_lr=0.2, extra_epochs=20, extra_lr=0.01),
        "resnet56": dict(epochs=80, min_lr=0.0, max_lr=0.1),
    },
    "quick": {
        "*": dict(batch_size=128, train_size=None, test_size=None, pgd_steps=50, pgd_restarts=1,
                  eps=8 / 255, pgd_step=2 / 255, eps_warmup_epochs=0, momentum=0.0, recipe="thesis",
                  kaf_random_stddev="thesis", mixed_precision=None, extra_epochs=0, extra_lr=None),
        "light": dict(epochs=10, min_lr=0.0, max_lr=0.05, eps=0.031, pgd_step=0.003, momentum=0.9,
                      recipe="he-bn0.9"),
        "vgg": dict(epochs=10, min_lr=1e-4, max_lr=0.1, eps_warmup_epochs=3),
        "resnet20": dict(epochs=20, min_lr=0.0, max_lr=0.2, eps_warmup_epochs=6),
        "resnet56": dict(epochs=6, min_lr=0.0, max_lr=0.1, eps_warmup_epochs=2),
    },
    "smoke": {
        "*": dict(batch_size=32, train_size=200, test_size=50, epochs=1, min_lr=0.0, max_lr=0.05,
                  pgd_steps=2, pgd_restarts=1, eps=8 / 255, pgd_step=2 / 255, eps_warmup_epochs=0,
                  momentum=0.9, recipe="thesis", kaf_random_stddev="thesis", mixed_precision=None,
                  extra_epochs=0, extra_lr=None),
    },
}



#: The thesis' learning-rate range (min_lr, max_lr) per activation for the VGG
#: grid, chosen with its LR range test: thesis tab. "vggrob"
#: (../shared/thesis/author/thesis/thesis.tex, lines 1577-1583, column
#: "(min_lr, max_lr)"). The `thesis` and `quick` presets use them;
#: `tests/test_experiment.py` checks them against the thesis' `reported_results.csv`
#: where this machine has it.
VGG_LEARNING_RATES = {"relu": (1e-4, 0.08), "elu": (1e-4, 0.1), "kaf": (0.01, 1.0), "kaf_elu": (1e-4, 0.1),
                      "swish": (1e-4, 0.3), "kaf_swish": (1e-4, 0.8), "kaf_free": (0.01, 2.0)}

#: The ResNet20 learning-rate ranges on record: the `TriangularCyclicalLearningRate`
#: (initial, maximal) stored in the optimizer config of the published checkpoints
#: saved before their fine-tuning phase (`resnet20_elu_ocrob_lrf.zip`,
#: `resnet20_kafrelu_ocrob_lrfinder.zip`, `resnet20_kafswish_ocrob_lrfinder_tmp.zip`).
#: The other checkpoints were saved after fine-tuning, which replaced the schedule by
#: a constant; for them the `thesis` preset uses ELU's range, the one fixed-activation
#: range on record.
RESNET20_LEARNING_RATES = {"elu": (1e-4, 0.2), "kaf_relu": (0.01, 0.8), "kaf_swish": (0.006, 1.0)}

#: The `quick` preset's ResNet20 learning-rate range (min_lr, max_lr) per activation:
#: kaflib's LR range test on the mini set (100 steps of FGSM-RS, the thesis' layers,
#: plain SGD; `python -m kaflib.thesis.studies lr-range --act ACT --momentum 0 --recipe
#: thesis`, committed as `results/lr-range/resnet20-<act>[-std0.05]-thesis-momentum0.json`)
#: read by `kaflib.train.suggest_lr_range`, to 2 significant digits.
#: `tests/test_thesis_lr_ranges.py` checks every entry against its committed test.
QUICK_RESNET20_LEARNING_RATES = {"relu": (0.0052, 0.43), "elu": (0.0026, 0.11), "swish": (0.0052, 0.22),
                                 "kaf": (0.011, 1.1), "kaf_relu": (0.019, 0.39), "kaf_elu": (0.0037, 0.14),
                                 "kaf_swish": (0.024, 0.49), "kaf_free": (0.011, 1.1)}

#: Where each setting of the `thesis` preset comes from ("ckpt:" = the Keras
#: training config in every published checkpoint's saved_model.pb; paths are in
#: ../shared/thesis/author/).
THESIS_RECIPE_SOURCES = {
    "optimizer": ("SGD, momentum 0.0, nesterov False",
                  "ckpt: training_config.optimizer_config.config.optimizer (SGD); variables: optimizer/momentum = 0"),
    "loss scaling": ("dynamic LossScaleOptimizer, initial scale 32768; a non-finite step is skipped",
                     "ckpt: optimizer_config (LossScaleOptimizer, DynamicLossScale initial_loss_scale 32768)"),
    "dtype policy": ("mixed_float16 (output layer float32)",
                     "ckpt: every layer's dtype Policy mixed_float16, Dense float32; "
                     "src/fbf_training_kafresnets.ipynb cell 0"),
    "conv kernels": ("GlorotUniform, L2 5e-4, with bias", "ckpt: Conv2D kernel_initializer, kernel_regularizer"),
    "batch norm": ("momentum 0.99, epsilon 1e-3", "ckpt: BatchNormalization momentum, epsilon"),
    "output layer": ("Dense HeNormal, L2 5e-4 (softmax in the checkpoints; kaflib keeps logits and a "
                     "cross-entropy from logits, the same loss)", "ckpt: Dense kernel_initializer, kernel_regularizer"),
    "KAF random init": ("N(0, 0.05^2) (Keras 'random_normal')", "src/activationsf.py, Kaf.build (lines 233-241)"),
    "ResNet20 schedule": ("one triangular cycle over 80 epochs (step_size = 40 epochs)",
                          "ckpt: TriangularCyclicalLearningRate step_size 15625 = 40 x 390.6 steps; "
                          "src/fbf_training_kafresnets.ipynb cell 11"),
    "ResNet20 learning rates": ("elu (1e-4, 0.2), kaf_relu (0.01, 0.8), kaf_swish (0.006, 1.0); others: elu's",
                                "ckpt: TriangularCyclicalLearningRate initial/maximal of the three checkpoints "
                                "saved before fine-tuning"),
    "ResNet20 fine-tuning": ("20 more FGSM-RS epochs, SGD lr 0.01 halved at the start of every 4th epoch",
                             "src/fbf_training_kafresnets.ipynb cell 14; resnet20_kafrelu_ocrob_lrfinder_last.zip "
                             "ends at lr 0.0003125 = 0.01 / 2^5"),
    "ResNet20 augmentation": ("zero-pad 4, random 32x32 crop, random horizontal flip",
                              "src/fbf_training_kafresnets.ipynb cell 4"),
    "VGG": ("60 epochs, per-activation LR ranges, He-uniform kernels, L2 0.0012 on dense layers",
            "thesis/thesis.tex ch. 7.1 (lines 1515-1520) and tab. vggrob"),
    "attack": ("PGD-50, eps 8/255, step 2/255, 10 restarts, L-inf", "thesis/thesis.tex lines 1442-1444"),
    "batch size": ("128", "src/fbf_training_kafresnets.ipynb cells 4 and 11"),
}

#: How the `quick` preset departs from `thesis`, and why: the measurement behind
#: each choice, or the plain statement that it has not been measured yet.
QUICK_DEVIATIONS = {
    "data": ("the quick subset of CIFAR-10: the first 1017 images of each official batch file, 5085 training / "
             "1017 test images, the same on every machine (kaflib.thesis.preset_images)",
             "the only CIFAR-10 on the machines these runs were made on (results/README.md, Scale)"),
    "epochs": ("VGG 10, ResNet20 20, no fine-tuning (thesis: 60; 80 + 20)",
               "compute budget of a 2-core CPU (a ResNet20 run: 15-17 min for fixed activations, 50 min "
               "for a random KAF); at 20 epochs ReLU ResNet20 reaches 41.3% clean and 26.6% PGD-50 "
               "(seed 0, this preset); 4 fine-tuning epochs after the cycle (lr 0.05, then 0.025) "
               "left ResNet20 KAF at 37.9-38.3% clean against 38.8% without "
               "(results/fine-tuning/resnet20-kaf-extra_lr0.1.csv)"),
    "eps warm-up": ("training eps grown from 0 over the first 30% of the epochs",
                    "without it every schedule tried overfit catastrophically after 8-15 epochs on 5085 "
                    "images (results/README.md, Why the eps warm-up; measured with SGD momentum 0.9)"),
    "PGD restarts": ("1 (thesis: 10)", "compute budget; the masking checks add APGD and Square"),
    "mixed precision": ("off without a GPU (on with one, as in the thesis)",
                        "not measured on this CPU: kept from the runs committed before issue 19"),
    "ResNet20 learning rates": ("per activation, from kaflib's LR range test on the mini set "
                                "(QUICK_RESNET20_LEARNING_RATES; thesis: its own tests on full CIFAR-10)",
                                "the thesis' method (Smith's LR range test) on the data the runs use; "
                                "suggest_lr_range reads each test (results/lr-range/*-thesis-momentum0.json)"),
    "light CNN": ("SGD momentum 0.9 and the he-bn0.9 layers (He-normal convs, batch-norm momentum 0.9; thesis: "
                  "plain SGD, Glorot, 0.99)", "kept from its committed runs, which train (10 epochs of standard "
                  "training: relu 52.4%, kwta 45.9%, kaf 44.5% clean); not remeasured with the thesis' layers"),
}

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
    momentum: float = 0.9            #: SGD momentum
    recipe: str = "thesis"           #: layer initialisers and batch norm (`kaflib.models.LAYER_RECIPES`)
    kaf_random_stddev: float | None = None  #: std of random KAF coefficients (kaf, kaf_free); None otherwise
    extra_epochs: int = 0            #: epochs after the cycle (the thesis' fine-tuning)
    extra_lr: float | None = None    #: their starting rate, halved every 4 epochs (None: linear decay)

    @property
    def run_dir(self):
        return run_dir(self.out_dir, self.grid, self.model, self.act, self.kaf_kernel, self.seed)


def run_dir(out_dir, grid, model, act, kaf_kernel="gaussian", seed=0):
    """`<out_dir>/<grid>/<model>-<act>/` (with `-<kaf_kernel>-kernel` for a
    non-Gaussian KAF kernel and `-seed<seed>` for a seed other than 0): where
    one run writes its results."""
    suffix = "" if kaf_kernel == "gaussian" else f"-{kaf_kernel}-kernel"
    suffix += f"-seed{seed}" if seed else ""
    return Path(out_dir) / grid / f"{model}-{act}{suffix}"


def _gpu_available():
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _positive_int(value):
    return is_int(value) and value >= 1


def resolve(model="resnet20", act="relu", preset="auto", method=None, epochs=None, batch_size=None,
            eps=None, eps_warmup_epochs=None, min_lr=None, max_lr=None, train_size=None, test_size=None,
            pgd_steps=None, pgd_step=None, pgd_restarts=None, seed=0, mixed_precision=None, data_dir=None,
            out_dir="results", grid="adhoc", kaf_kernel="gaussian", momentum=None, recipe=None,
            kaf_random_stddev=None, extra_epochs=None, extra_lr=None):
    """Validate the notebook's parameters and fill the unset (None) ones from the preset.

    `preset="auto"` picks ``thesis`` when TensorFlow sees a GPU and ``quick``
    otherwise. Explicit parameters override the preset. A preset's eps warm-up is
    a share of its epochs, so with `epochs` given and `eps_warmup_epochs` not, the
    warm-up keeps that share (`quick` ResNet20: 6 of 20 epochs, so `epochs=1` warms
    up over 0.3 epochs); an explicit `eps_warmup_epochs` is taken as given and must
    not exceed `epochs`. Raises ValueError naming the parameter, its value and what
    is allowed.
    """
    check("model", model, model in MODELS, f"one of {', '.join(MODELS)}")
    check("act", act, act in ACTIVATIONS, f"one of {', '.join(ACTIVATIONS)}")
    from kaflib.models import kaf_activation_factory

    kaf_activation_factory(act, kaf_kernel)  # raises ValueError naming kaf_kernel
    check("preset", preset, preset == "auto" or preset in PRESETS, f"'auto' or one of {', '.join(PRESETS)}")
    if preset == "auto":
        gpu = _gpu_available()
        preset = "thesis" if gpu else "quick"
        reason = f"auto: {'a GPU is visible' if gpu else 'no GPU is visible'}, so the {preset!r} preset"
    else:
        reason = f"{preset!r} preset, chosen explicitly"
    table = PRESETS[preset]
    settings = {**table["*"], **table.get(model, {})}
    if model == "vgg" and preset in ("thesis", "quick") and act in VGG_LEARNING_RATES:
        settings["min_lr"], settings["max_lr"] = VGG_LEARNING_RATES[act]
    if model == "resnet20" and preset == "thesis":
        settings["min_lr"], settings["max_lr"] = RESNET20_LEARNING_RATES.get(act, RESNET20_LEARNING_RATES["elu"])
    if model == "resnet20" and preset == "quick":
        if act not in QUICK_RESNET20_LEARNING_RATES:
            reason += f"; no LR range test for {act!r} yet: elu's range"
        settings["min_lr"], settings["max_lr"] = QUICK_RESNET20_LEARNING_RATES.get(act, QUICK_RESNET20_LEARNING_RATES["elu"])
    given = dict(epochs=epochs, batch_size=batch_size, eps=eps, eps_warmup_epochs=eps_warmup_epochs,
                 min_lr=min_lr, max_lr=max_lr,
                 train_size=train_size, test_size=test_size, pgd_steps=pgd_steps, pgd_step=pgd_step,
                 pgd_restarts=pgd_restarts, momentum=momentum, recipe=recipe, kaf_random_stddev=kaf_random_stddev,
                 extra_epochs=extra_epochs, extra_lr=extra_lr, mixed_precision=mixed_precision)
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

    check("method", method, method in METHODS, f"one of {', '.join(METHODS)}")
    for name in ("epochs", "batch_size", "pgd_steps", "pgd_restarts"):
        check(name, settings[name], _positive_int(settings[name]), "an integer >= 1")
    for name in ("train_size", "test_size"):
        check(name, settings[name], settings[name] is None or _positive_int(settings[name]),
               "None (all images) or an integer >= 1")
    check("eps", settings["eps"], 0 <= settings["eps"] <= 1, "in [0, 1] (pixel units, e.g. 8/255)")
    warmup = settings["eps_warmup_epochs"]
    check("eps_warmup_epochs", warmup,
           is_number(warmup)
           and 0 <= warmup <= settings["epochs"], f"a number in [0, epochs={settings['epochs']}]")
    check("pgd_step", settings["pgd_step"], 0 < settings["pgd_step"] <= 1, "in (0, 1]")
    check("max_lr", settings["max_lr"], settings["max_lr"] > 0, "> 0")
    check("min_lr", settings["min_lr"], 0 <= settings["min_lr"] <= settings["max_lr"], "in [0, max_lr]")
    check("seed", seed, is_int(seed) and seed >= 0,
           "an integer >= 0")
    check("grid", grid, isinstance(grid, str) and grid and "/" not in grid, "a folder name")
    check("momentum", settings["momentum"], is_number(settings["momentum"]) and 0 <= settings["momentum"] < 1,
           "a number in [0, 1)")
    from kaflib.models import LAYER_RECIPES

    check("recipe", settings["recipe"], settings["recipe"] in LAYER_RECIPES, f"one of {', '.join(LAYER_RECIPES)}")
    check("extra_epochs", settings["extra_epochs"],
           is_int(settings["extra_epochs"]) and settings["extra_epochs"] >= 0, "an integer >= 0")
    check("extra_lr", settings["extra_lr"],
           settings["extra_lr"] is None or (is_number(settings["extra_lr"]) and settings["extra_lr"] > 0),
           "None (linear decay to min_lr / 10) or a number > 0")
    from kaflib.models import random_kaf_stddev

    stddev = random_kaf_stddev(act, settings.pop("kaf_random_stddev"))
    if settings["mixed_precision"] is None:
        settings["mixed_precision"] = _gpu_available()
    settings["mixed_precision"] = bool(settings["mixed_precision"])
    return Experiment(model=model, act=act, preset=preset, preset_reason=reason, method=method,
                      augment=model.startswith("resnet"), seed=int(seed), data_dir=data_dir, out_dir=str(out_dir),
                      grid=grid, kaf_kernel=kaf_kernel,
                      kaf_random_stddev=stddev, **settings)


def recipe_table(sources):
    """`THESIS_RECIPE_SOURCES` or `QUICK_DEVIATIONS` as a DataFrame (setting, value, source or why)."""
    import pandas as pd

    second = "why" if sources is QUICK_DEVIATIONS else "source"
    return pd.DataFrame([dict(setting=k, value=v, **{second: src}) for k, (v, src) in sources.items()])


def build_experiment_model(exp):
    """A fresh, untrained model of an experiment (its model, activation, KAF kernel,
    layer recipe and random-KAF init)."""
    from kaflib.models import build_model

    return build_model(exp.model, exp.act, kaf_kernel=exp.kaf_kernel, recipe=exp.recipe,
                       kaf_random_stddev=exp.kaf_random_stddev or "thesis")


def train_config(exp):
    """The `kaflib.train.TrainConfig` of an experiment."""
    from kaflib.train import TrainConfig

    return TrainConfig(method=exp.method, epochs=exp.epochs, batch_size=exp.batch_size,
                       min_lr=exp.min_lr, max_lr=exp.max_lr, eps=exp.eps, momentum=exp.momentum,
                       extra_epochs=exp.extra_epochs, extra_lr=exp.extra_lr,
                       eps_warmup_epochs=exp.eps_warmup_epochs, augment=exp.augment,
                       mixed_precision=exp.mixed_precision, seed=exp.seed, stop_on_divergence=True,
                       guard_size=256 if exp.train_size is None else min(256, exp.train_size // 8))


def load_images(exp):
    """The images of an experiment (`kaflib.thesis.preset_images.PresetImages`): its
    preset's images, or its explicit sizes; ValueError before training when the folder
    found lacks them."""
    from kaflib.thesis.preset_images import load_preset_images

    return load_preset_images(exp.preset, exp.data_dir, exp.train_size, exp.test_size)


def data_record(images, guard_size):
    """The `data` entry of `metrics.json`: readable name, fingerprint, folder sizes, and
    the images trained on (`train`), held out to watch for overfitting (`guard`) and attacked (`test`)."""
    return dict(images.record(), train=int(len(images.train[1])) - guard_size, guard=guard_size)


def write_results(exp, data, train_result, clean_acc, robust_acc, timings):
    """Write `metrics.json`, `history.csv` and `model.keras` into `exp.run_dir`, atomically.

    `data`: the run's `data_record`. `metrics.json` is written last: its presence
    means the run finished. Returns the metrics dict.
    """
    out = exp.run_dir
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "history.csv", lambda p: train_result.history.to_csv(p, index=False))
    write_atomic(out / "model.keras", train_result.model.save)
    metrics = dict(
        parameters=dataclasses.asdict(exp), data=data,
        clean_acc=clean_acc, robust_acc=robust_acc,
        attack=dict(library="ART", name="ProjectedGradientDescent", norm="inf", eps=exp.eps,
                    step=exp.pgd_step, steps=exp.pgd_steps, restarts=exp.pgd_restarts,
                    labels="true", loss="cross-entropy on logits"),
        best_epoch=train_result.best_epoch, collapsed_epoch=train_result.collapsed_epoch,
        diverged=train_result.diverged,
        epochs_run=len(train_result.history), resumed_from_epoch=train_result.resumed_from_epoch,
        seconds=timings, environment=environment(),
        finished=utc_now())
    write_json(out / "metrics.json", metrics, indent=2)
    return metrics


#: Parameters that runs finished before they were recorded (issue 19) ran with:
#: SGD momentum 0.9, the "he-bn0.9" layers, random KAFs N(0, 0.8^2), no extra epochs.
UNRECORDED_PARAMETERS = dict(momentum=0.9, recipe="he-bn0.9", kaf_random_stddev=0.8, extra_epochs=0, extra_lr=None)


def recorded_parameters(metrics):
    """A finished run's parameters, with the values of `UNRECORDED_PARAMETERS`
    filled in for runs that finished before those were recorded."""
    from kaflib.models import RANDOM_INIT_KAFS

    p = dict(metrics["parameters"])
    for name, value in UNRECORDED_PARAMETERS.items():
        if name not in p:
            p[name] = value if name != "kaf_random_stddev" or p["act"] in RANDOM_INIT_KAFS else None
    return p


#: Parameters that do not change what a run computes (where it reads and writes, why a preset was chosen).
_BOOKKEEPING = ("preset_reason", "data_dir", "out_dir")


def parameter_differences(metrics, exp):
    """`{name: (recorded, now)}` for every parameter where a finished run differs from `exp`."""
    recorded = recorded_parameters(metrics)
    wanted = dataclasses.asdict(exp)
    return {name: (recorded.get(name), value) for name, value in wanted.items()
            if name not in _BOOKKEEPING and not _same(recorded.get(name), value)}


def data_differences(metrics, images):
    """`{"data": (recorded, now)}` when a finished run trained or was attacked on other
    images than `images` (a `PresetImages`), by fingerprint; `{}` when they match or the
    run recorded no fingerprint."""
    recorded = (metrics.get("data") or {}).get("fingerprint")
    if recorded is None or recorded == images.fingerprint:
        return {}
    name = metrics["data"].get("name", "images")
    return {"data": (f"{name} [{recorded}]", f"{images.name} [{images.fingerprint}]")}


def _same(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def read_metrics(path):
    """The metrics dict of a finished run folder (or None if it has not finished)."""
    return read_json(Path(path) / "metrics.json")
