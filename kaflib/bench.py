"""Benchmarks (measured in one run on this machine, printed as ratios; not tests).

    python -m kaflib.bench training [--model resnet20] [--act relu] [--json out.json]
    python -m kaflib.bench kaf [--batch-size 128] [--json bench/kaf-cpu.json]
    python -m kaflib.bench memory [--act relu --act kaf] [--batch-size 128]
    python -m kaflib.bench attack MODEL [--steps 20] [--json out.json]
    python -m kaflib.bench square MODEL [--steps 100] [--test-size 64]

`kaf`: ResNet20 train-step seconds (standard and FGSM-RS) and peak memory of
one FGSM-RS step for relu, swish, kaf, kaf_free, and the direct-formula KAF
(`DirectKAF`, the straightforward implementation) for comparison; a KAF layer
forward+backward alone on `(128, 32, 32, 16)`. Configurations are timed in
`--steps` round-robin rounds of 3 consecutive calls (the last 2 timed), so
drifts of the machine hit all alike; medians are reported. Ratios to ReLU and speed-ups
over the direct formula. Peak memory is TensorFlow's allocator peak during
the step minus what was allocated before it (weights, inputs): the
activations kept for the backward pass plus temporaries. TensorFlow keeps
these statistics on a CPU only when `TF_CPU_ALLOCATOR_USE_BFC=true` was set
before it started, so on a CPU the memory is measured in a fresh process that
kaflib starts with that variable (`memory` alone runs that measurement).

`attack`: kaflib's compiled PGD (`attacks.pgd_perturb`, one `tf.function`
over all iterations) next to ART's `ProjectedGradientDescent` on the same
model and images: images per second and robust accuracy of each.

`square`: ART's `SquareAttack` as it comes next to kaflib's `square_robust`
(the same attack through a classifier that scores each image once,
`evaluate.memoised_classifier`): seconds, images forwarded, robust accuracy.

`training`: seconds of one training epoch on the CIFAR-10 data found by
`kaflib.data` (the mini set in CI) for standard training, fast AT (FGSM-RS)
and PGD-7 AT, after a warm-up epoch each (tracing excluded), and the ratios
fast/standard (target <= 2.3) and fast/PGD-7.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

__all__ = ["training_epoch_times", "kaf_costs", "attack_speed", "square_speed", "fgsm_rs_peak_memory", "memory_report"]


def _epoch_seconds(method, model, act, train, batch_size, repeats):
    import tensorflow as tf

    from kaflib.data import make_dataset
    from kaflib.models import build_model
    from kaflib.train import TrainConfig, make_optimizer, make_train_step

    config = TrainConfig(method=method, batch_size=batch_size, guard_size=0)
    strategy = tf.distribute.get_strategy()
    net = build_model(model, act)
    optimizer = make_optimizer(config, config.schedule(len(train[1])))
    optimizer.build(net.trainable_variables)
    step = make_train_step(net, optimizer, config, strategy, batch_size)
    times = []
    for epoch in range(repeats + 1):  # epoch 0 traces and warms up
        data = make_dataset(*train, batch_size, seed=epoch, drop_remainder=True)
        tic = time.perf_counter()
        for i, (x, y) in enumerate(data):
            loss = step(x, y, tf.constant([0, i], tf.int64))[0]
        float(loss)
        times.append(time.perf_counter() - tic)
    return min(times[1:])


def training_epoch_times(model="resnet20", act="relu", batch_size=128, repeats=2, train_size=None):
    """{method: seconds per epoch (best of `repeats`)} and the ratios."""
    from kaflib.data import load_cifar10

    train, _ = load_cifar10(train_size=train_size)
    seconds = {m: _epoch_seconds(m, model, act, train, batch_size, repeats) for m in ("standard", "fgsm_rs", "pgd")}
    return dict(model=model, act=act, batch_size=batch_size, train_images=len(train[1]),
                machine=f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores",
                seconds=seconds,
                fgsm_rs_over_standard=seconds["fgsm_rs"] / seconds["standard"],
                fgsm_rs_over_pgd7=seconds["fgsm_rs"] / seconds["pgd"])


def _train_step_fn(kind, method, batch_size):
    """A compiled ResNet20 train step (x, y, seed) for `kind` ("kaf", "kaf (direct)", ...)."""
    import keras

    from kaflib.activations import get_activation, get_direct_activation
    from kaflib.models import resnet
    from kaflib.train import TrainConfig, make_optimizer, make_train_step

    act, direct = _parse(kind)
    keras.utils.set_random_seed(0)
    config = TrainConfig(method=method, batch_size=batch_size, guard_size=0)
    net = resnet(20, act, activation=get_direct_activation if direct else get_activation)
    optimizer = make_optimizer(config, 0.01)
    optimizer.build(net.trainable_variables)
    return make_train_step(net, optimizer, config, global_batch=batch_size)


def _layer_fn(kind, shape):
    """Forward+backward (w.r.t. input and weights) of one activation layer on `shape`."""
    import tensorflow as tf

    from kaflib.activations import get_activation, get_direct_activation

    name, direct = _parse(kind)
    layer = (get_direct_activation if direct else get_activation)(name)
    upstream = tf.random.stateless_normal(shape, (0, 1))
    layer.build(shape)

    @tf.function
    def forward_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x) * upstream)
        return tape.gradient(loss, [x] + layer.trainable_weights)

    return forward_backward


def _check_activations(activations):
    from kaflib.activations import ACTIVATIONS

    activations = tuple(activations)
    bad = [kind for kind in activations if _parse(kind)[0] not in ACTIVATIONS]
    if not activations or bad:
        raise ValueError(f"activations={activations!r} is invalid: each must be one of {', '.join(ACTIVATIONS)}, "
                         "optionally followed by ' (direct)' for the direct-formula KAF.")
    return activations


def _parse(kind):
    return kind.removesuffix(" (direct)"), kind.endswith("(direct)")


def _interleaved_seconds(fns, rounds, progress, desc, block=3):
    """{name: median seconds} of zero-argument `fns`. Rounds run every configuration in
    turn (this machine's speed drifts by up to 2x over minutes, and every configuration
    should see the same drift); within a round each runs `block` times in a row and only
    the last `block - 1` calls are timed (the steady state a training loop sees)."""
    from tqdm.auto import tqdm

    for fn in fns.values():  # warm-up: tracing and XLA compilation
        fn(), fn()
    times = {name: [] for name in fns}
    for _ in tqdm(range(rounds), desc=desc, disable=not progress, leave=False):
        for name, fn in fns.items():
            fn()
            for _ in range(block - 1):
                tic = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - tic)
    return {name: float(np.median(t)) for name, t in times.items()}


def _allocator_device():
    """The device whose allocator statistics TensorFlow keeps in this process, or None.

    A GPU always has them; the CPU only when `TF_CPU_ALLOCATOR_USE_BFC=true` was in
    the environment before TensorFlow started."""
    import tensorflow as tf

    device = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
    try:
        tf.config.experimental.get_memory_info(device)
    except ValueError:
        return None
    return device


def _peak_step_memory(fn, device):
    """TensorFlow's allocator peak during one call of `fn` minus what was allocated before (bytes)."""
    import tensorflow as tf

    fn()
    before = tf.config.experimental.get_memory_info(device)["current"]
    tf.config.experimental.reset_memory_stats(device)
    fn()
    return tf.config.experimental.get_memory_info(device)["peak"] - before


