import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from keras import ops

from kaflib.attacks import cross_entropy, fgsm_rs_perturb, pgd_perturb
from kaflib.models import build_model
from kaflib.schedules import OneCycle
from kaflib.train import TrainConfig, TrainingDiverged, fit, lr_range_test, suggest_lr_range

ROOT = Path(__file__).resolve().parents[1]


def tiny_data(n=192, seed=0, size=16):
    """A learnable synthetic task: the class is the brightest of 4 quadrants... x 2.5 classes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.uniform(0, 0.5, (n, size, size, 3)).astype("float32")
    h = size // 2
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, r * h:(r + 1) * h, c * h:(c + 1) * h] += 0.5
    return x, y


def tiny_model(act="relu"):
    # batch-norm momentum 0.9: the moving statistics follow the few dozen steps these tests train
    return build_model("light", act, num_classes=4, input_shape=(16, 16, 3), recipe="he-bn0.9")


def test_one_cycle_schedule_shape():
    s = OneCycle(steps_per_epoch=10, epochs=4, min_lr=0.01, max_lr=0.2, extra_epochs=2, final_lr=0.001)
    lr = ops.convert_to_numpy(s(np.arange(61)))
    assert lr[0] == pytest.approx(0.01) and lr[20] == pytest.approx(0.2) and lr[40] == pytest.approx(0.01)
    assert lr[60] == pytest.approx(0.001)
    assert np.all(np.diff(lr[:21]) > 0) and np.all(np.diff(lr[20:41]) < 0) and np.all(np.diff(lr[40:]) < 0)
    with pytest.raises(ValueError, match="min_lr"):
        OneCycle(10, 4, min_lr=0.3, max_lr=0.2)


@pytest.mark.parametrize("kwargs, name", [(dict(method="fgsm"), "method"), (dict(epochs=0), "epochs"),
                                          (dict(eps=2.0), "eps"), (dict(min_lr=1.0, max_lr=0.1), "min_lr"),
                                          (dict(batch_size=1.5), "batch_size"),
                                          (dict(epochs=2, eps_warmup_epochs=3), "eps_warmup_epochs")])
def test_config_validation_names_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=f"TrainConfig {name}="):
        TrainConfig(**kwargs)


def test_fgsm_rs_and_pgd_stay_in_the_ball_and_raise_the_loss():
    x, y = tiny_data(64)
    keras.utils.set_random_seed(0)
    model = tiny_model()
    eps = 8 / 255
    seed = tf.constant([1, 2], tf.int64)
    loss = lambda images: float(tf.reduce_mean(cross_entropy(y, model(images, training=False))))  # noqa: E731
    noise = np.clip(x + np.random.default_rng(0).choice([-eps, eps], x.shape), 0, 1).astype("float32")
    fgsm = fgsm_rs_perturb(model, x, y, eps, 1.25 * eps, seed, training=False).numpy()
    pgd = pgd_perturb(model, x, y, eps, eps / 4, 10, seed).numpy()
    for adv in (fgsm, pgd):
        assert np.abs(adv - x).max() <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert loss(pgd) > loss(fgsm) > loss(noise)


def test_fit_learns_writes_history_and_checkpoints(tmp_path):
    x, y = tiny_data()
    config = TrainConfig(method="fgsm_rs", epochs=3, batch_size=32, max_lr=0.05, guard_size=32,
                         eval_size=32, eps=2 / 255, seed=1, collapse_drop=1.0)  # guard never stops it
    result = fit(tiny_model, (x, y), tiny_data(64, seed=9), config, checkpoint_dir=tmp_path, progress=False)
    h = result.history
    assert list(h.columns) == ["epoch", "lr", "train_loss", "train_acc", "guard_acc", "test_clean_acc",
                               "test_pgd_acc", "collapsed", "skipped_steps", "seconds"]
    assert h["skipped_steps"].tolist() == [0, 0, 0]  # float32: nothing is ever skipped
    assert h["epoch"].tolist() == [1, 2, 3] and h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]
    assert (tmp_path / "best.weights.h5").is_file() and (tmp_path / "history.csv").is_file()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "history.csv"), h, check_dtype=False)
    # Running again finds every epoch done: nothing more is trained.
    again = fit(tiny_model, (x, y), tiny_data(64, seed=9), config, checkpoint_dir=tmp_path, progress=False)
    assert again.resumed_from_epoch == 3 and len(again.history) == 3


def test_epoch_metrics_add_a_column_per_epoch_from_the_epochs_weights():
    from kaflib.lipschitz import lipschitz_epoch_metrics, network_lipschitz

    x, y = tiny_data(128)
    config = TrainConfig(method="standard", epochs=2, batch_size=32, max_lr=0.05, guard_size=32, eval_size=32)
    seen = []

    def metrics(model):
        seen.append(float(ops.convert_to_numpy(ops.sum(model.trainable_variables[0]))))
        return lipschitz_epoch_metrics(model)

    result = fit(lambda: tiny_model("kaf"), (x, y), tiny_data(64, seed=9), config, progress=False,
                 epoch_metrics=metrics)
    h = result.history
    assert len(seen) == 2 and seen[0] != seen[1]  # called once per epoch, on weights that changed
    assert h.columns[-3:].tolist() == ["lipschitz_bound_log10", "activation_lipschitz_max", "seconds"]
    assert h["lipschitz_bound_log10"].iloc[-1] == pytest.approx(np.log10(network_lipschitz(result.model)[0]))
    assert (h["activation_lipschitz_max"] > 0).all()


def test_eps_warmup_weakens_the_attack_of_the_first_epochs():
    x, y = tiny_data()
    first_epoch = {}
    for warmup in (0, 2):
        config = TrainConfig(method="fgsm_rs", epochs=2, batch_size=32, max_lr=0.05, guard_size=32, eval_size=32,
                             eps=32 / 255, eps_warmup_epochs=warmup, seed=1, stop_on_collapse=False)
        first_epoch[warmup] = fit(tiny_model, (x, y), tiny_data(64, seed=9), config,
                                  progress=False).history.iloc[0]
    # Same seed and weights; the adversarial batches of epoch 1 are easier with a growing eps.
    assert first_epoch[2]["train_loss"] < first_epoch[0]["train_loss"]


WORKER = """
import sys, json
from tests.test_train import tiny_data, tiny_model
from kaflib.train import TrainConfig, fit
config = TrainConfig(method="fgsm_rs", epochs=5, batch_size=32, max_lr=0.05, guard_size=32, eval_size=32,
                     eps=2 / 255, seed=3, augment=True)
