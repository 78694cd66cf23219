"""Kernel activation functions (KAFs, Scardapane et al. 2019).

A KAF is a per-channel, trainable, non-parametric activation: a linear
combination of D Gaussian kernels centred on a fixed dictionary,

    f(x) = sum_i alpha_i * exp(-gamma * (x - d_i)^2),

with d_1..d_D evenly spaced on [-boundary, boundary] and
gamma = 1 / (6 * step^2), step = d_2 - d_1 (the bandwidth rule of the thesis).
The original KAF code also offers the ReLU kernel max(0, x - d_i) and the
softplus kernel log(1 + exp(x - d_i)) in place of the Gaussian (`kernel=`).

The coefficients alpha take a Keras initializer, regularizer and constraint
(`alpha_initializer`, `alpha_regularizer`, `alpha_constraint`, as
`keras.layers.PReLU`'s). kaflib's initializers: `KAFRandomInitializer` (the
thesis' N(0, 0.05^2)), `KAFRidgeInitializer` (start as a fixed activation, by
kernel ridge regression) and `KAFSmoothInitializer` (random smooth functions);
`KAF(init="random" | "smooth" | "elu" | ...)` is short for them.
"""

import copy

import keras
import numpy as np
from keras import ops

from kaflib.checks import check, is_int, is_number
from kaflib.kaf_ops import KERNELS, kaf_free, kaf_grid, kaf_kernel, kaf_reference, kernel_values

__all__ = ["KAF", "DirectKAF", "KAFRandomInitializer", "KAFRidgeInitializer", "KAFSmoothInitializer", "RANDOM_STDDEVS",
           "SHORT_INITS", "kaf_initializer", "kaf_dictionary", "kaf_gamma", "ridge_coefficients", "smooth_init_matrix",
           "kaf_geometry"]


def kaf_dictionary(dictionary_size, boundary):
    """The fixed dictionary: `dictionary_size` points evenly spaced on
    `[-boundary, boundary]`, as a float64 NumPy array of shape `(D,)`."""
    return np.linspace(-boundary, boundary, dictionary_size)


def kaf_gamma(dictionary_size, boundary):
    """Kernel bandwidth `gamma = 1 / (6 * step^2)` for the evenly spaced dictionary."""
    step = 2.0 * boundary / (dictionary_size - 1)
    return 1.0 / (6.0 * step**2)


def kaf_geometry(layer):
    """The dictionary `(C, D)` and bandwidth `(C,)` of every channel of a built
    `KAF`, as float64 NumPy arrays (the trained ones for a trainable dictionary)."""
    channels = layer.alpha.shape[0]
    if layer.trainable_dictionary:
        return (np.asarray(ops.convert_to_numpy(layer.dictionary), np.float64),
                np.asarray(ops.convert_to_numpy(layer.gamma), np.float64))
    d = kaf_dictionary(layer.dictionary_size, layer.boundary)
    return np.tile(d, (channels, 1)), np.full(channels, kaf_gamma(layer.dictionary_size, layer.boundary))


def _activation_function(activation, name="activation", owner="ridge_coefficients", allowed=None):
    """The callable of `activation` (a Keras activation name or config, or a callable); ValueError
    naming the parameter otherwise."""
    if callable(activation):
        return activation
    fn = None
    if isinstance(activation, (str, dict)):
        try:
            fn = keras.activations.get(activation)
        except (ValueError, TypeError):
            fn = None
    check(name, activation, fn is not None,
          allowed or "a Keras activation name (e.g. 'relu', 'elu', 'swish', 'tanh') or a callable", owner=owner)
    return fn