def fgsm_rs_peak_memory(activations=("relu", "kaf"), batch_size=128):
    """Peak memory of one ResNet20 FGSM-RS train step per activation.

    Returns `(device, {activation: bytes})`: the allocator peak during the step
    minus what was allocated before it (weights, inputs), on `device` ("CPU:0"
    or "GPU:0").

    Measured in this process when TensorFlow keeps allocator statistics here (a GPU,
    or a CPU process started with `TF_CPU_ALLOCATOR_USE_BFC=true`); otherwise in a
    fresh Python process started with that variable (`python -m kaflib.bench memory`),
    since TensorFlow reads it only when it starts.
    """
    activations = _check_activations(activations)
    device = _allocator_device()
    if device is None:
        return _peak_memory_in_subprocess(activations, batch_size)
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(size=(batch_size, 32, 32, 3)).astype("float32"))
    y = tf.constant(rng.integers(0, 10, batch_size))
    seed = tf.constant([0, 1], tf.int64)
    peaks = {}
    for kind in activations:
        step = _train_step_fn(kind, "fgsm_rs", batch_size)
        peaks[kind] = _peak_step_memory(lambda: float(step(x, y, seed)[0]), device)
    return device, peaks


def _peak_memory_in_subprocess(activations, batch_size):
    import os
    import subprocess
    import sys
    import tempfile

    env = {**os.environ, "TF_CPU_ALLOCATOR_USE_BFC": "true", "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "memory.json")
        command = [sys.executable, "-m", "kaflib.bench", "memory", "--batch-size", str(batch_size),
                   "--json", out] + [arg for kind in activations for arg in ("--act", kind)]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0 or not os.path.isfile(out):
            raise RuntimeError(f"measuring peak memory in a fresh process failed ({' '.join(command)}, "
                               f"exit code {done.returncode}):\n{done.stderr[-3000:]}")
        with open(out) as fh:
            report = json.load(fh)
    return report["device"], {kind: report["peak_bytes"][kind] for kind in activations}


def memory_report(activations=("relu", "kaf"), batch_size=128):
    """The `memory` benchmark as a dict: peak bytes and MB per activation, ratios to the first."""
    activations = _check_activations(activations)
    device, peaks = fgsm_rs_peak_memory(activations, batch_size)
    first = activations[0]
    return dict(batch_size=batch_size, device=device, machine=_machine(), versions=_versions(),
                peak_bytes=peaks, peak_mb={k: v / 2**20 for k, v in peaks.items()},
                vs_first={k: v / peaks[first] for k, v in peaks.items()})


KAF_BENCH_ACTIVATIONS = ("relu", "swish", "kaf", "kaf_free", "kaf (direct)", "kaf_free (direct)")


def kaf_costs(batch_size=128, steps=5, activations=KAF_BENCH_ACTIVATIONS, progress=True):
    """The `kaf` benchmark as a dict (see the module docstring)."""
    import tensorflow as tf

    if "relu" not in activations:
        raise ValueError(f"activations={activations!r} must include 'relu' (the reference of the ratios).")
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(size=(batch_size, 32, 32, 3)).astype("float32"))
    y = tf.constant(rng.integers(0, 10, batch_size))
    seed = tf.constant([0, 1], tf.int64)
    fns = {(kind, method): (lambda step=_train_step_fn(kind, method, batch_size): float(step(x, y, seed)[0]))
           for kind in activations for method in ("standard", "fgsm_rs")}
    memory = fgsm_rs_peak_memory(activations, batch_size)[1]
    seconds = _interleaved_seconds(fns, steps, progress, "ResNet20 train steps")
    rows = {kind: dict(standard_s=seconds[kind, "standard"], fgsm_rs_s=seconds[kind, "fgsm_rs"],
                       fgsm_rs_peak_mb=memory[kind] / 2**20) for kind in activations}
    for row in rows.values():
        for key in ("standard_s", "fgsm_rs_s", "fgsm_rs_peak_mb"):
            row[key.rsplit("_", 1)[0] + "_vs_relu"] = row[key] / rows["relu"][key]
    shape = (batch_size, 32, 32, 16)
    inputs = tf.random.stateless_normal(shape, (0, 2)) * 2
    layer_fns = {kind: (lambda fb=_layer_fn(kind, shape): [g.numpy() for g in fb(inputs)])
                 for kind in activations if kind != "swish"}
    layer = _interleaved_seconds(layer_fns, steps, progress, "layer forward+backward")
    speedup = {name: rows[f"{name} (direct)"]["fgsm_rs_s"] / rows[name]["fgsm_rs_s"]
               for name in ("kaf", "kaf_free") if name in rows and f"{name} (direct)" in rows}
    return dict(batch_size=batch_size, steps=steps, machine=_machine(), versions=_versions(),
                resnet20=rows, layer_shape=list(shape), layer_forward_backward_s=layer,
                fgsm_rs_speedup_over_direct=speedup)


