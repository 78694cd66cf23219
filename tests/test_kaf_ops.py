"""The fused KAF kernels against the direct formula (float64 NumPy and autodiff)."""

import numpy as np
import pytest
import tensorflow as tf

from kaflib.kaf import KAF, kaf_dictionary, kaf_gamma
from kaflib.kaf_ops import kaf_free, kaf_grid, kaf_kernel, kaf_reference

FAR = [-1e30, -1e3, -40.0, -10.0, -4.0, -3.2, 3.2, 4.0, 10.0, 40.0, 1e3, 1e30]


def inputs(channels, seed=0):
    """(N, C) float32: a dense sweep across and beyond the dictionary, random values, far values."""
    rng = np.random.default_rng(seed)
    sweep = np.linspace(-12, 12, 2401)
    x = np.concatenate([sweep, rng.normal(scale=3, size=500), FAR])
    return np.stack([np.roll(x, 7 * c) for c in range(channels)], axis=1).astype("float32")


def terms64(x, alpha, dictionary, gamma):
    """alpha_i * k_i(x) in float64: (N, C, D)."""
    gamma = np.broadcast_to(np.asarray(gamma, np.float64), (alpha.shape[0],))[:, None]
    diff = np.asarray(x, np.float64)[..., None] - np.asarray(dictionary, np.float64)
    return alpha.astype(np.float64) * np.exp(-gamma * diff**2), diff, gamma


def assert_close(actual, expected, magnitude, rtol, floor=1e-37):
    """|actual - expected| <= rtol * magnitude + floor (float32 underflows below 1.2e-38;
    gradients multiply underflowed kernel values by factors up to ~1e3, hence their 1e-34)."""
    error = np.abs(np.asarray(actual, np.float64) - expected)
    bound = rtol * magnitude + floor
    worst = np.unravel_index(np.argmax(error / bound), error.shape)
    assert np.all(error <= bound), f"at {worst}: {actual[worst]} vs {expected[worst]} (bound {bound[worst]:.2e})"


def assert_output_close(y, exact, magnitude):
    """1e-5 relative to sum |alpha_i k_i(x)| (the scale float32 summation is exact to) where
    that sum is >= 1e-18; below, where the direct float32 formula itself is only good to
    about 1e-5 (its exponent exceeds 40), 3e-5, down to float32's underflow."""
    assert_close(np.where(magnitude >= 1e-18, y, exact), exact, magnitude, rtol=1e-5)
    assert_close(y, exact, magnitude, rtol=3e-5)


@pytest.mark.parametrize("D, boundary", [(20, 3.0), (7, 2.0), (4, 1.0)])
def test_grid_forward_matches_formula_in_and_far_outside_range(D, boundary):
    rng = np.random.default_rng(D)
    alpha = rng.normal(scale=0.8, size=(3, D)).astype("float32")
    x = inputs(3)
    y = np.asarray(kaf_grid(tf.constant(x), tf.constant(alpha), boundary))
    dictionary, gamma = kaf_dictionary(D, boundary), kaf_gamma(D, boundary)
    terms, _, _ = terms64(x, alpha, dictionary, gamma)
    exact, magnitude = terms.sum(-1), np.abs(terms).sum(-1)
    assert_output_close(y, exact, magnitude)
    assert np.all(y[np.abs(x) >= 1e3] == 0)


def test_grid_gradients_match_formula():
    D, boundary = 20, 3.0
    rng = np.random.default_rng(1)
    alpha = rng.normal(scale=0.8, size=(3, D)).astype("float32")
    x = inputs(3)
    upstream = rng.normal(size=x.shape).astype("float32")
    xt, at = tf.constant(x), tf.Variable(alpha)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(kaf_grid(xt, at, boundary) * upstream)
    grad_x, grad_alpha = tape.gradient(loss, [xt, at])
    terms, diff, gamma = terms64(x, alpha, kaf_dictionary(D, boundary), kaf_gamma(D, boundary))
    slope_terms = -2 * gamma * diff * terms
    g = upstream.astype(np.float64)[..., None]
    assert_close(grad_x.numpy(), (g[..., 0] * slope_terms.sum(-1)),
                 np.abs(g[..., 0]) * np.abs(slope_terms).sum(-1), rtol=1e-4, floor=1e-34)
    kernel = np.exp(-gamma * diff**2)
    assert_close(grad_alpha.numpy(), (g * kernel).sum(0), np.abs(g * kernel).sum(0), rtol=1e-4, floor=1e-34)


KERNELS64 = {  # k(u) and dk/du, u = x - d, float64
    "relu": (lambda u: np.maximum(u, 0.0), lambda u: (u > 0).astype(np.float64)),
    "softplus": (lambda u: np.logaddexp(0.0, u), lambda u: np.exp(-np.logaddexp(0.0, -u))),
}


