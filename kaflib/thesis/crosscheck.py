"""Cross-check of kaflib's AutoAttack against an independent implementation: torchattacks' `AutoAttack`.

Three commands on one model, a float32 `.keras` file (a thesis checkpoint's twin:
``python -m kaflib.thesis.checkpoints ZIP --save-keras DIR``):

    python -m kaflib.evaluate DIR/NAME.keras --n 128 --out results/autoattack-crosscheck/NAME-kaflib.json
    pip install --no-deps torchattacks==3.5.1    # its requests pin clashes with the set-up; it needs only torch
    KERAS_BACKEND=torch python -m kaflib.thesis.crosscheck DIR/NAME.keras --n 128 \\
        --out results/autoattack-crosscheck/NAME-torchattacks.json

The second runs the same Keras model on the PyTorch backend, as a `torch.nn.Module`,
through torchattacks' standard AutoAttack (APGD-CE, APGD-T, FAB-T, Square 5000; its
own per-image cascade) on the same first N test images, and writes the accuracy
with its 95% interval. `cross_check_table` sets the two records side by side.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["torchattacks_autoattack", "cross_check_table", "main"]


def torchattacks_autoattack(model, images, labels, eps=8 / 255, seed=0, batch_size=128):
    """Per-image robustness `(N,)` under torchattacks' standard AutoAttack.

    `model`: a Keras logits model on the PyTorch backend (images NHWC); images
    float32 `(N, H, W, C)` in [0, 1]; labels `(N,)`.
    """
    import keras
    import torch
    import torchattacks

    if keras.backend.backend() != "torch":
        raise RuntimeError(f"KERAS_BACKEND is {keras.backend.backend()!r}: this cross-check runs on 'torch' "
                           "(set KERAS_BACKEND=torch).")

    class ChannelsFirst(torch.nn.Module):
        """torchattacks works on NCHW images; the Keras model takes NHWC."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x.permute(0, 2, 3, 1))

    wrapped = ChannelsFirst(model).eval()
    attack = torchattacks.AutoAttack(wrapped, norm="Linf", eps=eps, version="standard",
                                     n_classes=int(model.output_shape[-1]), seed=seed)
    robust = []
    for start in range(0, len(labels), batch_size):
        x = torch.tensor(images[start:start + batch_size]).permute(0, 3, 1, 2).contiguous()
        y = torch.tensor(labels[start:start + batch_size], dtype=torch.long)
        adversarial = attack(x, y)
        with torch.no_grad():
            robust.append((wrapped(adversarial).argmax(1) == y).cpu().numpy())
    return np.concatenate(robust)


def cross_check_table(folder):
    """kaflib's and torchattacks' records in `folder` (`<name>-kaflib.json`, `<name>-torchattacks.json`)
    side by side: one row per model with clean and robust accuracy (%) and their 95% intervals."""
    import pandas as pd

    from kaflib.files import read_json

    rows = []
    for ours in sorted(Path(folder).glob("*-kaflib.json")):
        name = ours.name.removesuffix("-kaflib.json")
        theirs = read_json(Path(folder) / f"{name}-torchattacks.json")
        record = read_json(ours)
        s = record["kaflib"]["summary"]
        row = dict(model=name, n=record["n_images"], clean=100 * s["clean"]["accuracy"],
                   kaflib=100 * s["worst"]["accuracy"], kaflib_ci95=[100 * v for v in s["worst"]["ci95"]])
        if theirs is not None:
            row.update(torchattacks=100 * theirs["robust"]["accuracy"],
                       torchattacks_ci95=[100 * v for v in theirs["robust"]["ci95"]],
                       agree_within_intervals=bool(theirs["robust"]["ci95"][0] <= s["worst"]["accuracy"]
                                                   <= theirs["robust"]["ci95"][1]))
        rows.append(row)
    return pd.DataFrame(rows).set_index("model") if rows else None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="KERAS_BACKEND=torch python -m kaflib.thesis.crosscheck",
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a float32 .keras model")
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-dir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import keras

    import kaflib  # noqa: F401 (registers kaflib's layers)
    from kaflib.data import load_cifar10
    from kaflib.evaluate import wilson_interval
    from kaflib.files import write_json

    try:
        if not args.model.is_file():
            raise ValueError(f"model={str(args.model)!r} does not exist.")
        _, (x, y) = load_cifar10(args.data_dir, train_size=1)
        if not 1 <= args.n <= len(y):
            raise ValueError(f"n={args.n!r} is invalid: an integer in [1, {len(y)}].")
        x, y = x[:args.n], y[:args.n]
        model = keras.models.load_model(args.model, compile=False)
        tic = time.perf_counter()
        clean = np.argmax(keras.ops.convert_to_numpy(model.predict(x, verbose=0)), -1) == y
        robust = torchattacks_autoattack(model, x, y, seed=args.seed) & clean
    except (ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    import torch
    import torchattacks

    record = dict(model=args.model.name, n_images=args.n, implementation=f"torchattacks {torchattacks.__version__} "
                  "AutoAttack(version='standard'): APGD-CE, APGD-T, FAB-T, Square 5000",
                  backend=f"keras {keras.__version__} on torch {torch.__version__}", seed=args.seed,
                  clean=dict(accuracy=float(clean.mean()), ci95=wilson_interval(int(clean.sum()), args.n)),
                  robust=dict(accuracy=float(robust.mean()), ci95=wilson_interval(int(robust.sum()), args.n)),
                  seconds=time.perf_counter() - tic)
    write_json(args.out, record)
    print(f"{args.model.name}: clean {100 * clean.mean():.1f}%, torchattacks AutoAttack {100 * robust.mean():.1f}% "
          f"[{100 * record['robust']['ci95'][0]:.1f}, {100 * record['robust']['ci95'][1]:.1f}] on {args.n} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
