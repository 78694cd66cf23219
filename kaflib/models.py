"""The thesis' CNNs, built with any activation of `kaflib.activations`.

Every builder takes the activation name, the number of classes and the input
shape, and returns a functional `keras.Model` mapping images
`(batch, H, W, channels)` in [0, 1] to LOGITS `(batch, num_classes)` (no
softmax: losses and attacks use `from_logits=True`). The output Dense layer
always computes in float32, so the models are safe under a mixed-precision
policy.

How the layers around the activations are initialised and regularised is a
named recipe (`LAYER_RECIPES`, the `recipe=` argument of every builder):
``"thesis"`` is the thesis author's, read from the Keras configs stored in the
published ResNet20 checkpoints (Conv2D GlorotUniform, BatchNormalization
momentum 0.99 and epsilon 1e-3, output Dense HeNormal with L2 5e-4; the VGG's
He-uniform kernels from the thesis text); ``"he-bn0.9"`` is what kaflib used
before it read those configs (He-normal convs, batch-norm momentum 0.9 as in
PyTorch and Wong et al.'s fast AT code, no L2 on the output layer).
"""

import contextlib
import functools
import warnings

import keras
from keras import layers

from kaflib.activations import KAF_ACTIVATIONS, get_activation
from kaflib.checks import is_int
from kaflib.kaf_ops import KERNELS

__all__ = ["LAYER_RECIPES", "MODELS", "RANDOM_INIT_KAFS", "build_model", "random_kaf_stddev", "dtype_policy", "light_cnn", "vgg_inspired", "resnet", "resnet20", "resnet56",
           "kaf_activation_factory"]