def ridge_coefficients(activation, dictionary, gamma, regularization=1e-6, kernel="gaussian"):
    """Mixing coefficients that make a KAF approximate a fixed activation.

    Solves `alpha = (K + regularization * I)^-1 t` with `K_ij = k(d_i, d_j)`
    and `t_i = activation(d_i)`, in float64.

    Args:
        activation: a Keras activation name (``"relu"``, ``"elu"``,
            ``"swish"``, ``"tanh"``, ...) or a callable on arrays.
        dictionary: array of shape `(D,)`.
        gamma: the kernel bandwidth (a positive scalar; Gaussian kernel only).
        regularization: ridge term added to the diagonal of K.
        kernel: ``gaussian`` or ``softplus``. The ReLU kernel is rejected:
            its K is singular (k(d_1, d_j) = 0 for every j), so the fit
            cannot match the activation at the dictionary's left end.

    Raises:
        ValueError: for an unknown activation, for the ReLU kernel, and when the
            coefficients are so large that float32 cannot evaluate the fit (the
            softplus kernel's K is nearly singular: it fits swish, gelu, sigmoid,
            softplus but not relu, elu or tanh).

    Returns:
        float64 array `alpha` of shape `(D,)`.
    """
    if kernel == "relu":
        raise ValueError(
            "KAF ridge init is ill-posed for kernel='relu': K_ij = max(0, d_i - d_j) is singular "
            "(its first row is zero). Use init='random' with the ReLU kernel.")
    fn = _activation_function(activation)
    d = np.asarray(dictionary, dtype=np.float64)
    K = np.asarray(ops.convert_to_numpy(kernel_values(d[:, None] - d[None, :], kernel, gamma)), np.float64)
    t = np.asarray(ops.convert_to_numpy(fn(ops.convert_to_tensor(d.astype("float32")))), dtype=np.float64)
    alpha = np.linalg.solve(K + regularization * np.eye(len(d)), t)
    # float32 evaluates sum_i alpha_i k_i(x) with an error of about this much:
    rounding = np.abs(alpha).sum() * np.abs(K).max() * np.finfo(np.float32).eps
    if rounding > 1e-3 * max(1.0, np.abs(t).max()):
        raise ValueError(
            f"KAF ridge init to {activation!r} is ill-conditioned with kernel={kernel!r}: the fit needs "
            f"coefficients with sum |alpha| = {np.abs(alpha).sum():.3g}, too large for float32 "
            f"(rounding error ~{rounding:.2g}). Use init='random', or kernel='gaussian'.")
    return alpha


def smooth_init_matrix(dictionary, gamma, length_scale, regularization=1e-6, kernel="gaussian"):
    """`(D, D)` matrix A such that `z @ A.T`, `z ~ N(0, I)` of shape `(C, D)`, gives
    coefficients whose KAFs are independent random smooth functions.

    Each channel's KAF is the ridge fit (see `ridge_coefficients`) of a draw from
    a Gaussian process on the dictionary with unit variance and squared-exponential
    covariance `exp(-(d_i - d_j)^2 / (2 length_scale^2))`: random like the
    original KAF code's N(0, 0.8^2) coefficients, but without their wiggles, whose slopes
    (about 5x the amplitude) compound through deep networks and make their gradients
    explode (`results/deep-kaf`).
    """
    if not length_scale > 0:
        raise ValueError(f"KAF smooth_length must be > 0, got {length_scale!r}.")
    if kernel != "gaussian":
        raise ValueError(f"KAF init='smooth' needs kernel='gaussian' (the ridge fit is ill-posed or "
                         f"ill-conditioned for the other kernels), got kernel={kernel!r}.")
    d = np.asarray(dictionary, dtype=np.float64)
    D = len(d)
    covariance = np.exp(-(d[:, None] - d[None, :]) ** 2 / (2.0 * length_scale**2))
    cholesky = np.linalg.cholesky(covariance + 1e-6 * np.eye(D))
    K = np.asarray(ops.convert_to_numpy(kernel_values(d[:, None] - d[None, :], kernel, gamma)), np.float64)
    return np.linalg.solve(K + regularization * np.eye(D), cholesky)


def _tiled(row, shape, dtype=None):
    """`row` repeated to `shape`, as a tensor that owns its memory (PyTorch cannot assign
    into a broadcast view, so a layer initialised from one could not load weights)."""
    return ops.convert_to_tensor(np.array(np.broadcast_to(row, shape)), dtype=dtype or "float32")


#: Named standard deviations of the random init (`KAF(random_stddev=...)`,
#: `KAFRandomInitializer(stddev=...)`): ``"thesis"``, 0.05, is Keras' ``'random_normal'``, the
#: thesis author's KAF (`activationsf.py`, `Kaf.build`); ``"kafnets"``, 0.8, is the original KAF
#: paper's code (Scardapane et al. 2019).
RANDOM_STDDEVS = {"thesis": 0.05, "kafnets": 0.8}

