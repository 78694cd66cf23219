"""Plots and tables of training runs and results."""

import numpy as np

__all__ = ["plot_schedule", "plot_history", "plot_lr_range"]


def plot_schedule(schedule, steps, steps_per_epoch, ax=None):
    """Learning rate against epochs for a schedule (e.g. `kaflib.schedules.OneCycle`)."""
    import matplotlib.pyplot as plt
    from keras import ops

    ax = ax or plt.subplots(figsize=(5, 3))[1]
    step = np.arange(steps)
    ax.plot(step / steps_per_epoch, ops.convert_to_numpy(schedule(step)))
    ax.set(xlabel="epoch", ylabel="learning rate", title="one-cycle learning-rate schedule")
    ax.grid(alpha=0.3)
    return ax


def plot_history(history, title=None):
    """Two panels from a `kaflib.train.fit` history: losses, and accuracies per epoch."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.plot(history["epoch"], history["train_loss"], marker="o")
    left.set(xlabel="epoch", ylabel="training loss (cross-entropy)")
    for column, label in [("train_acc", "train (on training inputs)"), ("test_clean_acc", "test, clean"),
                          ("test_pgd_acc", "test, PGD (sample)"), ("guard_acc", "guard (held-out train)")]:
        right.plot(history["epoch"], 100 * history[column], marker="o", label=label)
    collapsed = history.loc[history["collapsed"].astype(bool), "epoch"]
    for epoch in collapsed:
        right.axvline(epoch, color="red", linestyle="--", alpha=0.5)
    right.set(xlabel="epoch", ylabel="accuracy (%)")
    right.legend(fontsize="small")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_lr_range(table, ax=None):
    """Loss against learning rate (log scale) from `kaflib.train.lr_range_test`."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5, 3))[1]
    ax.plot(table["lr"], table["loss"], alpha=0.3, label="loss")
    ax.plot(table["lr"], table["smoothed_loss"], label="smoothed loss")
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss", title="learning-rate range test")
    ax.legend()
    ax.grid(alpha=0.3)
    return ax
