"""Plots of training runs, activations, attacks and diagnostics (matplotlib).

Each function draws one figure (or into `ax`) from what a kaflib function
returns: a `fit` history, an LR range test, a layer, a gradient trace, an
attack sweep. Accuracies are plotted in percent.
"""

import numpy as np

__all__ = ["plot_schedule", "plot_history", "plot_lr_range", "act_marker", "kaf_curve", "plot_kaf_inits",
           "kaf_layers", "plot_trained_kafs", "kwta_response", "plot_activation_derivatives", "plot_fixed_activations",
           "activation_values", "activation_distances", "plot_activation_histograms",
           "plot_activation_distances", "plot_pgd_iterations", "plot_gradient_norms", "plot_kaf_lipschitz",
           "plot_eps_sweep", "show_adversarial_example", "plot_histories", "plot_accuracy_under_attack"]


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
        if history.empty:
            ax.text(0.5, 0.5, "no epoch finished", ha="center", va="center", transform=ax.transAxes)
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


# --- Robustness vs accuracy -------------------------------------------------


def act_marker(act):
    """KAFs as filled crosses, fixed activations as thin diamonds (the thesis' convention)."""
    from kaflib.activations import KAF_ACTIVATIONS

    if act in KAF_ACTIVATIONS:
        return dict(marker="X", s=90)
    return dict(marker="d", s=70, facecolors="none", linewidths=0.8)


#: The widest figure, in inches at matplotlib's 100 dpi: the book's text column is about 700
#: pixels wide, and a wider figure is shrunk until its labels cannot be read.
MAX_WIDTH = 8.5