fit(tiny_model, tiny_data(), tiny_data(64, seed=9), config, checkpoint_dir=sys.argv[1], progress=False)
"""


def run_worker(folder, kill_after_epochs=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_DETERMINISTIC_OPS="1")
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(folder)], cwd=ROOT, env=env)
    if kill_after_epochs is None:
        assert proc.wait(timeout=600) == 0
        return
    history = Path(folder) / "history.csv"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if history.is_file() and len(pd.read_csv(history)) >= kill_after_epochs:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

@pytest.mark.slow  # kills a training subprocess

def test_killed_run_resumes_to_the_same_history(tmp_path):
    run_worker(tmp_path / "whole")
    run_worker(tmp_path / "killed", kill_after_epochs=2)
    partial = pd.read_csv(tmp_path / "killed" / "history.csv")
    assert 2 <= len(partial) < 5
    run_worker(tmp_path / "killed")
    whole = pd.read_csv(tmp_path / "whole" / "history.csv").drop(columns="seconds")
    resumed = pd.read_csv(tmp_path / "killed" / "history.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(whole, resumed)


def test_non_finite_gradient_stops_with_epoch_step_layer(tmp_path):
    x, y = tiny_data()
    test = tiny_data(64, seed=9)
    config = dict(method="standard", batch_size=32, guard_size=32, eval_size=32, seed=0)
    fit(tiny_model, (x, y), test, TrainConfig(epochs=1, **config), checkpoint_dir=tmp_path, progress=False)
    bad = x.copy()
    bad[:] = np.nan
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 1: the gradient of conv2d\w*/kernel") as err:
        fit(tiny_model, (bad, y), test, TrainConfig(epochs=2, **config), checkpoint_dir=tmp_path, progress=False)
    assert err.value.epoch == 2 and "ckpt-1" in err.value.checkpoint
    assert len(pd.read_csv(tmp_path / "history.csv")) == 1  # the last good epoch is kept


def test_stop_on_divergence_returns_the_best_epoch_weights(tmp_path):
    x, y = tiny_data()
    test = tiny_data(64, seed=9)
    config = dict(method="standard", batch_size=32, guard_size=32, eval_size=32, seed=0, stop_on_divergence=True)
    first = fit(tiny_model, (x, y), test, TrainConfig(epochs=1, **config), checkpoint_dir=tmp_path, progress=False)
    good = [w.numpy() for w in first.model.weights]
    bad = x.copy()
    bad[:] = np.nan
    result = fit(tiny_model, (bad, y), test, TrainConfig(epochs=2, **config), checkpoint_dir=tmp_path,
                 progress=False)
    assert "epoch 2, step 1" in result.diverged and result.best_epoch == 1
    assert len(result.history) == 1
    for before, after in zip(good, result.model.weights):
        np.testing.assert_array_equal(before, after.numpy())
    fresh = fit(tiny_model, (bad, y), test, TrainConfig(epochs=1, **config), checkpoint_dir=tmp_path / "fresh",
                progress=False)  # diverges before any epoch finished: the initial weights come back
    keras.utils.set_random_seed(0)
    initial = tiny_model()
    assert "epoch 1, step 1" in fresh.diverged and fresh.best_epoch is None and fresh.history.empty
    for before, after in zip(initial.weights, fresh.model.weights):
        np.testing.assert_array_equal(before.numpy(), after.numpy())


def test_mixed_precision_trains(tmp_path):
    config = TrainConfig(method="fgsm_rs", epochs=1, batch_size=32, guard_size=32, eval_size=32,
                         mixed_precision=True)
    result = fit(lambda: tiny_model("kaf"), tiny_data(), tiny_data(64, seed=9), config, progress=False)
    assert result.model.layers[1].compute_dtype == "float16"
    assert np.isfinite(result.history["train_loss"]).all()
    assert result.history["skipped_steps"].tolist() == [0]


def test_under_mixed_precision_a_non_finite_step_is_skipped_and_counted_not_stopped():
    x, y = tiny_data()
    x[[3, 50, 120]] = np.nan  # three poisoned images: their batches have non-finite gradients
    config = TrainConfig(method="standard", epochs=2, batch_size=32, guard_size=32, eval_size=32,
                         mixed_precision=True)
    result = fit(tiny_model, (x, y), tiny_data(64, seed=9), config, progress=False)
    skipped = result.history["skipped_steps"].tolist()
    assert result.diverged is None and len(skipped) == 2
    assert all(1 <= n < config.steps_per_epoch(len(y)) for n in skipped)
    # the skipped updates leave the trained weights finite (batch-norm moving statistics are
    # updated by the forward pass itself, as in Keras 2 and the thesis, so NaN images reach them)
    assert all(np.isfinite(w.numpy()).all() for w in result.model.trainable_weights)
    assert np.isfinite(result.history["train_loss"]).all()
    x[:] = np.nan  # every step skipped: nothing trains any more, and that is a divergence
    stopped = fit(tiny_model, (x, y), tiny_data(64, seed=9), TrainConfig(**{
        **config.__dict__, "stop_on_divergence": True}), progress=False)
    assert "loss scaler" in stopped.diverged and "epoch 1" in stopped.diverged and stopped.history.empty


def test_the_thesis_fine_tuning_halves_its_rate_every_four_epochs():
    s = OneCycle(steps_per_epoch=10, epochs=4, min_lr=0.01, max_lr=0.2, extra_epochs=20, extra_lr=0.01)
    lr = ops.convert_to_numpy(s(np.arange(0, 240, 10)))  # the first step of every epoch
    assert lr[4] == pytest.approx(0.005) and lr[7] == pytest.approx(0.005) and lr[8] == pytest.approx(0.0025)
    assert lr[23] == pytest.approx(0.01 / 2 ** 5)  # resnet20_kafrelu_ocrob_lrfinder_last's final rate
    assert OneCycle.from_config(s.get_config()).get_config() == s.get_config()
    with pytest.raises(ValueError, match="extra_lr"):
        OneCycle(10, 4, 0.0, 0.1, extra_lr=0)


MIRRORED = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import json
from tests.test_train import tiny_data, tiny_model
from kaflib.train import TrainConfig, fit
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
config = TrainConfig(method="fgsm_rs", epochs=2, batch_size=32, max_lr=0.05, guard_size=32, eval_size=32, eps=2 / 255)
result = fit(tiny_model, tiny_data(), tiny_data(64, seed=9), config, strategy=strategy, progress=False)
print(json.dumps(dict(replicas=strategy.num_replicas_in_sync, losses=result.history["train_loss"].tolist())))
"""