@contextlib.contextmanager
def dtype_policy(policy):
    """Build layers under a Keras dtype policy (e.g. ``"mixed_float16"``), then restore the old one."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _check_common(act, num_classes, input_shape):
    get_activation(act)  # raises ValueError listing the valid names
    if not is_int(num_classes) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}.")
    if len(input_shape) != 3 or any(not is_int(s) or s < 1 for s in input_shape):
        raise ValueError(
            f"input_shape must be (height, width, channels) of positive integers, got {input_shape!r}.")


#: Initialisers, regularisers and batch-norm settings of the layers around the
#: activations, by name. ``thesis``: the checkpoints' `saved_model.pb` Keras
#: configs (`tests/thesis/test_recipe.py` checks every field); ``he-bn0.9``:
#: kaflib before it read them. The VGG keeps He-uniform kernels and L2 0.0012 on
#: its dense layers in both (thesis ch. 7.1).
LAYER_RECIPES = {
    "thesis": dict(conv_initializer="glorot_uniform", bn_momentum=0.99, bn_epsilon=1e-3,
                   logits_initializer="he_normal", logits_l2=5e-4),
    "he-bn0.9": dict(conv_initializer="he_normal", bn_momentum=0.9, bn_epsilon=1e-3,
                     logits_initializer="glorot_uniform", logits_l2=0.0),
}


def _recipe(recipe):
    if recipe not in LAYER_RECIPES:
        raise ValueError(f"recipe={recipe!r} is invalid: must be one of {', '.join(LAYER_RECIPES)}.")
    return LAYER_RECIPES[recipe]


def _batch_norm(recipe="thesis"):
    r = _recipe(recipe)
    return lambda: layers.BatchNormalization(momentum=r["bn_momentum"], epsilon=r["bn_epsilon"])


def _logits(x, num_classes, **kwargs):
    return layers.Dense(num_classes, dtype="float32", name="logits", **kwargs)(x)


def light_cnn(act="relu", num_classes=10, input_shape=(32, 32, 3), dropout=0.25, activation=get_activation,
              recipe="thesis"):
    """The light CNN of thesis ch. 6.1 (trained normally, then attacked).

    Two blocks of [conv3x3 -> BN -> act] x 2, 2x2 max-pool and dropout, with
    32 then 64 filters; global average pooling; dense 128 -> act; logits.
    `activation(act)` makes the activation layers; `recipe` (see
    `LAYER_RECIPES`) sets the batch-norm momentum.
    """
    _check_common(act, num_classes, input_shape)
    batch_norm = _batch_norm(recipe)
    inputs = keras.Input(input_shape)
    x = inputs
    for filters in (32, 64):
        for _ in range(2):
            x = layers.Conv2D(filters, 3, padding="same")(x)
            x = batch_norm()(x)
            x = activation(act)(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(dropout)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = activation(act)(layers.Dense(128)(x))
    return keras.Model(inputs, _logits(x, num_classes), name=f"light_cnn_{act}")


def vgg_inspired(act="relu", num_classes=10, input_shape=(32, 32, 3), l2=0.0012, activation=get_activation,
                 recipe="thesis"):
    """The VGG-inspired CNN of thesis ch. 7.1.

    Three blocks of [conv3x3 -> BN -> act] x 2 with 32/64/128 filters, each
    followed by 2x2 max-pool and dropout 0.2/0.3/0.4; flatten; dense 128 ->
    act -> dropout 0.5; logits. He-uniform init; L2 `l2` on the dense layers.
    `activation(act)` makes the activation layers; `recipe` (see
    `LAYER_RECIPES`) sets the batch-norm momentum.
    """
    _check_common(act, num_classes, input_shape)
    batch_norm = _batch_norm(recipe)
    inputs = keras.Input(input_shape)
    x = inputs
    for filters, rate in ((32, 0.2), (64, 0.3), (128, 0.4)):
        for _ in range(2):
            x = layers.Conv2D(filters, 3, padding="same", kernel_initializer="he_uniform")(x)
            x = batch_norm()(x)
            x = activation(act)(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(rate)(x)
    x = layers.Flatten()(x)
    reg = keras.regularizers.L2(l2)
    x = layers.Dense(128, kernel_initializer="he_uniform", kernel_regularizer=reg)(x)
    x = layers.Dropout(0.5)(activation(act)(x))
    logits = _logits(x, num_classes, kernel_initializer="he_uniform", kernel_regularizer=reg)
    return keras.Model(inputs, logits, name=f"vgg_inspired_{act}")


def _conv_maker(initializer, l2=5e-4):
    return lambda filters, strides=1: layers.Conv2D(
        filters, 3, strides=strides, padding="same", kernel_initializer=initializer,
        kernel_regularizer=keras.regularizers.L2(l2))


def _residual_block(x, filters, strides, act, batch_norm, activation, conv):
    """Thesis block: conv(s)-BN-act-conv, shortcut (3x3 conv(s) if s > 1), add, BN, act."""
    y = conv(filters, strides)(x)
    y = activation(act)(batch_norm()(y))
    y = conv(filters)(y)
    shortcut = conv(filters, strides)(x) if strides > 1 else x
    y = layers.Add()([y, shortcut])
    return activation(act)(batch_norm()(y))


def resnet(depth=20, act="relu", num_classes=10, input_shape=(32, 32, 3), batch_norm=None,
           activation=get_activation, recipe="thesis"):
    """The thesis ResNet of ch. 7.2, depth 6n+2 (20 -> ResNet20, 56 -> ResNet56).

    conv3x3(16)-BN-act, then 3 stages of n residual blocks with 16, 32, 64
    filters (the first block of stages 2 and 3 strides 2 and has a 3x3 conv
    shortcut); global average pooling; logits. All convs have biases and L2
    5e-4 on the kernels. This is exactly the architecture of the published
    thesis checkpoints (`kaflib.thesis.checkpoints.load_checkpoint`). `recipe` (see
    `LAYER_RECIPES`) sets the initialisers, the batch-norm momentum and the
    output layer's L2; the default is the checkpoints' own.

    `batch_norm()` and `activation(act)` make the batch-normalization and
    activation layers (the importer passes layers that round like TF 2.3;
    default: the recipe's).

    Deeper than 20 with KAFs whose slope is unbounded at initialisation
    (``kaf``, ``kaf_free``: random; ``kaf_relu``) warns: gradients explode
    through the chain of KAFs (thesis ch. 7.2; `results/deep-kaf`), while
    ``kaf_elu`` and ``kaf_smooth`` train.
    """
    if not is_int(depth) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"ResNet depth must be 6n+2 with n >= 1 (20, 32, 44, 56, ...), got {depth!r}.")
    _check_common(act, num_classes, input_shape)
    if depth > 20 and act in _STEEP_INIT_KAFS:
        warnings.warn(f"resnet({depth}, act={act!r}): KAFs initialised with unbounded slope make gradients "
                      f"explode in ResNets deeper than 20 (ResNet56: first/last conv gradient ratio 1e4-1e11 at "
                      f"initialisation, chance accuracy); act='kaf_elu' or 'kaf_smooth' trains.", stacklevel=2)
    r = _recipe(recipe)
    batch_norm = batch_norm or _batch_norm(recipe)
    conv = _conv_maker(r["conv_initializer"])
    inputs = keras.Input(input_shape)
    x = activation(act)(batch_norm()(conv(16)(inputs)))
    for stage, filters in enumerate((16, 32, 64)):
        for block in range((depth - 2) // 6):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _residual_block(x, filters, strides, act, batch_norm, activation, conv)
    x = layers.GlobalAveragePooling2D()(x)
    logits_l2 = keras.regularizers.L2(r["logits_l2"]) if r["logits_l2"] else None
    logits = _logits(x, num_classes, kernel_initializer=r["logits_initializer"], kernel_regularizer=logits_l2)
    return keras.Model(inputs, logits, name=f"resnet{depth}_{act}")


def resnet20(act="relu", num_classes=10, input_shape=(32, 32, 3), activation=get_activation, recipe="thesis"):
    """ResNet20 of thesis ch. 7.2 (see `resnet`)."""
    return resnet(20, act, num_classes, input_shape, activation=activation, recipe=recipe)


def resnet56(act="relu", num_classes=10, input_shape=(32, 32, 3), activation=get_activation, recipe="thesis"):
    """ResNet56 of thesis ch. 7.2 (see `resnet`)."""
    return resnet(56, act, num_classes, input_shape, activation=activation, recipe=recipe)


#: KAF activations with random coefficients (`KAF(init="random")`): `random_stddev` applies.
RANDOM_INIT_KAFS = ("kaf", "kaf_free")

#: KAF activations whose initial slope is unbounded (see `resnet`).
_STEEP_INIT_KAFS = ("kaf", "kaf_free", "kaf_relu")

#: Model names accepted by `build_model`.
MODELS = {"light": light_cnn, "vgg": vgg_inspired, "resnet20": resnet20, "resnet56": resnet56}


def build_model(model, act="relu", num_classes=10, input_shape=(32, 32, 3), kaf_kernel="gaussian",
                recipe="thesis", kaf_random_stddev="thesis"):
    """Build a thesis model by name (`light`, `vgg`, `resnet20`, `resnet56`); returns logits.

    `kaf_kernel` (``gaussian``, ``relu``, ``softplus``) is the kernel of every
    KAF when `act` is a KAF (``kaf``, ``kaf_elu``, ...). `recipe` names the
    layers' initialisers and batch-norm settings (`LAYER_RECIPES`).
    `kaf_random_stddev` is the standard deviation of the randomly initialised
    KAFs (``kaf``, ``kaf_free``): a number, ``"thesis"`` (0.05) or ``"kafnets"``
    (0.8); see `kaflib.kaf.RANDOM_STDDEVS`.
    """
    if model not in MODELS:
        raise ValueError(f"Unknown model {model!r}; valid names are: {', '.join(MODELS)}.")
    _recipe(recipe)
    activation = kaf_activation_factory(act, kaf_kernel)
    if act in RANDOM_INIT_KAFS:
        activation = functools.partial(activation, random_stddev=kaf_random_stddev)
    return MODELS[model](act, num_classes, input_shape, activation=activation, recipe=recipe)


def random_kaf_stddev(act, stddev="thesis"):
    """The standard deviation (a float) of `act`'s random KAF coefficients, or None when
    `act` is not a randomly initialised KAF (`RANDOM_INIT_KAFS`). `stddev`: a number > 0
    or a name of `kaflib.kaf.RANDOM_STDDEVS` (``"thesis"`` 0.05, ``"kafnets"`` 0.8)."""
    from kaflib.kaf import random_stddev_value

    value = random_stddev_value(stddev, name="kaf_random_stddev")
    return value if act in RANDOM_INIT_KAFS else None


def kaf_activation_factory(act, kaf_kernel="gaussian"):
    """`get_activation`, with KAFs on `kaf_kernel`; raises ValueError naming
    `kaf_kernel` when it is unknown or does not fit `act`."""
    if kaf_kernel not in KERNELS:
        raise ValueError(f"Parameter kaf_kernel={kaf_kernel!r} is invalid: must be one of {', '.join(KERNELS)}.")
    if kaf_kernel == "gaussian":
        return get_activation
    if act not in KAF_ACTIVATIONS:
        raise ValueError(f"Parameter kaf_kernel={kaf_kernel!r} needs a KAF activation ({', '.join(KAF_ACTIVATIONS)}), "
                         f"got act={act!r}.")
    try:
        get_activation(act, kernel=kaf_kernel)
    except ValueError as err:
        raise ValueError(f"Parameter kaf_kernel={kaf_kernel!r} does not work with act={act!r}: {err}") from None
    return functools.partial(get_activation, kernel=kaf_kernel)
