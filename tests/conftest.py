import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CHECKPOINTS = sorted((SHARED / "thesis" / "checkpoints").glob("*.zip"))
#: 400 training / 100 test images of real CIFAR-10 in the official layout, carried by the
#: repository (tests/data/make_cifar10_tiny.py wrote them), so that the tests never need
#: ../shared or a download.
TINY_DATA_DIR = ROOT / "tests" / "data" / "cifar10-tiny"


#: The thesis' tables (`reported_results.csv`), where this machine has them.
THESIS_TABLES = SHARED / "thesis" / "reported_results.csv"


@pytest.fixture
def thesis_tables(tmp_path, monkeypatch):
    """A made-up `reported_results.csv` (the thesis' layout, a few rows, invented numbers)
    in a folder that `KAFLIB_THESIS_DIR` names: tests of the tables built on the thesis'
    numbers run with or without ../shared and cannot pass on the real numbers by chance."""
    folder = tmp_path / "thesis-materials"
    folder.mkdir()
    attack = "PGD-50 made up"
    rows = ["light_standard,light_cnn,relu,standard,,,,70.0,10.0,made up,test",
            "vgg_fast_at,vgg_inspired,relu,fgsm_rs,60,0.0001,0.08,71.0,41.0,{a},test",
            "vgg_fast_at,vgg_inspired,elu,fgsm_rs,60,0.0001,0.1,72.0,42.0,{a},test",
            "vgg_fast_at,vgg_inspired,kaf,fgsm_rs,60,0.01,1,73.5,43.5,{a},test",
            "resnet_fast_at,resnet20,relu,fgsm_rs,80,,,74.0,44.0,{a},test",
            "resnet_fast_at,resnet20,kaf,fgsm_rs,80,,,75.0,51.5,{a},test",
            "resnet_fast_at,resnet20,kaf_relu,fgsm_rs,80,,,76.0,45.5,{a},test"]
    (folder / "reported_results.csv").write_text(
        "experiment,model,activation,training,epochs,min_lr,max_lr,clean_acc,robust_acc,attack,source\n"
        + "\n".join(rows).format(a=attack) + "\n")
    monkeypatch.setenv("KAFLIB_THESIS_DIR", str(folder))
    return folder


@pytest.fixture
def no_thesis_materials(tmp_path, monkeypatch):
    """A machine without the thesis' materials: `KAFLIB_THESIS_DIR` names an empty folder."""
    folder = tmp_path / "no-thesis-materials"
    folder.mkdir()
    monkeypatch.setenv("KAFLIB_THESIS_DIR", str(folder))
    return folder


def mini_data_dir():
    """The CIFAR-10 mini set (5085/1017 images): KAFLIB_DATA_DIR if set, else ../shared, else None."""
    for candidate in (os.environ.get("KAFLIB_DATA_DIR"), SHARED / "data" / "cifar10-mini"):
        if (candidate and (Path(candidate) / "cifar-10-batches-py" / "test_batch").is_file()
                and Path(candidate).resolve() != TINY_DATA_DIR.resolve()):  # the root conftest's fallback
            return Path(candidate)
    return None


def cifar10_dir():
    """CIFAR-10 for the tests: the mini set where there is one, else the repository's tiny set."""
    return mini_data_dir() or TINY_DATA_DIR


@pytest.fixture(scope="session")
def mini_test_set():
    data_dir = mini_data_dir()
    if data_dir is None:
        pytest.skip("CIFAR-10 mini set not found: set KAFLIB_DATA_DIR or provide ../shared/data/cifar10-mini")
    from kaflib.data import load_cifar10

    return load_cifar10(data_dir, download=False)[1]


def legend_labels(fig):
    """Every legend entry of a matplotlib figure: its own legends and its axes'."""
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    return [text.get_text() for legend in legends for text in legend.get_texts()]


@pytest.fixture(autouse=True)
def no_hidden_legend_labels():
    """Every figure a test draws lists readable legend labels: matplotlib names unlabelled
    artists `_child3`, `_nolegend_`, ..., and a legend built from them shows those names.
    Closes the test's figures."""
    import sys

    yield
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    hidden = []
    for number in plt.get_fignums():
        fig = plt.figure(number)
        hidden += [label for label in legend_labels(fig) if label.startswith("_")]
        plt.close(fig)
    assert not hidden, f"legend labels that are matplotlib's names for unlabelled artists: {hidden}"
