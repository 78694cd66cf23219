import pickle

import numpy as np
import pytest

from kaflib.data import find_cifar10, load_cifar10, stratified_first
from tests.conftest import TINY_DATA_DIR, mini_data_dir


def write_fake_cifar(root, per_batch=20):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": list(np.arange(per_batch) % 10)}
        (folder / name).write_bytes(pickle.dumps(batch))
    return folder


def test_reads_official_layout_channels_last(tmp_path):
    folder = write_fake_cifar(tmp_path)
    (x, y), (xt, yt) = load_cifar10(tmp_path, download=False)
    assert x.shape == (100, 32, 32, 3) and x.dtype == np.float32 and xt.shape == (20, 32, 32, 3)
    assert 0.0 <= x.min() and x.max() <= 1.0
    raw = pickle.loads((folder / "data_batch_1").read_bytes())[b"data"][0]
    np.testing.assert_allclose(x[0, 0, 1], raw[[1, 1025, 2049]] / 255, rtol=1e-6)  # pixel (0, 1), RGB


def test_data_dir_may_be_the_batches_folder_itself(tmp_path, monkeypatch):
    folder = write_fake_cifar(tmp_path)
    monkeypatch.setenv("KAFLIB_DATA_DIR", str(folder))
    assert find_cifar10(download=False) == folder


def test_stratified_subsets(tmp_path):
    write_fake_cifar(tmp_path)
    (x, y), (xt, yt) = load_cifar10(tmp_path, train_size=30, test_size=15, download=False)
    assert np.bincount(y).tolist() == [3] * 10
    assert np.bincount(yt, minlength=10).tolist() == [2] * 5 + [1] * 5
    idx = stratified_first(np.array([0, 1, 0, 1, 0, 1]), 4)
    assert idx.tolist() == [0, 1, 2, 3]


def test_missing_data_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("KAFLIB_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(FileNotFoundError, match="KAFLIB_DATA_DIR: .*nowhere.*Keras cache"):
        load_cifar10(tmp_path / "arg", download=False)


def test_corrupt_batch_is_reported(tmp_path):
    folder = write_fake_cifar(tmp_path)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="test_batch is not a CIFAR-10 python batch"):
        load_cifar10(tmp_path, download=False)


def test_bad_sizes(tmp_path):
    write_fake_cifar(tmp_path)
    with pytest.raises(ValueError, match="train_size"):
        load_cifar10(tmp_path, train_size=0, download=False)
    with pytest.raises(ValueError, match="test_size=21 exceeds"):
        load_cifar10(tmp_path, test_size=21, download=False)


def test_mini_set(mini_test_set):
    x, y = mini_test_set
    assert x.shape == (1017, 32, 32, 3) and np.bincount(y).sum() == 1017
    assert mini_data_dir() is not None


def test_the_repository_carries_real_cifar10_for_the_tests(monkeypatch, tmp_path):
    """The fallback set is read by the real loader from the official layout, balanced,
    and (where the mini set is at hand) made of the very first images of each class."""
    monkeypatch.delenv("KAFLIB_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # never the Keras cache, never a download
    (x, y), (xt, yt) = load_cifar10(TINY_DATA_DIR, download=False)
    assert x.shape == (400, 32, 32, 3) and xt.shape == (100, 32, 32, 3)
    assert np.bincount(y).tolist() == [40] * 10 and np.bincount(yt).tolist() == [10] * 10
    assert 0.3 < x.mean() < 0.6 and x.std() > 0.15  # natural images, not blank or noise-free
    mini = mini_data_dir()
    if mini is not None:
        _, (mini_x, mini_y) = load_cifar10(mini, download=False)
        first = np.sort(np.concatenate([np.flatnonzero(mini_y == c)[:10] for c in range(10)]))
        np.testing.assert_array_equal(xt, mini_x[first])
        np.testing.assert_array_equal(yt, mini_y[first])
