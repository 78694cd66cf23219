import keras
import numpy as np
import pytest
from keras import ops

from kaflib import ACTIVATIONS, KAF, KWTA, get_activation

EXPECTED = ["relu", "elu", "swish", "gelu", "softplus", "tanh",
            "kaf", "kaf_relu", "kaf_elu", "kaf_swish", "kaf_free", "kaf_smooth", "kwta"]


def test_registry_has_every_thesis_activation():
    assert sorted(ACTIVATIONS) == sorted(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_each_name_gives_a_fresh_working_layer(name):
    a, b = get_activation(name), get_activation(name)
    assert a is not b
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")
    assert tuple(a(x).shape) == x.shape


def test_kaf_variants():
    assert isinstance(get_activation("kaf"), KAF) and get_activation("kaf").init == "random"
    assert get_activation("kaf_elu").init == "elu"
    assert get_activation("kaf_free").trainable_dictionary
    assert get_activation("kaf_smooth").init == "smooth" and not get_activation("kaf_smooth").trainable_dictionary
    assert isinstance(get_activation("kwta"), KWTA)
    x = np.linspace(-2, 2, 9, dtype="float32")[:, None]
    np.testing.assert_allclose(ops.convert_to_numpy(get_activation("kaf_swish")(x)),
                               ops.convert_to_numpy(keras.activations.swish(x)), atol=0.05)


def test_kwargs_are_passed_to_the_layer():
    assert get_activation("kaf", dictionary_size=8).dictionary_size == 8
    assert get_activation("kwta", ratio=0.3).ratio == 0.3


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="valid names are: relu, elu.*kwta"):
        get_activation("sigmoidal")
