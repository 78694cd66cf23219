"""Benchmarks (measured in one run on this machine, printed as ratios; not tests).

    python -m kaflib.bench training [--model resnet20] [--act relu] [--json out.json]

`training`: seconds of one training epoch on the CIFAR-10 data found by
`kaflib.data` (the mini set in CI) for standard training, fast AT (FGSM-RS)
and PGD-7 AT, after a warm-up epoch each (tracing excluded), and the ratios
fast/standard (target <= 2.3) and fast/PGD-7.
"""

import argparse
import json
import platform
import time

__all__ = ["training_epoch_times"]


def _epoch_seconds(method, model, act, train, batch_size, repeats):
    import tensorflow as tf

    from kaflib.data import make_dataset
    from kaflib.models import build_model
    from kaflib.train import TrainConfig, _optimizer, _train_step

    config = TrainConfig(method=method, batch_size=batch_size, guard_size=0)
    strategy = tf.distribute.get_strategy()
    net = build_model(model, act)
    optimizer = _optimizer(config, config.schedule(len(train[1])))
    optimizer.build(net.trainable_variables)
    step = _train_step(net, optimizer, config, strategy, batch_size)
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


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m kaflib.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["training"])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--act", default="relu")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    report = training_epoch_times(args.model, args.act, args.batch_size, args.repeats, args.train_size)
    print(f"{report['model']}/{report['act']}, batch {report['batch_size']}, {report['train_images']} "
          f"training images, {report['machine']}")
    for method, seconds in report["seconds"].items():
        print(f"  {method:9s} {seconds:7.1f} s/epoch")
    print(f"  fast AT / standard: {report['fgsm_rs_over_standard']:.2f} (target <= 2.3)")
    print(f"  fast AT / PGD-7 AT: {report['fgsm_rs_over_pgd7']:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
