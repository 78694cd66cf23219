from pathlib import Path

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
    assert wide.random_stddev == 0.8 and wide.get_config()["alpha_initializer"]["config"]["stddev"] == 0.8
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
    assert clone.init == "elu" and clone.boundary == 2.0 and clone.smooth_length is None  # not the smooth init
    assert KAF.from_config(KAF(init="smooth", smooth_length=1.5).get_config()).smooth_length == 1.5
    x = np.linspace(-2, 2, 12, dtype="float32").reshape(4, 3)
    np.testing.assert_allclose(numpy(layer(x)), numpy(clone(x)), rtol=1e-6)


def test_softplus_kernel_ridge_init_reproduces_swish():
    layer = KAF(init="swish", kernel="softplus")
    x = np.linspace(-2.5, 2.5, 501, dtype="float32")[:, None].repeat(2, axis=1)
    error = np.abs(numpy(layer(x)) - numpy(keras.activations.swish(x)))
    assert error.max() < 1e-3


@pytest.mark.parametrize("kwargs, message", [
    (dict(kernel="cosine"), "kernel='cosine' is invalid: must be one of gaussian, relu, softplus"),
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
    (dict(init="smooth", smooth_length=0.0), "smooth_length=0.0 is invalid: must be a number > 0"),
    (dict(init="smooth", kernel="softplus"),
     "kernel='softplus' does not take the smooth init .* needs kernel='gaussian'"),
    (dict(init="gaussian-ish"), "init='gaussian-ish' is invalid: must be 'random', 'smooth', a Keras activation name"),
])
def test_smooth_init_parameters_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KAF(**kwargs)


# ---------------------------------------------------------------- Keras-style alpha_* arguments

DATA = Path(__file__).resolve().parent / "data"

#: fixture layer name -> (class name, the short form its 0.1 config maps to, the initializer's config)
FIXTURE_0_1 = {
    "random": ("KAF", "random", dict(stddev=0.05, seed=None)),
    "random_kafnets": ("KAF", "random", dict(stddev=0.8, seed=None)),
    "random_sd03_small": ("KAF", "random", dict(stddev=0.3, seed=None)),
    "ridge_elu": ("KAF", "elu", dict(activation="elu", boundary=3.0, kernel="gaussian", regularization=1e-6)),
    "ridge_relu": ("KAF", "relu", dict(activation="relu", boundary=3.0, kernel="gaussian", regularization=1e-6)),
    "ridge_swish": ("KAF", "swish", dict(activation="swish", boundary=3.0, kernel="gaussian", regularization=1e-6)),
    "smooth": ("KAF", "smooth", dict(length_scale=1.5, boundary=3.0, kernel="gaussian", regularization=1e-6,
                                     seed=None)),
    "free": ("KAF", "random", dict(stddev=0.05, seed=None)),
    "softplus_swish": ("KAF", "swish", dict(activation="swish", boundary=3.0, kernel="softplus", regularization=1e-6)),
    "relu_kernel": ("KAF", "random", dict(stddev=0.8, seed=None)),
    "direct_relu": ("DirectKAF", "relu", dict(activation="relu", boundary=3.0, kernel="gaussian", regularization=1e-6)),
}


def test_kaf_files_of_kaflib_0_1_still_load():
    """`tests/data/kaf-v0.1.keras` was saved by kaflib 0.1.0 before the alpha_* arguments
    (configs with init / random_stddev / smooth_length; see make_kaf_fixture.py)."""
    import json
    import zipfile

    with zipfile.ZipFile(DATA / "kaf-v0.1.keras") as archive:
        saved = {layer["config"]["name"]: layer["config"] for layer in
                 json.loads(archive.read("config.json"))["config"]["layers"]}
    assert all("init" in saved[name] and "alpha_initializer" not in saved[name] for name in FIXTURE_0_1)
    io = np.load(DATA / "kaf-v0.1-io.npz")
    model = keras.saving.load_model(DATA / "kaf-v0.1.keras")
    np.testing.assert_allclose(numpy(model(io["x"])), io["y"], rtol=1e-5, atol=1e-5)
    for name, (cls, init, initializer_config) in FIXTURE_0_1.items():
        layer = model.get_layer(name)
        assert type(layer).__name__ == cls and layer.init == init
        assert layer.alpha_initializer.get_config() == initializer_config
        assert layer.alpha_regularizer is None and layer.alpha_constraint is None
        assert layer.kernel == saved[name]["kernel"] and layer.dictionary_size == saved[name]["dictionary_size"]
        assert layer.trainable_dictionary == saved[name]["trainable_dictionary"]
    assert len(model.get_layer("free").trainable_weights) == 3


