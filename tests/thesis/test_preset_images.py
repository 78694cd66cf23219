"""A preset means the same images on every machine: the `quick` subset read from a full-size
CIFAR-10 is the subset read from the 5085/1017-image folder, image for image."""

import json
import pickle

import numpy as np
import pytest

from kaflib.thesis import experiment, grid
from kaflib.thesis.preset_images import QUICK_PER_BATCH, load_preset_images
from tests.conftest import TINY_DATA_DIR, mini_data_dir

BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def _read(folder, name):
    with open(folder / "cifar-10-batches-py" / name, "rb") as fh:
        batch = pickle.load(fh, encoding="bytes")
    return np.asarray(batch[b"data"], dtype=np.uint8), np.asarray(batch[b"labels"], dtype=np.int64)


def _write(folder, name, data, labels):
    path = folder / "cifar-10-batches-py" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({b"data": data, b"labels": [int(v) for v in labels]}, protocol=4))


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """(subset folder, full-size folder): the subset holds 1017 images per batch file (the mini
    set where this machine has it, else the repository's tiny images repeated); the full-size
    folder holds the same 1017 first, then 8983 other images per batch file (10000 each)."""
    root = tmp_path_factory.mktemp("layouts")
    subset = mini_data_dir()
    if subset is None:
        subset = root / "subset"
        for name in BATCHES:
            data, labels = _read(TINY_DATA_DIR, name)
            repeat = np.resize(np.arange(len(labels)), QUICK_PER_BATCH)
            _write(subset, name, data[repeat], labels[repeat])
    full = root / "full"
    rng = np.random.default_rng(0)
    for name in BATCHES:
        data, labels = _read(subset, name)
        assert len(labels) == QUICK_PER_BATCH
        others = 10000 - QUICK_PER_BATCH
        _write(full, name, np.concatenate([data, rng.integers(0, 256, (others, 3072), dtype=np.uint8)]),
               np.concatenate([labels, np.arange(others) % 10]))
    return subset, full


def test_quick_takes_the_same_images_from_a_full_size_folder(layouts):
    subset, full = layouts
    small, large = load_preset_images("quick", subset), load_preset_images("quick", full)
    assert large.found == (50000, 10000) and small.found == (5 * QUICK_PER_BATCH, QUICK_PER_BATCH)
    assert large.fingerprint == small.fingerprint
    assert large.name == small.name == "CIFAR-10, quick subset 5085/1017"
    for a, b in zip(large.train + large.test, small.train + small.test):
        np.testing.assert_array_equal(a, b)
    # explicit sizes take their images from the quick subset on both folders
    assert (load_preset_images("quick", full, train_size=500, test_size=100).fingerprint
            == load_preset_images("quick", subset, train_size=500, test_size=100).fingerprint)


def test_the_full_set_is_named_and_fingerprinted_apart(layouts):
    subset, full = layouts
    everything = load_preset_images("thesis", full)
    assert everything.name == "CIFAR-10 full" and len(everything.train[1]) == 50000
    assert everything.fingerprint != load_preset_images("quick", full).fingerprint
    assert everything.record()["folder"] == dict(train=50000, test=10000)


def test_thesis_on_a_smaller_folder_stops_and_says_the_ways_on(layouts):
    subset, _ = layouts
    with pytest.raises(ValueError, match=r"holds 5085 and 1017.*-p preset quick.*explicit sizes"):
        load_preset_images("thesis", subset)
    exp = experiment.resolve(model="light", act="relu", preset="thesis", data_dir=str(subset))
    with pytest.raises(ValueError, match="full CIFAR-10"):  # the notebook's data cell, before training
        experiment.load_images(exp)
    explicit = load_preset_images("thesis", subset, train_size=200, test_size=50)
    assert explicit.name == "CIFAR-10, 200/50 images, stratified from a folder of 5085/1017 images"


