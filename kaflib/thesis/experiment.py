"""One experiment of the thesis: parameters and presets, training, attack, results files.

`notebooks/train.ipynb` is a thin literate front-end to this module; the grid
runner (`kaflib.thesis.grid`) executes that notebook once per model/activation.
"""

import dataclasses
import math
import os
from pathlib import Path

from kaflib.activations import ACTIVATIONS
from kaflib.checks import is_int, is_number
from kaflib.files import utc_now, write_atomic
from kaflib.kaf import random_stddev_value
from kaflib.kaf_ops import KERNELS
from kaflib.models import LAYER_RECIPES, MODELS, kaf_activation_factory, random_kaf_stddev
from kaflib.thesis.parameters import Derived, RunParameter, describe_type, signature
from kaflib.thesis.store import environment, read_json, write_json

__all__ = ["PRESETS", "QUICK_DEVIATIONS", "UNRECORDED_PARAMETERS", "recipe_table", "parameter_differences", "recorded_parameters",
           "RESNET20_LEARNING_RATES", "QUICK_RESNET20_LEARNING_RATES", "THESIS_RECIPE_SOURCES", "VGG_LEARNING_RATES", "Experiment",
           "build_experiment_model", "resolve", "run_dir", "load_images", "data_record", "write_results", "read_metrics",
           "data_differences", "RECORD", "RUN_PARAMETERS", "notebook_defaults", "resolve_from",
           "visible_gpus", "recipe_sources"]

#: Per-preset, per-model settings. `thesis` is the thesis author's recipe, item
#: by item (every setting and its source: `THESIS_RECIPE_SOURCES`, the table in
#: results/README.md; `tests/thesis/test_recipe.py` checks it against the
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
#: (the author's thesis/thesis.tex, lines 1577-1583, column
#: "(min_lr, max_lr)"). The `thesis` and `quick` presets use them;
#: `tests/thesis/test_experiment.py` checks them against the thesis' `reported_results.csv`
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
#: `tests/thesis/test_lr_ranges.py` checks every entry against its committed test.
QUICK_RESNET20_LEARNING_RATES = {"relu": (0.0052, 0.43), "elu": (0.0026, 0.11), "swish": (0.0052, 0.22),
                                 "kaf": (0.011, 1.1), "kaf_relu": (0.019, 0.39), "kaf_elu": (0.0037, 0.14),
                                 "kaf_swish": (0.024, 0.49), "kaf_free": (0.011, 1.1)}

def recipe_sources(preset):
    """Where each setting of a preset comes from: {setting: (value, source)}, in order.

    ``"thesis"``: each setting of the `thesis` preset and its source ("ckpt:" = the Keras
    training config in every published checkpoint's saved_model.pb; paths are in
    the author's repository). ``"quick"``: how the `quick` preset departs from `thesis`,
    and why (the measurement behind each choice, or the plain statement that it has not
    been measured yet). Read from `recipe_sources.csv` (package data: preset, setting,
    value, source), where the prose is kept and edited.
    """
    import csv
    from importlib import resources

    if preset not in ("thesis", "quick"):
        raise ValueError(f"preset={preset!r} is invalid: must be 'thesis' or 'quick'.")
    with resources.files("kaflib.thesis").joinpath("recipe_sources.csv").open(newline="") as f:
        return {row["setting"]: (row["value"], row["source"]) for row in csv.DictReader(f)
                if row["preset"] == preset}


#: Where each setting of the `thesis` preset comes from (`recipe_sources("thesis")`).
THESIS_RECIPE_SOURCES = recipe_sources("thesis")

#: How the `quick` preset departs from `thesis`, and why (`recipe_sources("quick")`).
QUICK_DEVIATIONS = recipe_sources("quick")

#: How each model is trained in the thesis.
METHOD = {"light": "standard", "vgg": "fgsm_rs", "resnet20": "fgsm_rs", "resnet56": "fgsm_rs"}


def _methods():
    from kaflib.train import METHODS

    return METHODS


def _positive_int(value, _=None):
    return is_int(value) and value >= 1


def _size(value, _=None):
    return value is None or _positive_int(value)


def _path(value):
    return isinstance(value, (str, os.PathLike))


def _kaf_kernel_fits(kaf_kernel, values):
    kaf_activation_factory(values["act"], kaf_kernel)  # raises ValueError naming kaf_kernel
    return True


def _random_stddev(value, _):
    random_stddev_value(value, name="kaf_random_stddev")  # raises ValueError naming kaf_random_stddev
    return True