def test_short_forms_are_kaflib_initializers_with_the_same_values():
    from kaflib.kaf import KAFRandomInitializer, KAFRidgeInitializer, KAFSmoothInitializer

    # (the explicit initializers are made after the seed is set: a random one draws its seed when made)
    pairs = [(dict(init="random", random_stddev=0.3), lambda: dict(alpha_initializer=KAFRandomInitializer(0.3))),
             (dict(init="random", random_stddev="kafnets"),
              lambda: dict(alpha_initializer=KAFRandomInitializer("kafnets"))),
             (dict(init="smooth", smooth_length=1.5, boundary=2.0),
              lambda: dict(alpha_initializer=KAFSmoothInitializer(1.5), boundary=2.0)),
             (dict(init="elu", dictionary_size=9),
              lambda: dict(alpha_initializer=KAFRidgeInitializer("elu"), dictionary_size=9)),
             (dict(init="swish", kernel="softplus"),
              lambda: dict(alpha_initializer=KAFRidgeInitializer("swish", kernel="softplus"), kernel="softplus"))]
    for short, explicit in pairs:
        keras.utils.set_random_seed(5)
        a = KAF(**short)
        keras.utils.set_random_seed(5)
        b = KAF(**explicit())
        assert type(a.alpha_initializer) is type(b.alpha_initializer)
        assert a.get_config() == {**b.get_config(), "name": a.name}
        a.build((None, 6))
        b.build((None, 6))
        np.testing.assert_array_equal(numpy(a.alpha), numpy(b.alpha))
    # the thesis' default: Keras' 'random_normal', N(0, 0.05^2), as models.py's kaf_random_stddev="thesis"
    assert KAF().alpha_initializer.get_config() == dict(stddev=0.05, seed=None)
    # a ridge initializer on its own fits on a KAF's default dictionary, [-3, 3] with the Gaussian kernel
    layer = KAF(init="relu")
    layer.build((None, 3))
    np.testing.assert_array_equal(numpy(KAFRidgeInitializer("relu")((3, 20))), numpy(layer.alpha))
    # a KAF binds the geometry-free initializer it is given to its own dictionary, on a copy
    shared = KAFRidgeInitializer("elu")
    small = KAF(boundary=1.5, alpha_initializer=shared)
    assert shared.boundary is None and small.alpha_initializer.boundary == 1.5
    assert small.alpha_initializer.get_config()["kernel"] == "gaussian"


def _configured_kaf(**kwargs):
    from kaflib.kaf import KAFRandomInitializer

    return KAF(alpha_initializer=KAFRandomInitializer("kafnets"), alpha_regularizer=keras.regularizers.L2(1e-3),
               alpha_constraint=keras.constraints.MaxNorm(0.5, axis=1), **kwargs)


@pytest.mark.parametrize("initializer", [
    "random_normal", "kaf_random", "kaf_ridge", "kaf_smooth", "ridge_config"])
