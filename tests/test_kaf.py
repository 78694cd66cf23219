import keras
import numpy as np
import pytest
from keras import ops

from kaflib.kaf import KAF, kaf_dictionary, kaf_gamma


def direct_kaf(x, alpha, d, gamma):
    """NumPy float64 evaluation of f(x) = sum_i alpha_i exp(-gamma (x - d_i)^2), per channel."""
    x = np.asarray(x, np.float64)[..., None]
    return np.sum(alpha * np.exp(-np.asarray(gamma)[..., None] * (x - d) ** 2), axis=-1)


def numpy(t):
    return ops.convert_to_numpy(t)


@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 4, 6)])
def test_output_matches_formula_in_and_far_outside_range(shape):
    rng = np.random.default_rng(0)
    x = rng.normal(scale=2.0, size=shape)
    x.flat[:6] = [-1e3, -40.0, -3.5, 3.5, 40.0, 1e3]  # far outside [-3, 3]
    layer = KAF()
    y = numpy(layer(x.astype("float32")))
    alpha = numpy(layer.alpha).astype(np.float64)
    expected = direct_kaf(x.astype("float32"), alpha, kaf_dictionary(20, 3.0), kaf_gamma(20, 3.0))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    assert layer.alpha.shape == (shape[-1], 20)


def test_gamma_rule_and_dictionary():
    d = kaf_dictionary(20, 3.0)
    assert d[0] == -3.0 and d[-1] == 3.0 and len(d) == 20
    step = d[1] - d[0]
    assert kaf_gamma(20, 3.0) == pytest.approx(1 / (6 * step**2))


@pytest.mark.parametrize("name", ["relu", "elu", "swish"])
def test_ridge_init_reproduces_activation(name):
    layer = KAF(init=name)
    x = np.linspace(-2.5, 2.5, 501, dtype="float32")[:, None].repeat(3, axis=1)
    y = numpy(layer(x))
    target = numpy(keras.activations.get(name)(x))
    error = np.abs(y - target)[:, 0]
    away_from_kink = np.abs(x[:, 0]) >= 0.05
    assert error[away_from_kink].max() < 0.05
    # ReLU's kink sits between two dictionary points (+-0.158): the smooth
    # interpolant misses relu(0) = 0 by 0.0504, for any ridge term <= 1e-4.
    assert error.max() < 0.051


def test_random_init_is_the_thesis_normal_and_the_kafnets_one_stays_available_by_name():
    layer = KAF(init="random")
    layer.build((None, 64))
    alpha = numpy(layer.alpha)
    assert alpha.std() == pytest.approx(0.05, rel=0.1)  # Keras' 'random_normal', as in the author's Kaf.build
    assert not np.allclose(alpha[0], alpha[1])
    wide = KAF(init="random", random_stddev="kafnets")
    wide.build((None, 64))
    assert numpy(wide.alpha).std() == pytest.approx(0.8, rel=0.1)
    assert wide.get_config()["random_stddev"] == 0.8
    assert KAF.from_config(wide.get_config()).random_stddev == 0.8
    for bad in ("wide", 0, -0.1, True):
        with pytest.raises(ValueError, match=f"random_stddev={bad!r} is invalid"):
            KAF(random_stddev=bad)


def finite_difference_check(layer, x, variables, eps=1e-6):
    """Compare tf autodiff of sum(w * layer(x)) with central differences, float64."""
    import tensorflow as tf

    w = np.random.default_rng(1).normal(size=x.shape)
    x = tf.Variable(x)
    layer(x)  # build
    targets = [x] + [getattr(layer, v) for v in variables]
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(w * layer(x))
    grads = tape.gradient(loss, targets)
    for target, grad in zip(targets, grads):
        value = np.array(numpy(target))
        numeric = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            for sign in (1, -1):
                shifted = value.copy()
                shifted[idx] += sign * eps
                target.assign(shifted)
                numeric[idx] += sign * np.sum(w * numpy(layer(x))) / (2 * eps)
            target.assign(value)
        np.testing.assert_allclose(numpy(grad), numeric, rtol=1e-5, atol=1e-6)


def test_gradients_inputs_and_coefficients():
    x = np.random.default_rng(2).normal(scale=2.0, size=(3, 2))
    finite_difference_check(KAF(dtype="float64"), x, ["alpha"])


def test_gradients_trainable_dictionary_and_bandwidth():
    x = np.random.default_rng(3).normal(scale=2.0, size=(2, 2, 2, 2))
    layer = KAF(trainable_dictionary=True, dictionary_size=5, dtype="float64")
    finite_difference_check(layer, x, ["alpha", "dictionary", "gamma"])


def test_trainable_dictionary_matches_formula_after_changes():
    layer = KAF(trainable_dictionary=True)
    layer.build((None, 3))
    rng = np.random.default_rng(4)
    d = kaf_dictionary(20, 3.0) + rng.normal(scale=0.1, size=(3, 20))
    gamma = np.array([0.5, 1.0, 2.0])
    layer.dictionary.assign(d)
    layer.gamma.assign(gamma)
    x = rng.normal(size=(5, 3)).astype("float32")
    np.testing.assert_allclose(numpy(layer(x)), direct_kaf(x, numpy(layer.alpha), d, gamma), rtol=1e-5, atol=1e-5)
    assert len(layer.trainable_weights) == 3