@pytest.mark.slow  # a subprocess with two logical CPUs

def test_mirrored_strategy_on_two_logical_cpus():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", MIRRORED], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert np.isfinite(report["losses"]).all() and report["losses"][1] < report["losses"][0]


def test_lr_range_test_grows_geometrically_and_stops_on_divergence():
    config = TrainConfig(method="standard", batch_size=32)
    table = lr_range_test(tiny_model, tiny_data(), config, start_lr=1e-3, end_lr=1e3, steps=60, progress=False)
    assert list(table.columns) == ["step", "lr", "loss", "smoothed_loss"]
    assert np.all(np.diff(table["lr"]) > 0) and table["lr"].iloc[0] == pytest.approx(1e-3)
    assert len(table) < 60  # lr up to 1000 diverges before the end


def test_interrupted_lr_range_test_resumes_to_the_same_rows(tmp_path, monkeypatch):
    import kaflib.train as train

    config = TrainConfig(method="fgsm_rs", batch_size=32, augment=True, seed=3)
    kwargs = dict(start_lr=1e-3, end_lr=1.0, steps=14, progress=False, save_every=4)
    keras.utils.set_random_seed(0)
    whole = lr_range_test(tiny_model, tiny_data(), config, **kwargs)  # 6 batches an epoch: crosses epochs
    assert len(whole) == 14

    real_step, steps_run = train.make_train_step, []

    def counted_step(*args, **kw):  # with `interrupt`, the process dies during step 11 (after the save at 8)
        step = real_step(*args, **kw)

        def wrapped(x, y, seed):
            if int(seed[1]) == interrupt:
                raise KeyboardInterrupt
            steps_run.append(int(seed[1]))
            return step(x, y, seed)
        return wrapped

    monkeypatch.setattr(train, "make_train_step", counted_step)
    interrupt = 10
    keras.utils.set_random_seed(0)  # as `studies.lr_range` does, in both sittings (tf.data's shuffle reads it)
    with pytest.raises(KeyboardInterrupt):
        lr_range_test(tiny_model, tiny_data(), config, checkpoint_dir=tmp_path, **kwargs)
    assert len(pd.read_csv(tmp_path / "rows.csv")) == 8
    interrupt, steps_run[:] = None, []
    keras.utils.set_random_seed(0)
    resumed = lr_range_test(tiny_model, tiny_data(), config, checkpoint_dir=tmp_path, **kwargs)
    assert steps_run == list(range(8, 14))  # the first 8 steps were restored, not redone
    pd.testing.assert_frame_equal(resumed, whole, rtol=1e-5)