def attack_speed(model_path, steps=20, eps=8 / 255, step=2 / 255, test_size=None, batch_size=256, seed=0):
    """kaflib's compiled PGD vs ART's PGD on one model and the test images (see the module docstring)."""
    import tensorflow as tf

    from kaflib.attacks import pgd_perturb
    from kaflib.data import load_cifar10
    from kaflib.evaluate import pgd_robust

    model = _load_model(model_path)
    _, (x, y) = load_cifar10(train_size=10, test_size=test_size)

    @tf.function
    def correct(xb, yb, seed):
        adversarial = pgd_perturb(model, xb, yb, eps, step, steps, seed)
        return tf.argmax(model(adversarial, training=False), -1) == tf.cast(yb, tf.int64)

    results = {}
    for name in ("kaflib", "art"):
        for warm in (True, False):  # the first pass traces
            tic = time.perf_counter()
            if name == "kaflib":
                robust = np.concatenate([correct(x[i:i + batch_size], y[i:i + batch_size],
                                                 tf.constant([seed, i], tf.int64)).numpy()
                                         for i in range(0, len(y), batch_size)])
            else:
                robust = pgd_robust(model, x, y, eps=eps, step=step, steps=steps, restarts=1,
                                    batch_size=batch_size, seed=seed, progress=False)
            seconds = time.perf_counter() - tic
            if warm:
                continue
        results[name] = dict(robust_accuracy=float(np.mean(robust)), seconds=seconds,
                             images_per_second=len(y) / seconds)
    return dict(model=str(model_path), images=int(len(y)), pgd_steps=steps, eps=eps, step=step,
                machine=_machine(), versions=_versions(), attacks=results,
                kaflib_speedup=results["art"]["seconds"] / results["kaflib"]["seconds"],
                accuracy_difference=results["kaflib"]["robust_accuracy"] - results["art"]["robust_accuracy"])


