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


#: The layers of the thesis models that are not activations.
NOT_ACTIVATIONS = {"InputLayer", "Conv2D", "BatchNormalization", "Dense", "Add", "MaxPooling2D", "Dropout",
                   "Flatten", "GlobalAveragePooling2D"}


@pytest.mark.parametrize("model", ["light", "vgg", "resnet20"])
def test_activation_layers_are_the_activations_of_the_thesis_models_and_nothing_else(model):
    from kaflib.activations import activation_layers
    from kaflib.models import build_model

    counts = set()
    for act, kind in (("kaf", KAF), ("kwta", KWTA), ("relu", keras.layers.Activation)):
        net = build_model(model, act)
        found = activation_layers(net)
        assert found and all(type(layer) is kind for layer in found), act
        assert found == [layer for layer in net.layers if layer in found]  # in the model's order
        assert {type(layer).__name__ for layer in net.layers if layer not in found} <= NOT_ACTIVATIONS
        counts.add(len(found))
    assert len(counts) == 1  # the same places, whichever activation fills them


def test_activation_layers_of_other_models():
    from kaflib.activations import activation_layers
    from kaflib.kaf import DirectKAF

    layers = [keras.layers.Dense(4, activation="relu"), keras.layers.ReLU(), keras.layers.ELU(), DirectKAF(),
              keras.layers.Activation("tanh"), keras.layers.Dense(2)]
    net = keras.Sequential([keras.Input((3,)), *layers])
    assert activation_layers(net) == layers[1:5]
