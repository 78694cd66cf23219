"""Training: standard, fast adversarial (FGSM-RS, Wong et al. 2020) and PGD-k (Madry et al.).

One call, `fit`, trains a Keras model with SGD + momentum and the one-cycle
schedule, checkpoints every epoch, resumes from the last checkpoint when run
again, guards against catastrophic overfitting (Wong et al.) and against
non-finite gradients, and returns the per-epoch history. The step itself is
Wong et al.'s algorithm (`make_train_step`): random start, one signed
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
from kaflib.checks import check, is_int, is_number
from kaflib.data import make_dataset, stratified_first
from kaflib.files import write_atomic
from kaflib.models import dtype_policy
from kaflib.schedules import OneCycle

__all__ = ["METHODS", "TrainConfig", "TrainResult", "TrainingDiverged", "fit", "lr_range_test", "make_optimizer",
           "make_train_step", "suggest_lr_range"]

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
            ("epochs", is_int(self.epochs) and self.epochs >= 1, "an integer >= 1"),
            ("extra_epochs", is_int(self.extra_epochs) and self.extra_epochs >= 0, "an integer >= 0"),
            ("batch_size", is_int(self.batch_size) and self.batch_size >= 1, "an integer >= 1"),
            ("max_lr", is_number(self.max_lr) and self.max_lr > 0, "> 0"),
            ("min_lr", is_number(self.min_lr) and is_number(self.max_lr) and 0 <= self.min_lr <= self.max_lr,
             "0 <= min_lr <= max_lr"),
            ("momentum", is_number(self.momentum) and 0 <= self.momentum < 1, "in [0, 1)"),
            ("extra_lr", self.extra_lr is None or (is_number(self.extra_lr) and self.extra_lr > 0), "None or > 0"),
            ("eps", is_number(self.eps) and 0 <= self.eps <= 1, "in [0, 1] (pixel units, e.g. 8/255)"),
            ("eps_warmup_epochs", is_number(self.eps_warmup_epochs) and 0 <= self.eps_warmup_epochs <= self.epochs,
             "a number in [0, epochs]"),
            ("pgd_steps", is_int(self.pgd_steps) and self.pgd_steps >= 1, "an integer >= 1"),
            ("pgd_step_size", is_number(self.pgd_step_size) and 0 < self.pgd_step_size <= 1, "in (0, 1]"),
            ("guard_size", is_int(self.guard_size) and self.guard_size >= 0, "an integer >= 0"),
            ("collapse_drop", is_number(self.collapse_drop) and 0 < self.collapse_drop <= 1, "in (0, 1]"),
            ("eval_size", is_int(self.eval_size) and self.eval_size >= 0, "an integer >= 0"),
            ("eval_pgd_steps", is_int(self.eval_pgd_steps) and self.eval_pgd_steps >= 1, "an integer >= 1"),
            ("seed", is_int(self.seed) and self.seed >= 0, "an integer >= 0"),
        ]
        for name, ok, allowed in checks:
            check(name, getattr(self, name), ok, allowed, owner="TrainConfig")

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


def make_optimizer(config, learning_rate):
    """SGD with `config.momentum` at `learning_rate` (a float or a schedule), inside a
    dynamic `LossScaleOptimizer` under `config.mixed_precision` (the thesis' set-up)."""
    optimizer = keras.optimizers.SGD(learning_rate, momentum=config.momentum)
    return keras.optimizers.LossScaleOptimizer(optimizer) if config.mixed_precision else optimizer


def make_train_step(model, optimizer, config, strategy=None, global_batch=None, warmup_steps=0):
    """The compiled training step of `config.method`: `step(x, y, seed)`.

    Args:
        model: Keras logits model; optimizer: built for its trainable variables
            (`make_optimizer`); strategy: a `tf.distribute.Strategy` (default
            the current one); global_batch: images per step over all replicas
            (default `config.batch_size`); the loss is divided by it.
        warmup_steps: the attack's eps (and its step sizes) grow linearly from
            eps / warmup_steps at the first optimizer step to eps at step
            `warmup_steps`; 0 uses eps from the start.

    `step(x, y, seed)` takes images `(B, H, W, C)` in [0, 1], labels `(B,)` and a
    `(2,)` int64 seed; it perturbs the batch (FGSM-RS or PGD-k; nothing for
    standard training), updates the weights on it and returns (sum of the
    per-image losses, number correct, whether every gradient was finite, index
    of the first non-finite trainable variable).
    """
    strategy = strategy or tf.distribute.get_strategy()
    global_batch = global_batch or config.batch_size
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


class _RunState:
    """What a run must keep between sittings: the weights, the optimizer, the
    finished epochs' history and the best guard epoch, in a per-epoch checkpoint
    under `checkpoint_dir` (or only in memory when it is None)."""

    def __init__(self, model, optimizer, checkpoint_dir, keep_initial_weights):
        self.model = model
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.best_acc = tf.Variable(-1.0, trainable=False)
        self.best_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        state = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=self.epoch, best_acc=self.best_acc,
                                    best_epoch=self.best_epoch,
                                    variables=list(model.variables))  # includes dropout RNG states
        self.history, self.manager, self.folder = [], None, None
        if checkpoint_dir is not None:
            self.folder = Path(checkpoint_dir)
            self.folder.mkdir(parents=True, exist_ok=True)
            self.manager = tf.train.CheckpointManager(state, self.folder / "state", max_to_keep=1)
            if self.manager.latest_checkpoint:
                state.restore(self.manager.latest_checkpoint).expect_partial()
                self.history = pd.read_csv(self.folder / "history.csv").to_dict("records")[: int(self.epoch)]
        self.resumed_from = int(self.epoch)
        # what a run that diverges before its first epoch ends returns
        self.best_weights = [v.numpy() for v in model.weights] if keep_initial_weights else None

    @property
    def latest_checkpoint(self):
        return self.manager and self.manager.latest_checkpoint

    def end_epoch(self, row):
        """Record a finished epoch: keep the weights if its guard accuracy is the best so
        far, then write the history and the checkpoint (history first: a checkpoint never
        points past the history)."""
        if not row["guard_acc"] < float(self.best_acc):
            self.best_acc.assign(row["guard_acc"])
            self.best_epoch.assign(row["epoch"])
            if self.folder is not None:
                write_atomic(self.folder / "best.weights.h5", self.model.save_weights)
            else:
                self.best_weights = [v.numpy() for v in self.model.weights]
        self.history.append(row)
        self.epoch.assign(row["epoch"])
        if self.manager is not None:
            write_atomic(self.folder / "history.csv", lambda p: pd.DataFrame(self.history).to_csv(p, index=False))
            self.manager.save()

    def restore_best(self):
        """Put back the best guard epoch's weights (or the initial ones if no epoch finished)."""
        if self.folder is not None and int(self.best_epoch):
            self.model.load_weights(self.folder / "best.weights.h5")
        else:
            for v, w in zip(self.model.weights, self.best_weights):
                v.assign(w)