def test_alpha_arguments_serialise(initializer):
    from kaflib.kaf import KAFRandomInitializer, KAFRidgeInitializer, KAFSmoothInitializer

    made = {"random_normal": "random_normal", "kaf_random": KAFRandomInitializer(0.2, seed=3),
            "kaf_ridge": KAFRidgeInitializer("elu"), "kaf_smooth": KAFSmoothInitializer(1.5, seed=4),
            "ridge_config": {"class_name": "kaflib>KAFRidgeInitializer",
                             "config": {"activation": "swish"}}}[initializer]
    layer = KAF(alpha_initializer=made, alpha_regularizer=keras.regularizers.L2(1e-3),
                alpha_constraint=keras.constraints.MaxNorm(0.5, axis=1), dictionary_size=8, name="k")
    config = layer.get_config()
    assert config["alpha_regularizer"]["config"] == {"l2": pytest.approx(1e-3)}
    assert config["alpha_constraint"]["config"] == {"max_value": 0.5, "axis": 1}
    assert not {"init", "random_stddev", "smooth_length"} & set(config)
    for clone in (KAF.from_config(config),
                  keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))):
        assert type(clone) is KAF and clone.get_config() == config
        assert type(clone.alpha_initializer) is type(layer.alpha_initializer)
        assert isinstance(clone.alpha_regularizer, keras.regularizers.L2)
        assert isinstance(clone.alpha_constraint, keras.constraints.MaxNorm)
    x = np.linspace(-3, 3, 12, dtype="float32").reshape(4, 3)
    y = numpy(layer(x))
    clone = KAF.from_config(config)
    clone.build((None, 3))
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(numpy(clone(x)), y)


