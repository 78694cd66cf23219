"""The networks of `kaflib.models` described from the built model: a table of layers,
a table of residual blocks, and a drawing of one residual block.

Everything is read from the Keras graph (layer types, settings, shapes, parameter
counts, which layer feeds which), so the description is the network that trains.
"""

import numpy as np

__all__ = ["describe_layer", "architecture_table", "residual_blocks", "block_table", "plot_residual_block"]


def _sources(layer):
    """The layers whose outputs `layer` takes as inputs."""
    return [t._keras_history.operation for t in layer._inbound_nodes[0].input_tensors]


def describe_layer(layer):
    """A layer in words: "3x3 conv, 32 filters, stride 2", "2x2 max-pool", "dropout 0.2",
    "batch norm", "ReLU" (activation layers by their activation), ..."""
    from kaflib.activations import ACTIVATIONS, activation_name

    kind = type(layer).__name__
    config = layer.get_config()
    if kind == "Conv2D":
        k, s = config["kernel_size"], config["strides"]
        return f"{k[0]}x{k[1]} conv, {config['filters']} filters" + (f", stride {s[0]}" if s[0] > 1 else "")
    if kind == "Dense":
        return f"dense, {config['units']} units" + (" (logits)" if layer.name == "logits" else "")
    words = {"BatchNormalization": "batch norm", "Flatten": "flatten", "Add": "add (residual sum)",
             "GlobalAveragePooling2D": "global average pooling"}
    if kind in words:
        return words[kind]
    if kind == "MaxPooling2D":
        return f"{config['pool_size'][0]}x{config['pool_size'][1]} max-pool"
    if kind == "Dropout":
        return f"dropout {config['rate']:g}"
    name = config.get("activation", layer.name)
    name = name if isinstance(name, str) else layer.name
    act = next((a for a in ACTIVATIONS if name == a or kind.lower() == a.replace("_", "")), None)
    return f"activation: {activation_name(act or name)}" if act or kind == "Activation" else f"activation: {kind}"


def architecture_table(model):
    """One row per layer of `model` (the input left out): what it is, its output shape
    (without the batch) and its trainable and other parameters; a last row sums them."""
    import pandas as pd

    rows = [dict(layer=describe_layer(layer), output=" x ".join(str(d) for d in layer.output.shape[1:]),
                 parameters=int(layer.count_params())) for layer in model.layers if _sources(layer)]
    rows.append(dict(layer="total", output="", parameters=int(model.count_params())))
    table = pd.DataFrame(rows)
    table.index = range(1, len(table) + 1)
    return table


def residual_blocks(model):
    """The residual blocks of a `kaflib.models.resnet`, in order: for each, the layers from
    the block's first layer to the activation after its residual sum (`layers`), the
    block's input layer (`input`) and its shortcut convolution (`shortcut`, None for an
    identity shortcut)."""
    from kaflib.activations import activation_layers

    layers, blocks = list(model.layers), []
    first = layers.index(activation_layers(model)[0]) + 1  # after the stem's activation
    for i, layer in enumerate(layers):
        if type(layer).__name__ != "Add":
            continue
        start, end = (blocks[-1]["end"] + 1 if blocks else first), i + 2  # the add, batch norm, activation
        block_input = _sources(layers[start])[0]
        shortcut = next((s for s in _sources(layer) if type(s).__name__ == "Conv2D" and block_input in _sources(s)),
                        None)
        blocks.append(dict(layers=layers[start:end + 1], input=block_input, shortcut=shortcut, end=end))
    return blocks


def block_table(model):
    """One row per stage of a ResNet: the stem, each residual block, the head (pooling and
    logits): what it holds, its output shape and its parameters; a last row sums them."""
    import pandas as pd

    blocks = residual_blocks(model)
    layers = list(model.layers)
    first, last = layers.index(blocks[0]["layers"][0]), blocks[-1]["end"]
    rows = [_segment("stem: " + ", ".join(describe_layer(lay) for lay in layers[1:first]), layers[1:first])]
    for k, block in enumerate(blocks, 1):
        convs = [lay for lay in block["layers"] if type(lay).__name__ == "Conv2D" and lay is not block["shortcut"]]
        what = " -> ".join(describe_layer(c).replace(" filters", "") for c in convs)
        shortcut = f"shortcut {describe_layer(block['shortcut'])}" if block["shortcut"] else "identity shortcut"
        rows.append(_segment(f"block {k}: {what}; {shortcut}", block["layers"]))
    rows.append(_segment("head: " + ", ".join(describe_layer(lay) for lay in layers[last + 1:]), layers[last + 1:]))
    rows.append(dict(stage="total", output="", parameters=int(model.count_params())))
    table = pd.DataFrame(rows)
    table.index = range(1, len(table) + 1)
    return table


def _segment(stage, layers):
    return dict(stage=stage, output=" x ".join(str(d) for d in layers[-1].output.shape[1:]),
                parameters=int(sum(lay.count_params() for lay in layers)))


def plot_residual_block(model, block=0):
    """The `block`-th residual block of a ResNet drawn as its layers: the main path top to
    bottom, the shortcut beside it (identity or its convolution), both into the sum."""
    import matplotlib.pyplot as plt

    found = residual_blocks(model)[block]
    main = [lay for lay in found["layers"] if lay is not found["shortcut"]]
    fig, ax = plt.subplots(figsize=(5.5, 0.62 * (len(main) + 2)))
    y = np.arange(len(main) + 1)[::-1].astype(float)
    boxes = ["input: " + " x ".join(str(d) for d in found["input"].output.shape[1:])] + \
        [describe_layer(lay) for lay in main]
    for yi, text in zip(y, boxes):
        ax.text(0, yi, text, ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round,pad=0.35", fc="#e8f0fb" if "conv" in text else "#f4f4f4", ec="#555"))
    for upper, lower in zip(y[:-1], y[1:]):
        ax.annotate("", (0, lower + 0.28), (0, upper - 0.28), arrowprops=dict(arrowstyle="->", color="#333"))
    add = next(i for i, lay in enumerate(main, 1) if type(lay).__name__ == "Add")
    label = describe_layer(found["shortcut"]) if found["shortcut"] else "identity"
    ax.annotate("", (0.55, y[add]), (0.55, y[0]),
                arrowprops=dict(arrowstyle="->", color="tab:red", connectionstyle="bar,fraction=-0.15"))
    ax.text(1.02, (y[0] + y[add]) / 2, f"shortcut:\n{label}", color="tab:red", ha="left", va="center", fontsize=9)
    ax.set(xlim=(-1.6, 2.1), ylim=(-0.6, y[0] + 0.6))
    ax.axis("off")
    ax.set_title(f"{model.name}: residual block {block + 1}", fontsize="medium")
    fig.tight_layout()
    return fig
