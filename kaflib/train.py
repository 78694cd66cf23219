"""Training: standard, fast adversarial (FGSM-RS, Wong et al. 2020) and PGD-k (Madry et al.).

One call, `fit`, trains a Keras model with SGD + momentum and the one-cycle
schedule, checkpoints every epoch, resumes from the last checkpoint when run
again, guards against catastrophic overfitting (Wong et al.) and against
non-finite gradients, and returns the per-epoch history. The step itself is
Wong et al.'s algorithm (see `_replica_step`): random start, one signed
gradient step of 1.25 eps, projection, weight update on the adversarial batch.
"""

import dataclasses
import math
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from kaflib.attacks import cross_entropy, fgsm_rs_perturb, pgd_perturb
from kaflib.data import make_dataset, stratified_first
from kaflib.files import write_atomic
from kaflib.models import dtype_policy
from kaflib.schedules import OneCycle

__all__ = ["METHODS", "TrainConfig", "TrainResult", "TrainingDiverged", "fit", "lr_range_test"]

METHODS = ("standard", "fgsm_rs", "pgd")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved with its results).

    Units: `eps` and step sizes in [0, 1] pixel units (8/255 = 8 grey levels);
    learning rates per optimizer step; sizes in images.
    """

    method: str = "fgsm_rs"        #: "standard", "fgsm_rs" (fast AT) or "pgd" (PGD-k AT)
    epochs: int = 15               #: epochs of the one-cycle triangle
    extra_epochs: int = 0          #: epochs after it: decaying min_lr -> final_lr, or halving from extra_lr
    batch_size: int = 128
    min_lr: float = 0.0
    max_lr: float = 0.2
    final_lr: float | None = None  #: default min_lr / 10
    extra_lr: float | None = None  #: extra epochs at extra_lr, halved every 4 (the thesis' fine-tuning)
    momentum: float = 0.9
    eps: float = 8 / 255           #: L-inf radius of the training attack
    eps_warmup_epochs: float = 0   #: grow the training eps linearly from 0 over these epochs
    fgsm_step: float | None = None  #: default 1.25 * eps (Wong et al.)
    pgd_steps: int = 7             #: PGD-k training: k
    pgd_step_size: float = 2 / 255
    augment: bool = False          #: pad 4 / random crop / flip (the thesis' ResNets)
    mixed_precision: bool = False  #: mixed_float16 compute with dynamic loss scaling (non-finite steps skipped)
    seed: int = 0
    guard_size: int = 256          #: held-out training images for the overfitting guard
    collapse_drop: float = 0.1     #: fall of the guard accuracy below its best that counts as collapse
    stop_on_collapse: bool = True
    stop_on_divergence: bool = False  #: on a non-finite gradient, return the best epoch's (or the initial) weights
    eval_size: int = 256           #: test images for the per-epoch PGD accuracy
    eval_pgd_steps: int = 5        #: PGD steps of the per-epoch checks (step eps/4)

    def __post_init__(self):
        checks = [
            ("method", self.method in METHODS, f"one of {METHODS}"),
            ("epochs", _is_int(self.epochs) and self.epochs >= 1, "an integer >= 1"),
            ("extra_epochs", _is_int(self.extra_epochs) and self.extra_epochs >= 0, "an integer >= 0"),
            ("batch_size", _is_int(self.batch_size) and self.batch_size >= 1, "an integer >= 1"),
            ("min_lr", 0 <= self.min_lr <= self.max_lr, "0 <= min_lr <= max_lr"),
            ("max_lr", 0 < self.max_lr, "> 0"),
            ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("extra_lr", self.extra_lr is None or (_is_number(self.extra_lr) and self.extra_lr > 0), "None or > 0"),
            ("eps", 0 <= self.eps <= 1, "in [0, 1] (pixel units, e.g. 8/255)"),
            ("eps_warmup_epochs", _is_number(self.eps_warmup_epochs) and 0 <= self.eps_warmup_epochs <= self.epochs,
             "a number in [0, epochs]"),
            ("pgd_steps", _is_int(self.pgd_steps) and self.pgd_steps >= 1, "an integer >= 1"),
            ("pgd_step_size", 0 < self.pgd_step_size <= 1, "in (0, 1]"),
            ("guard_size", _is_int(self.guard_size) and self.guard_size >= 0, "an integer >= 0"),
            ("collapse_drop", 0 < self.collapse_drop <= 1, "in (0, 1]"),
            ("eval_size", _is_int(self.eval_size) and self.eval_size >= 0, "an integer >= 0"),
            ("eval_pgd_steps", _is_int(self.eval_pgd_steps) and self.eval_pgd_steps >= 1, "an integer >= 1"),
            ("seed", _is_int(self.seed) and self.seed >= 0, "an integer >= 0"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"TrainConfig {name}={getattr(self, name)!r} is invalid: must be {allowed}.")

    @property
    def total_epochs(self):
        return self.epochs + self.extra_epochs

    def steps_per_epoch(self, num_images):
        """Optimizer steps per epoch on `num_images` training images (guard images excluded)."""
        return (num_images - self.guard_size) // self.batch_size

    def schedule(self, num_images):
        """The `OneCycle` learning-rate schedule of a run on `num_images` training images."""
        return OneCycle(self.steps_per_epoch(num_images), self.epochs, self.min_lr, self.max_lr,
                        self.extra_epochs, self.final_lr, self.extra_lr)


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


class TrainingDiverged(RuntimeError):
    """A gradient (or, under mixed precision, the loss) was not finite."""

    def __init__(self, epoch, step, layer, checkpoint):
        self.epoch, self.step, self.layer, self.checkpoint = epoch, step, layer, checkpoint
        where = f"the last good checkpoint is {checkpoint}" if checkpoint else "no checkpoint was written yet"
        super().__init__(
            f"Training diverged at epoch {epoch}, step {step}: the gradient of {layer} is not finite "
            f"(NaN or Inf); {where}. Try a lower max_lr, or a KAF init with bounded slope.")


@dataclasses.dataclass
class TrainResult:
    model: keras.Model
    history: pd.DataFrame          #: one row per epoch (see `fit`)
    best_epoch: int | None         #: epoch of the best guard accuracy (1-based)
    collapsed_epoch: int | None    #: first epoch where the guard accuracy collapsed
    resumed_from_epoch: int        #: epochs already done when this call started
    seconds: float                 #: wall time of this call
    diverged: str | None = None    #: with `stop_on_divergence`: where the gradient stopped being finite


def _optimizer(config, learning_rate):
    optimizer = keras.optimizers.SGD(learning_rate, momentum=config.momentum)
    return keras.optimizers.LossScaleOptimizer(optimizer) if config.mixed_precision else optimizer


def _train_step(model, optimizer, config, strategy, global_batch, warmup_steps=0):
    """A compiled distributed step: (x, y, seed) -> (loss sum, correct, finite, first bad var).

    With `warmup_steps`, the attack's eps (and its step sizes) grow linearly
    from eps / warmup_steps at the first optimizer step to eps at step `warmup_steps`.
    """
    fgsm_mult = 1.25 if config.fgsm_step is None else config.fgsm_step / max(config.eps, 1e-12)
    pgd_mult = config.pgd_step_size / max(config.eps, 1e-12)
    replicas = strategy.num_replicas_in_sync

    def _eps():
        if warmup_steps <= 0:
            return tf.constant(config.eps, tf.float32)
        done = tf.cast(optimizer.iterations + 1, tf.float32) / warmup_steps
        return config.eps * tf.minimum(1.0, done)

    def _replica_step(x, y, seed):
        seed = tf.random.experimental.stateless_fold_in(
            seed, tf.distribute.get_replica_context().replica_id_in_sync_group)
        eps = _eps()
        if config.method == "fgsm_rs":
            x = fgsm_rs_perturb(model, x, y, eps, fgsm_mult * eps, seed)
        elif config.method == "pgd":
            x = pgd_perturb(model, x, y, eps, pgd_mult * eps, config.pgd_steps, seed, training=True)
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            per_example = cross_entropy(y, logits)
            loss = tf.reduce_sum(per_example) / global_batch
            if model.losses:
                loss += tf.add_n(model.losses) / replicas
            scaled = optimizer.scale_loss(loss) if config.mixed_precision else loss
        grads = tape.gradient(scaled, model.trainable_variables)
        finite = tf.stack([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
        # under mixed precision the loss scaler skips a non-finite step and lowers its scale
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        correct = tf.reduce_sum(tf.cast(tf.argmax(logits, -1) == tf.cast(y, tf.int64), tf.float32))
        all_finite = tf.cast(tf.reduce_all(finite), tf.int32)
        return tf.reduce_sum(per_example), correct, all_finite, tf.argmin(tf.cast(finite, tf.int32))

    @tf.function
    def step(x, y, seed):
        loss, correct, ok, bad = strategy.run(_replica_step, args=(x, y, seed))
        reduce = lambda v: strategy.reduce("SUM", v, axis=None)  # noqa: E731
        ok = tf.equal(reduce(ok), replicas)
        return reduce(loss), reduce(correct), ok, strategy.experimental_local_results(bad)[0]

    return step


def _accuracy_fns(model, config):
    """Compiled per-batch counts: clean(x, y) and pgd(x, y, seed) -> number correct."""
    @tf.function
    def clean(x, y):
        return tf.reduce_sum(tf.cast(tf.argmax(model(x, training=False), -1) == tf.cast(y, tf.int64), tf.int32))

    @tf.function
    def pgd(x, y, seed):
        return clean(pgd_perturb(model, x, y, config.eps, config.eps / 4, config.eval_pgd_steps, seed), y)

    return clean, pgd


def _accuracy(count, x, y, seed=None, batch_size=256):
    """Fraction of (x, y) that `count` finds correct; NaN when empty."""
    if len(y) == 0:
        return math.nan
    correct = 0
    for i in range(0, len(y), batch_size):
        args = (x[i:i + batch_size], y[i:i + batch_size])
        correct += int(count(*args) if seed is None else count(*args, tf.constant([seed, i], tf.int64)))
    return correct / len(y)


def _split_guard(x, y, size, seed):
    """Hold out `size` random training images for the overfitting guard."""
    order = np.random.default_rng(seed).permutation(len(y))
    guard, train = np.sort(order[:size]), np.sort(order[size:])
    return (x[train], y[train]), (x[guard], y[guard])


def fit(build_model, train, test, config=TrainConfig(), checkpoint_dir=None, strategy=None, progress=True,
        epoch_metrics=None):
    """Train a model; resume from `checkpoint_dir` when it holds a checkpoint.

    Args:
        build_model: zero-argument callable returning a fresh logits model
            (called under `strategy.scope()` and the precision policy).
        train, test: `(images, labels)` arrays, images `(N, H, W, C)` float32
            in [0, 1]. `config.guard_size` training images are held out for the
            catastrophic-overfitting guard.
        config: a `TrainConfig`.
        checkpoint_dir: folder for the per-epoch checkpoint, the best weights
            and `history.csv`; None trains without checkpoints.
        strategy: a `tf.distribute.Strategy` (e.g. `MirroredStrategy()` over
            the visible GPUs); default: the current one.
        progress: show a progress bar per epoch.
        epoch_metrics: optional callable(model) -> `{column: float}`, called
            after each epoch; its columns are added to the history (e.g.
            `kaflib.lipschitz.lipschitz_epoch_metrics`).

    Returns:
        `TrainResult`. `history` columns: epoch, lr (at the epoch's end),
        train_loss (cross-entropy on the batches trained on, adversarial for
        AT), train_acc, guard_acc (PGD accuracy on the held-out guard images,
        clean for standard training), test_clean_acc (all test images),
        test_pgd_acc (PGD-`eval_pgd_steps` on the first `eval_size` test
        images), collapsed, seconds. Accuracies are fractions in [0, 1]. The
        model holds the last epoch's weights, or, if the guard accuracy
        collapsed (catastrophic overfitting: it fell `collapse_drop` below its
        best), the weights of the best guard epoch before it. Wong et al. stop
        on a 20-point fall with robust accuracy near 45%; the default 10 points
        also catches collapses from the ~20% of small-data runs. With
        `config.stop_on_divergence`, a non-finite gradient ends training the
        same way: the model gets the best guard epoch's weights, or its initial
        weights if no epoch finished (`best_epoch` None), `diverged` says
        where, and the history keeps the finished epochs only.

    Under `config.mixed_precision` (the thesis' setting) a non-finite
    gradient is not a divergence: the dynamic loss scaler skips that step and
    lowers its scale, and the step is counted in `skipped_steps`; only an epoch
    whose every step was skipped counts as diverged.

    Raises:
        TrainingDiverged: a non-finite gradient (names epoch, step and layer),
            unless `config.stop_on_divergence` or `config.mixed_precision`.
    """
    start = time.perf_counter()
    strategy = strategy or tf.distribute.get_strategy()
    (x_train, y_train), guard = _split_guard(*train, config.guard_size, config.seed)
    if len(y_train) < config.batch_size:
        raise ValueError(f"batch_size={config.batch_size} exceeds the {len(y_train)} training images "
                         f"left after holding out guard_size={config.guard_size}.")
    eval_idx = stratified_first(test[1], min(config.eval_size, len(test[1])))
    steps_per_epoch = config.steps_per_epoch(len(train[1]))
    keras.utils.set_random_seed(config.seed)  # initial weights and dropout masks follow the seed
    with strategy.scope(), dtype_policy("mixed_float16" if config.mixed_precision else "float32"):
        model = build_model()
        optimizer = _optimizer(config, config.schedule(len(train[1])))
        optimizer.build(model.trainable_variables)
    epoch_done = tf.Variable(0, dtype=tf.int64, trainable=False)
    best = {"acc": tf.Variable(-1.0, trainable=False), "epoch": tf.Variable(0, dtype=tf.int64, trainable=False)}
    state = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_done,
                                best_acc=best["acc"], best_epoch=best["epoch"],
                                variables=list(model.variables))  # includes dropout RNG states
    history, manager = [], None
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir)
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        manager = tf.train.CheckpointManager(state, checkpoint_dir / "state", max_to_keep=1)
        if manager.latest_checkpoint:
            state.restore(manager.latest_checkpoint).expect_partial()
            history = pd.read_csv(checkpoint_dir / "history.csv").to_dict("records")[: int(epoch_done)]
    resumed_from = int(epoch_done)
    if config.stop_on_divergence and not resumed_from:  # what a run that diverges in epoch 1 returns
        best_weights = [v.numpy() for v in model.weights]
    step_fn = _train_step(model, optimizer, config, strategy, config.batch_size,
                          warmup_steps=round(config.eps_warmup_epochs * steps_per_epoch))
    clean_count, pgd_count = _accuracy_fns(model, config)
    names = [v.path for v in model.trainable_variables]
    collapsed = next((int(r["epoch"]) for r in history if r.get("collapsed", False)), None)
    epoch, diverged = resumed_from, None
    while epoch < config.total_epochs and not (collapsed and config.stop_on_collapse) and not diverged:
        epoch += 1
        tic = time.perf_counter()
        data = make_dataset(x_train, y_train, config.batch_size, seed=config.seed * 100_003 + epoch,
                            augment=config.augment, drop_remainder=True)
        loss_sum = correct = seen = 0.0
        skipped = 0
        bar = _progress(steps_per_epoch, f"epoch {epoch}/{config.total_epochs}", progress)
        for step, (x, y) in enumerate(strategy.experimental_distribute_dataset(data), start=1):
            loss, hits, ok, bad = step_fn(x, y, tf.constant([config.seed, epoch * 1_000_003 + step], tf.int64))
            if not int(ok) and config.mixed_precision:  # skipped by the loss scaler, as in the thesis
                skipped += 1
                bar.update(1)
                continue
            if not int(ok):
                error = TrainingDiverged(epoch, step, names[int(bad)], manager and manager.latest_checkpoint)
                if not config.stop_on_divergence:
                    raise error
                diverged = str(error)
                break
            loss_sum, correct, seen = loss_sum + float(loss), correct + float(hits), seen + config.batch_size
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        bar.close()
        if not diverged and not seen:  # the loss scaler skipped every step: nothing trains any more
            error = TrainingDiverged(epoch, skipped, "some variable at every scale the loss scaler tried (all steps skipped)",
                                     manager and manager.latest_checkpoint)
            if not config.stop_on_divergence:
                raise error
            diverged = str(error)
        if diverged:
            break
        if config.method == "standard":
            guard_acc = _accuracy(clean_count, *guard)
        else:
            guard_acc = _accuracy(pgd_count, *guard, seed=config.seed + epoch)
        test_clean = _accuracy(clean_count, *test)
        test_pgd = _accuracy(pgd_count, test[0][eval_idx], test[1][eval_idx], seed=config.seed + epoch)
        is_collapse = bool(guard_acc < float(best["acc"]) - config.collapse_drop)
        collapsed = collapsed or (epoch if is_collapse else None)
        history.append(dict(
            epoch=epoch, lr=float(optimizer.learning_rate), train_loss=loss_sum / seen, train_acc=correct / seen,
            guard_acc=guard_acc, test_clean_acc=test_clean, test_pgd_acc=test_pgd, collapsed=is_collapse,
            skipped_steps=skipped,
            **{name: float(value) for name, value in (epoch_metrics(model) if epoch_metrics else {}).items()},
            seconds=time.perf_counter() - tic))
        if progress:
            print(_summary(history[-1]), flush=True)
        if not guard_acc < float(best["acc"]):
            best["acc"].assign(guard_acc)
            best["epoch"].assign(epoch)
            if checkpoint_dir is not None:
                write_atomic(checkpoint_dir / "best.weights.h5", model.save_weights)
            else:
                best_weights = [v.numpy() for v in model.weights]
        epoch_done.assign(epoch)
        if manager is not None:
            write_atomic(checkpoint_dir / "history.csv", lambda p: pd.DataFrame(history).to_csv(p, index=False))
            manager.save()
    if diverged or (collapsed and int(best["epoch"]) != epoch):  # Wong et al.: back to the pre-collapse weights
        if checkpoint_dir is not None and int(best["epoch"]):
            model.load_weights(checkpoint_dir / "best.weights.h5")
        else:
            for v, w in zip(model.weights, best_weights):
                v.assign(w)
    history = pd.DataFrame(history) if history else pd.DataFrame(columns=_HISTORY_COLUMNS)
    return TrainResult(model, history, int(best["epoch"]) or None, collapsed,
                       resumed_from, time.perf_counter() - start, diverged)


_HISTORY_COLUMNS = ["epoch", "lr", "train_loss", "train_acc", "guard_acc", "test_clean_acc", "test_pgd_acc",
                    "collapsed", "skipped_steps", "seconds"]


def _summary(row):
    return (f"epoch {row['epoch']}: loss {row['train_loss']:.3f}, train acc {row['train_acc']:.3f}, "
            f"guard {row['guard_acc']:.3f}, test clean {row['test_clean_acc']:.3f}, "
            f"test PGD {row['test_pgd_acc']:.3f}, lr {row['lr']:.4f}, {row['seconds']:.1f}s"
            + (" (collapsed)" if row["collapsed"] else ""))


def _progress(total, description, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, leave=False, disable=not enabled)


def lr_range_test(build_model, train, config=TrainConfig(), start_lr=1e-4, end_lr=10.0, steps=100,
                  divergence=4.0, progress=True):
    """Learning-rate range test (Smith 2017), with the training method of `config`.

    Trains a fresh model for at most `steps` steps while the learning rate grows
    geometrically from `start_lr` to `end_lr`; stops when the smoothed loss
    exceeds `divergence` times its minimum (or is not finite).

    Returns:
        DataFrame with columns step, lr, loss, smoothed_loss (exponential
        moving average, factor 0.98, bias-corrected). Choose max_lr a little
        below the rate of the minimum smoothed loss.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"lr_range_test needs 0 < start_lr < end_lr, got {start_lr!r}, {end_lr!r}.")
    if not _is_int(steps) or steps < 2:
        raise ValueError(f"lr_range_test steps must be an integer >= 2, got {steps!r}.")
    strategy = tf.distribute.get_strategy()
    x, y = train
    growth = (end_lr / start_lr) ** (1 / (steps - 1))
    schedule = keras.optimizers.schedules.ExponentialDecay(start_lr, decay_steps=1, decay_rate=growth)
    with dtype_policy("mixed_float16" if config.mixed_precision else "float32"):
        model = build_model()
        optimizer = _optimizer(config, schedule)
        optimizer.build(model.trainable_variables)
    step_fn = _train_step(model, optimizer, config, strategy, config.batch_size)
    rows, average, best = [], 0.0, math.inf
    bar = _progress(steps, "lr range test", progress)
    epoch = 0
    while len(rows) < steps:
        epoch += 1
        data = make_dataset(x, y, config.batch_size, seed=config.seed + epoch, augment=config.augment,
                            drop_remainder=True)
        for xb, yb in data:
            lr = float(schedule(len(rows)))
            loss, _, _, _ = step_fn(xb, yb, tf.constant([config.seed, len(rows)], tf.int64))
            loss = float(loss) / config.batch_size
            average = 0.98 * average + 0.02 * loss
            smoothed = average / (1 - 0.98 ** (len(rows) + 1))
            rows.append(dict(step=len(rows), lr=lr, loss=loss, smoothed_loss=smoothed))
            bar.update(1)
            best = min(best, smoothed)
            if not math.isfinite(smoothed) or smoothed > divergence * best or len(rows) >= steps:
                bar.close()
                return pd.DataFrame(rows)
    bar.close()
    return pd.DataFrame(rows)
