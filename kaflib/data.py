"""CIFAR-10 from the official "python version" layout.

The data directory is looked up in this order: the `data_dir` argument, the
`KAFLIB_DATA_DIR` environment variable, the Keras cache
(`~/.keras/datasets`); if none holds it, it is downloaded into the Keras
cache (about 170 MB). A directory may be given either as the folder that
contains `cifar-10-batches-py/` or as that folder itself.
"""

import os
import pickle
from pathlib import Path

import numpy as np

from kaflib.checks import is_int

__all__ = ["CIFAR10_CLASSES", "OFFICIAL_SIZES", "find_cifar10", "fingerprint", "load_cifar10", "make_dataset",
           "stratified_first"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
_BATCHES = "cifar-10-batches-py"
_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
#: Images in the official release: (training, test), 10000 per batch file.
OFFICIAL_SIZES = (50000, 10000)


def _candidates(data_dir):
    roots = []
    if data_dir is not None:
        roots.append(("argument data_dir", Path(data_dir)))
    if os.environ.get("KAFLIB_DATA_DIR"):
        roots.append(("KAFLIB_DATA_DIR", Path(os.environ["KAFLIB_DATA_DIR"])))
    roots.append(("Keras cache", Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"))
    return roots


def _resolve(root):
    for folder in (root, root / _BATCHES, root / f"{_BATCHES}_extracted" / _BATCHES):
        if all((folder / f).is_file() for f in _FILES):
            return folder
    return None


def find_cifar10(data_dir=None, download=True):
    """Path of the `cifar-10-batches-py` folder, downloading it if needed.

    Raises:
        FileNotFoundError: when no candidate holds the data and `download` is
            False or the download fails; the message lists where it looked.
    """
    candidates = _candidates(data_dir)
    for _, root in candidates:
        found = _resolve(root)
        if found is not None:
            return found
    looked = "; ".join(f"{what}: {root}" for what, root in candidates)
    how = ("Set KAFLIB_DATA_DIR (or pass data_dir=) to a folder holding the official "
           f"'{_BATCHES}' files ({', '.join(_FILES)}), or let kaflib download it from {_URL}.")
    if download:
        import keras
        try:
            path = keras.utils.get_file(fname=_BATCHES, origin=_URL, extract=True, file_hash=_SHA256)
        except Exception as err:  # no network, disk full, ...
            raise FileNotFoundError(
                f"CIFAR-10 not found (looked in {looked}) and the download failed: {err}. {how}") from err
        found = _resolve(Path(path)) or _resolve(Path(path).parent)
        if found is not None:
            return found
    raise FileNotFoundError(f"CIFAR-10 not found; looked in {looked}. {how}")


def _read_batch(path):
    try:
        with open(path, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as err:
        raise ValueError(
            f"{path} is not a CIFAR-10 python batch (a pickled dict with b'data' "
            f"N x 3072 uint8 and b'labels'): {err}. Re-download or replace it.") from err
    if len(images) != len(labels):
        raise ValueError(f"{path}: {len(images)} images but {len(labels)} labels.")
    return images.transpose(0, 2, 3, 1), labels


def stratified_first(labels, size):
    """Indices of the first `size` samples, taken class by class in data order.

    Each class contributes `size // num_classes` samples (the first classes one
    more while `size % num_classes` remain), chosen as its first occurrences;
    the returned indices are sorted, so the original order is kept.
    """
    classes = np.unique(labels)
    if size > len(labels):
        raise ValueError(f"size={size} exceeds the {len(labels)} samples available.")
    quota = np.full(len(classes), size // len(classes))
    quota[: size % len(classes)] += 1
    picked = [np.flatnonzero(labels == c)[:q] for c, q in zip(classes, quota)]
    if sum(len(p) for p in picked) < size:
        raise ValueError(f"size={size}: some class has fewer than {quota.max()} samples.")
    return np.sort(np.concatenate(picked))


def _subset(x, y, size, name):
    if size is None:
        return x, y
    if not is_int(size) or size < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {size!r}.")
    if size > len(y):
        raise ValueError(f"{name}={size} exceeds the {len(y)} images available.")
    idx = stratified_first(y, size)
    return x[idx], y[idx]


def _read_batches(folder, names, per_batch):
    """The images and labels of the batch files `names`, each cut to its first `per_batch`."""
    batches = [_read_batch(folder / name) for name in names]
    if per_batch is not None:
        short = {name: len(b[1]) for name, b in zip(names, batches) if len(b[1]) < per_batch}
        if short:
            raise ValueError(f"per_batch={per_batch} exceeds the images of {folder}: "
                             + ", ".join(f"{name} holds {n}" for name, n in short.items()) + ".")
        batches = [(x[:per_batch], y[:per_batch]) for x, y in batches]
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def load_cifar10(data_dir=None, train_size=None, test_size=None, download=True, per_batch=None):
    """Load CIFAR-10 as float32 images in [0, 1].

    Args:
        data_dir: folder holding the data (see the module docstring for the
            search order when None).
        train_size, test_size: keep only this many images, stratified: the
            first occurrences of each class, balanced across classes, in the
            original order (None keeps all).
        download: download into the Keras cache when not found.
        per_batch: keep only the first `per_batch` images of each of the six
            official batch files (five training, one test), in the official
            order, before `train_size` and `test_size` apply; None keeps all.
            The same images on any copy of CIFAR-10 that holds them (the full
            release, or a subset made the same way).

    Returns:
        `((x_train, y_train), (x_test, y_test))`: images `(N, 32, 32, 3)`
        float32 in [0, 1], labels `(N,)` int64 in 0..9.
    """
    if per_batch is not None and (not is_int(per_batch) or per_batch < 1):
        raise ValueError(f"per_batch={per_batch!r} is invalid: must be None (every image) or an integer >= 1.")
    folder = find_cifar10(data_dir, download=download)
    x_train, y_train = _read_batches(folder, _FILES[:5], per_batch)
    x_test, y_test = _read_batches(folder, _FILES[5:], per_batch)
    x_train, y_train = _subset(x_train, y_train, train_size, "train_size")
    x_test, y_test = _subset(x_test, y_test, test_size, "test_size")
    scale = np.float32(1 / 255)
    return (x_train.astype(np.float32) * scale, y_train), (x_test.astype(np.float32) * scale, y_test)


def fingerprint(*arrays, length=12):
    """A short hex digest of arrays' dtypes, shapes and bytes (SHA-256, first `length`
    characters): the same images and labels in the same order give the same
    fingerprint on every machine, any other selection or order another one."""
    import hashlib

    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:length]


def _augment(image, seed):
    """Thesis ResNet augmentation: zero-pad 4, random 32x32 crop, random horizontal flip."""
    import tensorflow as tf

    height, width, channels = image.shape
    padded = tf.image.pad_to_bounding_box(image, 4, 4, height + 8, width + 8)
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    image = tf.image.stateless_random_crop(padded, (height, width, channels), crop_seed)
    return tf.image.stateless_random_flip_left_right(image, flip_seed)


def make_dataset(images, labels, batch_size, seed=None, augment=False, drop_remainder=False):
    """A `tf.data.Dataset` of `(images (B, H, W, C) float32, labels (B,) int64)` batches.

    Args:
        images, labels: arrays as returned by `load_cifar10`.
        batch_size: images per batch.
        seed: shuffle (and augmentation) seed; None keeps the order and never
            augments. The same seed gives the same batches, so an epoch can be
            replayed exactly (resumed training).
        augment: apply the thesis' ResNet augmentation (pad 4, random crop,
            random horizontal flip), seeded per image from `seed`.
        drop_remainder: drop the last incomplete batch.
    """
    import tensorflow as tf

    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if seed is not None:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=False)
        if augment:
            ds = ds.enumerate().map(
                lambda i, xy: (_augment(xy[0], tf.stack([tf.cast(seed, tf.int64), i])), xy[1]),
                num_parallel_calls=None)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(1)
