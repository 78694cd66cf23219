"""The thesis' CNNs, built with any activation of `kaflib.activations`.

Every builder takes the activation name, the number of classes and the input
shape, and returns a functional `keras.Model` mapping images
`(batch, H, W, channels)` in [0, 1] to LOGITS `(batch, num_classes)` (no
softmax: losses and attacks use `from_logits=True`). The output Dense layer
always computes in float32, so the models are safe under a mixed-precision
policy. Batch normalization uses momentum 0.9 (PyTorch's default, as in Wong
et al.'s fast AT code) rather than Keras' 0.99: with few steps per epoch and a
one-cycle schedule, 0.99 lets the moving statistics lag the weights and the
test accuracy swing from epoch to epoch.
"""

import contextlib
import functools
import warnings

import keras
from keras import layers

from kaflib.activations import KAF_ACTIVATIONS, get_activation
from kaflib.kaf_ops import KERNELS

__all__ = ["MODELS", "build_model", "dtype_policy", "light_cnn", "vgg_inspired", "resnet", "resnet20", "resnet56",
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
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}.")
    if len(input_shape) != 3 or any(not isinstance(s, int) or s < 1 for s in input_shape):
        raise ValueError(
            f"input_shape must be (height, width, channels) of positive integers, got {input_shape!r}.")


BN_MOMENTUM = 0.9


def _batch_norm():
    return layers.BatchNormalization(momentum=BN_MOMENTUM)


def _logits(x, num_classes, **kwargs):
    return layers.Dense(num_classes, dtype="float32", name="logits", **kwargs)(x)