def _panels(count, width=4.0, height=3.0, **kwargs):
    """A figure of `count` panels, as many per row as `MAX_WIDTH` allows: (figure, the
    `count` axes in reading order); the grid's unused axes are hidden."""
    import matplotlib.pyplot as plt

    columns = max(1, min(count, int(MAX_WIDTH // width)))
    rows = -(-count // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False, **kwargs)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:count])


def _spread(count, total):
    """Indices of `count` items spread evenly over `range(total)` (first and last included)."""
    return np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(int))


def _activation_curve(name, x):
    """A Keras activation's values at the points `x` (1-D), as a NumPy array."""
    import keras

    return keras.ops.convert_to_numpy(keras.activations.get(name)(np.asarray(x, "float32")))


def kaf_curve(layer, x, channel=0):
    """Values `(len(x),)` of one channel of a built KAF layer at the points `x` (1-D)."""
    from keras import ops

    x = np.asarray(x, "float32")
    inputs = np.zeros((len(x), layer.alpha.shape[0]), "float32")
    inputs[:, channel] = x
    return ops.convert_to_numpy(layer(inputs))[:, channel]


def plot_kaf_inits(inits=("random", "relu", "elu", "swish"), channels=3, span=5.0, seed=0):
    """KAF shapes at initialisation: random coefficients vs ridge regression to an activation.

    One panel per init; `channels` channels of a fresh layer each; the ridge
    target dashed; the dictionary points as ticks on the x-axis.
    """
    import keras

    from kaflib.kaf import KAF, kaf_dictionary

    keras.utils.set_random_seed(seed)
    x = np.linspace(-span, span, 401)
    fig, axes = _panels(len(inits), sharex=True)
    for ax, init in zip(axes, inits):
        layer = KAF(init=init)
        layer.build((None, channels))
        for c in range(channels):
            ax.plot(x, kaf_curve(layer, x, c), label=f"channel {c}" if init == "random" else None)
        if init != "random":
            ax.plot(x, _activation_curve(init, x), "k--", lw=1, label=f"{init} (target)")
        ax.plot(kaf_dictionary(layer.dictionary_size, layer.boundary), np.zeros(layer.dictionary_size), "|",
                color="grey", ms=8)
        ax.set(title=f"init = {init}", xlabel="x", ylabel="KAF(x)")
        ax.legend(fontsize="x-small")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def kaf_layers(model):
    """The KAF layers of a model, in order."""
    from kaflib.kaf import KAF

    return [layer for layer in model.layers if isinstance(layer, KAF)]


def plot_trained_kafs(model, layers=4, channels=4, span=5.0, reference=None):
    """Learned KAF shapes: `channels` channels of `layers` KAF layers spread over the depth.

    `reference` (an activation name, e.g. the ridge init ``"elu"``) is drawn dashed.
    """

    found = kaf_layers(model)
    if not found:
        raise ValueError(f"model {model.name!r} has no KAF layers.")
    picked = [found[i] for i in _spread(layers, len(found))]
    x = np.linspace(-span, span, 401)
    fig, axes = _panels(len(picked), sharex=True)
    for ax, layer in zip(axes, picked):
        for c in range(min(channels, layer.alpha.shape[0])):
            ax.plot(x, kaf_curve(layer, x, c))
        if reference:
            ax.plot(x, _activation_curve(reference, x), "k--", lw=1, label=reference)
            ax.legend(fontsize="x-small")
        ax.set(title=f"{layer.name} (depth {found.index(layer) + 1}/{len(found)})", xlabel="x")
        ax.grid(alpha=0.3)
        ax.set_ylabel("KAF(x)")
    fig.tight_layout()
    return fig


# --- Related work: k-WTA and smooth activations -------------------------------


def kwta_response(layer, base, index, t):
    """Outputs `(len(t), N)` of a k-WTA layer as input coordinate `index` of `base` (shape `(N,)`) sweeps `t`."""
    from keras import ops

    inputs = np.repeat(np.asarray(base, "float32")[None], len(t), axis=0)
    inputs[:, index] = t
    return ops.convert_to_numpy(layer(inputs))


def plot_activation_derivatives(names=("relu", "softplus", "swish", "gelu", "elu"), span=4.0):
    """Each activation and its derivative (by automatic differentiation) on [-span, span]."""
    import keras
    import matplotlib.pyplot as plt
    import tensorflow as tf

    x = tf.constant(np.linspace(-span, span, 801, dtype="float32"))
    fig, (left, right) = plt.subplots(1, 2, figsize=(MAX_WIDTH, 3.5))
    for name in names:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = keras.activations.get(name)(x)
        left.plot(x.numpy(), keras.ops.convert_to_numpy(y), label=name)
        right.plot(x.numpy(), tape.gradient(y, x).numpy(), label=name)
    left.set(title="activation f(x)", xlabel="x")
    right.set(title="derivative f'(x)", xlabel="x")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_fixed_activations(span=5.0):
    """The fixed activations the thesis starts from: the sigmoid and its derivative, whose
    maximum of 1/4 shrinks every gradient that passes through it (thesis "sigmoid"), and
    ReLU beside ELU, LeakyReLU (slope 0.1) and Swish, which differ from it for negative
    inputs only (thesis "afunctions")."""
    import matplotlib.pyplot as plt

    x = np.linspace(-span, span, 801)
    sigmoid = 1 / (1 + np.exp(-x))
    fig, (left, right) = plt.subplots(1, 2, figsize=(MAX_WIDTH, 3.4))
    left.plot(x, sigmoid, label="sigmoid")
    left.plot(x, sigmoid * (1 - sigmoid), label="its derivative (max 1/4)")
    curves = {"ReLU": np.maximum(x, 0), "ELU": np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
              "LeakyReLU (0.1)": np.where(x > 0, x, 0.1 * x), "Swish": x * sigmoid}
    for label, y in curves.items():
        right.plot(x, y, label=label, ls="--" if label == "ReLU" else "-")
    right.set_ylim(-1.5, span)
    for ax, title in ((left, "sigmoid"), (right, "ReLU and its smooth variants")):
        ax.set(xlabel="x", title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


# --- Activation distributions, clean vs adversarial --------------------------


def activation_values(model, images, batch_size=256):
    """Outputs of every activation layer: dict name -> array `(N, ..., C)`."""
    import keras

    from kaflib.activations import activation_layers

    picked = activation_layers(model)
    probe = keras.Model(model.inputs, [layer.output for layer in picked])
    # Called batch by batch, not through `predict`: a predict function per model makes
    # TensorFlow warn about retracing when several models are probed in a row.
    batches = [probe([images[i:i + batch_size]], training=False) for i in range(0, len(images), batch_size)]
    return {layer.name: np.concatenate([np.asarray(b[k]) for b in batches]) for k, layer in enumerate(picked)}


def activation_distances(clean, adversarial):
    """Per-sample L2 distance between clean and adversarial activations: dict name -> `(N,)`."""
    return {name: np.linalg.norm((adversarial[name] - clean[name]).reshape(len(clean[name]), -1), axis=1)
            for name in clean}


def plot_activation_histograms(values, statistic="neuron", bins=50):
    """Histograms per activation layer of clean vs adversarial activation values.

    Args:
        values: dict label -> (clean dict, adversarial dict), from
            `activation_values`; one column of panels per label (e.g. per model),
            one row per activation layer.
        statistic: ``"neuron"``: the first unit of each layer (first channel at
            the centre pixel for conv layers); ``"channel_mean"``: the mean of
            the first channel over the spatial positions.
    """
    import matplotlib.pyplot as plt

    if statistic not in ("neuron", "channel_mean"):
        raise ValueError(f"statistic={statistic!r} is invalid: 'neuron' or 'channel_mean'.")

    def pick(a):
        if a.ndim == 2:
            return a[:, 0]
        if statistic == "neuron":
            return a[:, a.shape[1] // 2, a.shape[2] // 2, 0]
        return a[..., 0].mean(axis=(1, 2))

    cols = len(values)
    rows = max(len(clean) for clean, _ in values.values())
    fig, axes = plt.subplots(rows, cols, figsize=(min(MAX_WIDTH, 2.8 * cols), 1.9 * rows), squeeze=False)
    for c, (label, (clean, adversarial)) in enumerate(values.items()):
        for r, name in enumerate(clean):
            ax = axes[r, c]
            a, b = pick(clean[name]), pick(adversarial[name])
            edges = np.histogram_bin_edges(np.concatenate([a, b]), bins=bins)
            ax.hist(a, edges, alpha=0.6, label="clean")
            ax.hist(b, edges, alpha=0.6, label="adversarial")
            ax.set_title(f"{label}: {name}", fontsize="small")
            ax.tick_params(labelsize="x-small")
        for r in range(len(clean), rows):
            axes[r, c].axis("off")
    axes[0, 0].legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def plot_activation_distances(distances):
    """Per-layer box plots of clean-vs-adversarial L2 distances; one line of boxes per model.

    Args:
        distances: dict label -> `activation_distances` dict.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(MAX_WIDTH, 3.5))
    width = 0.8 / len(distances)
    for i, (label, per_layer) in enumerate(distances.items()):
        positions = np.arange(len(per_layer)) + i * width
        box = ax.boxplot(list(per_layer.values()), positions=positions, widths=width * 0.9,
                         patch_artist=True, showfliers=False)
        colour = plt.rcParams["axes.prop_cycle"].by_key()["color"][i]
        for patch in box["boxes"]:
            patch.set_facecolor(colour)
        ax.plot([], [], "s", color=colour, label=label)
    ax.set_xticks(np.arange(max(len(d) for d in distances.values())) + 0.4 - width / 2)
    ax.set_xticklabels([f"act {j + 1}" for j in range(max(len(d) for d in distances.values()))])
    ax.set(ylabel="L2 distance, clean vs adversarial", xlabel="activation layer (input -> output)")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


# --- Evaluation ---------------------------------------------------------------


def plot_pgd_iterations(sweeps, ax=None):
    """Robust accuracy (%) against PGD iterations; `sweeps` maps label -> DataFrame(iterations, robust_acc)."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5.5, 3.5))[1]
    for label, table in sweeps.items():
        ax.plot(table["iterations"], 100 * table["robust_acc"], marker="o", label=label)
    ax.set(xlabel="PGD iterations", ylabel="robust accuracy (%)", xscale="log")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def plot_gradient_norms(traces, layers=6):
    """Per-layer gradient norms over training steps, one panel per run.

    Args:
        traces: dict label -> DataFrame(step, layer, depth, norm) from
            `kaflib.gradients.gradient_norm_trace`; `layers` layers spread over
            the depth are drawn (log scale; non-finite norms as red crosses at
            the top).
    """

    fig, axes = _panels(len(traces), width=4.25, height=3.5, sharey=True)
    for ax, (label, table) in zip(axes, traces.items()):
        depths = sorted(set(table["depth"]))
        picked = [depths[i] for i in _spread(layers, len(depths))]
        for depth in picked:
            rows = table[table["depth"] == depth]
            finite = np.isfinite(rows["norm"])
            ax.plot(rows["step"][finite], rows["norm"][finite], label=f"{rows['layer'].iloc[0]} (#{depth})")
            if (~finite).any():
                ax.plot(rows["step"][~finite], np.full((~finite).sum(), 1e6), "rx")
        ax.set(yscale="log", xlabel="training step", ylabel="gradient norm (L2, per layer)", title=label)
        ax.legend(fontsize="xx-small")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_kaf_lipschitz(layers):
    """Lipschitz constant of every activation layer against its depth, one panel per
    model, one colour per run: KAFs' numeric constant (solid) and analytic bound
    (dashed), fixed activations' constant (dotted). `layers`: the `layers` list of a
    `lipschitz` study (or several, concatenated), as a DataFrame."""

    models = list(dict.fromkeys(layers["model"]))
    fig, axes = _panels(len(models), width=MAX_WIDTH, height=3.4)
    for ax, model in zip(axes, models):
        for act, rows in layers[layers["model"] == model].groupby("act", sort=False):
            kaf = "analytic" in rows and rows["analytic"].notna().any()
            line, = ax.plot(rows["depth"], rows["numeric"], linestyle="-" if kaf else ":", label=act)
            if kaf:
                ax.plot(rows["depth"], rows["analytic"], linestyle="--", color=line.get_color(), linewidth=0.8)
        ax.set(yscale="log", xlabel="activation layer (1 = input side)", ylabel="Lipschitz constant",
               title=f"{model} (dashed: analytic bound)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def plot_eps_sweep(sweep, ax=None):
    """Accuracy (%) under PGD against the attack radius (in /255), one line per
    model; it must reach 0 at large radii unless gradients are masked. `sweep`:
    DataFrame(model, eps, accuracy) (a `masking` study's `sweep`)."""
    import matplotlib.pyplot as plt

    if ax is None:
        ax = plt.subplots(figsize=(5.5, 3.6))[1]
    for model, rows in sweep.groupby("model", sort=False):
        ax.plot(255 * rows["eps"], 100 * rows["accuracy"], marker=".", linestyle="-" if "kaf" in model else "--",
                label=model)
    ax.set(xscale="log", xlabel="eps (x/255, log scale)", ylabel="accuracy under PGD (%)")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    return ax.figure


def show_adversarial_example(model, image, adversarial, label, class_names, magnify=None):
    """Clean image, perturbation (magnified), adversarial image, with predictions and confidences.

    `image` and `adversarial` are `(H, W, 3)` in [0, 1]; `label` the true class.
    """
    import matplotlib.pyplot as plt
    from keras import ops

    probs = ops.convert_to_numpy(ops.softmax(model(np.stack([image, adversarial]).astype("float32"))))
    delta = adversarial - image
    eps = np.abs(delta).max()
    magnify = magnify or (0.5 / max(eps, 1e-12))
    fig, axes = plt.subplots(1, 3, figsize=(MAX_WIDTH, 3.6))
    panels = [(image, f"clean: {class_names[probs[0].argmax()]} ({100 * probs[0].max():.1f}%)"),
              (np.clip(0.5 + magnify * delta, 0, 1), f"perturbation x{magnify:.0f}\n(L-inf {255 * eps:.1f}/255)"),
              (adversarial, f"adversarial: {class_names[probs[1].argmax()]} ({100 * probs[1].max():.1f}%)")]
    for ax, (picture, title) in zip(axes, panels):
        ax.imshow(picture, interpolation="nearest")
        ax.set_title(title, fontsize="small")
        ax.axis("off")
    fig.suptitle(f"true class: {class_names[label]}")
    fig.tight_layout(rect=(0, 0, 1, 0.92))  # the panels' two-line titles below the figure's
    return fig


def plot_histories(histories, columns=("test_clean_acc", "test_pgd_acc")):
    """Per-epoch curves of several runs side by side: one panel per history column.

    `histories` maps label -> history DataFrame (`kaflib.train.fit`); accuracies in percent.
    """

    from kaflib.activations import KAF_ACTIVATIONS

    titles = {"test_clean_acc": "test accuracy, clean", "test_pgd_acc": "test accuracy, PGD (sample)",
              "train_loss": "training loss", "train_acc": "training accuracy (adversarial inputs)"}
    fig, axes = _panels(len(columns), width=MAX_WIDTH / 2, height=3.4)
    for ax, column in zip(axes, columns):
        scale = 1 if "loss" in column else 100
        for label, history in histories.items():
            ax.plot(history["epoch"], scale * history[column], label=label,
                    linestyle="-" if label.split("-")[-1] in KAF_ACTIVATIONS else "--")
        ax.set(xlabel="epoch", title=titles.get(column, column),
               ylabel="loss" if scale == 1 else "accuracy (%)")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def plot_accuracy_under_attack(table, ax=None):
    """Accuracy (%) against eps (in 1/255 units), one line per iteration count (`accuracy_under_attack`)."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5.5, 3.5))[1]
    for steps, rows in table.groupby("steps"):
        ax.plot(255 * rows["eps"], 100 * rows["accuracy"], marker="o",
                label="FGSM (random start)" if steps == 1 else f"PGD-{steps}")
    ax.set(xlabel="eps (x 1/255)", ylabel="accuracy under attack (%)")
    ax.legend()
    ax.grid(alpha=0.3)
    return ax
