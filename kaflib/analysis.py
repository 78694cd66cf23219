"""Plots and tables of training runs and results."""

import numpy as np

__all__ = ["plot_schedule", "plot_history", "plot_lr_range", "plot_robustness_vs_accuracy", "kaf_curve",
           "plot_kaf_inits", "kaf_layers", "plot_trained_kafs", "kwta_response", "plot_activation_derivatives",
           "activation_layers", "activation_values", "activation_distances", "plot_activation_histograms",
           "plot_activation_distances", "plot_pgd_iterations", "plot_gradient_norms", "show_adversarial_example",
           "plot_histories", "plot_accuracy_under_attack", "plot_checkpoint_audit", "plot_deep_kaf",
           "plot_lipschitz_evolution",
           "plot_kaf_lipschitz", "plot_bound_vs_robustness", "plot_eps_sweep", "plot_masking_checks"]


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

def _act_marker(act):
    """KAFs as filled crosses, fixed activations as thin diamonds (the thesis' convention)."""
    from kaflib.results import KAF_ACTIVATIONS

    if act in KAF_ACTIVATIONS:
        return dict(marker="X", s=90)
    return dict(marker="d", s=70, facecolors="none", linewidths=0.8)


def plot_robustness_vs_accuracy(comparison, title=None):
    """Robust against clean accuracy, this project's runs beside the thesis' numbers.

    Args:
        comparison: `kaflib.results.compare_with_thesis` table (percent).

    Returns:
        The figure: left panel measured here, right panel reported by the thesis;
        one colour per activation, KAFs as filled crosses, fixed activations as
        thin diamonds.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, who in zip(axes, ("ours", "thesis")):
        for i, (act, row) in enumerate(comparison.iterrows()):
            x, y = row[f"clean ({who})"], row[f"robust ({who})"]
            if np.isfinite(x) and np.isfinite(y):
                marker = _act_marker(act)
                colour = {"edgecolors" if "facecolors" in marker else "color": colours[i % len(colours)]}
                ax.scatter(x, y, label=act, **marker, **colour)
        ax.set(xlabel="clean accuracy (%)", ylabel="robust accuracy (%)",
               title="this project" if who == "ours" else "thesis (reported)")
        ax.grid(alpha=0.3)
    handles = {h.get_label(): h for ax in axes for h in ax.collections}
    fig.legend(handles.values(), handles.keys(), loc="center right", fontsize="small")
    fig.tight_layout(rect=(0, 0, 0.87, 0.95 if title else 1))
    if title:
        fig.suptitle(title)
    return fig


# --- Kernel activation functions ---------------------------------------------

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
    import matplotlib.pyplot as plt

    from kaflib.kaf import KAF, kaf_dictionary

    keras.utils.set_random_seed(seed)
    x = np.linspace(-span, span, 401)
    fig, axes = plt.subplots(1, len(inits), figsize=(3.2 * len(inits), 3), sharex=True)
    for ax, init in zip(np.atleast_1d(axes), inits):
        layer = KAF(init=init)
        layer.build((None, channels))
        for c in range(channels):
            ax.plot(x, kaf_curve(layer, x, c), label=f"channel {c}" if init == "random" else None)
        if init != "random":
            ax.plot(x, _activation_curve(init, x), "k--", lw=1, label=f"{init} (target)")
        ax.plot(kaf_dictionary(layer.dictionary_size, layer.boundary), np.zeros(layer.dictionary_size), "|",
                color="grey", ms=8)
        ax.set(title=f"init = {init}", xlabel="x")
        ax.legend(fontsize="x-small")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("KAF(x)")
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
    import matplotlib.pyplot as plt

    found = kaf_layers(model)
    if not found:
        raise ValueError(f"model {model.name!r} has no KAF layers.")
    picked = [found[i] for i in _spread(layers, len(found))]
    x = np.linspace(-span, span, 401)
    fig, axes = plt.subplots(1, len(picked), figsize=(3.2 * len(picked), 3), sharex=True)
    for ax, layer in zip(np.atleast_1d(axes), picked):
        for c in range(min(channels, layer.alpha.shape[0])):
            ax.plot(x, kaf_curve(layer, x, c))
        if reference:
            ax.plot(x, _activation_curve(reference, x), "k--", lw=1, label=reference)
            ax.legend(fontsize="x-small")
        ax.set(title=f"{layer.name} (depth {found.index(layer) + 1}/{len(found)})", xlabel="x")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("KAF(x)")
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
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
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


# --- Activation distributions, clean vs adversarial --------------------------

def activation_layers(model):
    """The activation layers of a model (KAF, k-WTA, `keras.layers.Activation`), in order."""
    import keras

    from kaflib.kaf import KAF
    from kaflib.kwta import KWTA

    return [layer for layer in model.layers
            if isinstance(layer, (KAF, KWTA, keras.layers.Activation))]


def activation_values(model, images, batch_size=256):
    """Outputs of every activation layer: dict name -> array `(N, ..., C)`."""
    import keras

    picked = activation_layers(model)
    probe = keras.Model(model.inputs, [layer.output for layer in picked])
    outputs = probe.predict(images, batch_size=batch_size, verbose=0)
    return {layer.name: np.asarray(out) for layer, out in zip(picked, outputs)}


def activation_distances(clean, adversarial):
    """Per-sample L2 distance between clean and adversarial activations: dict name -> `(N,)`."""
    return {name: np.linalg.norm((adversarial[name] - clean[name]).reshape(len(clean[name]), -1), axis=1)
            for name in clean}


def plot_activation_histograms(values, statistic="neuron", bins=50):
    """Histograms per activation layer of clean vs adversarial activation values.

    Args:
        values: dict label -> (clean dict, adversarial dict), from
            `activation_values`; one row of panels per label (e.g. per model).
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

    rows = len(values)
    cols = max(len(clean) for clean, _ in values.values())
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.0 * rows), squeeze=False)
    for r, (label, (clean, adversarial)) in enumerate(values.items()):
        for c, name in enumerate(clean):
            ax = axes[r, c]
            a, b = pick(clean[name]), pick(adversarial[name])
            edges = np.histogram_bin_edges(np.concatenate([a, b]), bins=bins)
            ax.hist(a, edges, alpha=0.6, label="clean")
            ax.hist(b, edges, alpha=0.6, label="adversarial")
            ax.set_title(f"{label}: {name}", fontsize="small")
            ax.tick_params(labelsize="x-small")
        for c in range(len(clean), cols):
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

    fig, ax = plt.subplots(figsize=(9, 3.5))
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
    import matplotlib.pyplot as plt

    columns = min(len(traces), 3)
    grid_rows = -(-len(traces) // columns)
    fig, axes = plt.subplots(grid_rows, columns, figsize=(4.2 * columns, 3.5 * grid_rows), sharey=True,
                             squeeze=False)
    for ax in axes.flat[len(traces):]:
        ax.set_visible(False)
    for ax, (label, table) in zip(axes.flat, traces.items()):
        depths = sorted(set(table["depth"]))
        picked = [depths[i] for i in _spread(layers, len(depths))]
        for depth in picked:
            rows = table[table["depth"] == depth]
            finite = np.isfinite(rows["norm"])
            ax.plot(rows["step"][finite], rows["norm"][finite], label=f"{rows['layer'].iloc[0]} (#{depth})")
            if (~finite).any():
                ax.plot(rows["step"][~finite], np.full((~finite).sum(), 1e6), "rx")
        ax.set(yscale="log", xlabel="training step", title=label)
        ax.legend(fontsize="xx-small")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("gradient norm (L2, per layer)")
    fig.tight_layout()
    return fig


def plot_deep_kaf(studies):
    """Two panels for `kaflib.results.load_deep_kaf` studies: the gradient norm of
    every convolution's kernel and bias at initialisation, in the order from
    input to output (log scale), and the clean test accuracy per epoch of
    standard training (a cross marks a divergence)."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, study in studies.items():
        norms = study["init_gradient_norms"]
        convs = norms[norms["layer"].str.startswith("conv")]
        line, = left.plot(np.arange(1, len(convs) + 1), convs["norm"], label=label, linewidth=1)
        history = study["rows"]
        if len(history):
            right.plot(history["epoch"], 100 * history["test_clean_acc"], marker=".", color=line.get_color(),
                       label=label)
        if study["diverged"]:
            right.plot(len(history) + 1, 10, "x", color=line.get_color(), markersize=9)
    left.set(yscale="log", xlabel="convolution (1 = input side)", ylabel="gradient norm at init",
             title="gradients at initialisation")
    right.axhline(10, color="grey", linestyle=":", linewidth=1)
    right.set(xlabel="epoch", ylabel="clean test accuracy %", title="standard training (x: diverged)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def plot_kaf_lipschitz(layers):
    """Lipschitz constant of every activation layer against its depth, one panel per
    model, one colour per run: KAFs' numeric constant (solid) and analytic bound
    (dashed), fixed activations' constant (dotted). `layers`: the `layers` list of a
    `lipschitz` study (or several, concatenated), as a DataFrame."""
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(layers["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4.8 * len(models), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
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


def plot_bound_vs_robustness(runs, min_clean=None):
    """Robust accuracy (%) against the network's Lipschitz bound (log scale), one
    point per run, KAFs as filled crosses. `runs`: the rows of `lipschitz` studies.
    Runs with clean accuracy below `min_clean` (a fraction; default
    `results.MIN_TRAINED_CLEAN`) did not train: they are drawn faint and labelled
    "at chance"."""
    import matplotlib.pyplot as plt

    from kaflib.results import MIN_TRAINED_CLEAN

    min_clean = MIN_TRAINED_CLEAN / 100 if min_clean is None else min_clean

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    finite = runs[np.isfinite(runs["network_bound"])]
    for i, ((model, act), row) in enumerate(finite.set_index(["model", "act"]).iterrows()):
        marker = _act_marker(act)
        colour = {"edgecolors" if "facecolors" in marker else "color": colours[i % len(colours)]}
        at_chance = row["clean_acc"] < min_clean
        ax.scatter(row["network_bound"], 100 * row["robust_acc"], **marker, **colour, alpha=0.3 if at_chance else 1,
                   label=f"{model} / {act}" + (" (at chance)" if at_chance else ""))
    ax.set(xscale="log", xlabel="Lipschitz upper bound of the network (L2)", ylabel="robust accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="xx-small", ncol=2)
    fig.tight_layout()
    return fig


def plot_lipschitz_evolution(histories):
    """The network's Lipschitz bound (log10), its largest activation constant and its
    training accuracy (%, on the FGSM examples) per epoch: does a run collapse as its
    activations steepen?

    `histories`: {label: per-epoch history with the columns of
    `kaflib.lipschitz.lipschitz_epoch_metrics` and train_acc}
    (`results.lipschitz_histories()`); labels ending in a KAF activation are drawn
    solid, the others dashed.
    """
    import matplotlib.pyplot as plt

    from kaflib.results import KAF_ACTIVATIONS

    fig, (bound_ax, act_ax, acc_ax) = plt.subplots(1, 3, figsize=(13, 3.6))
    for label, history in histories.items():
        style = dict(marker=".", label=label,
                     linestyle="-" if label.split(" / ")[-1] in KAF_ACTIVATIONS else "--")
        bound_ax.plot(history["epoch"], history["lipschitz_bound_log10"], **style)
        act_ax.plot(history["epoch"], history["activation_lipschitz_max"], **style)
        acc_ax.plot(history["epoch"], 100 * history["train_acc"], **style)
    bound_ax.set(xlabel="epoch", ylabel="log10 Lipschitz bound of the network")
    act_ax.set(xlabel="epoch", ylabel="largest activation constant (max |f'|)", yscale="log")
    acc_ax.set(xlabel="epoch", ylabel="training accuracy (%)")
    for ax in (bound_ax, act_ax, acc_ax):
        ax.grid(alpha=0.3)
    acc_ax.legend(fontsize="x-small")
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
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
    panels = [(image, f"clean: {class_names[probs[0].argmax()]} ({100 * probs[0].max():.1f}%)"),
              (np.clip(0.5 + magnify * delta, 0, 1), f"perturbation x{magnify:.0f}\n(L-inf {255 * eps:.1f}/255)"),
              (adversarial, f"adversarial: {class_names[probs[1].argmax()]} ({100 * probs[1].max():.1f}%)")]
    for ax, (picture, title) in zip(axes, panels):
        ax.imshow(picture, interpolation="nearest")
        ax.set_title(title, fontsize="small")
        ax.axis("off")
    fig.suptitle(f"true class: {class_names[label]}")
    fig.tight_layout()
    return fig


def plot_histories(histories, columns=("test_clean_acc", "test_pgd_acc")):
    """Per-epoch curves of several runs side by side: one panel per history column.

    `histories` maps label -> history DataFrame (`kaflib.train.fit`); accuracies in percent.
    """
    import matplotlib.pyplot as plt

    from kaflib.results import KAF_ACTIVATIONS

    titles = {"test_clean_acc": "test accuracy, clean", "test_pgd_acc": "test accuracy, PGD (sample)",
              "train_loss": "training loss", "train_acc": "training accuracy (adversarial inputs)"}
    fig, axes = plt.subplots(1, len(columns), figsize=(5 * len(columns), 3.5), squeeze=False)
    for ax, column in zip(axes[0], columns):
        scale = 1 if "loss" in column else 100
        for label, history in histories.items():
            ax.plot(history["epoch"], scale * history[column], label=label,
                    linestyle="-" if label.split("-")[-1] in KAF_ACTIVATIONS else "--")
        ax.set(xlabel="epoch", title=titles.get(column, column),
               ylabel="loss" if scale == 1 else "accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize="x-small")
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


def plot_checkpoint_audit(table):
    """Robust accuracy per checkpoint and attack with 95% intervals, and the thesis' reported number.

    `table` is `kaflib.results.checkpoint_audit_table()`.
    """
    import matplotlib.pyplot as plt

    attacks = [("pgd", "PGD-50"), ("apgd_ce", "APGD-CE"), ("worst", "worst case (+ APGD-T)")]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(table) + 1.5))
    rows = np.arange(len(table))
    for i, (column, label) in enumerate(attacks):
        y = rows + (i - 1) * 0.22
        values = table[column].to_numpy()
        errors = np.stack([values - table[f"{column}_low"], table[f"{column}_high"] - values])
        ax.errorbar(values, y, xerr=errors, fmt="o", ms=4, capsize=2, label=label)
    ax.scatter(table["thesis robust"], rows, marker="*", s=120, color="black", zorder=3,
               label="thesis (reported, full test set)")
    ax.set_yticks(rows)
    ax.set_yticklabels(table.index, fontsize="small")
    ax.invert_yaxis()
    ax.set(xlabel="robust accuracy (%), 95% interval")
    ax.legend(fontsize="x-small", loc="lower right")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def plot_masking_checks(table):
    """Accuracy (%) of every model under each attack of the masking checks, one panel per grid.

    `table` is `kaflib.results.masking_table()`. Per model: white-box PGD-50
    and APGD (robust to APGD-CE and APGD-T, where run), black-box Square, the ReLU
    model's transferred images, the smoothed-surrogate attack (KAF models) and
    the worst case. A gradient-masking model shows a black-box, transfer or
    surrogate marker left of its PGD marker.
    """
    import matplotlib.pyplot as plt

    attacks = [("pgd", "PGD-50", "o"), ("apgd_dlr_t", "APGD-CE + APGD-T", "s"), ("square", "Square (black-box)", "^"),
               ("transfer_in", "transfer from ReLU", "v"), ("surrogate", "smoothed surrogate", "P"),
               ("worst", "worst of ours", "x")]
    attacks = [a for a in attacks if a[0] in table]
    grids = list(table.index.unique("grid"))
    heights = [len(table.loc[g]) for g in grids]
    fig, axes = plt.subplots(len(grids), 1, figsize=(8, 0.4 * sum(heights) + 1.2 * len(grids)), squeeze=False,
                             gridspec_kw=dict(height_ratios=heights))
    for ax, grid in zip(axes[:, 0], grids):
        rows = table.loc[grid]
        y = np.arange(len(rows))
        for column, label, marker in attacks:
            ax.scatter(rows[column], y, marker=marker, s=36, label=label, zorder=3)
        ax.set_yticks(y)
        ax.set_yticklabels(rows.index, fontsize="small")
        ax.invert_yaxis()
        ax.set_title(grid, fontsize="medium")
        ax.grid(alpha=0.3, axis="x")
    axes[-1, 0].set_xlabel("accuracy under attack (%), eps = 8/255")
    axes[0, 0].legend(fontsize="x-small", loc="best")
    fig.tight_layout()
    return fig