def test_fixed_kaf_has_only_alpha_trainable():
    layer = KAF()
    layer.build((None, 8, 8, 3))
    assert [w.name for w in layer.trainable_weights] == ["alpha"]


def test_mixed_precision_large_inputs_stay_finite():
    layer = KAF(init="relu", dtype="mixed_float16")
    x = np.array([[-6e4, -300.0, -1.0, 0.5, 300.0, 6e4]], dtype="float32")
    y = numpy(layer(x)).astype(np.float32)
    assert y.dtype == np.float32 and np.all(np.isfinite(y))
    assert np.abs(y[0, [0, 1, 4, 5]]).max() < 1e-3  # Gaussians vanish far away


@pytest.mark.parametrize("kwargs, message", [
    (dict(dictionary_size=1), "dictionary_size"),
    (dict(dictionary_size=2.5), "dictionary_size"),
    (dict(boundary=0.0), "boundary"),
    (dict(init="not_an_activation"), "not_an_activation"),
])
def test_bad_parameters_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KAF(**kwargs)


def test_bad_rank_raises_clear_error():
    with pytest.raises(ValueError, match="rank >= 2"):
        KAF()(np.zeros((4,), "float32"))


def test_get_config_round_trip():
    layer = KAF(dictionary_size=7, boundary=2.0, init="elu", trainable_dictionary=True, smooth_length=1.5, name="k")
    clone = KAF.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.smooth_length == 1.5
    x = np.linspace(-2, 2, 12, dtype="float32").reshape(4, 3)
    np.testing.assert_allclose(numpy(layer(x)), numpy(clone(x)), rtol=1e-6)


def test_softplus_kernel_ridge_init_reproduces_swish():
    layer = KAF(init="swish", kernel="softplus")
    x = np.linspace(-2.5, 2.5, 501, dtype="float32")[:, None].repeat(2, axis=1)
    error = np.abs(numpy(layer(x)) - numpy(keras.activations.swish(x)))
    assert error.max() < 1e-3


@pytest.mark.parametrize("kwargs, message", [
    (dict(kernel="cosine"), "kernel must be one of gaussian, relu, softplus"),
    (dict(kernel="relu", init="elu"), "ill-posed for kernel='relu'"),
    (dict(kernel="softplus", init="elu"), "ill-conditioned with kernel='softplus'"),
    (dict(kernel="softplus", trainable_dictionary=True), "needs kernel='gaussian'"),
])
def test_kernel_parameters_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KAF(**kwargs)


@pytest.mark.parametrize("kernel", ["relu", "softplus"])
def test_kernel_layers_match_direct_layer_and_round_trip(kernel, tmp_path):
    from kaflib.kaf import DirectKAF

    inputs = keras.Input((5,))
    model = keras.Model(inputs, KAF(kernel=kernel, name="act")(inputs))
    x = np.random.default_rng(0).normal(scale=3, size=(64, 5)).astype("float32")
    direct = DirectKAF.from_config(model.get_layer("act").get_config())
    direct.build((None, 5))
    direct.alpha.assign(model.get_layer("act").alpha)
    np.testing.assert_allclose(numpy(model(x)), numpy(direct(x)), rtol=1e-5, atol=1e-5)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.get_layer("act").kernel == kernel
    np.testing.assert_allclose(numpy(loaded(x)), numpy(model(x)), rtol=1e-6)


def test_smooth_init_is_random_per_channel_reproducible_and_smoother_than_random():
    keras.utils.set_random_seed(3)
    smooth = KAF(init="smooth")
    smooth.build((None, 64))
    keras.utils.set_random_seed(3)
    again = KAF(init="smooth")
    again.build((None, 64))
    np.testing.assert_array_equal(numpy(smooth.alpha), numpy(again.alpha))
    rough = KAF(init="random")
    rough.build((None, 64))
    x = np.linspace(-3, 3, 601, dtype="float32")[:, None].repeat(64, axis=1)

    def slope_over_amplitude(layer):
        f = numpy(layer(x))
        assert not np.allclose(f[:, 0], f[:, 1])  # channels differ
        return np.median(np.abs(np.diff(f, axis=0)).max(0) / 0.01 / f.std(0))

    # about half: compounded over the 55 KAFs of a ResNet56, the difference between
    # trainable and exploding gradients (results/deep-kaf)
    assert slope_over_amplitude(smooth) < 0.6 * slope_over_amplitude(rough)


@pytest.mark.parametrize("kwargs, message", [
    (dict(init="smooth", smooth_length=0.0), "smooth_length must be > 0"),
    (dict(init="smooth", kernel="softplus"), "init='smooth' needs kernel='gaussian'"),
    (dict(init="gaussian-ish"), "neither 'random', 'smooth' nor a Keras"),
])
def test_smooth_init_parameters_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KAF(**kwargs)
