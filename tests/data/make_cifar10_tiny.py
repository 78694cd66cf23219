"""Write the tiny CIFAR-10 set the test suite falls back to (`tests/data/cifar10-tiny/`).

    python tests/data/make_cifar10_tiny.py SOURCE_DIR

SOURCE_DIR is any CIFAR-10 folder in the official python layout (the full data set,
or the mini set in ../shared). The tiny set keeps that layout, so the tests and the
notebook's smoke run go through the real loader: from each training batch the first
8 images of every class (400 training images, 40 per class), and from the test batch
the first 10 of every class (100 test images), in the official order. About 1.5 MB.
"""

import pickle
import sys
from pathlib import Path

import numpy as np

PER_CLASS = {**{f"data_batch_{i}": 8 for i in range(1, 6)}, "test_batch": 10}
TARGET = Path(__file__).resolve().parent / "cifar10-tiny" / "cifar-10-batches-py"


def first_per_class(labels, per_class):
    """Sorted indices of the first `per_class` images of each of the 10 classes."""
    labels = np.asarray(labels)
    picked = [np.flatnonzero(labels == c)[:per_class] for c in range(10)]
    if any(len(p) < per_class for p in picked):
        raise ValueError(f"some class has fewer than {per_class} images")
    return np.sort(np.concatenate(picked))


def main(source):
    from kaflib.data import find_cifar10

    folder = find_cifar10(source, download=False)
    TARGET.mkdir(parents=True, exist_ok=True)
    for name, per_class in PER_CLASS.items():
        with open(folder / name, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        keep = first_per_class(batch[b"labels"], per_class)
        tiny = {b"batch_label": batch[b"batch_label"],
                b"labels": [int(batch[b"labels"][i]) for i in keep],
                b"data": np.asarray(batch[b"data"], dtype=np.uint8)[keep]}
        (TARGET / name).write_bytes(pickle.dumps(tiny, protocol=4))
    meta = {b"num_cases_per_batch": 10000, b"num_vis": 3072,
            b"label_names": [b"airplane", b"automobile", b"bird", b"cat", b"deer",
                             b"dog", b"frog", b"horse", b"ship", b"truck"]}
    (TARGET / "batches.meta").write_bytes(pickle.dumps(meta, protocol=4))
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