@dataclasses.dataclass
class _EpochOutcome:
    loss_sum: float = 0.0
    correct: float = 0.0
    seen: int = 0
    skipped: int = 0               #: steps the loss scaler skipped (mixed precision)
    bad_step: int | None = None    #: the step whose gradient was not finite (float32)
    bad_variable: int = 0


def _run_epoch(step_fn, batches, config, epoch, bar):
    """Train one epoch: every batch through `step_fn`; stops at the first
    non-finite gradient unless the loss scaler (mixed precision) skips it."""
    out = _EpochOutcome()
    for step, (x, y) in enumerate(batches, start=1):
        loss, hits, ok, bad = step_fn(x, y, tf.constant([config.seed, epoch * 1_000_003 + step], tf.int64))
        bar.update(1)
        if not int(ok) and config.mixed_precision:  # skipped by the loss scaler, as in the thesis
            out.skipped += 1
            continue
        if not int(ok):
            out.bad_step, out.bad_variable = step, int(bad)
            return out
        out.loss_sum, out.correct, out.seen = out.loss_sum + float(loss), out.correct + float(hits), \
            out.seen + config.batch_size
        bar.set_postfix(loss=f"{out.loss_sum / out.seen:.3f}", acc=f"{out.correct / out.seen:.3f}")
    return out


def _divergence(outcome, epoch, names, checkpoint):
    """The `TrainingDiverged` of an epoch, or None: a non-finite gradient in float32, or
    under mixed precision an epoch whose every step the loss scaler had to skip."""
    if outcome.bad_step is not None:
        return TrainingDiverged(epoch, outcome.bad_step, names[outcome.bad_variable], checkpoint)
    if not outcome.seen:  # the loss scaler skipped every step: nothing trains any more
        return TrainingDiverged(epoch, outcome.skipped,
                                "some variable at every scale the loss scaler tried (all steps skipped)", checkpoint)
    return None