#: The dictionary half-width and kernel a `KAFRidgeInitializer` or `KAFSmoothInitializer` that is
#: not attached to a `KAF` fits on (a KAF's defaults).
_DEFAULT_BOUNDARY, _DEFAULT_KERNEL = 3.0, "gaussian"


def random_stddev_value(value, name="KAF random_stddev"):
    """The float standard deviation of `value` (a number > 0 or a name in `RANDOM_STDDEVS`);
    ValueError naming the parameter (`name`) otherwise."""
    allowed = f"a number > 0 or one of {', '.join(f'{k!r} ({v})' for k, v in RANDOM_STDDEVS.items())}"
    if isinstance(value, str):
        check(name, value, value in RANDOM_STDDEVS, allowed, owner="")
        return RANDOM_STDDEVS[value]
    check(name, value, is_number(value) and value > 0, allowed, owner="")
    return float(value)


@keras.saving.register_keras_serializable(package="kaflib")
class KAFRandomInitializer(keras.initializers.RandomNormal):
    """KAF coefficients drawn from `N(0, stddev^2)`, independently (`KAF(init="random")`).

    Args:
        stddev: a number > 0, or a name of `RANDOM_STDDEVS`: ``"thesis"`` (0.05, the
            default: Keras' ``'random_normal'``, as in the thesis author's KAF) or
            ``"kafnets"`` (0.8, the original KAF paper's code).
        seed: as for `keras.initializers.RandomNormal`.
    """

    def __init__(self, stddev="thesis", seed=None):
        super().__init__(mean=0.0, stddev=random_stddev_value(stddev, name="KAFRandomInitializer stddev"),
                         seed=seed)

    def get_config(self):
        config = super().get_config()
        config.pop("mean")
        return config


class _KAFGeometryInitializer(keras.initializers.Initializer):
    """An initializer of KAF coefficients `(C, D)` that depends on the KAF's dictionary.

    `boundary` and `kernel` None mean the KAF's: a `KAF` given this initializer uses a copy
    bound to its own (`for_kaf`); called on its own, it fits on `[-3, 3]` with the Gaussian
    kernel (a KAF's defaults). `D` is the last dimension of the shape it is called with.
    """

    def __init__(self, boundary=None, kernel=None, regularization=1e-6):
        owner = type(self).__name__
        check("boundary", boundary, boundary is None or (is_number(boundary) and boundary > 0),
              "None (the KAF's) or a number > 0", owner=owner)
        check("kernel", kernel, kernel is None or kernel in KERNELS,
              f"None (the KAF's) or one of {', '.join(KERNELS)}", owner=owner)
        check("regularization", regularization, is_number(regularization) and regularization >= 0,
              "a number >= 0", owner=owner)
        self.boundary = None if boundary is None else float(boundary)
        self.kernel = kernel
        self.regularization = float(regularization)

    def for_kaf(self, dictionary_size, boundary, kernel):
        """A copy bound to a KAF's `boundary` and `kernel`, checked for that KAF (a ridge fit
        is computed now, so that a KAF that cannot start from it fails when it is made).

        Raises:
            ValueError: when this initializer names another boundary or kernel than the
                KAF's, or cannot initialise a KAF with that kernel.
        """
        owner = type(self).__name__
        for name, own, theirs in (("boundary", self.boundary, float(boundary)), ("kernel", self.kernel, kernel)):
            check(name, own, own is None or own == theirs, f"None or the KAF's {name}, {theirs!r}", owner=owner)
        bound = copy.copy(self)
        bound.boundary, bound.kernel = float(boundary), kernel
        bound._bound(dictionary_size)
        return bound

    def _bound(self, dictionary_size):
        """Hook: state and checks of a copy just bound to a KAF of `dictionary_size` kernels."""

    def _geometry(self, dictionary_size):
        """The dictionary `(D,)`, bandwidth and kernel this initializer fits on."""
        boundary = _DEFAULT_BOUNDARY if self.boundary is None else self.boundary
        return (kaf_dictionary(dictionary_size, boundary), kaf_gamma(dictionary_size, boundary),
                self.kernel or _DEFAULT_KERNEL)

    def get_config(self):
        return dict(boundary=self.boundary, kernel=self.kernel, regularization=self.regularization)


