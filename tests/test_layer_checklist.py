"""Keras' own layer checklist (`keras.src.testing.TestCase.run_layer_test`, the test every
built-in Keras layer gets) for kaflib's layers: build from a shape and from data, config round
trip, serialization and `.keras` save/load, symbolic call, weight counts, a training step
(`fit` on random data), and the `mixed_float16` check (weights stay float32, outputs follow the
compute dtype)."""

import keras
import numpy as np
import pytest
from keras.src.testing import TestCase

from kaflib.batchnorm import FusedOrderBatchNormalization
from kaflib.kaf import KAF, DirectKAF, KAFRandomInitializer, KAFRidgeInitializer, KAFSmoothInitializer
from kaflib.kwta import KWTA

CASES = [
    # layer, init kwargs, trainable weights (alpha; + dictionary and gamma)
    (KAF, {}, 1),
    (KAF, dict(init="elu"), 1),
    (KAF, dict(init="smooth", dictionary_size=8), 1),
    (KAF, dict(trainable_dictionary=True), 3),
    (KAF, dict(kernel="softplus", init="swish"), 1),
    (KAF, dict(kernel="relu", random_stddev="kafnets"), 1),
    (DirectKAF, dict(init="relu"), 1),
    # the Keras-style arguments of the coefficients (a regularizer adds one loss)
    (KAF, dict(alpha_initializer=KAFRidgeInitializer("elu"), alpha_regularizer=keras.regularizers.L2(1e-3),
               alpha_constraint=keras.constraints.MaxNorm(1.0, axis=1)), 1),
    (KAF, dict(alpha_initializer=KAFSmoothInitializer(1.5), alpha_regularizer="l1", trainable_dictionary=True), 3),
    (DirectKAF, dict(alpha_initializer=KAFRandomInitializer("kafnets"), alpha_constraint="non_neg"), 1),
    (KAF, dict(alpha_initializer="glorot_uniform", kernel="softplus"), 1),
    (KWTA, dict(ratio=0.25), 0),
]


def _short(value):
    """A test id for a keyword argument's value: the class name of an object."""
    return value if isinstance(value, (str, int, float)) else type(value).__name__


class _Keras(TestCase):
    def runTest(self):  # unittest needs one; the checks run through run_layer_test
        pass


@pytest.mark.parametrize("layer_cls, kwargs, trainable", CASES,
                         ids=[f"{cls.__name__}-{'-'.join(f'{k}={_short(v)}' for k, v in kw.items()) or 'default'}"
                              for cls, kw, _ in CASES])
@pytest.mark.parametrize("input_shape", [(2, 5, 5, 3), (4, 6)], ids=["conv", "dense"])
def test_keras_layer_checklist(layer_cls, kwargs, trainable, input_shape):
    _Keras().run_layer_test(
        layer_cls, init_kwargs=kwargs, input_shape=input_shape, expected_output_shape=input_shape,
        expected_num_trainable_weights=trainable, expected_num_non_trainable_weights=0,
        expected_num_seed_generators=0, expected_num_losses=int(kwargs.get("alpha_regularizer") is not None),
        supports_masking=False,
        run_training_check=True, run_mixed_precision_check=True)


def test_fused_order_batch_norm_checklist_and_its_inference_formula():
    """`FusedOrderBatchNormalization` (the thesis importer's batch norm), without ../shared."""
    _Keras().run_layer_test(
        FusedOrderBatchNormalization, init_kwargs=dict(momentum=0.99, epsilon=1e-3), input_shape=(3, 4, 4, 5),
        expected_output_shape=(3, 4, 4, 5), expected_num_trainable_weights=2, expected_num_non_trainable_weights=2,
        expected_num_seed_generators=0, expected_num_losses=0, supports_masking=True, run_training_check=True,
        run_mixed_precision_check=True)
    import keras

    rng = np.random.default_rng(0)
    layer = FusedOrderBatchNormalization(epsilon=1e-3)
    layer.build((None, 5))
    mean, variance = rng.normal(size=5), rng.uniform(0.5, 2, size=5)
    gamma, beta = rng.normal(size=5), rng.normal(size=5)
    layer.set_weights([gamma, beta, mean, variance])
    x = rng.normal(size=(7, 5)).astype("float32")
    expected = (x - mean) * (gamma / np.sqrt(variance + 1e-3)) + beta  # TF's FusedBatchNormV3 order
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x, training=False)), expected, rtol=1e-5, atol=1e-5)
    reference = keras.layers.BatchNormalization(epsilon=1e-3)
    reference.build((None, 5))
    reference.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x, training=True)),
                               keras.ops.convert_to_numpy(reference(x, training=True)), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="axis=-1 only"):
        FusedOrderBatchNormalization(axis=1)
