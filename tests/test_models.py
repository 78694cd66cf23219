import keras
import numpy as np
import pytest
from keras import ops

from kaflib import MODELS, build_model, resnet
from kaflib.kaf import KAF


def count(model, kind):
    return sum(isinstance(layer, kind) for layer in model.layers)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("act", ["relu", "kaf"])
@pytest.mark.filterwarnings("ignore:resnet\\(56, act='kaf'\\)")  # tested in test_deep_resnet_with_steep_kafs_warns
def test_models_return_logits_of_the_right_shape(name, act):
    model = build_model(name, act, num_classes=7, input_shape=(32, 32, 3))
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype="float32")
    y = ops.convert_to_numpy(model(x))
    assert y.shape == (2, 7)
    assert model.layers[-1].activation is keras.activations.linear  # logits, not softmax
    assert model.layers[-1].dtype_policy.compute_dtype == "float32"
    assert (count(model, KAF) > 0) == (act == "kaf")


@pytest.mark.parametrize("depth, convs, blocks", [(20, 19 + 2, 9), (56, 55 + 2, 27)])
def test_resnet_depth(depth, convs, blocks):
    model = resnet(depth, "relu")
    assert count(model, keras.layers.Conv2D) == convs  # + the two 3x3 shortcut convs
    assert count(model, keras.layers.Add) == blocks
    assert count(model, keras.layers.BatchNormalization) == 1 + 2 * blocks
    assert {layer.momentum for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)} == {0.99}
    shortcuts = [layer for layer in model.layers
                 if isinstance(layer, keras.layers.Conv2D) and layer.strides == (2, 2)]
    assert len(shortcuts) == 4 and all(layer.kernel_size == (3, 3) for layer in shortcuts)


def test_layer_recipes_set_initialisers_batch_norm_and_the_output_l2():
    thesis, old = resnet(20, "relu"), resnet(20, "relu", recipe="he-bn0.9")
    for model, conv_init, momentum, logits_init, l2 in ((thesis, "GlorotUniform", 0.99, "HeNormal", 5e-4),
                                                         (old, "HeNormal", 0.9, "GlorotUniform", None)):
        convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        assert {type(c.kernel_initializer).__name__ for c in convs} == {conv_init}
        assert {b.momentum for b in model.layers if isinstance(b, keras.layers.BatchNormalization)} == {momentum}
        logits = model.get_layer("logits")
        assert type(logits.kernel_initializer).__name__ == logits_init
        assert (logits.kernel_regularizer.l2 if l2 else logits.kernel_regularizer) == (pytest.approx(l2) if l2 else None)
    vgg = build_model("vgg", "relu", recipe="he-bn0.9")
    assert {b.momentum for b in vgg.layers if isinstance(b, keras.layers.BatchNormalization)} == {0.9}
    with pytest.raises(ValueError, match="recipe='wong' is invalid: must be one of thesis, he-bn0.9"):
        build_model("resnet20", "relu", recipe="wong")


def test_random_kafs_take_the_stddev_and_other_activations_ignore_it():
    from kaflib.kaf import KAF

    kafs = [layer for layer in build_model("light", "kaf", kaf_random_stddev="kafnets").layers
            if isinstance(layer, KAF)]
    assert {k.random_stddev for k in kafs} == {0.8}
    assert {k.random_stddev for k in build_model("light", "kaf_free").layers if isinstance(k, KAF)} == {0.05}
    build_model("light", "kaf_elu", kaf_random_stddev=0.3)  # ridge init: the std does not apply
    with pytest.raises(ValueError, match="random_stddev='wide' is invalid"):
        build_model("light", "kaf", kaf_random_stddev="wide")


def test_vgg_inspired_regularizes_dense_layers_only():
    model = build_model("vgg", "relu")
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [d.units for d in dense] == [128, 10]
    assert all(d.kernel_regularizer.l2 == pytest.approx(0.0012) for d in dense)
    assert [c.filters for c in convs] == [32, 32, 64, 64, 128, 128]
    assert [d.rate for d in model.layers if isinstance(d, keras.layers.Dropout)] == [0.2, 0.3, 0.4, 0.5]


@pytest.mark.parametrize("call, message", [
    (lambda: build_model("resnet18"), "valid names are: light, vgg"),
    (lambda: build_model("vgg", "sigmoidal"), "valid names"),
    (lambda: resnet(21), "6n\\+2"),
    (lambda: build_model("light", num_classes=1), "num_classes"),
    (lambda: build_model("light", input_shape=(32, 32)), "input_shape"),
])
def test_bad_parameters(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("name, act", [("light", "kwta"), ("resnet20", "kaf_free"), ("vgg", "kaf_elu")])
def test_save_load_round_trip(tmp_path, name, act):
    model = build_model(name, act)
    x = np.random.default_rng(1).random((3, 32, 32, 3), dtype="float32")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(ops.convert_to_numpy(model(x)), ops.convert_to_numpy(loaded(x)))


def test_deep_resnet_with_steep_kafs_warns_and_points_to_the_fix():
    import warnings

    with pytest.warns(UserWarning, match="act='kaf_elu' or 'kaf_smooth' trains"):
        resnet(26, "kaf")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resnet(26, "kaf_elu")  # bounded slope: no warning
        resnet(20, "kaf")  # the thesis trained its ResNet20 KAFs
