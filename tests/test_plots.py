import pytest
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from kaflib.plots import plot_history, plot_lr_range, plot_schedule  # noqa: E402
from kaflib.schedules import OneCycle  # noqa: E402


def test_plots_draw_the_data():
    ax = plot_schedule(OneCycle(10, 4, 0.0, 0.2), 40, 10)
    x, y = ax.lines[0].get_data()
    assert x[-1] == 3.9 and max(y) == np.float32(0.2)
    history = pd.DataFrame(dict(epoch=[1, 2], lr=[0.1, 0.0], train_loss=[2.0, 1.5], train_acc=[0.2, 0.4],
                                guard_acc=[0.1, 0.2], test_clean_acc=[0.3, 0.5], test_pgd_acc=[0.1, 0.2],
                                collapsed=[False, True], seconds=[1.0, 1.0]))
    fig = plot_history(history, title="t")
    accuracy_axis = fig.axes[1]
    assert len(accuracy_axis.lines) == 5  # 4 curves + the collapse marker
    np.testing.assert_allclose(accuracy_axis.lines[1].get_data()[1], [30, 50])
    empty = plot_history(history.iloc[:0])  # a run that diverged before its first epoch ended
    assert "no epoch finished" in [t.get_text() for t in empty.axes[1].texts]
    table = pd.DataFrame(dict(lr=[1e-3, 1e-2, 1e-1], loss=[2.0, 1.0, 3.0], smoothed_loss=[2.0, 1.5, 2.0]))
    assert plot_lr_range(table).get_xscale() == "log"


def test_kaf_curve_is_the_layer_on_one_channel():
    from kaflib import KAF
    from kaflib.plots import kaf_curve, plot_kaf_inits

    layer = KAF(init="relu")
    layer.build((None, 3))
    x = np.array([-2.0, 0.0, 2.0])
    np.testing.assert_allclose(kaf_curve(layer, x, channel=1), [0.0, 0.0, 2.0], atol=0.1)  # ridge fit: smooth at the kink
    fig = plot_kaf_inits(("random", "elu"), channels=2)
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) == 2 + 1 + 1  # channels, target, dictionary ticks


def test_kwta_response_jumps_when_the_ranking_changes():
    from kaflib import KWTA
    from kaflib.plots import kwta_response

    base = np.linspace(-1, 1, 10)
    t = np.linspace(-1.5, 1.5, 301)
    out = kwta_response(KWTA(ratio=0.2), base, index=0, t=t)
    second = out[:, 8]
    jumps = np.flatnonzero(np.abs(np.diff(second)) > 0.5)
    assert len(jumps) == 1 and t[jumps[0]] < base[8] <= t[jumps[0] + 1]


def test_activation_distances_and_histograms():
    import keras

    from kaflib.activations import activation_layers
    from kaflib.plots import (activation_distances, activation_values, plot_activation_distances,
                              plot_activation_histograms)
    from kaflib.models import build_model

    model = build_model("light", "kaf")
    assert len(activation_layers(model)) == 5
    x = np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32)
    clean = activation_values(model, x)
    moved = activation_values(model, np.clip(x + 0.1, 0, 1))
    assert all(clean[name].shape[0] == 8 for name in clean)
    same = activation_distances(clean, clean)
    assert all(np.all(d == 0) for d in same.values())
    assert any(np.all(d > 0) for d in activation_distances(clean, moved).values())
    fig = plot_activation_histograms({"kaf": (clean, moved)}, statistic="channel_mean")
    assert len([ax for ax in fig.axes if ax.patches]) == 5
    assert plot_activation_distances({"kaf": activation_distances(clean, moved)}).axes
    import pytest

    with pytest.raises(ValueError, match="statistic='median'"):
        plot_activation_histograms({"kaf": (clean, moved)}, statistic="median")
    del keras


def test_robustness_scatter_marks_kafs_and_fixed_activations():
    from kaflib.thesis.figures import plot_robustness_vs_accuracy

    table = pd.DataFrame({"clean (ours)": [40.0, 42.0], "robust (ours)": [10.0, np.nan],
                          "clean (thesis)": [78.1, 77.9], "robust (thesis)": [45.4, 46.8]},
                         index=pd.Index(["relu", "kaf"], name="activation"))
    fig = plot_robustness_vs_accuracy(table)
    ours, thesis = fig.axes[:2]
    assert len(ours.collections) == 1 and len(thesis.collections) == 2  # a NaN point is left out
    np.testing.assert_allclose(thesis.collections[1].get_offsets(), [[77.9, 46.8]])
    assert thesis.collections[0].get_facecolors().size == 0  # fixed: hollow diamond