def _epoch_evaluation(model, config, guard, test, eval_idx):
    """`evaluate(epoch) -> {guard_acc, test_clean_acc, test_pgd_acc}`: the guard's PGD
    accuracy (clean for standard training), clean accuracy on every test image and
    PGD-`eval_pgd_steps` accuracy on the `eval_idx` test images."""
    clean_count, pgd_count = _accuracy_fns(model, config)

    def evaluate(epoch):
        seed = config.seed + epoch
        guard_acc = (_accuracy(clean_count, *guard) if config.method == "standard"
                     else _accuracy(pgd_count, *guard, seed=seed))
        return dict(guard_acc=guard_acc, test_clean_acc=_accuracy(clean_count, *test),
                    test_pgd_acc=_accuracy(pgd_count, test[0][eval_idx], test[1][eval_idx], seed=seed))

    return evaluate


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
    steps_per_epoch = config.steps_per_epoch(len(train[1]))
    keras.utils.set_random_seed(config.seed)  # initial weights and dropout masks follow the seed
    with strategy.scope(), dtype_policy("mixed_float16" if config.mixed_precision else "float32"):
        model = build_model()
        optimizer = make_optimizer(config, config.schedule(len(train[1])))
        optimizer.build(model.trainable_variables)
    run = _RunState(model, optimizer, checkpoint_dir, keep_initial_weights=config.stop_on_divergence)
    step_fn = make_train_step(model, optimizer, config, strategy,
                              warmup_steps=round(config.eps_warmup_epochs * steps_per_epoch))
    evaluate = _epoch_evaluation(model, config, guard, test,
                                 stratified_first(test[1], min(config.eval_size, len(test[1]))))
    names = [v.path for v in model.trainable_variables]
    collapsed = next((int(r["epoch"]) for r in run.history if r.get("collapsed", False)), None)
    epoch, diverged = run.resumed_from, None
    while epoch < config.total_epochs and not (collapsed and config.stop_on_collapse):
        epoch += 1
        tic = time.perf_counter()
        data = make_dataset(x_train, y_train, config.batch_size, seed=config.seed * 100_003 + epoch,
                            augment=config.augment, drop_remainder=True)
        bar = _progress(steps_per_epoch, f"epoch {epoch}/{config.total_epochs}", progress)
        outcome = _run_epoch(step_fn, strategy.experimental_distribute_dataset(data), config, epoch, bar)
        bar.close()
        error = _divergence(outcome, epoch, names, run.latest_checkpoint)
        if error is not None:
            if not config.stop_on_divergence:
                raise error
            diverged = str(error)
            break
        row = dict(epoch=epoch, lr=float(optimizer.learning_rate), train_loss=outcome.loss_sum / outcome.seen,
                   train_acc=outcome.correct / outcome.seen, **evaluate(epoch))
        row["collapsed"] = bool(row["guard_acc"] < float(run.best_acc) - config.collapse_drop)
        collapsed = collapsed or (epoch if row["collapsed"] else None)
        row.update(skipped_steps=outcome.skipped,
                   **{k: float(v) for k, v in (epoch_metrics(model) if epoch_metrics else {}).items()},
                   seconds=time.perf_counter() - tic)
        if progress:
            print(_summary(row), flush=True)
        run.end_epoch(row)
    if diverged or (collapsed and int(run.best_epoch) != epoch):  # Wong et al.: back to the pre-collapse weights
        run.restore_best()
    history = pd.DataFrame(run.history) if run.history else pd.DataFrame(columns=_HISTORY_COLUMNS)
    return TrainResult(model, history, int(run.best_epoch) or None, collapsed,
                       run.resumed_from, time.perf_counter() - start, diverged)


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