@keras.saving.register_keras_serializable(package="kaflib")
class KAFRidgeInitializer(_KAFGeometryInitializer):
    """KAF coefficients that make every channel start as `activation` (`KAF(init="elu")`).

    The kernel ridge regression of `ridge_coefficients`, on the KAF's dictionary, the same
    coefficients for every channel.

    Args:
        activation: a Keras activation name (``"relu"``, ``"elu"``, ``"swish"``, ...) or
            config, or a callable on tensors (a callable does not serialise).
        boundary, kernel: the KAF's dictionary half-width and kernel; None (the default)
            takes them from the KAF it initialises. The ReLU kernel cannot be fitted.
        regularization: the ridge term.
    """

    def __init__(self, activation, boundary=None, kernel=None, regularization=1e-6):
        super().__init__(boundary, kernel, regularization)
        self._fn = _activation_function(activation, owner="KAFRidgeInitializer")
        self.activation = activation
        self._coefficients = {}

    def coefficients(self, dictionary_size):
        """The float64 coefficients `(D,)` of one channel, for `D = dictionary_size`."""
        if dictionary_size not in self._coefficients:
            d, gamma, kernel = self._geometry(dictionary_size)
            self._coefficients[dictionary_size] = ridge_coefficients(
                self._fn if callable(self.activation) else self.activation, d, gamma, self.regularization, kernel)
        return self._coefficients[dictionary_size]

    def _bound(self, dictionary_size):
        self._coefficients = {}
        self.coefficients(dictionary_size)

    def __call__(self, shape, dtype=None):
        return _tiled(self.coefficients(shape[-1]), shape, dtype)

    def get_config(self):
        activation = self.activation if isinstance(self.activation, (str, dict)) else \
            keras.activations.serialize(self.activation)
        return dict(activation=activation, **super().get_config())


@keras.saving.register_keras_serializable(package="kaflib")
class KAFSmoothInitializer(_KAFGeometryInitializer):
    """KAF coefficients that make every channel an independent random smooth function
    (`KAF(init="smooth")`): the ridge fit of a Gaussian-process draw with length scale
    `length_scale` (see `smooth_init_matrix`). Keeps deep KAF ResNets trainable.

    Args:
        length_scale: of the Gaussian process, in input units (the dictionary spans
            `2 * boundary`); > 0.
        boundary, kernel: the KAF's dictionary half-width and kernel; None (the default)
            takes them from the KAF it initialises. Gaussian kernel only.
        regularization: the ridge term.
        seed: of the normal draws, as for `keras.initializers.RandomNormal`.
    """

    def __init__(self, length_scale=2.0, boundary=None, kernel=None, regularization=1e-6, seed=None):
        check("length_scale", length_scale, is_number(length_scale) and length_scale > 0, "a number > 0",
              owner="KAFSmoothInitializer")
        check("kernel", kernel, kernel in (None, "gaussian"),
              "None (the KAF's) or 'gaussian' (the ridge fit is ill-posed or ill-conditioned for the other kernels)",
              owner="KAFSmoothInitializer")
        super().__init__(boundary, kernel, regularization)
        self.length_scale = float(length_scale)
        self.seed = seed
        self._normal = keras.initializers.RandomNormal(stddev=1.0, seed=seed)

    def _bound(self, dictionary_size):
        if self.kernel != "gaussian":
            raise ValueError(f"KAF kernel={self.kernel!r} does not take the smooth init (init='smooth', "
                             f"KAFSmoothInitializer): it needs kernel='gaussian' (the ridge fit is ill-posed or "
                             f"ill-conditioned for the other kernels).")

    def __call__(self, shape, dtype=None):
        d, gamma, kernel = self._geometry(shape[-1])
        mixing = smooth_init_matrix(d, gamma, self.length_scale, self.regularization, kernel).T.astype("float32")
        return ops.cast(ops.matmul(self._normal(shape, "float32"), mixing), dtype or "float32")

    def get_config(self):
        return dict(length_scale=self.length_scale, **super().get_config(),
                    seed=keras.saving.serialize_keras_object(self.seed))