def test_gradient_norm_plot_marks_non_finite_steps():
    from kaflib.plots import plot_gradient_norms

    trace = pd.DataFrame(dict(step=[0, 0, 1, 1], layer=["a", "b", "a", "b"], depth=[1, 2, 1, 2],
                              norm=[1.0, 2.0, 3.0, np.nan]))
    ax = plot_gradient_norms({"run": trace}).axes[0]
    assert ax.get_yscale() == "log"
    assert [len(line.get_xdata()) for line in ax.lines] == [2, 1, 1]  # a, b finite, b's NaN cross
    fig = plot_gradient_norms({f"run {i}": trace for i in range(3)})  # two panels per row
    assert [ax.get_visible() for ax in fig.axes] == [True] * 3 + [False]
    assert fig.get_figwidth() <= 8.5
    assert fig.axes[2].get_title() == "run 2"


def test_lipschitz_plots():
    import pandas as pd

    from kaflib.plots import plot_kaf_lipschitz
    from kaflib.thesis.figures import plot_bound_vs_robustness

    layers = pd.DataFrame([
        dict(model="vgg", act="relu", depth=1, numeric=1.0), dict(model="vgg", act="relu", depth=2, numeric=1.0),
        dict(model="vgg", act="kaf", depth=1, numeric=3.0, analytic=12.0),
        dict(model="vgg", act="kaf", depth=2, numeric=5.0, analytic=20.0),
        dict(model="resnet20", act="elu", depth=1, numeric=1.0)])
    fig = plot_kaf_lipschitz(layers)
    vgg, resnet = fig.axes
    assert len(vgg.lines) == 3 and len(resnet.lines) == 1  # relu; kaf numeric + analytic; elu
    assert list(vgg.lines[2].get_ydata()) == [12.0, 20.0] and vgg.get_yscale() == "log"
    runs = pd.DataFrame([dict(model="vgg", act="relu", network_bound=1e5, clean_acc=0.4, robust_acc=0.2),
                         dict(model="vgg", act="kaf", network_bound=1e12, clean_acc=0.1, robust_acc=0.1),
                         dict(model="light", act="kwta", network_bound=float("inf"), clean_acc=0.4, robust_acc=0.0)])
    ax = plot_bound_vs_robustness(runs).axes[0]
    assert len(ax.collections) == 2 and ax.get_xscale() == "log"  # the infinite bound is left out
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["vgg / ReLU", "vgg / KAF (at chance)"] and ax.collections[1].get_alpha() < 1


def test_eps_sweep_plot():
    import pandas as pd

    from kaflib.plots import plot_eps_sweep

    sweep = pd.DataFrame(dict(model=["relu"] * 3 + ["kaf"] * 3, eps=[2 / 255, 8 / 255, 128 / 255] * 2,
                              accuracy=[0.5, 0.3, 0.0, 0.4, 0.2, 0.1]))
    ax = plot_eps_sweep(sweep).axes[0]
    relu, kaf = ax.lines[:2]
    assert list(relu.get_xdata()) == pytest.approx([2, 8, 128]) and list(kaf.get_ydata()) == pytest.approx([40, 20, 10])
    assert relu.get_linestyle() == "--" and kaf.get_linestyle() == "-"


def test_masking_checks_plot_has_a_panel_per_grid_and_a_marker_per_attack():
    import pandas as pd

    from kaflib.thesis.figures import plot_masking_checks

    index = pd.MultiIndex.from_tuples([("thesis-vgg", "relu"), ("thesis-vgg", "kaf_elu"),
                                       ("thesis-checkpoints", "kaf")], names=["grid", "model"])
    table = pd.DataFrame(dict(pgd=[20.0, 10.0, 41.0], apgd_dlr_t=[np.nan, np.nan, 38.0], square=[20.0, 7.0, 40.0],
                              surrogate=[np.nan, 9.0, 41.0], worst=[20.0, 6.0, 38.0]), index=index)
    fig = plot_masking_checks(table)
    vgg, checkpoints = fig.axes
    assert vgg.get_title() == "VGG-inspired" and [t.get_text() for t in vgg.get_yticklabels()] == ["ReLU", "KAF_ELU"]
    labels = [c.get_label() for c in vgg.collections]
    assert labels == ["PGD-50", "APGD-CE + APGD-T", "Square (black-box)", "smoothed surrogate", "worst of ours"]
    square = vgg.collections[labels.index("Square (black-box)")].get_offsets()
    np.testing.assert_allclose(square, [[20.0, 0.0], [7.0, 1.0]])
    np.testing.assert_allclose(checkpoints.collections[1].get_offsets(), [[38.0, 0.0]])
