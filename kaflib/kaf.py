"""Kernel activation functions (KAFs, Scardapane et al. 2019).

A KAF is a per-channel, trainable, non-parametric activation: a linear
combination of D Gaussian kernels centred on a fixed dictionary,

    f(x) = sum_i alpha_i * exp(-gamma * (x - d_i)^2),

with d_1..d_D evenly spaced on [-boundary, boundary] and
gamma = 1 / (6 * step^2), step = d_2 - d_1 (the bandwidth rule of the thesis).
The original KAF code also offers the ReLU kernel max(0, x - d_i) and the
softplus kernel log(1 + exp(x - d_i)) in place of the Gaussian (`kernel=`).
"""

import keras
import numpy as np
from keras import ops

from kaflib.checks import check, is_number
from kaflib.kaf_ops import KERNELS, kaf_free, kaf_grid, kaf_kernel, kaf_reference, kernel_values

__all__ = ["KAF", "DirectKAF", "RANDOM_STDDEVS", "kaf_dictionary", "kaf_gamma", "ridge_coefficients", "smooth_init_matrix",
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
        ValueError: for the ReLU kernel, and when the coefficients are so
            large that float32 cannot evaluate the fit (the softplus kernel's
            K is nearly singular: it fits swish, gelu, sigmoid, softplus but
            not relu, elu or tanh).

    Returns:
        float64 array `alpha` of shape `(D,)`.
    """
    if kernel == "relu":
        raise ValueError(
            "KAF ridge init is ill-posed for kernel='relu': K_ij = max(0, d_i - d_j) is singular "
            "(its first row is zero). Use init='random' with the ReLU kernel.")
    fn = activation
    if isinstance(activation, str):
        try:
            fn = keras.activations.get(activation)
        except ValueError as err:
            raise ValueError(
                f"KAF init={activation!r} is neither 'random', 'smooth' nor a Keras "
                f"activation name (e.g. 'relu', 'elu', 'swish', 'tanh')."
            ) from err
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
    (about 5x the amplitude) compound through deep networks (issue 7's diagnosis).
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


#: Named standard deviations of the random init (`KAF(random_stddev=...)`):
#: ``"thesis"``, 0.05, is Keras' ``'random_normal'``, the thesis author's KAF
#: (`activationsf.py`, `Kaf.build`); ``"kafnets"``, 0.8, is the original KAF
#: paper's code (Scardapane et al. 2019).
RANDOM_STDDEVS = {"thesis": 0.05, "kafnets": 0.8}


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
class KAF(keras.layers.Layer):
    """Kernel activation function, one per channel (Gaussian kernel by default).

    Every channel (the last axis) has its own mixing coefficients
    `alpha` of shape `(C, D)`; the dictionary and the bandwidth are shared
    and fixed unless `trainable_dictionary=True` (the thesis' KAF_Free), in
    which case each channel trains its own dictionary `(C, D)` and bandwidth
    `(C,)`, both initialised to the fixed values.

    Args:
        dictionary_size: D, the number of kernels per channel (at least 2).
        boundary: the dictionary spans `[-boundary, boundary]` (> 0).
        init: ``"random"`` draws `alpha ~ N(0, random_stddev^2)` (the
            thesis'); ``"smooth"`` makes each channel a random smooth function
            (a Gaussian-process draw with length scale `smooth_length`, see
            `smooth_init_matrix`), which keeps deep KAF ResNets trainable; a Keras
            activation name (``"relu"``, ``"elu"``, ``"swish"``, ...) sets
            `alpha` by ridge regression so that the KAF starts as that
            activation (see `ridge_coefficients`).
        random_stddev: standard deviation of the random init: a number, or
            ``"thesis"`` (0.05, the default: Keras' ``'random_normal'`` in the
            thesis author's KAF) or ``"kafnets"`` (0.8, the original KAF
            paper's code); see `RANDOM_STDDEVS`.
        smooth_length: length scale of the smooth init, in input units (the
            dictionary spans `2 * boundary`).
        trainable_dictionary: also train the dictionary and the bandwidth,
            per channel (Gaussian kernel only).
        kernel: ``gaussian`` (the thesis'), ``relu`` (max(0, x - d_i)) or
            ``softplus`` (log(1 + exp(x - d_i))), the kernels of the original
            KAF code. The ReLU kernel takes only ``init="random"``.

    Input shape:
        `(batch, C)` (dense) or `(batch, ..., C)`, e.g. `(batch, H, W, C)`
        (conv); any rank >= 2 with a known channel axis.

    Output shape:
        Same as the input.
    """

    def __init__(self, dictionary_size=20, boundary=3.0, init="random",
                 random_stddev="thesis", trainable_dictionary=False, kernel="gaussian", smooth_length=2.0,
                 **kwargs):
        super().__init__(**kwargs)
        if not isinstance(dictionary_size, (int, np.integer)) or dictionary_size < 2:
            raise ValueError(
                f"KAF dictionary_size must be an integer >= 2, got {dictionary_size!r}.")
        if not boundary > 0:
            raise ValueError(f"KAF boundary must be > 0, got {boundary!r}.")
        random_stddev = random_stddev_value(random_stddev)
        if kernel not in KERNELS:
            raise ValueError(f"KAF kernel must be one of {', '.join(KERNELS)}, got {kernel!r}.")
        if trainable_dictionary and kernel != "gaussian":
            raise ValueError(
                f"KAF trainable_dictionary=True needs kernel='gaussian' (it trains the bandwidth), "
                f"got kernel={kernel!r}.")
        self.kernel = kernel
        self.dictionary_size = int(dictionary_size)
        self.boundary = float(boundary)
        self.init = init
        self.random_stddev = float(random_stddev)
        self.smooth_length = float(smooth_length)
        self.trainable_dictionary = bool(trainable_dictionary)
        d = kaf_dictionary(self.dictionary_size, self.boundary)
        g = kaf_gamma(self.dictionary_size, self.boundary)
        if init == "random":
            self._alpha_init = keras.initializers.RandomNormal(stddev=self.random_stddev)
        elif init == "smooth":
            mixing = smooth_init_matrix(d, g, self.smooth_length, kernel=kernel).T.astype("float32")
            normal = keras.initializers.RandomNormal(stddev=1.0)
            self._alpha_init = lambda shape, dtype=None: ops.cast(
                ops.matmul(normal(shape, "float32"), mixing), dtype)
        else:
            ridge = ridge_coefficients(init, d, g, kernel=kernel)
            self._alpha_init = lambda shape, dtype=None: _tiled(ridge, shape, dtype)
        self._fixed_dictionary = d.astype("float32")
        self._fixed_gamma = float(g)

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
            shape=(channels, D), initializer=self._alpha_init, name="alpha", autocast=False)
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
            dictionary_size=self.dictionary_size, boundary=self.boundary, init=self.init,
            random_stddev=self.random_stddev, trainable_dictionary=self.trainable_dictionary,
            kernel=self.kernel, smooth_length=self.smooth_length)
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