#: `KAF(init=...)` names besides the Keras activation names (which make a `KAFRidgeInitializer`).
SHORT_INITS = ("random", "smooth")

_INIT_ALLOWED = ("'random', 'smooth', a Keras activation name (e.g. 'relu', 'elu', 'swish', 'tanh': ridge init "
                 "to it) or a callable activation; pass initializers as alpha_initializer")
_INITIALIZER_ALLOWED = ("None (then init= decides), a Keras initializer, its name or config (e.g. 'random_normal', "
                        "KAFRidgeInitializer('elu'), KAFSmoothInitializer()) or a callable(shape, dtype)")


def _keras_object(name, value, get, allowed):
    """`get(value)` (keras.initializers.get, ...); ValueError naming the KAF parameter otherwise."""
    try:
        obj = get(value)
    except (ValueError, TypeError) as err:
        check(name, value, False, f"{allowed} ({err})", owner="KAF")
    check(name, value, obj is None or callable(obj), allowed, owner="KAF")
    return obj


def kaf_initializer(init="random", random_stddev=None, smooth_length=None):
    """The initializer a KAF short form stands for: ``"random"`` -> `KAFRandomInitializer(random_stddev)`,
    ``"smooth"`` -> `KAFSmoothInitializer(smooth_length)`, an activation -> `KAFRidgeInitializer(init)`.
    `random_stddev` (default ``"thesis"``) and `smooth_length` (default 2.0) apply to their init only."""
    if isinstance(init, str) and init in SHORT_INITS:
        if init == "random":
            return KAFRandomInitializer("thesis" if random_stddev is None else random_stddev)
        return KAFSmoothInitializer(2.0 if smooth_length is None else smooth_length)
    check("init", init, not isinstance(init, keras.initializers.Initializer), _INIT_ALLOWED, owner="KAF")
    _activation_function(init, name="init", owner="KAF", allowed=_INIT_ALLOWED)
    return KAFRidgeInitializer(init)