def light_cnn(act="relu", num_classes=10, input_shape=(32, 32, 3), dropout=0.25, activation=get_activation):
    """The light CNN of thesis ch. 6.1 (trained normally, then attacked).

    Two blocks of [conv3x3 -> BN -> act] x 2, 2x2 max-pool and dropout, with
    32 then 64 filters; global average pooling; dense 128 -> act; logits.
    `activation(act)` makes the activation layers.
    """
    _check_common(act, num_classes, input_shape)
    inputs = keras.Input(input_shape)
    x = inputs
    for filters in (32, 64):
        for _ in range(2):
            x = layers.Conv2D(filters, 3, padding="same")(x)
            x = _batch_norm()(x)
            x = activation(act)(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(dropout)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = activation(act)(layers.Dense(128)(x))
    return keras.Model(inputs, _logits(x, num_classes), name=f"light_cnn_{act}")


def vgg_inspired(act="relu", num_classes=10, input_shape=(32, 32, 3), l2=0.0012, activation=get_activation):
    """The VGG-inspired CNN of thesis ch. 7.1.

    Three blocks of [conv3x3 -> BN -> act] x 2 with 32/64/128 filters, each
    followed by 2x2 max-pool and dropout 0.2/0.3/0.4; flatten; dense 128 ->
    act -> dropout 0.5; logits. He-uniform init; L2 `l2` on the dense layers.
    `activation(act)` makes the activation layers.
    """
    _check_common(act, num_classes, input_shape)
    inputs = keras.Input(input_shape)
    x = inputs
    for filters, rate in ((32, 0.2), (64, 0.3), (128, 0.4)):
        for _ in range(2):
            x = layers.Conv2D(filters, 3, padding="same", kernel_initializer="he_uniform")(x)
            x = _batch_norm()(x)
            x = activation(act)(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(rate)(x)
    x = layers.Flatten()(x)
    reg = keras.regularizers.L2(l2)
    x = layers.Dense(128, kernel_initializer="he_uniform", kernel_regularizer=reg)(x)
    x = layers.Dropout(0.5)(activation(act)(x))
    logits = _logits(x, num_classes, kernel_initializer="he_uniform", kernel_regularizer=reg)
    return keras.Model(inputs, logits, name=f"vgg_inspired_{act}")


def _conv(filters, strides=1, l2=5e-4):
    return layers.Conv2D(filters, 3, strides=strides, padding="same",
                         kernel_initializer="he_normal",
                         kernel_regularizer=keras.regularizers.L2(l2))


def _residual_block(x, filters, strides, act, batch_norm, activation):
    """Thesis block: conv(s)-BN-act-conv, shortcut (3x3 conv(s) if s > 1), add, BN, act."""
    y = _conv(filters, strides)(x)
    y = activation(act)(batch_norm()(y))
    y = _conv(filters)(y)
    shortcut = _conv(filters, strides)(x) if strides > 1 else x
    y = layers.Add()([y, shortcut])
    return activation(act)(batch_norm()(y))


def resnet(depth=20, act="relu", num_classes=10, input_shape=(32, 32, 3), batch_norm=_batch_norm,
           activation=get_activation):
    """The thesis ResNet of ch. 7.2, depth 6n+2 (20 -> ResNet20, 56 -> ResNet56).

    conv3x3(16)-BN-act, then 3 stages of n residual blocks with 16, 32, 64
    filters (the first block of stages 2 and 3 strides 2 and has a 3x3 conv
    shortcut); global average pooling; logits. All convs have biases, He-normal
    init and L2 5e-4 on the kernels. This is exactly the architecture of the
    published thesis checkpoints (`kaflib.thesis.load_checkpoint`).

    `batch_norm()` and `activation(act)` make the batch-normalization and
    activation layers (the importer passes layers that round like TF 2.3).

    Deeper than 20 with KAFs whose slope is unbounded at initialisation
    (``kaf``, ``kaf_free``: random; ``kaf_relu``) warns: gradients explode
    through the chain of KAFs (thesis ch. 7.2; `results/deep-kaf`), while
    ``kaf_elu`` and ``kaf_smooth`` train.
    """
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"ResNet depth must be 6n+2 with n >= 1 (20, 32, 44, 56, ...), got {depth!r}.")
    _check_common(act, num_classes, input_shape)
    if depth > 20 and act in _STEEP_INIT_KAFS:
        warnings.warn(f"resnet({depth}, act={act!r}): KAFs initialised with unbounded slope make gradients "
                      f"explode in ResNets deeper than 20 (ResNet56: first/last conv gradient ratio 1e4-1e11 at "
                      f"initialisation, chance accuracy); act='kaf_elu' or 'kaf_smooth' trains.", stacklevel=2)
    inputs = keras.Input(input_shape)
    x = activation(act)(batch_norm()(_conv(16)(inputs)))
    for stage, filters in enumerate((16, 32, 64)):
        for block in range((depth - 2) // 6):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _residual_block(x, filters, strides, act, batch_norm, activation)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, _logits(x, num_classes), name=f"resnet{depth}_{act}")


def resnet20(act="relu", num_classes=10, input_shape=(32, 32, 3), activation=get_activation):
    """ResNet20 of thesis ch. 7.2 (see `resnet`)."""
    return resnet(20, act, num_classes, input_shape, activation=activation)


def resnet56(act="relu", num_classes=10, input_shape=(32, 32, 3), activation=get_activation):
    """ResNet56 of thesis ch. 7.2 (see `resnet`)."""
    return resnet(56, act, num_classes, input_shape, activation=activation)


#: KAF activations whose initial slope is unbounded (see `resnet`).
_STEEP_INIT_KAFS = ("kaf", "kaf_free", "kaf_relu")

#: Model names accepted by `build_model`.
MODELS = {"light": light_cnn, "vgg": vgg_inspired, "resnet20": resnet20, "resnet56": resnet56}


def build_model(model, act="relu", num_classes=10, input_shape=(32, 32, 3), kaf_kernel="gaussian"):
    """Build a thesis model by name (`light`, `vgg`, `resnet20`, `resnet56`); returns logits.

    `kaf_kernel` (``gaussian``, ``relu``, ``softplus``) is the kernel of every
    KAF when `act` is a KAF (``kaf``, ``kaf_elu``, ...).
    """
    if model not in MODELS:
        raise ValueError(f"Unknown model {model!r}; valid names are: {', '.join(MODELS)}.")
    return MODELS[model](act, num_classes, input_shape, activation=kaf_activation_factory(act, kaf_kernel))


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
