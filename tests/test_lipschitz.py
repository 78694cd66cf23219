import math

import keras
import numpy as np
import pytest
from keras import ops

from kaflib.kaf import KAF, kaf_gamma
from kaflib.kwta import KWTA
from kaflib.lipschitz import conv_spectral_norm, kaf_lipschitz, network_lipschitz


def built(layer, channels):
    layer.build((None, channels))
    return layer


def test_one_gaussian_has_the_analytic_slope():
    layer = built(KAF(), 2)
    alpha = np.zeros((2, 20), "float32")
    alpha[0, 4], alpha[1, 12] = 1.0, -2.0
    layer.alpha.assign(alpha)
    expected = np.array([1.0, 2.0]) * math.sqrt(2 * kaf_gamma(20, 3.0) / math.e)
    np.testing.assert_allclose(kaf_lipschitz(layer), expected, rtol=1e-5)
    np.testing.assert_allclose(kaf_lipschitz(layer, "analytic"), expected, rtol=1e-12)


@pytest.mark.parametrize("kwargs", [dict(), dict(init="smooth"), dict(trainable_dictionary=True),
                                    dict(kernel="softplus"), dict(kernel="relu")])
def test_numeric_constant_is_below_the_analytic_bound_and_matches_finite_differences(kwargs):
    keras.utils.set_random_seed(1)
    layer = built(KAF(**kwargs), 3)
    numeric = kaf_lipschitz(layer)
    assert np.all(numeric <= kaf_lipschitz(layer, "analytic") * (1 + 1e-9))
    x = np.linspace(-12, 12, 24001, dtype="float32")[:, None].repeat(3, axis=1)
    f = np.asarray(ops.convert_to_numpy(layer(x)), np.float64)
    finite = np.abs(np.diff(f, axis=0) / np.diff(x[:, 0])[:, None]).max(axis=0)
    np.testing.assert_allclose(finite, numeric, rtol=0.02)


def test_ridge_relu_kaf_has_a_cliff_past_the_dictionary():
    numeric = kaf_lipschitz(built(KAF(init="relu"), 1))[0]
    assert 3.0 < numeric < 4.0  # inside [-3, 3] the slope is about 1; past 3 f falls from 3 to 0


def test_conv_spectral_norm_matches_the_matrix():
    rng = np.random.default_rng(0)
    for strides in (1, 2):
        conv = keras.layers.Conv2D(3, 3, strides=strides, padding="same", use_bias=False)
        conv.build((None, 5, 5, 2))
        conv.kernel.assign(rng.normal(size=conv.kernel.shape).astype("float32"))
        basis = np.eye(50, dtype="float32").reshape(50, 5, 5, 2)
        matrix = np.asarray(ops.convert_to_numpy(conv(basis))).reshape(50, -1).T
        assert conv_spectral_norm(conv, (5, 5, 2), iterations=200) == pytest.approx(
            np.linalg.norm(matrix, 2), rel=1e-3)


def test_network_bound_multiplies_along_paths_and_adds_at_residuals():
    inputs = keras.Input((3,))
    a = keras.layers.Dense(4, name="a")(inputs)
    b = keras.layers.Dense(4, name="b")(inputs)
    added = keras.layers.Add()([keras.layers.Activation("relu")(a), b])
    outputs = keras.layers.Dense(2, name="out")(keras.layers.Activation("swish")(added))
    model = keras.Model(inputs, outputs)
    norm = {name: np.linalg.norm(np.asarray(ops.convert_to_numpy(model.get_layer(name).kernel)), 2)
            for name in ("a", "b", "out")}
    bound, table = network_lipschitz(model)
    assert bound == pytest.approx((norm["a"] + norm["b"]) * 1.0998 * norm["out"], rel=1e-5)
    assert sorted(table["kind"]) == ["activation", "activation", "add", "dense", "dense", "dense"]
    assert table.set_index("layer").loc["out", "bound"] == pytest.approx(bound)


def test_network_bound_rejects_what_it_cannot_bound():
    inputs = keras.Input((4,))
    assert network_lipschitz(keras.Model(inputs, KWTA()(inputs)))[0] == math.inf
    with pytest.raises(ValueError, match="does not know layer 'norm'"):
        network_lipschitz(keras.Model(inputs, keras.layers.LayerNormalization(name="norm")(inputs)))
    with pytest.raises(ValueError, match="method must be"):
        kaf_lipschitz(built(KAF(), 2), "exact")
