"""The KAF as functions: the direct formula, and the fused kernels the `KAF` layer runs.

    f(x)[..., c] = sum_i alpha[c, i] * exp(-gamma * (x[..., c] - d_i)^2)

All functions take `x` of shape `(..., C)` (channels last) and return the same
shape. They use `keras.ops` only, so they run on every Keras backend.

- `kaf_reference`: the formula as written. It materialises a `(..., C, D)`
  tensor and autodiff keeps it for the backward pass: D times the memory of
  the activation, and D exponentials per element. The tests and the benchmark
  compare the fast kernels with it.
- `kaf_grid`: the layer's kernel for the fixed, evenly spaced dictionary. The
  D Gaussians of one input share one exponential (see below), so the forward
  pass is a Horner recurrence of D multiply-adds; the gradient is computed by
  a custom rule from `x` alone, so nothing of size `(..., C, D)` is stored.
- `kaf_kernel`: the ReLU and softplus kernels (`KERNELS`) on the fixed
  dictionary, fused, with a custom gradient that recomputes the kernel values.
- `kaf_free`: the kernel for a trainable (per-channel, arbitrary) dictionary
  and bandwidth (the thesis' KAF_Free): the direct formula, fused, with a
  custom gradient that recomputes the kernel values instead of storing them.

Both fast kernels are compiled with XLA (`tf.function(jit_compile=True)` on
TensorFlow, `jax.jit` on JAX) so the D terms fuse into one pass over memory;
the rest of a model is left to the backend as usual.

The factorisation behind `kaf_grid`. With dictionary points `d_i = j_i * step`,
`j_i = i - m`, `m = (D - 1) / 2`, and `s = gamma * step^2` (1/6 for the
thesis' bandwidth rule), write `v = x / step`, `a = |v|`, `c = min(a, m)`,
`r = a - c` (how far v lies outside the dictionary) and `y = exp(-2 s a)`.
Then, for `v >= 0`,

    exp(-gamma (x - d_i)^2) = exp(E) * exp(-s j_i^2) * y^(m - j_i),
    E = s c^2 - s r^2 + 2 s a (m - c)

(mirror for `v < 0`: `y^(m + j_i)`). Every factor lies in `[0, exp(s m^2)]`,
so nothing overflows for any `x`, and far from the dictionary `exp(E)`
underflows to 0 exactly as the direct formula does. `f(x) = exp(E) * P(y)`
with `P` a polynomial of degree D - 1 whose coefficients are
`alpha_i exp(-s j_i^2)` in the order the sign of `v` picks.
"""

import functools

import keras
import numpy as np
from keras import ops

__all__ = ["KERNELS", "kernel_values", "kaf_reference", "kaf_grid", "kaf_free", "kaf_kernel"]

#: Kernels k(x, d) a KAF can expand on, as in the original KAF code:
#: ``gaussian`` exp(-gamma (x - d)^2), ``relu`` max(0, x - d),
#: ``softplus`` log(1 + exp(x - d)). Only the Gaussian has a bandwidth.
KERNELS = ("gaussian", "relu", "softplus")


def kernel_values(u, kernel="gaussian", gamma=None):
    """k as a function of `u = x - d` (any shape; `gamma` broadcasts against `u`)."""
    if kernel == "gaussian":
        return ops.exp(-gamma * ops.square(u))
    if kernel == "relu":
        return ops.relu(u)
    if kernel == "softplus":
        return ops.softplus(u)
    raise ValueError(f"Unknown KAF kernel {kernel!r}; valid kernels are: {', '.join(KERNELS)}.")


def _kernel_slopes(u, kernel):
    """dk/du for the kernels without a bandwidth."""
    if kernel == "relu":
        return ops.cast(u > 0, u.dtype)
    return ops.sigmoid(u)


def kaf_reference(x, alpha, dictionary, gamma, kernel="gaussian"):
    """The direct formula: `x` `(..., C)`, `alpha` `(C, D)`, `dictionary` `(D,)`
    or `(C, D)`, `gamma` a scalar or `(C,)` (ignored unless `kernel` is
    ``gaussian``) -> `(..., C)`."""
    if kernel == "gaussian":
        gamma = ops.convert_to_tensor(gamma, x.dtype)
        if len(gamma.shape) == 1:
            gamma = ops.expand_dims(gamma, -1)
    values = kernel_values(ops.expand_dims(x, -1) - dictionary, kernel, gamma)  # (..., C, D)
    return ops.sum(values * alpha, axis=-1)