@keras.saving.register_keras_serializable(package="kaflib")
class KAF(keras.layers.Layer):
    """Kernel activation function, one per channel (Gaussian kernel by default).

    Every channel (the last axis) has its own mixing coefficients
    `alpha` of shape `(C, D)`; the dictionary and the bandwidth are shared
    and fixed unless `trainable_dictionary=True` (the thesis' KAF_Free), in
    which case each channel trains its own dictionary `(C, D)` and bandwidth
    `(C,)`, both initialised to the fixed values.

    The coefficients take an initializer, a regularizer and a constraint as
    Keras layers do (`alpha_initializer`, `alpha_regularizer`,
    `alpha_constraint`, like `keras.layers.PReLU`'s). `init`, `random_stddev`
    and `smooth_length` are short forms of kaflib's initializers.

    Args:
        dictionary_size: D, the number of kernels per channel (an integer >= 2).
        boundary: the dictionary spans `[-boundary, boundary]` (> 0).
        init: short form of `alpha_initializer` (used when that is None):
            ``"random"`` (the default) draws `alpha ~ N(0, random_stddev^2)`
            (the thesis', `KAFRandomInitializer`); ``"smooth"`` makes each
            channel a random smooth function (a Gaussian-process draw with
            length scale `smooth_length`, `KAFSmoothInitializer`), which keeps
            deep KAF ResNets trainable; a Keras activation name (``"relu"``,
            ``"elu"``, ``"swish"``, ...) sets `alpha` by ridge regression so
            that the KAF starts as that activation (`KAFRidgeInitializer`).
        random_stddev: standard deviation of the random init: a number, or
            ``"thesis"`` (0.05, the default: Keras' ``'random_normal'`` in the
            thesis author's KAF) or ``"kafnets"`` (0.8, the original KAF
            paper's code); see `RANDOM_STDDEVS`. The other inits ignore it.
        trainable_dictionary: also train the dictionary and the bandwidth,
            per channel (Gaussian kernel only).
        kernel: ``gaussian`` (the thesis'), ``relu`` (max(0, x - d_i)) or
            ``softplus`` (log(1 + exp(x - d_i))), the kernels of the original
            KAF code. The ReLU kernel takes no ridge or smooth init.
        smooth_length: length scale of the smooth init (default 2.0), in input
            units (the dictionary spans `2 * boundary`). The other inits ignore it.
        alpha_initializer: initializer of the coefficients `(C, D)`: a Keras
            initializer, its name or config, or kaflib's `KAFRandomInitializer`,
            `KAFRidgeInitializer`, `KAFSmoothInitializer` (whose dictionary is
            the layer's). Give it or the short forms, not both.
        alpha_regularizer: regularizer of the coefficients (a Keras
            regularizer, its name or config), e.g. `keras.regularizers.L2(1e-3)`.
        alpha_constraint: constraint on the coefficients (a Keras constraint,
            its name or config), applied after each optimizer step, e.g.
            `keras.constraints.MaxNorm(1.0, axis=1)` (per channel).

    Input shape:
        `(batch, C)` (dense) or `(batch, ..., C)`, e.g. `(batch, H, W, C)`
        (conv); any rank >= 2 with a known channel axis.

    Output shape:
        Same as the input.
    """

    def __init__(self, dictionary_size=20, boundary=3.0, init=None, random_stddev=None, trainable_dictionary=False,
                 kernel="gaussian", smooth_length=None, alpha_initializer=None, alpha_regularizer=None,
                 alpha_constraint=None, **kwargs):
        super().__init__(**kwargs)
        check("dictionary_size", dictionary_size, is_int(dictionary_size) and dictionary_size >= 2,
              "an integer >= 2", owner="KAF")
        check("boundary", boundary, is_number(boundary) and boundary > 0, "a number > 0", owner="KAF")
        check("kernel", kernel, isinstance(kernel, str) and kernel in KERNELS, f"one of {', '.join(KERNELS)}",
              owner="KAF")
        check("trainable_dictionary", trainable_dictionary, isinstance(trainable_dictionary, (bool, np.bool_)),
              "True or False", owner="KAF")
        if trainable_dictionary and kernel != "gaussian":
            raise ValueError(
                f"KAF trainable_dictionary=True needs kernel='gaussian' (it trains the bandwidth), "
                f"got kernel={kernel!r}.")
        self.kernel = kernel
        self.dictionary_size = int(dictionary_size)
        self.boundary = float(boundary)
        self.trainable_dictionary = bool(trainable_dictionary)
        self.alpha_initializer = self._alpha_initializer(alpha_initializer, init, random_stddev, smooth_length)
        self.alpha_regularizer = _keras_object(
            "alpha_regularizer", alpha_regularizer, keras.regularizers.get,
            "None or a Keras regularizer, its name or config (e.g. keras.regularizers.L2(1e-3), 'l2')")
        self.alpha_constraint = _keras_object(
            "alpha_constraint", alpha_constraint, keras.constraints.get,
            "None or a Keras constraint, its name or config (e.g. keras.constraints.MaxNorm(1.0, axis=1), 'non_neg')")
        self._fixed_dictionary = kaf_dictionary(self.dictionary_size, self.boundary).astype("float32")
        self._fixed_gamma = float(kaf_gamma(self.dictionary_size, self.boundary))

    def _alpha_initializer(self, alpha_initializer, init, random_stddev, smooth_length):
        """`alpha_initializer`, or the one the short forms stand for; bound to this KAF's dictionary."""
        if random_stddev is not None:
            random_stddev_value(random_stddev)
        if smooth_length is not None:
            check("smooth_length", smooth_length, is_number(smooth_length) and smooth_length > 0, "a number > 0",
                  owner="KAF")
        if alpha_initializer is None:
            initializer = kaf_initializer("random" if init is None else init, random_stddev, smooth_length)
        else:
            short = [f"{k}={v!r}" for k, v in
                     (("init", init), ("random_stddev", random_stddev), ("smooth_length", smooth_length))
                     if v is not None]
            if short:
                raise ValueError(f"KAF takes alpha_initializer or its short forms (init, random_stddev, "
                                 f"smooth_length), not both: got alpha_initializer={alpha_initializer!r} "
                                 f"and {', '.join(short)}.")
            initializer = _keras_object("alpha_initializer", alpha_initializer, keras.initializers.get,
                                        _INITIALIZER_ALLOWED)
        if isinstance(initializer, _KAFGeometryInitializer):
            initializer = initializer.for_kaf(self.dictionary_size, self.boundary, self.kernel)
        return initializer

    @property
    def init(self):
        """The short form of `alpha_initializer`: ``"random"``, ``"smooth"``, the activation
        of a ridge init, or None for another initializer."""
        if isinstance(self.alpha_initializer, KAFRandomInitializer):
            return "random"
        if isinstance(self.alpha_initializer, KAFSmoothInitializer):
            return "smooth"
        if isinstance(self.alpha_initializer, KAFRidgeInitializer):
            return self.alpha_initializer.activation
        return None

    @property
    def random_stddev(self):
        """The standard deviation of a `KAFRandomInitializer` (the random init), else None."""
        initializer = self.alpha_initializer
        return float(initializer.stddev) if isinstance(initializer, KAFRandomInitializer) else None

    @property
    def smooth_length(self):
        """The length scale of a `KAFSmoothInitializer` (the smooth init), else None."""
        initializer = self.alpha_initializer
        return initializer.length_scale if isinstance(initializer, KAFSmoothInitializer) else None

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(
                f"KAF expects inputs of rank >= 2, (batch, ..., channels); got shape {input_shape}.")
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                f"KAF needs a known channel (last) dimension; got shape {input_shape}.")
        D = self.dictionary_size
        self.alpha = self.add_weight(
            shape=(channels, D), initializer=self.alpha_initializer, regularizer=self.alpha_regularizer,
            constraint=self.alpha_constraint, name="alpha", autocast=False)
        if self.trainable_dictionary:
            d0, g0 = self._fixed_dictionary, self._fixed_gamma
            self.dictionary = self.add_weight(
                shape=(channels, D), name="dictionary",
                initializer=lambda shape, dtype=None: _tiled(d0, shape, dtype),
                autocast=False)
            self.gamma = self.add_weight(
                shape=(channels,), name="gamma",
                initializer=keras.initializers.Constant(g0), autocast=False)
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: channels})


    def call(self, inputs):
        # Gaussians need float32 at least: float16 would overflow in the
        # exponent and lose the small kernel values. The result goes back to
        # the compute dtype (bounded by sum |alpha|, so it cannot overflow).
        dtype = "float64" if keras.backend.standardize_dtype(inputs.dtype) == "float64" else "float32"
        x, alpha = ops.cast(inputs, dtype), ops.cast(self.alpha, dtype)
        if self.trainable_dictionary:
            y = kaf_free(x, alpha, ops.cast(self.dictionary, dtype), ops.cast(self.gamma, dtype))
        elif self.kernel != "gaussian":
            y = kaf_kernel(x, alpha, ops.cast(self._fixed_dictionary, dtype), self.kernel)
        else:
            y = kaf_grid(x, alpha, self.boundary)
        return ops.cast(y, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            dictionary_size=self.dictionary_size, boundary=self.boundary,
            trainable_dictionary=self.trainable_dictionary, kernel=self.kernel,
            alpha_initializer=keras.initializers.serialize(self.alpha_initializer),
            alpha_regularizer=keras.regularizers.serialize(self.alpha_regularizer),
            alpha_constraint=keras.constraints.serialize(self.alpha_constraint))
        return config


@keras.saving.register_keras_serializable(package="kaflib")
class DirectKAF(KAF):
    """A `KAF` evaluated with the direct formula (`kaf_ops.kaf_reference`) in
    the layer's compute dtype, coefficients included, as the thesis' TF 2.3
    code did.

    The reference implementation: the benchmark measures `KAF` against it,
    and the thesis importer uses it because the published models' outputs
    depend on their float16 KAF arithmetic (`KAF` computes in float32; up to
    10% of their predictions change). It keeps the `(..., C, D)` kernel
    values for the backward pass: use `KAF` for training.
    """

    def call(self, inputs):
        dtype = inputs.dtype
        if self.trainable_dictionary:
            dictionary, gamma = ops.cast(self.dictionary, dtype), ops.cast(self.gamma, dtype)
        else:
            dictionary, gamma = ops.cast(self._fixed_dictionary, dtype), self._fixed_gamma
        return kaf_reference(inputs, ops.cast(self.alpha, dtype), dictionary, gamma, self.kernel)