def square_speed(model_path, queries=100, eps=8 / 255, test_size=64, batch_size=256, seed=0):
    """ART's `SquareAttack` as it comes (three forward passes per query) next to kaflib's
    `square_robust` (ART's attack through a classifier that scores each image once), on one
    model and the first `test_size` test images, each run twice and the second timed:
    seconds, images per second, images the model saw, robust accuracy (the same draws)."""
    from art.attacks.evasion import SquareAttack

    from kaflib import evaluate
    from kaflib.data import load_cifar10

    model = _load_model(model_path)
    _, (x, y) = load_cifar10(train_size=10, test_size=test_size)

    def art_as_it_comes():
        classifier = evaluate.art_classifier(model)
        seen = []
        predict = classifier.predict
        classifier.predict = lambda images, *a, **k: seen.append(len(images)) or predict(images, *a, **k)
        correct = evaluate.predict_classes(classifier, x) == y
        np.random.seed(seed)
        adversarial = SquareAttack(classifier, norm=np.inf, eps=eps, max_iter=queries, batch_size=batch_size,
                                   verbose=False).generate(x[correct], y=np.eye(classifier.nb_classes)[y[correct]])
        robust = correct.copy()
        robust[correct] = evaluate.predict_classes(classifier, adversarial) == y[correct]
        return robust, sum(seen)

    def kaflib_memoised():
        classifier = evaluate.memoised_classifier(model)  # counts the images it sends to the model
        robust = evaluate.square_robust(model, x, y, eps=eps, max_iter=queries, batch_size=batch_size, seed=seed,
                                        classifier=classifier)
        return robust, classifier.forward_images + len(y)  # + the clean pass on the judge

    results = {}
    for name, run in (("art", art_as_it_comes), ("kaflib", kaflib_memoised)):
        for warm in (True, False):  # the first pass traces
            tic = time.perf_counter()
            robust, images = run()
            seconds = time.perf_counter() - tic
        results[name] = dict(robust_accuracy=float(np.mean(robust)), seconds=seconds,
                             images_per_second=len(y) / seconds, forward_images=int(images))
    return dict(model=str(model_path), images=int(len(y)), queries=queries, eps=eps, machine=_machine(),
                versions=_versions(), attacks=results,
                kaflib_speedup=results["art"]["seconds"] / results["kaflib"]["seconds"],
                forward_ratio=results["art"]["forward_images"] / results["kaflib"]["forward_images"],
                accuracy_difference=results["kaflib"]["robust_accuracy"] - results["art"]["robust_accuracy"])


def _load_model(path):
    import keras

    if not str(path).endswith(".keras") or not Path(path).is_file():
        raise ValueError(f"MODEL={str(path)!r} is invalid: must be an existing .keras file (a run's model.keras; "
                         "a published thesis checkpoint converts with "
                         "`python -m kaflib.thesis.checkpoints ZIP --save-keras DIR`).")
    return keras.models.load_model(path)


def _machine():
    import os

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}"


def _versions():
    import keras
    import tensorflow as tf

    return dict(python=platform.python_version(), tensorflow=tf.__version__, keras=keras.__version__)