def _xla(fn, static_argnums=()):
    """Compile `fn` (keras.ops code) with the backend's XLA, if it has one."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)
    if backend == "jax":
        import jax

        return jax.jit(fn, static_argnums=static_argnums)
    return fn


# ---------------------------------------------------------------- kaf_grid


def _grid_terms(x, step, m, s):
    """Per-element factors of the grid factorisation (see the module docstring)."""
    ax = ops.abs(x)
    inside = ops.minimum(ax, m * step)
    c, r = inside / step, (ax - inside) / step  # r from |x| - boundary: exact far outside
    a = c + r
    y = ops.exp(-2.0 * s * a)
    scale = ops.exp(s * c * c - s * r * r + 2.0 * s * a * (m - c))
    return a, y, scale, x >= 0


def _horner_coefficients(alpha, m, s):
    """`alpha_i exp(-s j_i^2)`, `(C, D)`."""
    j = np.arange(alpha.shape[-1]) - m
    return alpha * ops.cast(np.exp(-s * j * j), alpha.dtype)


def _horner(y, positive, beta, offset=None):
    """`sum_t b_t y^t`, or `sum_t b_t (offset + t) y^t` given `offset` `(..., C)`, where
    `b_t` is `beta[:, D-1-t]` for `x >= 0` and `beta[:, t]` for `x < 0`."""
    D = beta.shape[-1]
    acc = ops.zeros_like(y)
    for t in reversed(range(D)):
        b = ops.where(positive, beta[:, D - 1 - t], beta[:, t])
        acc = acc * y + (b if offset is None else b * (offset + t))
    return acc


def _grid_forward(x, alpha, geometry):
    step, m, s = geometry
    _, y, scale, positive = _grid_terms(x, step, m, s)
    return scale * _horner(y, positive, _horner_coefficients(alpha, m, s))


def _grid_grad_x(x, alpha, geometry, upstream):
    """dL/dx `(..., C)` from the upstream gradient `(..., C)`."""
    step, m, s = geometry
    a, y, scale, positive = _grid_terms(x, step, m, s)
    # f'(x) = -2 s / step * sign(v) * scale * sum_t b_t (a - m + t) y^t
    slope = _horner(y, positive, _horner_coefficients(alpha, m, s), offset=a - m)
    return upstream * ((-2.0 * s / step) * ops.where(positive, scale, -scale) * slope)


def _grid_grad_alpha(x, alpha, geometry, upstream):
    """dL/dalpha `(C, D)`: dL/dalpha_i = exp(-s j_i^2) (M+[D-1-i] + M-[i]), with
    the moments M+-[t] = sum over elements with v >= 0 (v < 0) of g * scale * y^t."""
    step, m, s = geometry
    C, D = alpha.shape
    _, y, scale, positive = _grid_terms(x, step, m, s)
    g = ops.reshape(upstream * scale, (-1, C))
    y = ops.reshape(y, (-1, C))
    g_pos = ops.where(ops.reshape(positive, (-1, C)), g, ops.zeros_like(g))
    g_neg = g - g_pos
    pos_moments, neg_moments = [], []
    for _ in range(D):
        pos_moments.append(ops.sum(g_pos, axis=0))
        neg_moments.append(ops.sum(g_neg, axis=0))
        g_pos, g_neg = g_pos * y, g_neg * y
    moments = ops.flip(ops.stack(pos_moments, -1), -1) + ops.stack(neg_moments, -1)
    return _horner_coefficients(moments, m, s)


@functools.cache
def _grid_kernels(backend):
    return _xla(_grid_forward, (2,)), _xla(_grid_grad_x, (2,)), _xla(_grid_grad_alpha, (2,))


def kaf_grid(x, alpha, boundary):
    """KAF on the fixed dictionary `linspace(-boundary, boundary, D)` with
    `gamma = 1 / (6 step^2)`: `x` `(..., C)`, `alpha` `(C, D)` -> `(..., C)`.

    Equal to `kaf_reference` up to float rounding; its gradient (w.r.t. `x`
    and `alpha`) is computed from `x` alone, so the backward pass stores
    nothing of size `(..., C, D)`. Computes in the dtype of `x` (use float32
    or float64; the layer casts float16 inputs up). Not twice differentiable.
    """
    D = alpha.shape[-1]
    step = 2.0 * boundary / (D - 1)
    geometry = (step, (D - 1) / 2, 1.0 / 6.0)  # s = gamma * step^2
    forward, grad_x, grad_alpha = _grid_kernels(keras.backend.backend())

    @ops.custom_gradient
    def fn(x, alpha):
        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            # two kernels: an attack needs only dL/dx, and the unused one is pruned
            return grad_x(x, alpha, geometry, upstream), grad_alpha(x, alpha, geometry, upstream)

        return forward(x, alpha, geometry), grad

    return fn(x, alpha)


# ---------------------------------------------------------------- kaf_free


def _free_backward(x, alpha, dictionary, gamma, upstream):
    """Gradients w.r.t. x, alpha, dictionary `(C, D)` and gamma `(C,)`."""
    C = alpha.shape[0]
    gamma = ops.expand_dims(gamma, -1)                           # (C, 1)
    diff = ops.reshape(x, (-1, C, 1)) - dictionary               # (N, C, D): fused, never stored
    g_kernel = ops.reshape(upstream, (-1, C, 1)) * ops.exp(-gamma * diff * diff)
    g_weighted = g_kernel * alpha
    grad_x = -2.0 * gamma[:, 0] * ops.sum(g_weighted * diff, axis=-1)
    grad_alpha = ops.sum(g_kernel, axis=0)
    grad_dictionary = 2.0 * gamma * ops.sum(g_weighted * diff, axis=0)
    grad_gamma = -ops.sum(g_weighted * diff * diff, axis=(0, 2))
    return ops.reshape(grad_x, ops.shape(upstream)), grad_alpha, grad_dictionary, grad_gamma


@functools.cache
def _free_kernels(backend):
    return _xla(kaf_reference), _xla(_free_backward)


def kaf_free(x, alpha, dictionary, gamma):
    """KAF with a per-channel dictionary `(C, D)` and bandwidth `(C,)`:
    `x` `(..., C)`, `alpha` `(C, D)` -> `(..., C)`.

    The direct formula, fused; its gradient (w.r.t. all four arguments)
    recomputes the kernel values instead of storing them. Not twice
    differentiable.
    """
    forward, backward = _free_kernels(keras.backend.backend())

    @ops.custom_gradient
    def fn(x, alpha, dictionary, gamma):
        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            return backward(x, alpha, dictionary, gamma, upstream)

        return forward(x, alpha, dictionary, gamma), grad

    return fn(x, alpha, dictionary, gamma)


# ---------------------------------------------------------------- kaf_kernel


def _kernel_forward(x, alpha, dictionary, kernel):
    return kaf_reference(x, alpha, dictionary, None, kernel)


def _kernel_backward(x, alpha, dictionary, kernel, upstream):
    """Gradients w.r.t. x and alpha, recomputing the kernel values."""
    C = alpha.shape[0]
    u = ops.reshape(x, (-1, C, 1)) - dictionary                  # (N, C, D): fused, never stored
    g = ops.reshape(upstream, (-1, C, 1))
    grad_x = ops.sum(g * alpha * _kernel_slopes(u, kernel), axis=-1)
    grad_alpha = ops.sum(g * kernel_values(u, kernel), axis=0)
    return ops.reshape(grad_x, ops.shape(upstream)), grad_alpha


@functools.cache
def _kernel_kernels(backend):
    return _xla(_kernel_forward, (3,)), _xla(_kernel_backward, (3,))


def kaf_kernel(x, alpha, dictionary, kernel):
    """KAF with the ``relu`` or ``softplus`` kernel on a fixed dictionary `(D,)`:
    `x` `(..., C)`, `alpha` `(C, D)` -> `(..., C)`.

    The direct formula, fused; its gradient (w.r.t. `x` and `alpha`)
    recomputes the kernel values instead of storing them. Not twice
    differentiable.
    """
    if kernel not in KERNELS[1:]:
        raise ValueError(f"kaf_kernel takes kernel 'relu' or 'softplus', got {kernel!r} "
                         f"(the Gaussian kernel has kaf_grid and kaf_free).")
    forward, backward = _kernel_kernels(keras.backend.backend())

    @ops.custom_gradient
    def fn(x, alpha):
        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            return backward(x, alpha, dictionary, kernel, upstream)

        return forward(x, alpha, dictionary, kernel), grad

    return fn(x, alpha)