def test_quick_on_a_folder_without_its_images_needs_explicit_sizes():
    with pytest.raises(ValueError, match="first 1017 images of each CIFAR-10 batch file.*400 training"):
        load_preset_images("quick", TINY_DATA_DIR)
    fallback = load_preset_images("quick", TINY_DATA_DIR, train_size=40, test_size=0)
    assert fallback.name == "CIFAR-10, 40 training images, stratified from a folder of 400/100 images"
    assert len(fallback.test[1]) == 0 and np.bincount(fallback.train[1]).tolist() == [4] * 10


@pytest.mark.parametrize("kwargs, message", [
    (dict(preset="fast"), "preset='fast' is invalid: must be one of thesis, quick, smoke"),
    (dict(train_size=-3), "train_size=-3 is invalid"),
    (dict(test_size=2.5), "test_size=2.5 is invalid"),
    (dict(train_size=401), "train_size=401 exceeds the 400 images"),
])
def test_bad_arguments_name_themselves(kwargs, message):
    arguments = dict(preset="smoke", data_dir=TINY_DATA_DIR, train_size=10, test_size=10) | kwargs
    with pytest.raises(ValueError, match=message):
        load_preset_images(**arguments)


def test_the_fingerprint_follows_images_and_order():
    images = load_preset_images("smoke", TINY_DATA_DIR, train_size=20, test_size=10)
    again = load_preset_images("smoke", TINY_DATA_DIR, train_size=20, test_size=10)
    other = load_preset_images("smoke", TINY_DATA_DIR, train_size=30, test_size=10)
    assert images.fingerprint == again.fingerprint != other.fingerprint
    from kaflib.data import fingerprint

    x, y = images.train
    assert fingerprint(x[::-1], y[::-1], *images.test) != images.fingerprint  # same images, other order


def test_a_finished_run_on_other_images_is_stale(tmp_path, monkeypatch):
    """The grid compares the recorded fingerprint with the images the run would read now."""
    import tests.thesis.test_experiment as helpers

    parameters = {"preset": "smoke", "seed": 0, "data_dir": str(TINY_DATA_DIR)}
    wanted = grid.expected_experiment("light", "relu", "thesis-light", tmp_path, parameters)
    folder = helpers._finished(wanted)
    metrics = json.loads((folder / "metrics.json").read_text())
    images = experiment.load_images(wanted)
    metrics["data"] = experiment.data_record(images, 25)
    assert metrics["data"]["train"] == 175 and metrics["data"]["fingerprint"] == images.fingerprint
    (folder / "metrics.json").write_text(json.dumps(metrics))
    assert grid.run_grid("thesis-light", tmp_path, parameters=parameters, acts=["relu"]) == {
        ("light", "relu", 0): "skipped"}
    metrics["data"]["fingerprint"] = "0123456789ab"
    (folder / "metrics.json").write_text(json.dumps(metrics))
    status = grid.run_grid("thesis-light", tmp_path, parameters=parameters, acts=["relu"])
    assert status[("light", "relu", 0)].startswith("stale") and f"[{images.fingerprint}]" in \
        status[("light", "relu", 0)] and "[0123456789ab]" in status[("light", "relu", 0)]


@pytest.mark.slow
def test_a_quick_run_trains_the_same_on_both_folders(layouts):
    """Same fingerprint, same first-epoch history: the run sees the same images in the same order."""
    from functools import partial

    from kaflib.train import fit

    histories = []
    for folder in layouts:
        exp = experiment.resolve(model="light", act="relu", preset="quick", epochs=1, pgd_steps=1,
                                 data_dir=str(folder), mixed_precision=False)
        images = experiment.load_images(exp)
        result = fit(partial(experiment.build_experiment_model, exp), images.train, images.test,
                     experiment.train_config(exp), progress=False)
        histories.append((images.fingerprint, result.history))
    (first, a), (second, b) = histories
    assert first == second
    columns = [c for c in a.columns if c not in ("seconds",)]
    np.testing.assert_allclose(a[columns].to_numpy(float), b[columns].to_numpy(float), rtol=1e-5)