def test_alpha_arguments_round_trip_through_a_keras_file(tmp_path):
    from kaflib.kaf import DirectKAF, KAFSmoothInitializer

    inputs = keras.Input((4,))
    hidden = _configured_kaf(name="kaf")(keras.layers.Dense(4)(inputs))
    free = KAF(trainable_dictionary=True, alpha_initializer=KAFSmoothInitializer(1.0),
               alpha_regularizer="l2", alpha_constraint="non_neg", name="free")(hidden)
    direct = DirectKAF(alpha_initializer="kaflib>KAFRandomInitializer", alpha_regularizer=keras.regularizers.L1(1e-4),
                       name="direct")(hidden)
    model = keras.Model(inputs, keras.layers.Concatenate()([free, direct]))
    x = np.random.default_rng(0).normal(scale=2, size=(8, 4)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(numpy(loaded(x)), numpy(model(x)))
    for name in ("kaf", "free", "direct"):
        assert loaded.get_layer(name).get_config() == model.get_layer(name).get_config()
    kaf = loaded.get_layer("kaf")
    assert kaf.alpha_regularizer.l2 == pytest.approx(1e-3) and kaf.alpha_constraint.max_value == 0.5
    assert kaf.random_stddev == 0.8 and loaded.get_layer("free").smooth_length == 1.0
    assert isinstance(loaded.get_layer("free").alpha_constraint, keras.constraints.NonNeg)
    assert isinstance(loaded.get_layer("direct"), DirectKAF) and loaded.get_layer("direct").random_stddev == 0.05
    assert len(loaded.losses) == 3


def test_alpha_regularizer_and_constraint_act_in_training():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((3,))
    layer = _configured_kaf(name="kaf")
    model = keras.Model(inputs, keras.layers.Dense(1)(layer(keras.layers.Dense(3)(inputs))))
    alpha0 = numpy(layer.alpha).copy()
    assert np.linalg.norm(alpha0, axis=1).min() > 2  # N(0, 0.8^2): far above the MaxNorm of 0.5
    # the regularizer is in model.losses, with its value 1e-3 * sum(alpha^2)
    assert len(model.losses) == 1
    assert float(numpy(model.losses[0])) == pytest.approx(1e-3 * np.sum(alpha0.astype(np.float64) ** 2), rel=1e-5)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    rng = np.random.default_rng(1)
    history = model.fit(rng.normal(size=(32, 3)), rng.normal(size=(32, 1)), batch_size=8, epochs=1, verbose=0)
    alpha = numpy(layer.alpha)
    assert np.isfinite(history.history["loss"]).all()
    assert not np.allclose(alpha, alpha0)
    # the constraint ran after each step: every channel's coefficients have norm <= 0.5
    np.testing.assert_array_less(np.linalg.norm(alpha, axis=1), 0.5 + 1e-5)
    assert np.linalg.norm(alpha, axis=1).max() == pytest.approx(0.5, rel=1e-4)


def test_alpha_regularizer_adds_to_the_training_loss():
    from kaflib.kaf import KAFRandomInitializer

    def loss_with(regularizer):
        keras.utils.set_random_seed(2)
        inputs = keras.Input((3,))
        outputs = KAF(alpha_initializer=KAFRandomInitializer(0.5), alpha_regularizer=regularizer)(inputs)
        model = keras.Model(inputs, outputs)
        model.compile(optimizer="sgd", loss="mse")
        x = np.random.default_rng(2).normal(size=(4, 3))
        alpha = numpy(model.layers[-1].alpha).astype(np.float64)
        return model.evaluate(x, np.zeros((4, 3)), verbose=0), alpha

    plain, alpha = loss_with(None)
    regularised, _ = loss_with(keras.regularizers.L2(1e-2))
    assert regularised - plain == pytest.approx(1e-2 * np.sum(alpha**2), rel=1e-4)


@pytest.mark.parametrize("kwargs, message", [
    (dict(alpha_initializer=5), r"KAF alpha_initializer=5 is invalid: must be None \(then init= decides\), a Keras "
                                r"initializer"),
    (dict(alpha_initializer="kaf_elu"), "alpha_initializer='kaf_elu' is invalid"),
    (dict(alpha_regularizer="nope"), "KAF alpha_regularizer='nope' is invalid: must be None or a Keras regularizer"),
    (dict(alpha_constraint=3), "KAF alpha_constraint=3 is invalid: must be None or a Keras constraint"),
    (dict(init="elu", alpha_initializer="zeros"), "alpha_initializer or its short forms .* not both: .* init='elu'"),
    (dict(random_stddev=0.3, alpha_initializer="zeros"), "not both: .* random_stddev=0.3"),
    (dict(init=keras.initializers.Zeros()), "init=<.*Zeros.*> is invalid: .* pass initializers as alpha_initializer"),
    (dict(boundary=2.0, alpha_initializer="__ridge_boundary_3__"), "KAFRidgeInitializer boundary=3.0 is invalid: "
                                                                   "must be None or the KAF's boundary, 2.0"),
    (dict(kernel="relu", alpha_initializer="__ridge__"), "ill-posed for kernel='relu'"),
    (dict(kernel="softplus", alpha_initializer="__smooth__"), "kernel='softplus' does not take the smooth init"),
    (dict(dictionary_size=True), "dictionary_size=True is invalid: must be an integer >= 2"),
    (dict(boundary="3"), "boundary='3' is invalid: must be a number > 0"),
    (dict(trainable_dictionary="yes"), "trainable_dictionary='yes' is invalid: must be True or False"),
])
def test_bad_alpha_arguments_raise_clear_errors(kwargs, message):
    from kaflib.kaf import KAFRidgeInitializer, KAFSmoothInitializer

    made = {"__ridge_boundary_3__": KAFRidgeInitializer("elu", boundary=3), "__ridge__": KAFRidgeInitializer("elu"),
            "__smooth__": KAFSmoothInitializer()}
    if kwargs.get("alpha_initializer") in made:
        kwargs = {**kwargs, "alpha_initializer": made[kwargs["alpha_initializer"]]}
    with pytest.raises(ValueError, match=message):
        KAF(**kwargs)


@pytest.mark.parametrize("make, message", [
    ("KAFRandomInitializer('wide')", "KAFRandomInitializer stddev='wide' is invalid: must be a number > 0 or one of"),
    ("KAFRidgeInitializer('nope')", "KAFRidgeInitializer activation='nope' is invalid: must be a Keras activation"),
    ("KAFRidgeInitializer('elu', boundary=-1)", "KAFRidgeInitializer boundary=-1 is invalid: must be None"),
    ("KAFRidgeInitializer('elu', kernel='cosine')", "KAFRidgeInitializer kernel='cosine' is invalid: must be None"),
    ("KAFRidgeInitializer('elu', regularization=-1e-3)", "regularization=-0.001 is invalid: must be a number >= 0"),
    ("KAFSmoothInitializer(0)", "KAFSmoothInitializer length_scale=0 is invalid: must be a number > 0"),
    ("KAFSmoothInitializer(kernel='relu')", "KAFSmoothInitializer kernel='relu' is invalid: must be None .*'gaussian'"),
])
def test_bad_initializer_arguments_raise_clear_errors(make, message):
    from kaflib import kaf

    with pytest.raises(ValueError, match=message):
        eval(make, vars(kaf))