def _print_kaf(report):
    print(f"ResNet20, batch {report['batch_size']}, median of {report['steps']} steps, {report['machine']}")
    print(f"{'activation':18s} {'standard s':>10s} {'x relu':>7s} {'FGSM-RS s':>10s} {'x relu':>7s} "
          f"{'peak MB':>8s} {'x relu':>7s}")
    for kind, row in report["resnet20"].items():
        print(f"{kind:18s} {row['standard_s']:10.3f} {row['standard_vs_relu']:7.2f} {row['fgsm_rs_s']:10.3f} "
              f"{row['fgsm_rs_vs_relu']:7.2f} {row['fgsm_rs_peak_mb']:8.0f} {row['fgsm_rs_peak_vs_relu']:7.2f}")
    for name, speedup in report["fgsm_rs_speedup_over_direct"].items():
        print(f"{name}: FGSM-RS step {speedup:.2f}x faster than the direct formula")
    print(f"one layer, forward+backward on {tuple(report['layer_shape'])}:")
    relu = report["layer_forward_backward_s"]["relu"]
    for kind, seconds in report["layer_forward_backward_s"].items():
        print(f"  {kind:18s} {1000 * seconds:8.1f} ms  {seconds / relu:6.1f}x relu")


def _print_attack(report):
    print(f"PGD-{report['pgd_steps']} on {report['images']} test images, {report['model']}, {report['machine']}")
    for name, row in report["attacks"].items():
        print(f"  {name:7s} {row['images_per_second']:8.1f} images/s  robust accuracy {row['robust_accuracy']:.4f}")
    print(f"  kaflib / ART speed: {report['kaflib_speedup']:.1f}x; accuracy difference "
          f"{100 * report['accuracy_difference']:+.2f} points")


def _print_square(report):
    print(f"Square ({report['queries']} queries) on {report['images']} test images, {report['model']}, "
          f"{report['machine']}")
    for name, row in report["attacks"].items():
        print(f"  {name:7s} {row['images_per_second']:8.2f} images/s  {row['forward_images']:8d} images forwarded  "
              f"robust accuracy {row['robust_accuracy']:.4f}")
    print(f"  ART / kaflib: {report['kaflib_speedup']:.2f}x the time, {report['forward_ratio']:.2f}x the forward "
          f"passes; accuracy difference {100 * report['accuracy_difference']:+.2f} points")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m kaflib.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["training", "kaf", "memory", "attack", "square"])
    parser.add_argument("model_path", nargs="?", help="attack: a .keras model or a thesis checkpoint")
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--act", action="append",
                        help="training: the activation (default relu); memory: repeat for each (default relu, kaf)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None,
                        help="kaf: round-robin rounds (default 5); attack: PGD iterations (default 20); "
                             "square: queries (default 100)")
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--test-size", type=int, default=None)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.what == "memory":
        report = memory_report(tuple(args.act or ("relu", "kaf")), args.batch_size)
        print(f"ResNet20 FGSM-RS step, batch {report['batch_size']}, peak memory on {report['device']}")
        for kind, mb in report["peak_mb"].items():
            print(f"  {kind:18s} {mb:8.0f} MB  {report['vs_first'][kind]:6.2f}x {next(iter(report['peak_mb']))}")
    elif args.what == "kaf":
        report = kaf_costs(args.batch_size, args.steps or 5)
        _print_kaf(report)
    elif args.what == "attack":
        if not args.model_path:
            parser.error("attack needs MODEL (a .keras file or a thesis checkpoint)")
        report = attack_speed(args.model_path, steps=args.steps or 20, test_size=args.test_size)
        _print_attack(report)
    elif args.what == "square":
        if not args.model_path:
            parser.error("square needs MODEL (a .keras file)")
        report = square_speed(args.model_path, queries=args.steps or 100, test_size=args.test_size or 64)
        _print_square(report)
    else:
        if args.act and len(args.act) > 1:
            parser.error("training takes one --act")
        act = args.act[0] if args.act else "relu"
        report = training_epoch_times(args.model, act, args.batch_size, args.repeats, args.train_size)
        print(f"{report['model']}/{report['act']}, batch {report['batch_size']}, {report['train_images']} "
              f"training images, {report['machine']}")
        for method, seconds in report["seconds"].items():
            print(f"  {method:9s} {seconds:7.1f} s/epoch")
        print(f"  fast AT / standard: {report['fgsm_rs_over_standard']:.2f} (target <= 2.3)")
        print(f"  fast AT / PGD-7 AT: {report['fgsm_rs_over_pgd7']:.2f}")
    if args.json:
        from pathlib import Path

        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
