import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from kaflib.analysis import plot_history, plot_lr_range, plot_schedule  # noqa: E402
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
    table = pd.DataFrame(dict(lr=[1e-3, 1e-2, 1e-1], loss=[2.0, 1.0, 3.0], smoothed_loss=[2.0, 1.5, 2.0]))
    assert plot_lr_range(table).get_xscale() == "log"
