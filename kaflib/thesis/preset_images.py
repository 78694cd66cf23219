"""Which CIFAR-10 images a preset means, on any machine, and how a results file names them.

A preset is an experiment: the same images, in the same order, wherever it runs.

=========  =====================================================================
preset     images
=========  =====================================================================
quick      the first 1017 images of each official batch file, in the official
           order: 5085 training (1017 of each of the five training batches) and
           1017 test images. Taken from whatever CIFAR-10 folder is found: the
           full release or a subset made the same way.
thesis     the full release: 50000 training and 10000 test images. A folder
           that holds fewer stops the run before it trains.
smoke      the tests' preset: its sizes, stratified from the folder found.
=========  =====================================================================

Explicit `train_size` / `test_size` override a preset's sizes: they take the first
images of each class (`kaflib.data.stratified_first`) from the preset's images
where the folder holds them, else from the whole folder; the readable name and the
fingerprint of a results file say which.
"""

import dataclasses

import numpy as np

from kaflib.checks import check, is_int
from kaflib.data import OFFICIAL_SIZES, fingerprint, load_cifar10, stratified_first

__all__ = ["QUICK_PER_BATCH", "PRESET_IMAGES", "PresetImages", "load_preset_images", "describe_images"]

#: Images the `quick` preset takes from each official batch file (5 x 1017 training, 1017 test).
QUICK_PER_BATCH = 1017

#: The images each preset means when no size is given: "full" (the official release),
#: an int (the first that many of each batch file), or "folder" (whatever the folder holds).
PRESET_IMAGES = {"thesis": "full", "quick": QUICK_PER_BATCH, "smoke": "folder"}


@dataclasses.dataclass(frozen=True)
class PresetImages:
    """The images of one experiment and their record.

    `train`, `test`: `(x, y)` with `x` `(N, 32, 32, 3)` float32 in [0, 1] and `y` `(N,)`
    int64 in 0..9 (`N` may be 0). `name`: readable ("CIFAR-10, quick subset 5085/1017").
    `fingerprint`: 12 hex digits of the images and labels, in order (`kaflib.data.fingerprint`).
    `found`: (training, test) images of the folder they were read from.
    """

    train: tuple
    test: tuple
    name: str
    fingerprint: str
    found: tuple

    def record(self):
        """The `data` entry of a results file: sizes, readable name, fingerprint, folder sizes."""
        return dict(name=self.name, fingerprint=self.fingerprint, train=int(len(self.train[1])),
                    test=int(len(self.test[1])), folder=dict(train=int(self.found[0]), test=int(self.found[1])))


def _empty():
    return np.zeros((0, 32, 32, 3), np.float32), np.zeros((0,), np.int64)


def _check_size(name, value):
    check(name, value, value is None or (is_int(value) and value >= 0),
          "None (the preset's images), 0 (none) or an integer >= 1")


def _take(xy, size, name):
    """The first `size` images of each class of `xy`, balanced (all for None or every
    image, none for 0); ValueError naming the parameter `name` when a class has too few."""
    x, y = xy
    if size is None or size == len(y):
        return x, y
    if size == 0:
        return _empty()
    try:
        idx = stratified_first(y, size)
    except ValueError as err:
        raise ValueError(f"{name}={size} is invalid: {err} Ask for fewer images, or all {len(y)}.") from None
    return x[idx], y[idx]