def test_collapse_stops_training_and_restores_the_best_guard_weights(tmp_path):
    # collapse_drop close to 0: any fall of the guard accuracy counts as a collapse.
    config = TrainConfig(method="standard", epochs=6, batch_size=32, max_lr=0.5, guard_size=32, eval_size=32,
                         collapse_drop=1e-6, seed=2)
    result = fit(tiny_model, tiny_data(), tiny_data(64, seed=9), config, checkpoint_dir=tmp_path, progress=False)
    h = result.history
    if result.collapsed_epoch is None:
        assert len(h) == 6 and np.all(np.diff(h["guard_acc"]) >= 0)
    else:
        assert h["epoch"].iloc[-1] == result.collapsed_epoch and bool(h["collapsed"].iloc[-1])
        best = int(np.flatnonzero(h["guard_acc"] == h["guard_acc"].max())[-1]) + 1  # a tie moves the best on
        assert result.best_epoch == best
        reference = tiny_model()
        reference.load_weights(tmp_path / "best.weights.h5")
        x = tiny_data(8, seed=4)[0]
        np.testing.assert_array_equal(result.model.predict(x, verbose=0), reference.predict(x, verbose=0))


def test_suggest_lr_range_reads_where_the_loss_falls_and_where_it_rises():
    lr = np.geomspace(1e-4, 10, 100)
    rng = np.random.default_rng(0)
    # falls from 3 to 1 between lr 1e-3 and 0.1, flat, then rises from lr 1
    loss = np.interp(np.log10(lr), [-4, -3, -1, 0, 1], [3, 3, 1, 1, 4]) + rng.normal(0, 0.002, 100)
    low, high, rule = suggest_lr_range(dict(lr=lr, loss=loss))
    assert rule == "fall" and 1e-3 <= low <= 2e-3 and 0.5 <= high <= 0.6
    # never learns: flat at ln 10, then diverges from lr 2
    flat = np.where(lr < 2, np.log(10), np.log(10) + (lr - 2)) + rng.normal(0, 0.002, 100)
    low, high, rule = suggest_lr_range(dict(lr=lr, loss=flat))
    assert rule == "flat" and 1.0 <= high <= 1.2 and low == pytest.approx(high / 100)
    with pytest.raises(ValueError, match="columns lr and loss"):
        suggest_lr_range(dict(lr=lr[:5], loss=loss[:5]))
