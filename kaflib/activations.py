"""One registry of the activations the thesis compares, by name."""

import keras

from kaflib.kaf import KAF, DirectKAF
from kaflib.kwta import KWTA

__all__ = ["ACTIVATIONS", "ACTIVATION_LAYER_TYPES", "ACTIVATION_NAMES", "FIXED_ACTIVATIONS", "KAF_ACTIVATIONS",
           "activation_layers", "activation_name", "get_activation", "get_direct_activation", "is_activation_layer"]

#: Fixed (non-trainable) activations, used as `keras.layers.Activation(name)`.
FIXED_ACTIVATIONS = ("relu", "elu", "swish", "gelu", "softplus", "tanh")

_TRAINABLE = {
    "kaf": dict(init="random"),
    "kaf_relu": dict(init="relu"),
    "kaf_elu": dict(init="elu"),
    "kaf_swish": dict(init="swish"),
    "kaf_free": dict(init="random", trainable_dictionary=True),
    "kaf_smooth": dict(init="smooth"),
}

#: The names that make a `KAF` (they take KAF keyword arguments such as `kernel=`).
KAF_ACTIVATIONS = tuple(_TRAINABLE)

#: Every name `get_activation` accepts.
ACTIVATIONS = FIXED_ACTIVATIONS + tuple(_TRAINABLE) + ("kwta",)

#: The activations as the thesis spells them (its tables' row labels), for figures and tables.
ACTIVATION_NAMES = {"relu": "ReLU", "elu": "ELU", "swish": "Swish", "gelu": "GELU", "softplus": "Softplus",
                    "tanh": "tanh", "kwta": "k-WTA", "kaf": "KAF", "kaf_relu": "KAF_ReLU", "kaf_elu": "KAF_ELU",
                    "kaf_swish": "KAF_Swish", "kaf_free": "KAF_Free", "kaf_smooth": "KAF_Smooth"}


def activation_name(act):
    """"KAF_ELU" for "kaf_elu" (the thesis' spelling); other names unchanged."""
    return ACTIVATION_NAMES.get(act, act)


def get_activation(name, **kwargs):
    """A new activation layer for `name`.

    Args:
        name: one of `ACTIVATIONS`: ``relu, elu, swish, gelu, softplus, tanh``
            (fixed); ``kaf`` (random init), ``kaf_relu``, ``kaf_elu``,
            ``kaf_swish`` (ridge init to that activation), ``kaf_free``
            (random init, trainable dictionary and bandwidth), ``kaf_smooth``
            (random smooth init: trains in deep ResNets); ``kwta``.
        **kwargs: passed to the layer (e.g. `name=`, `dictionary_size=` for
            KAFs, `ratio=` for k-WTA).

    Returns:
        A fresh `keras.layers.Layer` (each call makes new weights).

    Raises:
        ValueError: for an unknown name; the message lists the valid names.
    """
    if name in FIXED_ACTIVATIONS:
        return keras.layers.Activation(name, **kwargs)
    if name in _TRAINABLE:
        return KAF(**{**_TRAINABLE[name], **kwargs})
    if name == "kwta":
        return KWTA(**kwargs)
    raise ValueError(
        f"Unknown activation {name!r}; valid names are: {', '.join(ACTIVATIONS)}.")


def get_direct_activation(name, **kwargs):
    """`get_activation(name)`, with KAFs as `DirectKAF` (the direct formula in the
    compute dtype: the benchmark's reference and the thesis checkpoints' arithmetic)."""
    layer = get_activation(name, **kwargs)
    return DirectKAF.from_config(layer.get_config()) if isinstance(layer, KAF) else layer


#: The layer classes that are activations: kaflib's (`KAF` and its subclass `DirectKAF`,
#: `KWTA`) and Keras' (`Activation`, which `get_activation` makes for the fixed ones, and
#: the `ReLU` and `ELU` layers other models use).
ACTIVATION_LAYER_TYPES = (KAF, KWTA, keras.layers.Activation, keras.layers.ReLU, keras.layers.ELU)


def is_activation_layer(layer):
    """Whether `layer` is an activation layer (an instance of `ACTIVATION_LAYER_TYPES`)."""
    return isinstance(layer, ACTIVATION_LAYER_TYPES)


def activation_layers(model):
    """The activation layers of a Keras model (`is_activation_layer`), in the order of `model.layers`."""
    return [layer for layer in model.layers if is_activation_layer(layer)]