def suggest_lr_range(rows, window=9, fall=0.05, done=0.9, rise=0.01):
    """`(min_lr, max_lr, rule)` for a one-cycle schedule from an `lr_range_test` result.

    Smith's (2017) reading of the test, made mechanical. The per-step loss is
    smoothed by a centred running median over `window` steps.

    * rule ``"fall"`` (the smoothed loss falls at least `fall`, a fraction,
      below its start): min_lr is the rate where it starts to fall (`fall`
      below its start); max_lr is half the rate at which, once a share `done`
      of its whole fall is done, it first rises `rise` above its running
      minimum: "a little below" where it turns up or ragged.
    * rule ``"flat"`` (it never falls that far: the network does not learn
      within the test's steps, as random KAFs N(0, 0.05^2) on the mini set):
      max_lr is half the rate at which it first rises `rise` above its running
      minimum, and min_lr is max_lr / 100.

    Without a rise, the last rate tested stands for the edge.

    Args:
        rows: DataFrame (or records) with columns lr and loss, in step order.
    """
    frame = pd.DataFrame(rows)
    if not {"lr", "loss"} <= set(frame.columns) or len(frame) < window:
        raise ValueError(f"rows must have columns lr and loss and at least window={window} rows.")
    median = frame["loss"].rolling(window, center=True, min_periods=window // 2 + 1).median().to_numpy()
    lr = frame["lr"].to_numpy()
    start, lowest = median[0], median.min()
    falls = lowest <= (1 - fall) * start
    settled = int(np.argmax(median <= start - done * (start - lowest))) if falls else 0
    tail = median[settled:]
    rising = np.flatnonzero(tail > (1 + rise) * np.minimum.accumulate(tail))
    max_lr = float((lr[settled + rising[0]] if len(rising) else lr[-1]) / 2)
    if falls:
        return float(lr[int(np.argmax(median <= (1 - fall) * start))]), max_lr, "fall"
    return max_lr / 100, max_lr, "flat"


def lr_range_test(build_model, train, config=TrainConfig(), start_lr=1e-4, end_lr=10.0, steps=100,
                  divergence=4.0, progress=True, checkpoint_dir=None, save_every=5):
    """Learning-rate range test (Smith 2017), with the training method of `config`.

    Trains a fresh model for at most `steps` steps while the learning rate grows
    geometrically from `start_lr` to `end_lr`; stops when the smoothed loss
    exceeds `divergence` times its minimum (or is not finite).

    Args:
        build_model: callable returning a fresh Keras logits model.
        train: `(x, y)`: images `(N, H, W, C)` in [0, 1], labels `(N,)`.
        checkpoint_dir: folder for the test's state (weights, optimizer, rows so
            far), saved every `save_every` steps; a test interrupted there
            resumes from it and gives the rows an uninterrupted one gives. None:
            nothing is saved.

    Returns:
        DataFrame with columns step, lr, loss, smoothed_loss (exponential
        moving average, factor 0.98, bias-corrected). Choose max_lr a little
        below the rate of the minimum smoothed loss (`suggest_lr_range`).
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"lr_range_test needs 0 < start_lr < end_lr, got {start_lr!r}, {end_lr!r}.")
    if not is_int(steps) or steps < 2:
        raise ValueError(f"lr_range_test steps must be an integer >= 2, got {steps!r}.")
    if not is_int(save_every) or save_every < 1:
        raise ValueError(f"lr_range_test save_every must be an integer >= 1, got {save_every!r}.")
    strategy = tf.distribute.get_strategy()
    x, y = train
    steps_per_epoch = len(y) // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"lr_range_test needs at least batch_size={config.batch_size} training images, got {len(y)}.")
    growth = (end_lr / start_lr) ** (1 / (steps - 1))
    schedule = keras.optimizers.schedules.ExponentialDecay(start_lr, decay_steps=1, decay_rate=growth)
    with dtype_policy("mixed_float16" if config.mixed_precision else "float32"):
        model = build_model()
        optimizer = make_optimizer(config, schedule)
        optimizer.build(model.trainable_variables)
    step_fn = make_train_step(model, optimizer, config, strategy)
    saved = _RangeTestState(model, optimizer, checkpoint_dir)
    rows = saved.restore()
    best = min((r["smoothed_loss"] for r in rows), default=math.inf)
    average = rows[-1]["smoothed_loss"] * (1 - 0.98 ** len(rows)) if rows else 0.0
    bar = _progress(steps, "lr range test", progress)
    bar.update(len(rows))
    while len(rows) < steps:
        # an epoch's batches depend on its seed only, so a resumed test skips the ones it has done
        epoch = len(rows) // steps_per_epoch + 1
        data = make_dataset(x, y, config.batch_size, seed=config.seed + epoch, augment=config.augment,
                            drop_remainder=True).skip(len(rows) % steps_per_epoch)
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
            if len(rows) % save_every == 0:
                saved.save(rows)
    bar.close()
    return pd.DataFrame(rows)


class _RangeTestState:
    """An LR range test's weights, optimizer and rows in `folder` (None: not saved)."""

    def __init__(self, model, optimizer, folder):
        self.folder = None if folder is None else Path(folder)
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state = tf.train.Checkpoint(model=model, optimizer=optimizer, variables=list(model.variables))
        self.manager = tf.train.CheckpointManager(self.state, self.folder / "state", max_to_keep=1)

    def restore(self):
        """The rows saved with the latest state (and that state restored), or []."""
        if self.folder is None or not self.manager.latest_checkpoint or not (self.folder / "rows.csv").is_file():
            return []
        self.state.restore(self.manager.latest_checkpoint).expect_partial()
        done = int(self.manager.latest_checkpoint.rsplit("-", 1)[1])  # ckpt-<steps done>
        return pd.read_csv(self.folder / "rows.csv").to_dict("records")[:done]

    def save(self, rows):
        if self.folder is None:
            return
        partial = self.folder / "rows.csv.partial"
        pd.DataFrame(rows).to_csv(partial, index=False)
        partial.replace(self.folder / "rows.csv")  # the rows first: the state names how many are valid
        self.manager.save(checkpoint_number=len(rows))