@pytest.mark.parametrize("kernel", sorted(KERNELS64))
def test_relu_and_softplus_kernels_match_formula_with_gradients(kernel):
    D, boundary = 20, 3.0
    rng = np.random.default_rng(3)
    alpha = rng.normal(scale=0.8, size=(3, D)).astype("float32")
    dictionary = kaf_dictionary(D, boundary).astype("float32")
    x = inputs(3)
    upstream = rng.normal(size=x.shape).astype("float32")
    xt, at = tf.constant(x), tf.Variable(alpha)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = kaf_kernel(xt, at, dictionary, kernel)
        loss = tf.reduce_sum(y * upstream)
    grad_x, grad_alpha = tape.gradient(loss, [xt, at])
    k, slope = KERNELS64[kernel]
    u = x.astype(np.float64)[..., None] - dictionary.astype(np.float64)
    terms = alpha * k(u)
    assert_output_close(y.numpy(), terms.sum(-1), np.abs(terms).sum(-1))
    g = upstream.astype(np.float64)[..., None]
    slope_terms = g * alpha * slope(u)
    assert_close(grad_x.numpy(), slope_terms.sum(-1), np.abs(slope_terms).sum(-1), rtol=1e-4, floor=1e-34)
    assert_close(grad_alpha.numpy(), (g * k(u)).sum(0), np.abs(g * k(u)).sum(0), rtol=1e-4, floor=1e-34)
    direct = kaf_reference(xt, at, dictionary, None, kernel)
    assert_output_close(direct.numpy(), terms.sum(-1), np.abs(terms).sum(-1))


def test_kaf_kernel_rejects_the_gaussian():
    with pytest.raises(ValueError, match="kernel 'relu' or 'softplus'"):
        kaf_kernel(tf.zeros((2, 3)), tf.zeros((3, 4)), np.zeros(4, "float32"), "gaussian")


def test_free_forward_and_gradients_match_formula():
    D = 20
    rng = np.random.default_rng(2)
    alpha = rng.normal(scale=0.8, size=(3, D)).astype("float32")
    dictionary = (kaf_dictionary(D, 3.0) + rng.normal(scale=0.1, size=(3, D))).astype("float32")
    gamma = np.array([0.5, 2.0, 4.0], "float32")
    x = inputs(3)
    upstream = rng.normal(size=x.shape).astype("float32")
    variables = [tf.constant(x), tf.Variable(alpha), tf.Variable(dictionary), tf.Variable(gamma)]
    with tf.GradientTape() as tape:
        tape.watch(variables[0])
        y = kaf_free(*variables)
        loss = tf.reduce_sum(y * upstream)
    grads = [g.numpy() for g in tape.gradient(loss, variables)]
    terms, diff, gamma64 = terms64(x, alpha, dictionary, gamma)
    assert_output_close(y.numpy(), terms.sum(-1), np.abs(terms).sum(-1))
    g = upstream.astype(np.float64)[..., None]
    kernel = np.exp(-gamma64 * diff**2)
    expected = [  # (value, magnitude) for x, alpha, dictionary, gamma
        ((g * -2 * gamma64 * diff * terms).sum(-1), np.abs(g * 2 * gamma64 * diff * terms).sum(-1)),
        ((g * kernel).sum(0), np.abs(g * kernel).sum(0)),
        ((g * 2 * gamma64 * diff * terms).sum(0), np.abs(g * 2 * gamma64 * diff * terms).sum(0)),
        (-(g * diff**2 * terms).sum((0, 2)), np.abs(g * diff**2 * terms).sum((0, 2))),
    ]
    for grad, (value, magnitude) in zip(grads, expected):
        assert_close(grad, value, magnitude, rtol=1e-4, floor=1e-34)


@pytest.mark.parametrize("init", ["elu", "relu"])
def test_layer_on_conv_inputs_beats_the_float32_direct_formula(init):
    # ridge coefficients reach |alpha| ~ 70 with alternating signs: heavy cancellation
    layer = KAF(init=init)
    x = np.random.default_rng(3).normal(scale=2, size=(8, 5, 5, 4)).astype("float32")
    y = np.asarray(layer(x))
    dictionary, gamma = kaf_dictionary(20, 3.0), kaf_gamma(20, 3.0)
    alpha = np.asarray(layer.alpha.value)
    direct = np.asarray(kaf_reference(tf.constant(x), tf.constant(alpha), dictionary.astype("float32"), gamma))
    terms, _, _ = terms64(x, alpha, dictionary, gamma)
    assert_close(y, terms.sum(-1), np.abs(terms).sum(-1), rtol=1e-5)
    assert np.abs(y - terms.sum(-1)).max() <= np.abs(direct - terms.sum(-1)).max()


def test_mixed_precision_matches_float32_within_half_precision():
    x = np.random.default_rng(4).normal(scale=3, size=(64, 8)).astype("float32")
    x[0] = [-6e4, -300.0, -4.0, -1.0, 1.0, 4.0, 300.0, 6e4]  # float16's range ends at 65504
    exact = KAF(init="swish")
    half = KAF(init="swish", dtype="mixed_float16")
    exact.build(x.shape), half.build(x.shape)
    half.alpha.assign(exact.alpha.value)
    y16 = np.asarray(half(x)).astype(np.float32)
    assert np.all(np.isfinite(y16))
    x16 = x.astype(np.float16).astype(np.float32)  # the layer sees float16-rounded inputs
    np.testing.assert_allclose(y16, np.asarray(exact(x16)), rtol=2e-3, atol=2e-3)
    with tf.GradientTape() as tape:
        xv = tf.constant(x16, tf.float16)
        tape.watch(xv)
        loss = tf.reduce_sum(tf.cast(half(xv), tf.float32))
    grad = tape.gradient(loss, [xv, half.alpha])
    assert grad[0].dtype == tf.float16 and np.all(np.isfinite(grad[0].numpy()))
    assert grad[1].dtype == tf.float32 and np.all(np.isfinite(grad[1].numpy()))