def load_preset_images(preset="quick", data_dir=None, train_size=None, test_size=None, download=True):
    """The images `preset` means, read from the CIFAR-10 folder found (see `kaflib.data`).

    Args:
        preset: a name in `PRESET_IMAGES`.
        data_dir: CIFAR-10 folder (None: `KAFLIB_DATA_DIR`, the Keras cache, else download).
        train_size, test_size: None for the preset's images; an integer for that many,
            stratified (see the module docstring); 0 for no images of that split.
        download: download the full release when no folder holds CIFAR-10.

    Raises:
        ValueError: a bad argument, or a folder that lacks the preset's images when no
            size is given (the message names what was found and the ways on).
    """
    check("preset", preset, preset in PRESET_IMAGES, f"one of {', '.join(PRESET_IMAGES)}")
    _check_size("train_size", train_size)
    _check_size("test_size", test_size)
    everything = load_cifar10(data_dir, download=download)
    found = (len(everything[0][1]), len(everything[1][1]))
    source, selection = _selection(preset, data_dir, everything, found, train_size, test_size)
    for split, size, xy in (("train_size", train_size, selection[0]), ("test_size", test_size, selection[1])):
        if size is not None and size > len(xy[1]):
            raise ValueError(f"{split}={size} exceeds the {len(xy[1])} images of {source}.")
    train, test = _take(selection[0], train_size, "train_size"), _take(selection[1], test_size, "test_size")
    name = describe_images(preset, source, train_size, test_size, len(train[1]), len(test[1]))
    return PresetImages(train=train, test=test, name=name, fingerprint=fingerprint(*train, *test), found=found)


def _selection(preset, data_dir, everything, found, train_size, test_size):
    """(what the images are taken from, in words; ((x, y) train, (x, y) test)) of a preset."""
    images = PRESET_IMAGES[preset]
    folder = f"a folder of {found[0]}/{found[1]} images"
    if images == "folder":
        return folder, everything
    if images == "full":
        if found == OFFICIAL_SIZES:
            return "the full set", everything
        needed = [name for name, size in (("train_size", train_size), ("test_size", test_size)) if size is None]
        if needed:
            raise ValueError(
                f"The {preset!r} preset means the full CIFAR-10 ({OFFICIAL_SIZES[0]} training and "
                f"{OFFICIAL_SIZES[1]} test images), but the folder found holds {found[0]} and {found[1]}. "
                "Either run the 'quick' preset (`-p preset quick`), or give explicit sizes "
                "(`-p train_size N -p test_size M`: the first images of each class of this folder, "
                "which the results then record), or point KAFLIB_DATA_DIR at the full CIFAR-10.")
        return folder, everything
    try:
        return "the quick subset", load_cifar10(data_dir, download=False, per_batch=images)
    except ValueError:
        if train_size is None or test_size is None:
            raise ValueError(
                f"The {preset!r} preset means the first {images} images of each CIFAR-10 batch file "
                f"({5 * images} training, {images} test), but the folder found holds {found[0]} training "
                f"and {found[1]} test images, fewer in some batch file. Give explicit sizes "
                "(`-p train_size N -p test_size M`: the first images of each class of this folder, which "
                "the results then record), or point KAFLIB_DATA_DIR at a complete CIFAR-10.") from None
        return folder, everything


def describe_images(preset, source, train_size, test_size, n_train, n_test):
    """A readable name of the images a run used: "CIFAR-10 full", "CIFAR-10, quick subset
    5085/1017", "CIFAR-10, quick subset, 1017 test images", "CIFAR-10, 200/50 images,
    stratified from a folder of 400/100 images". A split of size 0 is left out."""
    kept = [(split, size, n) for split, size, n in (("training", train_size, n_train), ("test", test_size, n_test))
            if size != 0]
    whole = all(size is None for _, size, _ in kept)
    if len(kept) == 2:
        count, images = f"{n_train}/{n_test}", f"{n_train}/{n_test} images"
    else:
        count = images = " and ".join(f"{n} {split} images" for split, _, n in kept) or "no images"
    if whole and source == "the full set":
        return "CIFAR-10 full" + ("" if len(kept) == 2 else f" {kept[0][0]} set" if kept else "")
    if whole and source == "the quick subset":
        return f"CIFAR-10, quick subset {count}" if len(kept) == 2 else f"CIFAR-10, quick subset, {count}"
    return f"CIFAR-10, {images}, stratified from {source}"