#: The run record, in its order: every parameter of a run (`RunParameter`: name, type,
#: default, doc, check) and the two values `resolve` derives (`Derived`). It is the one
#: definition of the parameters: `resolve`'s signature, the `Experiment` fields (the
#: `parameters` of `metrics.json`), the grid's ``-p NAME=VALUE`` and the parameters cell of
#: `notebooks/train.ipynb` (written by `python -m kaflib.thesis.parameters`) follow it.
#: A value left at None is the preset's (the settings of `PRESETS`), unless its doc says otherwise.
RECORD = (
    RunParameter("model", str, "resnet20", ", ".join(MODELS),
                 ok=lambda v, _: v in MODELS, allowed=f"one of {', '.join(MODELS)}"),
    RunParameter("act", str, "relu", ", ".join(ACTIVATIONS),
                 ok=lambda v, _: v in ACTIVATIONS, allowed=f"one of {', '.join(ACTIVATIONS)}"),
    RunParameter("preset", str, "auto", "auto, quick, thesis (smoke: the tests'); auto: thesis with a GPU, else quick",
                 ok=lambda v, _: v == "auto" or v in PRESETS, allowed=f"'auto' or one of {', '.join(PRESETS)}",
                 env="KAFLIB_PRESET"),
    Derived("preset_reason", str, "why this preset, and what overrides it"),
    RunParameter("method", str | None, None,
                 "standard, fgsm_rs (fast AT), pgd (PGD-7 AT); None: the thesis' choice for the model",
                 ok=lambda v, _: v in _methods(), allowed=lambda _: f"one of {', '.join(_methods())}"),
    RunParameter("epochs", int | None, None, "epochs of the learning-rate cycle",
                 ok=_positive_int, allowed="an integer >= 1"),
    RunParameter("batch_size", int | None, None, "training images per step",
                 ok=_positive_int, allowed="an integer >= 1"),
    RunParameter("eps", float | None, None, "L-inf radius in [0, 1] pixel units (8/255)",
                 ok=lambda v, _: is_number(v) and 0 <= v <= 1, allowed="in [0, 1] (pixel units, e.g. 8/255)"),
    RunParameter("eps_warmup_epochs", float | None, None,
                 "training eps grows linearly from 0 over these epochs (None: the preset's share of epochs)",
                 ok=lambda v, p: is_number(v) and 0 <= v <= p["epochs"], needs=("epochs",),
                 allowed=lambda p: f"a number in [0, epochs={p['epochs']}]"),
    RunParameter("min_lr", float | None, None, "the cycle's lowest learning rate",
                 ok=lambda v, p: is_number(v) and 0 <= v <= p["max_lr"], allowed="in [0, max_lr]", needs=("max_lr",)),
    RunParameter("max_lr", float | None, None, "the cycle's highest learning rate",
                 ok=lambda v, _: is_number(v) and v > 0, allowed="> 0"),
    RunParameter("train_size", int | None, None, "None: the preset's images (all of them for quick and thesis)",
                 ok=_size, allowed="None (all images) or an integer >= 1"),
    RunParameter("test_size", int | None, None, "None: the preset's images",
                 ok=_size, allowed="None (all images) or an integer >= 1"),
    RunParameter("pgd_steps", int | None, None, "steps of the PGD attack",
                 ok=_positive_int, allowed="an integer >= 1"),
    RunParameter("pgd_step", float | None, None, "its step in pixel units (2/255)",
                 ok=lambda v, _: is_number(v) and 0 < v <= 1, allowed="in (0, 1]"),
    RunParameter("pgd_restarts", int | None, None, "its random restarts",
                 ok=_positive_int, allowed="an integer >= 1"),
    RunParameter("seed", int, 0, "seed of the weights, the batches and the attack",
                 ok=lambda v, _: is_int(v) and v >= 0, allowed="an integer >= 0"),
    Derived("augment", bool, "the thesis' augmentation (ResNets)"),
    RunParameter("mixed_precision", bool | None, None,
                 "mixed float16 (thesis: on); None: the preset's, else on with a GPU",
                 ok=lambda v, _: v is None or v in (True, False), allowed="None (on with a GPU), True or False"),
    RunParameter("data_dir", str | None, None, "None: KAFLIB_DATA_DIR, then the Keras cache, else download",
                 ok=lambda v, _: v is None or _path(v), allowed="None or a folder"),
    RunParameter("out_dir", str, "results", "results root",
                 ok=lambda v, _: _path(v), allowed="a folder", env="KAFLIB_OUT_DIR"),
    RunParameter("grid", str, "adhoc", "results go to <out_dir>/<grid>/<model>-<act>/",
                 ok=lambda v, _: isinstance(v, str) and v and "/" not in v, allowed="a folder name"),
    RunParameter("kaf_kernel", str, "gaussian", f"KAF kernel: {', '.join(KERNELS)} (gaussian: the thesis')",
                 ok=_kaf_kernel_fits, needs=("act",)),
    RunParameter("momentum", float | None, None, "SGD momentum (the thesis': 0)",
                 ok=lambda v, _: is_number(v) and 0 <= v < 1, allowed="a number in [0, 1)"),
    RunParameter("recipe", str | None, None,
                 "layer initialisers and batch norm: \"thesis\" (the checkpoints') or \"he-bn0.9\"",
                 ok=lambda v, _: v in LAYER_RECIPES, allowed=f"one of {', '.join(LAYER_RECIPES)}"),
    RunParameter("kaf_random_stddev", float | str | None, None,
                 "random KAF coefficients' std (kaf, kaf_free): a number, \"thesis\" (0.05) or \"kafnets\" (0.8)",
                 ok=_random_stddev),
    RunParameter("extra_epochs", int | None, None, "epochs after the cycle (the thesis' ResNet20 fine-tuning: 20)",
                 ok=lambda v, _: is_int(v) and v >= 0, allowed="an integer >= 0"),
    RunParameter("extra_lr", float | None, None, "their starting rate, halved every 4 epochs (the thesis': 0.01)",
                 ok=lambda v, _: v is None or (is_number(v) and v > 0),
                 allowed="None (linear decay to min_lr / 10) or a number > 0"),
)

#: The parameters of a run (`RECORD` without the derived values), in order.
RUN_PARAMETERS = tuple(p for p in RECORD if isinstance(p, RunParameter))
_BY_NAME = {p.name: p for p in RUN_PARAMETERS}


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A fully resolved experiment (every parameter has a value): the fields of `RECORD`, in
    its order; `dataclasses.asdict` of it is the `parameters` of `metrics.json`."""

    __annotations__ = {p.name: p.type for p in RECORD}

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


def visible_gpus():
    """How many GPUs TensorFlow sees."""
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def notebook_defaults():
    """`{name: value}` of the run parameters as the notebook sets them before papermill's
    (`RunParameter.notebook_default`: `$KAFLIB_PRESET`, `$KAFLIB_OUT_DIR` where set)."""
    return {p.name: p.notebook_default() for p in RUN_PARAMETERS}


def _check(values, names, checked):
    """Check the parameters `names` (each after those it `needs`), skipping those in `checked`."""
    for name in names:
        if name not in checked:
            checked.add(name)
            _check(values, _BY_NAME[name].needs, checked)
            _BY_NAME[name].check(values)


_SIGNATURE = signature(RUN_PARAMETERS)


def resolve(*args, **kwargs):
    """Check a run's parameters (`RUN_PARAMETERS`) and fill the unset (None) ones from the preset.

    `preset="auto"` picks ``thesis`` when TensorFlow sees a GPU and ``quick``
    otherwise. Explicit parameters override the preset. A preset's eps warm-up is
    a share of its epochs, so with `epochs` given and `eps_warmup_epochs` not, the
    warm-up keeps that share (`quick` ResNet20: 6 of 20 epochs, so `epochs=1` warms
    up over 0.3 epochs); an explicit `eps_warmup_epochs` is taken as given and must
    not exceed `epochs`. Raises ValueError naming the parameter, its value and what
    is allowed; TypeError naming the run parameters for an unknown one.

    Parameters (None: the preset's):
    """
    values = _bind(args, kwargs)
    model, act = values["model"], values["act"]
    checked = set()
    _check(values, ("model", "act", "kaf_kernel", "preset"), checked)  # they choose the preset's settings
    preset = values["preset"]
    if preset == "auto":
        gpu = bool(visible_gpus())
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
    given = {name: values[name] for name in settings if values[name] is not None}
    if given:
        reason += f"; overridden: {', '.join(sorted(given))}"
    epochs = values["epochs"]
    if epochs is not None and values["eps_warmup_epochs"] is None and settings["eps_warmup_epochs"]:
        # the preset's warm-up is a share of the preset's epochs: it keeps that share
        scaled = round(settings["eps_warmup_epochs"] * epochs / settings["epochs"], 6) if _positive_int(epochs) else 0
        reason += f"; eps_warmup_epochs scaled with epochs: {settings['eps_warmup_epochs']:g} -> {scaled:g}"
        settings["eps_warmup_epochs"] = scaled
    values.update(settings, **given, preset=preset)
    values["method"] = values["method"] or METHOD[model]
    _check(values, _BY_NAME, checked)
    values["kaf_random_stddev"] = random_kaf_stddev(act, values["kaf_random_stddev"])
    if values["mixed_precision"] is None:
        values["mixed_precision"] = bool(visible_gpus())
    values.update(mixed_precision=bool(values["mixed_precision"]), seed=int(values["seed"]),
                  out_dir=str(values["out_dir"]))
    return Experiment(preset_reason=reason, augment=model.startswith("resnet"), **values)


resolve.__signature__ = _SIGNATURE
resolve.__doc__ = resolve.__doc__.rstrip() + "".join(
    f"\n        {p.name} ({describe_type(p.type)}, default {p.default!r}): {p.doc}" for p in RUN_PARAMETERS) + "\n"


def _bind(args, kwargs):
    """`{name: value}` of every run parameter, from `resolve`'s arguments and the defaults."""
    try:
        bound = _SIGNATURE.bind(*args, **kwargs)
    except TypeError as err:
        raise TypeError(f"resolve(): {err}; the run parameters are: {', '.join(_BY_NAME)}.") from None
    bound.apply_defaults()
    return dict(bound.arguments)


def resolve_from(namespace):
    """`resolve` with every run parameter taken from `namespace` (the notebook's `globals()`)."""
    missing = [name for name in _BY_NAME if name not in namespace]
    if missing:
        raise ValueError(f"The run parameters {', '.join(missing)} are not set: the notebook's parameters cell "
                         "predates them; rewrite it with `python -m kaflib.thesis.parameters`.")
    return resolve(**{name: namespace[name] for name in _BY_NAME})


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


#: Parameters that runs finished before they were recorded ran with:
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
